package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

// AllowDestination decides whether credential ws/key may be sent to u (PRODUCT.md §4.7):
// to an origin its "hosts" allow. A credential that has no hosts yet is bound here to
// u's origin (scheme, host and port), which its read view then shows: the first
// connection or function to use it decides, and widening that takes the secret again or
// an admin. It is the one place that decides; save-time checks and every send call it.
func (v *Vault) AllowDestination(ctx context.Context, ws, key string, u *url.URL) error {
	if err := checkNames(ws, key); err != nil {
		return err
	}
	rec, ok := v.records.Get(recordKey(ws, key))
	if !ok || len(credential.Hosts(rec.Public)) == 0 {
		var err error
		if rec, err = v.bind(ctx, ws, key, u); err != nil {
			return err
		}
	}
	hosts := credential.Hosts(rec.Public)
	if credential.HostsAllow(hosts, u) {
		return nil
	}
	return sesame.Errorf(sesame.CodeDestinationLocked,
		"credential %q may not be sent to %s: its hosts are %s (an admin, or whoever sends its secret again, can change them)",
		key, credential.Origin(u), strings.Join(hosts, ", "))
}

// bind reads ws/key from the store and, if it has no hosts, binds it to u's origin with a
// compare-and-swap write; it returns the record as it then is.
func (v *Vault) bind(ctx context.Context, ws, key string, u *url.URL) (sesame.CredentialRecord, error) {
	for range 3 {
		rec, err := v.store.GetCredential(ctx, ws, key)
		if errors.Is(err, sesame.ErrNotFound) {
			return rec, v.notFound(ctx, ws, key)
		}
		if err != nil {
			return rec, err
		}
		if len(credential.Hosts(rec.Public)) > 0 {
			return rec, nil
		}
		bound := rec
		bound.Public = maps.Clone(rec.Public)
		if bound.Public == nil {
			bound.Public = map[string]any{}
		}
		origin := credential.Origin(u)
		bound.Public["hosts"] = []any{origin}
		bound.UpdatedAt = v.now().UTC()
		// The binding is a change of its own, whatever the request that caused it (a proxy
		// call is not one): its audit event commits with it (PRODUCT.md §4.8).
		wctx, intent := v.bindIntent(ctx, ws, key, origin, bound.UpdatedAt)
		bound.Version, err = v.store.PutCredential(wctx, bound, rec.Version)
		v.records.Delete(recordKey(ws, key))
		if errors.Is(err, sesame.ErrConflict) {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return rec, err
		}
		if v.log != nil {
			v.log.InfoContext(ctx, "credential bound to its first destination", "workspace", ws, "credential", key, "hosts", origin)
		}
		if intent != nil {
			e := intent.Event
			e.Outbox = intent.ID
			if err := v.auditor.RecordSync(ctx, e); err != nil && v.log != nil {
				// Its outbox row is chained later.
				v.log.WarnContext(ctx, "audit: the binding's event is not chained yet; its outbox event will be", "credential", key, "err", err)
			}
		}
		return bound, nil
	}
	return sesame.CredentialRecord{}, sesame.Errorf(sesame.CodeConflict, "credential %q changed while being bound to a host; try again", key)
}

// Auditor records the audit events of the changes the vault makes by itself, such as
// binding a credential to its first destination (internal/audit.Log, through cmd/sesame).
type Auditor interface {
	// RequestEvent returns what ctx says about the request a change is made for: the
	// principal, the request ID and the source address.
	RequestEvent(ctx context.Context) sesame.AuditEvent
	// RecordSync chains e; with e.Outbox set it removes that outbox row.
	RecordSync(ctx context.Context, e sesame.AuditEvent) error
}

// SetAuditor makes the vault record its own changes in the audit trail. Set it before
// serving.
func (v *Vault) SetAuditor(a Auditor) { v.auditor = a }

// bindIntent returns ctx carrying, besides the intents it has, the audit intent of binding
// ws/key to origin, so that the write commits the event to the outbox with it; without an
// auditor, ctx as it is.
func (v *Vault) bindIntent(ctx context.Context, ws, key, origin string, at time.Time) (context.Context, *sesame.AuditIntent) {
	if v.auditor == nil {
		return ctx, nil
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	e := v.auditor.RequestEvent(ctx)
	e.Time, e.Workspace, e.Action, e.Target, e.Result = at, ws, "credential.bind", key, sesame.AuditOK
	e.Detail = "bound to its first destination: hosts " + origin
	intent := &sesame.AuditIntent{ID: hex.EncodeToString(id), Event: e}
	return sesame.WithAuditIntents(ctx, append(sesame.AuditIntentsFrom(ctx), intent)...), intent
}
