package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
)

// SecretState is what a read shows of a secret field: whether it is set, and when it
// last changed. Never the value.
type SecretState struct {
	Set         bool       `json:"set"`
	NeedsSecret bool       `json:"needs_secret,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
}

// CredentialView is the readable form of a credential.
type CredentialView struct {
	Workspace    string         `json:"workspace"`
	Key          string         `json:"key"`
	Type         string         `json:"type"`
	Fields       map[string]any `json:"fields"`
	NeedsSecrets []string       `json:"needs_secrets,omitempty"`
	Version      int64          `json:"version"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

func view(rec sesame.CredentialRecord) CredentialView {
	v := CredentialView{
		Workspace: rec.Workspace, Key: rec.Key, Type: rec.Type, Version: rec.Version,
		Fields: make(map[string]any, len(rec.Public)+len(rec.Secrets)), CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	}
	for k, val := range rec.Public {
		v.Fields[k] = val
	}
	for _, s := range rec.Secrets {
		if s.Blob == nil {
			v.Fields[s.Name] = SecretState{NeedsSecret: true}
			v.NeedsSecrets = append(v.NeedsSecrets, s.Name)
			continue
		}
		t := s.UpdatedAt
		v.Fields[s.Name] = SecretState{Set: true, UpdatedAt: &t}
	}
	return v
}

func checkNames(ws, key string) error {
	if !sesame.ValidWorkspaceName(ws) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid workspace name: use 1-63 lowercase letters, digits, '-' or '_'")
	}
	if key != "" && !sesame.ValidCredentialKey(key) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid credential key: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit")
	}
	return nil
}

// Actor is what the vault must know about who changes a credential.
type Actor struct {
	// Admin holds the admin privilege in the credential's workspace: it may change where
	// a stored secret may be sent without sending the secret again.
	Admin bool
}

// PutCredential creates or replaces the credential ws/key from a JSON body
// {"type": ..., "fields": {...}}. On update every secret field that is stored must be sent
// again or marked {"keep": true}. Where a secret may be sent is fixed when it is entered
// (PRODUCT.md §4.7): unless by is an admin, an update that keeps a stored secret may not
// change the credential's type, widen its hosts or change a URL its kind sends secrets to,
// and an oauth2 credential with stored grants may not change them at all. An update that
// omits "hosts" keeps the stored ones. It reports whether the credential was created.
func (v *Vault) PutCredential(ctx context.Context, ws, key string, body []byte, by Actor) (CredentialView, bool, error) {
	if err := checkNames(ws, key); err != nil {
		return CredentialView{}, false, err
	}
	return v.put(ctx, ws, key, body, by)
}

// put is PutCredential without the name check (the OAuth apps' workspace has a name no
// client can use).
func (v *Vault) put(ctx context.Context, ws, key string, body []byte, by Actor) (CredentialView, bool, error) {
	view, created, err := v.putCredential(ctx, ws, key, body, by)
	if errors.Is(err, store.ErrPrimaryChanged) {
		// A rotation changed the primary master key after this replica sealed: nothing was
		// written. Pick up the new primary and seal again; a replica that lacks it refuses.
		if serr := v.SyncKeys(ctx); serr != nil {
			return CredentialView{}, false, errors.Join(err, serr)
		}
		view, created, err = v.putCredential(ctx, ws, key, body, by)
	}
	return view, created, err
}

