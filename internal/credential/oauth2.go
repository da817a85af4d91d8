package credential

import (
	"slices"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/oauth/provider"
)

// oauth2 is an OAuth 2.0 client. Grants and their tokens are managed by the OAuth service
// (internal/oauth), which injects the current access token; stored access and refresh
// tokens are secret like the client secret. "provider" names a template from the
// catalogue (internal/oauth/provider); every other field overrides the template.
var oauth2 = Kind{
	Name: "oauth2",
	Fields: []Field{
		// grant and client_id are required unless oauth_app names a shared app (checkOAuth2).
		{Name: "grant", Type: String, Enum: []string{"client_credentials", "authorization_code"}},
		{Name: "client_id", Type: String, MaxLen: 1024},
		{Name: "client_secret", Secret: true},
		{Name: "auth_url", Type: URL},
		{Name: "token_url", Type: URL},
		{Name: "revocation_url", Type: URL},
		{Name: "scopes", Type: StringList},
		{Name: "provider", Type: String, MaxLen: 64},
		{Name: "scope_separator", Type: String, MaxLen: 4},
		{Name: "pkce", Type: String, Enum: []string{"S256", "none"}},
		{Name: "auth_style", Type: String, Enum: []string{"header", "params", "auto"}},
		{Name: "token_in", Type: String, Enum: []string{"header", "query"}},
		{Name: "token_param", Type: String, MaxLen: 256},
		{Name: "scheme", Type: String, MaxLen: 64},
		{Name: "auth_params", Type: Object},
		{Name: "token_params", Type: Object},
		// oauth_app names an OAuth app defined once for the organisation (/v1/oauth/apps):
		// its client ID, secret and URLs are used, and this credential holds the grants.
		{Name: OAuthAppField, Type: String, MaxLen: 128},
		// AppWorkspacesField, on a shared OAuth app only: the workspaces that may name it.
		{Name: AppWorkspacesField, Type: StringList},
	},
	Check:     checkOAuth2,
	Endpoints: oauth2Endpoints,
}

// OAuthAppField is the oauth2 field that names a shared OAuth app.
const OAuthAppField = "oauth_app"

// AppWorkspacesField lists, on a shared OAuth app, the workspaces whose credentials may
// name it ("*": every workspace).
const AppWorkspacesField = "workspaces"

// AppAllows reports whether the shared OAuth app with these public fields may be named by
// a credential of workspace ws.
func AppAllows(appPublic map[string]any, ws string) bool {
	for _, w := range Strings(appPublic[AppWorkspacesField]) {
		if w == "*" || w == ws {
			return true
		}
	}
	return false
}

// AliasFields are the fields an oauth2 credential that names a shared OAuth app may set
// besides oauth_app: how it uses the app, never where the app's secret goes.
var AliasFields = []string{"grant", "scopes", "token_in", "token_param", "scheme", "hosts"}

// oauth2Endpoints returns the authorization, token and revocation URLs in effect: the
// credential's own, or its provider template's; and the shared OAuth app it names, whose
// URLs are then in effect (changing it changes where its grants are sent).
func oauth2Endpoints(public map[string]any) map[string]string {
	if app, ok := public[OAuthAppField].(string); ok && app != "" {
		return map[string]string{OAuthAppField: app}
	}
	var t provider.Template
	if name, ok := public["provider"].(string); ok {
		t, _ = provider.Lookup(name)
	}
	out := map[string]string{"auth_url": t.AuthURL, "token_url": t.TokenURL, "revocation_url": t.RevocationURL}
	for name := range out {
		if s, ok := public[name].(string); ok && s != "" {
			out[name] = s
		}
	}
	return out
}

// checkTokenPlacement checks the fields that say how the access token is sent.
func checkTokenPlacement(public map[string]any, tmpl provider.Template) error {
	if s, ok := public["scheme"].(string); ok {
		if err := checkToken("scheme", s); err != nil {
			return err
		}
	}
	if s, ok := public["token_param"].(string); ok {
		if err := checkToken("token_param", s); err != nil {
			return err
		}
	}
	if public["token_in"] == "query" && public["token_param"] == nil && tmpl.TokenParam == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required when %q is query", "token_param", "token_in")
	}
	return nil
}

// reservedParams are set by the flows themselves; auth_params and token_params may not
// replace them.
var reservedParams = map[string]bool{
	"client_id": true, "client_secret": true, "redirect_uri": true, "response_type": true, "state": true,
	"scope": true, "code": true, "code_challenge": true, "code_challenge_method": true, "code_verifier": true,
	"grant_type": true, "refresh_token": true,
}

func checkOAuth2(public map[string]any, present func(string) bool) error {
	if app, ok := public[OAuthAppField].(string); ok {
		if !sesame.ValidCredentialKey(app) {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q must name an OAuth app (/v1/oauth/apps)", OAuthAppField)
		}
		for name := range public {
			if name != OAuthAppField && !slices.Contains(AliasFields, name) {
				return sesame.Errorf(sesame.CodeInvalidField, "field %q comes from the OAuth app %q: a credential that names one may set only %s", name, app, strings.Join(AliasFields, ", "))
			}
		}
		if present("client_secret") {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q comes from the OAuth app %q", "client_secret", app)
		}
		return checkTokenPlacement(public, provider.Template{})
	}
	for _, name := range []string{"grant", "client_id"} {
		if !present(name) {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for type oauth2 (unless %q names a shared OAuth app)", name, OAuthAppField)
		}
	}
	var tmpl provider.Template
	if name, ok := public["provider"].(string); ok {
		t, found := provider.Lookup(name)
		if !found {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q names no provider template; known: %s", "provider", strings.Join(provider.Names(), ", "))
		}
		tmpl = t
	}
	// The client credentials grant authenticates the client with its secret; no
	// provider template can supply that.
	if public["grant"] == "client_credentials" && !present("client_secret") {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required for the client_credentials grant", "client_secret")
	}
	// A provider template supplies the URLs; without one they must be given.
	if !present("token_url") && tmpl.TokenURL == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required unless %q names a provider template", "token_url", "provider")
	}
	if public["grant"] == "authorization_code" {
		if !present("auth_url") && tmpl.AuthURL == "" {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for the authorization_code grant unless %q names a provider template", "auth_url", "provider")
		}
		// A public client (no secret) is protected by PKCE alone.
		pkce, _ := public["pkce"].(string)
		noPKCE := pkce == "none" || (pkce == "" && tmpl.Name != "" && !tmpl.PKCE)
		if !present("client_secret") && noPKCE {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q: a client without %q must use PKCE (S256)", "pkce", "client_secret")
		}
	}
	if err := checkTokenPlacement(public, tmpl); err != nil {
		return err
	}
	for _, f := range []string{"auth_params", "token_params"} {
		obj, ok := public[f].(map[string]any)
		if !ok {
			continue
		}
		for k, v := range obj {
			s, isString := v.(string)
			if !isString || strings.ContainsAny(s, "\r\n\x00") || k == "" || strings.ContainsAny(k, "\r\n\x00") {
				return sesame.Errorf(sesame.CodeInvalidField, "field %q must map parameter names to strings", f)
			}
			if reservedParams[k] {
				return sesame.Errorf(sesame.CodeInvalidField, "field %q may not set %q: the OAuth2 flow sets it", f, truncate(k, 64))
			}
		}
	}
	return nil
}

// Strings returns the strings of a StringList field's value, as parsed or as stored.
func Strings(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
