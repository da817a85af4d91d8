// Package provider is the catalogue of OAuth2 provider templates: for each common API, its
// authorization and token endpoints, default scopes, PKCE support and the quirks a client
// must know. An oauth2 credential names a template with "provider" and may override any
// field. The package has no dependencies, so the credential kinds can check names against
// it.
package provider

import "sort"

// Template is what a provider's OAuth2 endpoints need.
type Template struct {
	Name          string   `json:"name"`
	Title         string   `json:"title"`
	AuthURL       string   `json:"auth_url"`
	TokenURL      string   `json:"token_url"`
	RevocationURL string   `json:"revocation_url,omitempty"` // RFC 7009; "" when the provider has none
	Scopes        []string `json:"scopes,omitempty"`         // default scopes
	// ScopeSeparator joins scopes in the authorization request ("" means a space).
	ScopeSeparator string `json:"scope_separator,omitempty"`
	PKCE           bool   `json:"pkce"` // the provider accepts S256 PKCE
	// AuthStyle is how the client authenticates at the token endpoint: "header" (HTTP
	// Basic) or "params" (client_id and client_secret in the form body).
	AuthStyle string `json:"auth_style"`
	// TokenIn is where API calls carry the access token: "header" (Authorization: Bearer)
	// or "query" (TokenParam in the query string).
	TokenIn    string `json:"token_in"`
	TokenParam string `json:"token_param,omitempty"`
	// AuthParams are extra parameters of the authorization request (for example to get a
	// refresh token at all); TokenParams extra parameters of every token request.
	AuthParams  map[string]string `json:"auth_params,omitempty"`
	TokenParams map[string]string `json:"token_params,omitempty"`
	// ClientCredentials says whether the provider offers the client credentials grant.
	ClientCredentials bool `json:"client_credentials"`
	// Notes tells what else differs from the RFC, for people.
	Notes string `json:"notes,omitempty"`
}

