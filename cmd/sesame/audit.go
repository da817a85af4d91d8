package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// Audit modes (--audit).
const (
	auditNormal = "normal" // reads and calls recorded in the background; spilled, or counted and recorded as gaps, when the store fails
	auditStrict = "strict" // every request's event is durable before the answer; otherwise 503 audit_unavailable
)

// auditFlags configure the audit trail.
type auditFlags struct {
	mode            string
	spillDir        string
	outboxGrace     time.Duration
	checkpointEvery time.Duration
}

func (a *auditFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&a.mode, "audit", env("SESAME_AUDIT", auditNormal), "audit mode: normal, or strict to refuse (503) every request whose audit event cannot be recorded durably (SESAME_AUDIT)")
	fs.StringVar(&a.spillDir, "audit-spill-dir", env("SESAME_AUDIT_SPILL_DIR", ""), "folder where audit events are spilled (fsynced) while the store cannot take them, replayed when it can; default: the data folder (SESAME_AUDIT_SPILL_DIR)")
	fs.DurationVar(&a.outboxGrace, "audit-outbox-grace", envDuration(getenv, "SESAME_AUDIT_OUTBOX_GRACE", time.Minute), "how old the outbox event of an unfinished change must be before it is chained on its own (SESAME_AUDIT_OUTBOX_GRACE)")
	fs.DurationVar(&a.checkpointEvery, "audit-checkpoint-every", envDuration(getenv, "SESAME_AUDIT_CHECKPOINT_EVERY", 10*time.Minute), "how often the server logs a signed \"audit checkpoint:\" line (also at start and shutdown) (SESAME_AUDIT_CHECKPOINT_EVERY)")
}

func (a *auditFlags) check() error {
	if a.mode != auditNormal && a.mode != auditStrict {
		return fmt.Errorf("--audit must be normal or strict, not %q", a.mode)
	}
	if a.outboxGrace <= 0 || a.checkpointEvery <= 0 {
		return fmt.Errorf("--audit-outbox-grace and --audit-checkpoint-every must be positive")
	}
	return nil
}

// newAuditTrail starts the audit trail on the store, keyed with a server secret that the
// store holds only sealed under the master key (so the vault must be unlocked).
func newAuditTrail(ctx context.Context, c serveConfig, v *vault.Vault, st *store.Store, log *slog.Logger) (*audit.Log, error) {
	secret, err := v.ServerSecret(ctx, "audit-hmac")
	if err != nil {
		return nil, err
	}
	defer secret.Wipe()
	spill := c.audit.spillDir
	if spill == "" {
		spill = c.data
	}
	return audit.New(audit.Config{Store: st, Secret: secret, Clock: time.Now, Logger: log, SpillDir: spill,
		OutboxGrace: c.audit.outboxGrace,
		// On SQLite this process owns the store: an outbox row left now is from a process
		// that died, so it is chained at once.
		DrainOutboxAtStart: st.Dialect() == "sqlite"})
}

// vaultAuditor records the vault's own changes (a credential bound to its first
// destination) in the trail, naming the request they were made for.
type vaultAuditor struct{ *audit.Log }

func (vaultAuditor) RequestEvent(ctx context.Context) sesame.AuditEvent {
	return audit.FromContext(ctx)
}

// closeAuditTrail flushes the events still queued, giving up after a while so that a
// stuck store cannot hold the shutdown forever (what was lost is logged), and logs the
// final checkpoint.
func closeAuditTrail(ctx context.Context, trail *audit.Log, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := trail.Close(ctx); err != nil {
		log.Error("audit trail not flushed", "err", err)
		return
	}
	s := trail.Stats()
	log.Info("audit trail flushed", "committed", s.Committed, "dropped", s.Dropped, "spill_pending", s.SpillPending)
	logCheckpoint(ctx, trail, log)
}

// logCheckpoints logs a signed checkpoint of the chain's head every interval (serve logs
// one at start, closeAuditTrail one at shutdown), so that the log, kept apart from the
// database, can prove later that the trail was not truncated: sesame audit verify
// --checkpoint.
func logCheckpoints(ctx context.Context, trail *audit.Log, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			logCheckpoint(ctx, trail, log)
		}
	}
}

func logCheckpoint(ctx context.Context, trail *audit.Log, log *slog.Logger) {
	cp, err := trail.Checkpoint(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("audit checkpoint not taken", "err", err)
		}
		return
	}
	log.Info(audit.CheckpointPrefix + cp.String())
}

// callRecorder sends each outbound call to the audit trail (asynchronously) and, as before
// the trail existed, to the structured log.
func callRecorder(trail *audit.Log, log *slog.Logger) gateway.Recorder {
	return teeRecorder{trail, gateway.LogRecorder{Log: log}}
}

type teeRecorder []gateway.Recorder

func (t teeRecorder) RecordCall(ctx context.Context, r gateway.CallRecord) {
	for _, rec := range t {
		rec.RecordCall(ctx, r)
	}
}