func (v *Vault) putCredential(ctx context.Context, ws, key string, body []byte, by Actor) (CredentialView, bool, error) {
	in, err := credential.ParseUnchecked(body)
	if err != nil {
		return CredentialView{}, false, err
	}
	if err := v.checkOAuthApp(ctx, ws, in); err != nil {
		return CredentialView{}, false, err
	}
	old, err := v.store.GetCredential(ctx, ws, key)
	exists := err == nil
	if err != nil && !errors.Is(err, sesame.ErrNotFound) {
		return CredentialView{}, false, err
	}
	if exists {
		// A stored secret the body does not mention would be dropped silently: refuse.
		for _, s := range old.Secrets {
			if _, given := in.Secrets[s.Name]; !given && s.Blob != nil {
				if _, stillAField := in.Kind.Field(s.Name); stillAField {
					return CredentialView{}, false, sesame.Errorf(sesame.CodeSecretRequired,
						`field %q is secret and stored: send it again, or {"keep": true} to keep the stored value`, s.Name)
				}
			}
		}
		if _, given := in.Public["hosts"]; !given {
			if h, ok := old.Public["hosts"]; ok {
				in.Public["hosts"] = h
			}
		}
	}
	if err := in.Validate(); err != nil {
		return CredentialView{}, false, err
	}
	var kept []string
	for _, name := range in.Kind.SecretFields() {
		if si, ok := in.Secrets[name]; ok && si.Keep {
			kept = append(kept, name)
		}
	}
	if exists {
		if err := v.checkDestination(ctx, old, in, kept, by); err != nil {
			return CredentialView{}, false, err
		}
	}
	now := v.now().UTC()
	rec := sesame.CredentialRecord{
		Workspace: ws, Key: key, Type: in.Kind.Name, Public: in.Public,
		CreatedAt: now, UpdatedAt: now,
	}
	if exists {
		rec.CreatedAt = old.CreatedAt
	}
	for _, name := range in.Kind.SecretFields() {
		si, ok := in.Secrets[name]
		if !ok {
			continue
		}
		if si.Keep {
			prev, found := old.Secret(name)
			if !exists || !found || prev.Blob == nil {
				return CredentialView{}, false, sesame.Errorf(sesame.CodeSecretRequired,
					"field %q has no stored value to keep; send the value", name)
			}
			rec.Secrets = append(rec.Secrets, prev)
			continue
		}
		blob, err := v.keyring.Seal(si.Value.Reveal(), secretIdentity(ws, key, name)...)
		si.Value.Wipe()
		if err != nil {
			return CredentialView{}, false, fmt.Errorf("vault: seal %s: %w", name, err)
		}
		rec.Secrets = append(rec.Secrets, sesame.SealedField{Name: name, Blob: blob, UpdatedAt: now})
	}
	if in.Kind.Verify != nil {
		if err := v.verify(in, rec); err != nil {
			if len(kept) > 0 && sesame.ErrorCode(err) != sesame.CodeInternal {
				// The check saw a stored secret: its verdict must not describe it.
				return CredentialView{}, false, sesame.Errorf(sesame.CodeInvalidField,
					"the credential does not verify with the stored value of %s; send the secret fields again", quoteList(kept))
			}
			return CredentialView{}, false, err
		}
	}
	rec.Version, err = v.store.PutCredential(ctx, rec, old.Version)
	v.records.Delete(recordKey(ws, key))
	if err != nil {
		return CredentialView{}, false, err
	}
	return view(rec), !exists, nil
}

// checkDestination applies the destination rule to an update of old into in that keeps
// the secret fields kept.
func (v *Vault) checkDestination(ctx context.Context, old sesame.CredentialRecord, in credential.Input, kept []string, by Actor) error {
	if len(kept) > 0 {
		// Checked for everyone, admins too: it is about what a check would reveal.
		if f := credential.KeyParamChange(old.Type, old.Public, in); f != "" {
			return sesame.Errorf(sesame.CodeSecretRequired,
				"changing field %q needs the secret fields sent again (%s): a stored secret is never checked against new settings", f, quoteList(kept))
		}
	}
	what := credential.DestinationChange(old.Type, old.Public, in)
	if what == "" || by.Admin {
		return nil
	}
	subject := fmt.Sprintf("field %q", what)
	if what == "type" {
		subject = "the type"
	}
	if len(kept) > 0 {
		return sesame.Errorf(sesame.CodeDestinationLocked,
			"changing %s of credential %q changes where its secrets may be sent: send the secret fields again instead of keeping %s, or ask an admin",
			subject, old.Key, quoteList(kept))
	}
	if old.Type == "oauth2" {
		grants, err := v.store.ListOAuthGrants(ctx, old.Workspace, old.Key, "", "", 1)
		if err != nil {
			return err
		}
		if len(grants) > 0 {
			return sesame.Errorf(sesame.CodeDestinationLocked,
				"changing %s of credential %q would send its stored OAuth2 grants elsewhere: revoke them first, or ask an admin", subject, old.Key)
		}
	}
	return nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// verify opens the sealed fields of rec (new and kept alike) and runs the kind's check.
func (v *Vault) verify(in credential.Input, rec sesame.CredentialRecord) error {
	secrets := make(map[string]sesame.Secret, len(rec.Secrets))
	defer func() {
		for _, s := range secrets {
			s.Wipe()
		}
	}()
	for _, s := range rec.Secrets {
		pt, err := v.keyring.Open(s.Blob, secretIdentity(rec.Workspace, rec.Key, s.Name)...)
		if err != nil {
			return fmt.Errorf("vault: open %s for verification: %w", s.Name, err)
		}
		secrets[s.Name] = sesame.NewSecret(pt)
	}
	return in.Kind.Verify(rec.Public, secrets)
}

// GetCredential returns the readable form of ws/key.
func (v *Vault) GetCredential(ctx context.Context, ws, key string) (CredentialView, error) {
	if err := checkNames(ws, key); err != nil {
		return CredentialView{}, err
	}
	rec, err := v.store.GetCredential(ctx, ws, key)
	if errors.Is(err, sesame.ErrNotFound) {
		return CredentialView{}, v.notFound(ctx, ws, key)
	}
	if err != nil {
		return CredentialView{}, err
	}
	return view(rec), nil
}

// notFound says precisely what is missing: the workspace or the credential.
func (v *Vault) notFound(ctx context.Context, ws, key string) error {
	if _, err := v.store.GetWorkspace(ctx, ws); errors.Is(err, sesame.ErrNotFound) {
		return sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", ws)
	}
	return sesame.Errorf(sesame.CodeNotFound, "credential %q not found in workspace %q", key, ws)
}

// ListCredentials returns a page of credentials in ws after the cursor key.
func (v *Vault) ListCredentials(ctx context.Context, ws, after string, limit int) ([]CredentialView, error) {
	if err := checkNames(ws, ""); err != nil {
		return nil, err
	}
	if _, err := v.store.GetWorkspace(ctx, ws); err != nil {
		if errors.Is(err, sesame.ErrNotFound) {
			return nil, sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", ws)
		}
		return nil, err
	}
	recs, err := v.store.ListCredentials(ctx, ws, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]CredentialView, len(recs))
	for i, r := range recs {
		out[i] = view(r)
	}
	return out, nil
}

