package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// newAuditTrail starts the audit trail on the store, keyed with a server secret that the
// store holds only sealed under the master key (so the vault must be unlocked).
func newAuditTrail(ctx context.Context, v *vault.Vault, st *store.Store, log *slog.Logger) (*audit.Log, error) {
	secret, err := v.ServerSecret(ctx, "audit-hmac")
	if err != nil {
		return nil, err
	}
	defer secret.Wipe()
	return audit.New(audit.Config{Store: st, Secret: secret, Clock: time.Now, Logger: log})
}

// closeAuditTrail flushes the events still queued, giving up after a while so that a
// stuck store cannot hold the shutdown forever (what was lost is logged).
func closeAuditTrail(ctx context.Context, trail *audit.Log, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := trail.Close(ctx); err != nil {
		log.Error("audit trail not flushed", "err", err)
		return
	}
	s := trail.Stats()
	log.Info("audit trail flushed", "committed", s.Committed, "dropped", s.Dropped)
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
