package credential

import (
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
		{Name: "grant", Type: String, Required: true, Enum: []string{"client_credentials", "authorization_code"}},
		{Name: "client_id", Type: String, Required: true, MaxLen: 1024},
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
	},
	Check:     checkOAuth2,
	Endpoints: oauth2Endpoints,
}

// oauth2Endpoints returns the authorization, token and revocation URLs in effect: the
// credential's own, or its provider template's.
func oauth2Endpoints(public map[string]any) map[string]string {
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

// reservedParams are set by the flows themselves; auth_params and token_params may not
// replace them.
var reservedParams = map[string]bool{
	"client_id": true, "client_secret": true, "redirect_uri": true, "response_type": true, "state": true,
	"scope": true, "code": true, "code_challenge": true, "code_challenge_method": true, "code_verifier": true,
	"grant_type": true, "refresh_token": true,
}

func checkOAuth2(public map[string]any, present func(string) bool) error {
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
