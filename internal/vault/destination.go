package vault

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"strings"

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
		bound.Version, err = v.store.PutCredential(ctx, bound, rec.Version)
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
		return bound, nil
	}
	return sesame.CredentialRecord{}, sesame.Errorf(sesame.CodeConflict, "credential %q changed while being bound to a host; try again", key)
}