// DeleteCredential removes ws/key. A credential that connections or functions use is
// refused unless force.
func (v *Vault) DeleteCredential(ctx context.Context, ws, key string, force bool) error {
	if err := checkNames(ws, key); err != nil {
		return err
	}
	err := v.store.DeleteCredential(ctx, ws, key, force)
	v.records.Delete(recordKey(ws, key))
	if errors.Is(err, sesame.ErrNotFound) {
		return v.notFound(ctx, ws, key)
	}
	return err
}

// Resolved is a credential with its secrets opened, for injection at call time. Callers
// must not let Secrets reach a response, log or error.
type Resolved struct {
	Workspace string
	Key       string
	Type      string
	Public    map[string]any
	Secrets   map[string]sesame.Secret
}

// Resolve opens ws/key for use. A secret that was never supplied (after a workspace copy)
// is a CodeSecretRequired error naming the field.
func (v *Vault) Resolve(ctx context.Context, ws, key string) (Resolved, error) {
	if err := checkNames(ws, key); err != nil {
		return Resolved{}, err
	}
	r, err := v.resolve(ctx, ws, key, true)
	// A rotation may retire the old master key between our read and our open; the row
	// has been re-wrapped by then, so one fresh read from the store settles it.
	if errors.Is(err, crypt.ErrUnknownKey) {
		r, err = v.resolve(ctx, ws, key, false)
	}
	return r, err
}

func (v *Vault) resolve(ctx context.Context, ws, key string, cached bool) (Resolved, error) {
	rec, ok := v.records.Get(recordKey(ws, key))
	if !ok || !cached {
		var err error
		rec, err = v.store.GetCredential(ctx, ws, key)
		if errors.Is(err, sesame.ErrNotFound) {
			return Resolved{}, v.notFound(ctx, ws, key)
		}
		if err != nil {
			return Resolved{}, err
		}
		v.records.Set(recordKey(ws, key), rec)
	}
	r := Resolved{Workspace: ws, Key: key, Type: rec.Type, Public: rec.Public, Secrets: make(map[string]sesame.Secret, len(rec.Secrets))}
	for _, s := range rec.Secrets {
		if s.Blob == nil {
			return Resolved{}, sesame.Errorf(sesame.CodeSecretRequired, "credential %q needs its secret field %q to be set", key, s.Name)
		}
		pt, err := v.keyring.Open(s.Blob, secretIdentity(ws, key, s.Name)...)
		if err != nil {
			return Resolved{}, fmt.Errorf("vault: open %s/%s field %s: %w", ws, key, s.Name, err)
		}
		r.Secrets[s.Name] = sesame.NewSecret(pt)
	}
	return r, nil
}
