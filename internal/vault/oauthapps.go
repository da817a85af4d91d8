package vault

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
)

// AppsWorkspace holds the organisation's shared OAuth apps, each an oauth2 credential
// (sealed, rotated and cached like any other). Its name is not a valid workspace name, so
// no workspace or credential route reaches it, and workspace lists leave it out; the apps
// are reached only through the methods below (/v1/oauth/apps, admin only to change).
const AppsWorkspace = "_oauth_apps"

// checkAppName checks the name of a shared OAuth app.
func checkAppName(name string) error {
	if !sesame.ValidCredentialKey(name) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid OAuth app name: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit")
	}
	return nil
}

// checkOAuthApp checks the oauth_app an oauth2 credential names: an app may not name
// another, and a workspace credential must name an app that exists.
func (v *Vault) checkOAuthApp(ctx context.Context, ws string, in credential.Input) error {
	if in.Kind.Name != "oauth2" {
		return nil
	}
	_, lists := in.Public[credential.AppWorkspacesField]
	app, ok := in.Public[credential.OAuthAppField].(string)
	if ws == AppsWorkspace {
		if ok {
			return sesame.Errorf(sesame.CodeInvalidField, "an OAuth app cannot name another (%q)", credential.OAuthAppField)
		}
		if !lists {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for an OAuth app: the workspaces that may use it, or [\"*\"] for all", credential.AppWorkspacesField)
		}
		for _, w := range credential.Strings(in.Public[credential.AppWorkspacesField]) {
			if w != "*" && !sesame.ValidWorkspaceName(w) {
				return sesame.Errorf(sesame.CodeInvalidField, "field %q: %q is not a workspace name", credential.AppWorkspacesField, w)
			}
		}
		return nil
	}
	if lists {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q is for shared OAuth apps (/v1/oauth/apps)", credential.AppWorkspacesField)
	}
	if !ok {
		return nil
	}
	if err := checkAppName(app); err != nil {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q: %v", credential.OAuthAppField, err)
	}
	rec, err := v.store.GetCredential(ctx, AppsWorkspace, app)
	if errors.Is(err, sesame.ErrNotFound) || (err == nil && !credential.AppAllows(rec.Public, ws)) {
		// The same answer whether the app does not exist or is not for this workspace.
		return sesame.Errorf(sesame.CodeInvalidField, "field %q: there is no OAuth app %q for workspace %q (GET /v1/oauth/apps lists them)", credential.OAuthAppField, app, ws)
	}
	return err
}

// PutOAuthApp creates or replaces the shared OAuth app name from a body
// {"fields": {...}} with the fields of an oauth2 credential ("type" may be given, and must
// be oauth2). The rules of PutCredential apply: secrets are sent again or kept, and where
// the client secret may be sent changes only with the secret sent again, or by an admin.
// Changing the app (rotating its secret, say) changes it for every workspace using it.
func (v *Vault) PutOAuthApp(ctx context.Context, name string, body []byte, by Actor) (CredentialView, bool, error) {
	if err := checkAppName(name); err != nil {
		return CredentialView{}, false, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return CredentialView{}, false, sesame.Errorf(sesame.CodeInvalidJSON, "the body must be a JSON object {\"fields\": {...}}")
	}
	if t, ok := top["type"]; ok && string(t) != `"oauth2"` {
		return CredentialView{}, false, sesame.Errorf(sesame.CodeInvalidField, "an OAuth app is of type oauth2")
	}
	top["type"] = json.RawMessage(`"oauth2"`)
	body, err := json.Marshal(top)
	if err != nil {
		return CredentialView{}, false, err
	}
	err = v.store.CreateWorkspace(ctx, sesame.Workspace{Name: AppsWorkspace, CreatedAt: v.now().UTC()})
	if err != nil && !errors.Is(err, sesame.ErrAlreadyExists) {
		return CredentialView{}, false, err
	}
	return v.put(ctx, AppsWorkspace, name, body, by)
}

// GetOAuthApp returns the readable form of a shared OAuth app.
func (v *Vault) GetOAuthApp(ctx context.Context, name string) (CredentialView, error) {
	if err := checkAppName(name); err != nil {
		return CredentialView{}, err
	}
	rec, err := v.store.GetCredential(ctx, AppsWorkspace, name)
	if errors.Is(err, sesame.ErrNotFound) {
		return CredentialView{}, errNoApp(name)
	}
	if err != nil {
		return CredentialView{}, err
	}
	return view(rec), nil
}

func errNoApp(name string) error {
	return sesame.Errorf(sesame.CodeNotFound, "OAuth app %q not found", name)
}

// ListOAuthApps returns a page of the shared OAuth apps after the cursor name.
func (v *Vault) ListOAuthApps(ctx context.Context, after string, limit int) ([]CredentialView, error) {
	recs, err := v.store.ListCredentials(ctx, AppsWorkspace, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]CredentialView, len(recs))
	for i, r := range recs {
		out[i] = view(r)
	}
	return out, nil
}

// DeleteOAuthApp deletes a shared OAuth app. Credentials that name it fail to get tokens
// (not_found) until it exists again.
func (v *Vault) DeleteOAuthApp(ctx context.Context, name string) error {
	if err := checkAppName(name); err != nil {
		return err
	}
	err := v.store.DeleteCredential(ctx, AppsWorkspace, name, true)
	v.records.Delete(recordKey(AppsWorkspace, name))
	if errors.Is(err, sesame.ErrNotFound) || sesame.ErrorCode(err) == sesame.CodeNotFound {
		return errNoApp(name)
	}
	return err
}

// ResolveOAuthApp opens a shared OAuth app for a token request. Callers must wipe its
// secrets and never let them reach a response, log or error.
func (v *Vault) ResolveOAuthApp(ctx context.Context, name string) (Resolved, error) {
	if err := checkAppName(name); err != nil {
		return Resolved{}, err
	}
	r, err := v.resolve(ctx, AppsWorkspace, name, true)
	if errors.Is(err, crypt.ErrUnknownKey) {
		r, err = v.resolve(ctx, AppsWorkspace, name, false)
	}
	if sesame.ErrorCode(err) == sesame.CodeNotFound {
		return Resolved{}, errNoApp(name)
	}
	return r, err
}
