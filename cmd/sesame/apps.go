package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/apps"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// appFlags configure app tokens (PRODUCT.md C7).
type appFlags struct {
	tokenTTL time.Duration
	noTrial  bool
}

func (a *appFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.DurationVar(&a.tokenTTL, "app-token-ttl", envDuration(getenv, "SESAME_APP_TOKEN_TTL", apps.DefaultTokenTTL),
		"how long an app token from POST /api/v2/auth is valid (SESAME_APP_TOKEN_TTL)")
	fs.BoolVar(&a.noTrial, "no-trial-apps", getenv("SESAME_NO_TRIAL_APPS") == "true" || getenv("SESAME_NO_TRIAL_APPS") == "1",
		"refuse unsigned com.example.* manifests: every app needs a signature (SESAME_NO_TRIAL_APPS=true)")
}

// newApps builds the app-token service. Its two Ed25519 keys, the trust root that signs
// developer certificates and the key that signs tokens, are derived from server secrets
// that the vault creates on first start and keeps sealed under the master key, so every
// replica has the same keys and master-key rotation re-wraps them with everything else.
func newApps(ctx context.Context, a appFlags, trialPerMinute int, v *vault.Vault, st *store.Store, trail *audit.Log, log *slog.Logger) (*apps.Service, error) {
	if a.tokenTTL < time.Second {
		return nil, fmt.Errorf("--app-token-ttl must be at least 1s, not %s", a.tokenTTL)
	}
	root, err := v.ServerSecret(ctx, "app-trust-root")
	if err != nil {
		return nil, fmt.Errorf("app trust root: %w", err)
	}
	defer root.Wipe()
	tokenKey, err := v.ServerSecret(ctx, "app-token-key")
	if err != nil {
		return nil, fmt.Errorf("app token key: %w", err)
	}
	defer tokenKey.Wipe()
	svc, err := apps.New(apps.Config{
		Store:     st,
		TrustRoot: apps.KeyFromSecret(root, "trust-root"),
		TokenKey:  apps.KeyFromSecret(tokenKey, "token-key"),
		TokenTTL:  a.tokenTTL,
		NoTrial:   a.noTrial,
		Now:       time.Now,
		Logger:    log,
		Notifier:  st,
		Audit:     appAudit{trail: trail, log: log},
		// Trial tokens are free for anybody: a fixed number per source address per minute.
		TrialLimit: auth.NewFailureLimiter(trialPerMinute, time.Minute, time.Now),
	})
	if err != nil {
		return nil, err
	}
	if err := svc.Sync(ctx); err != nil {
		return nil, fmt.Errorf("load app token revocations: %w", err)
	}
	return svc, nil
}

// runApps keeps the app-token service's view of revocations fresh until ctx ends: it polls,
// and on PostgreSQL also syncs whenever another replica announces a revocation.
func runApps(ctx context.Context, svc *apps.Service, st *store.Store, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx)
	}()
	if err := st.Listen(ctx, apps.Channel, func(string) {
		if err := svc.Sync(ctx); err != nil && ctx.Err() == nil {
			log.Warn("sync app token revocations", "err", err)
		}
	}); err != nil {
		log.Warn("listen for app token revocations", "err", err)
	}
	<-done
}

// appAudit records the app-token service's events in the audit trail, with the principal,
// source and request ID that ctx carries. Issuing a token is the hot path and is queued;
// certificate issue and revocations are changes, committed to the trail before the caller
// is answered.
type appAudit struct {
	trail *audit.Log
	log   *slog.Logger
}

func (a appAudit) Record(ctx context.Context, action, target, result string) {
	e := audit.FromContext(ctx)
	e.Action, e.Target = action, target
	if result != "ok" {
		e.Code = result
	}
	e.Result = audit.ResultOf(sesame.Code(e.Code))
	if action == apps.ActionTokenIssue {
		a.trail.Record(ctx, e)
		return
	}
	if err := a.trail.RecordSync(ctx, e); err != nil {
		a.log.ErrorContext(ctx, "audit event not recorded", "action", action, "target", target, "err", err)
	}
}