// catalogue is every built-in template. URLs are the providers' documented global
// endpoints; tenant- or instance-specific ones are set by overriding auth_url/token_url.
var catalogue = map[string]Template{
	"github": {
		Title:    "GitHub",
		AuthURL:  "https://github.com/login/oauth/authorize",
		TokenURL: "https://github.com/login/oauth/access_token",
		Scopes:   []string{"read:user"}, PKCE: true, AuthStyle: "params", TokenIn: "header",
		Notes: "The token endpoint answers form-encoded unless asked for JSON (both are read). OAuth App tokens do not expire and come without a refresh token; GitHub App user tokens expire after 8 hours and rotate their refresh token. Revocation is DELETE /applications/{client_id}/grant, not RFC 7009.",
	},
	"google": {
		Title:         "Google",
		AuthURL:       "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL:      "https://oauth2.googleapis.com/token",
		RevocationURL: "https://oauth2.googleapis.com/revoke",
		Scopes:        []string{"openid", "email"}, PKCE: true, AuthStyle: "params", TokenIn: "header",
		AuthParams: map[string]string{"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
		Notes:      "A refresh token is issued only with access_type=offline, and again only with prompt=consent. Service accounts use jwt_bearer, not client credentials.",
	},
	"microsoft": {
		Title:    "Microsoft identity platform",
		AuthURL:  "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
		TokenURL: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
		Scopes:   []string{"offline_access", "User.Read"}, PKCE: true, AuthStyle: "params", TokenIn: "header",
		ClientCredentials: true,
		Notes:             "Replace common with the tenant ID for single-tenant apps and for client credentials (scope https://graph.microsoft.com/.default). A refresh token needs the offline_access scope; refresh tokens rotate. No revocation endpoint.",
	},
	"salesforce": {
		Title:         "Salesforce",
		AuthURL:       "https://login.salesforce.com/services/oauth2/authorize",
		TokenURL:      "https://login.salesforce.com/services/oauth2/token",
		RevocationURL: "https://login.salesforce.com/services/oauth2/revoke",
		Scopes:        []string{"api", "refresh_token"}, PKCE: true, AuthStyle: "params", TokenIn: "header",
		ClientCredentials: true,
		Notes:             "Sandboxes use test.salesforce.com and orgs their My Domain host. The token response names the org's instance_url, which is the API base. Access tokens carry no expires_in.",
	},
	"slack": {
		Title:    "Slack",
		AuthURL:  "https://slack.com/oauth/v2/authorize",
		TokenURL: "https://slack.com/api/oauth.v2.access",
		Scopes:   []string{"channels:read"}, ScopeSeparator: ",", AuthStyle: "params", TokenIn: "header",
		Notes: "Scopes are comma-separated. API errors come as HTTP 200 with {\"ok\": false, \"error\": \"...\"}: declare auth_failure json_path \"error\" with values such as token_expired and invalid_auth on the connection. Tokens expire (12 h) and refresh tokens rotate only when token rotation is enabled. auth.revoke is not RFC 7009.",
	},
	"hubspot": {
		Title:    "HubSpot",
		AuthURL:  "https://app.hubspot.com/oauth/authorize",
		TokenURL: "https://api.hubapi.com/oauth/v1/token",
		Scopes:   []string{"oauth"}, AuthStyle: "params", TokenIn: "header",
		Notes: "The client secret must be in the form body. Access tokens last 30 minutes; the refresh token does not rotate. Refresh tokens are deleted with DELETE /oauth/v1/refresh-tokens/{token}, not RFC 7009.",
	},
	"atlassian": {
		Title:    "Atlassian (Jira, Confluence)",
		AuthURL:  "https://auth.atlassian.com/authorize",
		TokenURL: "https://auth.atlassian.com/oauth/token",
		Scopes:   []string{"offline_access", "read:me"}, AuthStyle: "params", TokenIn: "header",
		AuthParams: map[string]string{"audience": "api.atlassian.com", "prompt": "consent"},
		Notes:      "audience=api.atlassian.com is required. Refresh tokens rotate and need offline_access. API calls go to api.atlassian.com/ex/jira/{cloudid}. No revocation endpoint.",
	},
	"dropbox": {
		Title:    "Dropbox",
		AuthURL:  "https://www.dropbox.com/oauth2/authorize",
		TokenURL: "https://api.dropboxapi.com/oauth2/token",
		PKCE:     true, AuthStyle: "params", TokenIn: "header",
		AuthParams: map[string]string{"token_access_type": "offline"},
		Notes:      "token_access_type=offline asks for a refresh token; access tokens last 4 hours. Scopes are set on the app unless given. Revocation is POST /2/auth/token/revoke with the bearer token, not RFC 7009.",
	},
	"zoom": {
		Title:         "Zoom",
		AuthURL:       "https://zoom.us/oauth/authorize",
		TokenURL:      "https://zoom.us/oauth/token",
		RevocationURL: "https://zoom.us/oauth/revoke",
		PKCE:          true, AuthStyle: "header", TokenIn: "header",
		Notes: "The client must authenticate with HTTP Basic. Refresh tokens rotate. Scopes are set on the app. Server-to-server apps use grant_type=account_credentials, which this template does not cover.",
	},
	"xero": {
		Title:         "Xero",
		AuthURL:       "https://login.xero.com/identity/connect/authorize",
		TokenURL:      "https://identity.xero.com/connect/token",
		RevocationURL: "https://identity.xero.com/connect/revocation",
		Scopes:        []string{"offline_access", "openid", "profile", "email", "accounting.transactions"},
		PKCE:          true, AuthStyle: "header", TokenIn: "header",
		ClientCredentials: true,
		Notes:             "Access tokens last 30 minutes; refresh tokens rotate and need offline_access. API calls also need the Xero-tenant-id header (set it in the connection's headers).",
	},
}

// Lookup returns the template called name.
func Lookup(name string) (Template, bool) {
	t, ok := catalogue[name]
	if ok {
		t.Name = name
		t.Scopes = append([]string(nil), t.Scopes...)
		t.AuthParams = copyMap(t.AuthParams)
		t.TokenParams = copyMap(t.TokenParams)
	}
	return t, ok
}

// Names returns the names of the built-in templates, sorted.
func Names() []string {
	out := make([]string, 0, len(catalogue))
	for name := range catalogue {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// All returns every template, sorted by name.
func All() []Template {
	var out []Template
	for _, name := range Names() {
		t, _ := Lookup(name)
		out = append(out, t)
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
