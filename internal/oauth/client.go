package oauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/oauth/provider"
	"github.com/sesamehq/sesame/internal/outbound"
)

// client is an oauth2 credential with its provider template applied: every field the
// credential sets overrides the template's.
type client struct {
	ws, key       string
	grant         string // "client_credentials" or "authorization_code"
	clientID      string
	clientSecret  sesame.Secret
	authURL       string
	tokenURL      string
	revocationURL string
	scopes        []string
	scopeSep      string
	pkce          bool
	authStyle     oauth2.AuthStyle
	tokenIn       string // "header" or "query"
	tokenParam    string
	scheme        string
	authParams    map[string]string
	tokenParams   map[string]string
	// dial, when not nil, reaches the token endpoint (credential.Material.Dial: the agent
	// of the connection the token is for).
	dial credential.DialFunc
}

const (
	grantClientCredentials = "client_credentials"
	grantAuthorizationCode = "authorization_code"
)

// newClient merges the credential's public fields over its provider template.
func newClient(m credential.Material) (*client, error) {
	if m.Type != "oauth2" {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "credential %q is of type %s, not oauth2", m.Key, m.Type)
	}
	str := func(name string) string { s, _ := m.Public[name].(string); return s }
	var t provider.Template
	if name := str("provider"); name != "" {
		var ok bool
		if t, ok = provider.Lookup(name); !ok {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "credential %q names an unknown provider template %q", m.Key, name)
		}
	}
	c := &client{
		ws: m.Workspace, key: m.Key,
		grant: str("grant"), clientID: str("client_id"), clientSecret: m.Secrets["client_secret"],
		authURL: t.AuthURL, tokenURL: t.TokenURL, revocationURL: t.RevocationURL,
		scopes: t.Scopes, scopeSep: t.ScopeSeparator, pkce: t.PKCE || t.Name == "",
		tokenIn: t.TokenIn, tokenParam: t.TokenParam, scheme: "Bearer",
		authParams: t.AuthParams, tokenParams: t.TokenParams, dial: m.Dial,
	}
	// HTTP Basic unless the template or the credential says otherwise: RFC 6749 §2.3.1
	// makes every server support it, and auto-detection would send every failing
	// request twice.
	c.authStyle = oauth2.AuthStyleInHeader
	if t.AuthStyle == "params" {
		c.authStyle = oauth2.AuthStyleInParams
	}
	override := func(dst *string, name string) {
		if v := str(name); v != "" {
			*dst = v
		}
	}
	override(&c.authURL, "auth_url")
	override(&c.tokenURL, "token_url")
	override(&c.revocationURL, "revocation_url")
	override(&c.scopeSep, "scope_separator")
	override(&c.tokenIn, "token_in")
	override(&c.tokenParam, "token_param")
	override(&c.scheme, "scheme")
	if list, ok := m.Public["scopes"].([]any); ok {
		c.scopes = nil
		for _, s := range list {
			if s, ok := s.(string); ok {
				c.scopes = append(c.scopes, s)
			}
		}
	}
	switch str("pkce") {
	case "S256":
		c.pkce = true
	case "none":
		c.pkce = false
	}
	switch str("auth_style") {
	case "header":
		c.authStyle = oauth2.AuthStyleInHeader
	case "params":
		c.authStyle = oauth2.AuthStyleInParams
	case "auto":
		c.authStyle = oauth2.AuthStyleAutoDetect
	}
	c.authParams = mergeParams(c.authParams, m.Public["auth_params"])
	c.tokenParams = mergeParams(c.tokenParams, m.Public["token_params"])
	if c.scopeSep == "" {
		c.scopeSep = " "
	}
	if c.tokenIn == "" {
		c.tokenIn = "header"
	}
	if c.tokenURL == "" {
		return nil, sesame.Errorf(sesame.CodeInvalidField, "credential %q has no token_url", m.Key)
	}
	return c, nil
}

func mergeParams(base map[string]string, over any) map[string]string {
	obj, _ := over.(map[string]any)
	if len(base) == 0 && len(obj) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range obj {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// config is the x/oauth2 form of the client. The secret is revealed into a string here:
// x/oauth2 takes nothing else. Scopes are left out and set by the caller, because
// AuthCodeURL would join them with spaces whatever the provider wants.
func (c *client) config(redirectURI string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.clientID,
		ClientSecret: string(c.clientSecret.Reveal()),
		Endpoint:     oauth2.Endpoint{AuthURL: c.authURL, TokenURL: c.tokenURL, AuthStyle: c.authStyle},
		RedirectURL:  redirectURI,
	}
}

func (c *client) scope() string { return strings.Join(c.scopes, c.scopeSep) }

// withHTTP puts the HTTP client for c's token endpoint where x/oauth2 looks for it.
func (m *Manager) withHTTP(ctx context.Context, c *client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, m.httpFor(c))
}

// httpFor is the HTTP client for c's token endpoint: the manager's, or, when c's token
// is for a connection through an agent, one that dials through the agent (whose
// allowlist then bounds the address, instead of the manager's address check). Token
// requests are rare (tokens are stored), so that client keeps no idle connections.
func (m *Manager) httpFor(c *client) *http.Client {
	if c == nil || c.dial == nil {
		return m.http
	}
	var t *http.Transport
	if base, ok := m.cfg.Transport.(*http.Transport); ok {
		t = base.Clone() // keeps the TLS settings
	} else {
		t = outbound.NewTransport(false)
	}
	t.Proxy = nil
	t.DialContext = c.dial
	t.DialTLSContext = nil
	t.DisableKeepAlives = true
	return newHTTPClient(t)
}

// fetch gets a token with the client credentials grant.
func (m *Manager) fetchClientCredentials(ctx context.Context, c *client) (*oauth2.Token, error) {
	cc := clientcredentials.Config{
		ClientID: c.clientID, ClientSecret: string(c.clientSecret.Reveal()), TokenURL: c.tokenURL,
		AuthStyle: c.authStyle, EndpointParams: url.Values{},
	}
	if len(c.scopes) > 0 {
		// Set as a parameter, not Scopes, so the provider's separator is kept.
		cc.EndpointParams.Set("scope", c.scope())
	}
	for k, v := range c.tokenParams {
		cc.EndpointParams.Set(k, v)
	}
	return cc.Token(m.withHTTP(ctx, c))
}

// refreshToken redeems a refresh token. x/oauth2 sends no extra parameters with a
// refresh, so token_params do not apply here.
func (m *Manager) refreshToken(ctx context.Context, c *client, refresh string) (*oauth2.Token, error) {
	return c.config("").TokenSource(m.withHTTP(ctx, c), &oauth2.Token{RefreshToken: refresh}).Token()
}

// failure is a classified token-endpoint failure. Its text is safe to show: an HTTP
// status and an OAuth error code, never a response body.
type failure struct {
	kind   failureKind
	status int    // HTTP status, 0 if none
	code   string // OAuth error code, "" if none or not plain
}

type failureKind int

const (
	// transient: the provider or the network failed; retry, the grant stays valid.
	transient failureKind = iota
	// revoked: the provider refused the grant itself (invalid_grant); re-authorize.
	revoked
	// rejected: the provider refused the client or the request (invalid_client, bad
	// scope); re-authorizing will not help, the credential must be fixed.
	rejected
)

func (f failure) String() string {
	var parts []string
	if f.status != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d", f.status))
	}
	if f.code != "" {
		parts = append(parts, f.code)
	}
	if len(parts) == 0 {
		return "no response"
	}
	return strings.Join(parts, ", ")
}

var plainCode = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// revokedCodes are the token-endpoint errors that mean the grant itself is gone: RFC
// 6749's invalid_grant, and the names some providers use instead (Slack).
var revokedCodes = map[string]bool{"invalid_grant": true, "invalid_refresh_token": true, "token_revoked": true}

// classify sorts a token-endpoint error. x/oauth2's own error text may hold the
// response body, so only the status and a plain error code are kept.
func classify(err error) failure {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		f := failure{kind: transient}
		if re.Response != nil {
			f.status = re.Response.StatusCode
		}
		if plainCode.MatchString(re.ErrorCode) {
			f.code = re.ErrorCode
		}
		switch {
		case f.status >= 500 || f.status == http.StatusTooManyRequests || f.status == http.StatusRequestTimeout:
			f.kind = transient
		case revokedCodes[f.code]:
			f.kind = revoked
		case f.code != "" || f.status == http.StatusBadRequest || f.status == http.StatusUnauthorized || f.status == http.StatusForbidden:
			f.kind = rejected
		}
		return f
	}
	if errors.Is(err, outbound.ErrForbiddenAddress) {
		return failure{kind: rejected, code: "forbidden_address"}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) {
		return failure{kind: transient}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return failure{kind: transient}
	}
	// A 2xx answer that is not a token ("server response missing access_token"): the
	// provider speaks another dialect; retrying will not change it.
	return failure{kind: rejected, code: "no_access_token"}
}

// newHTTPClient is the client for token and revocation endpoints: SSRF-safe unless
// allowPrivate, bounded in time, and never following redirects, which could carry the
// client secret in a re-sent form body to another host.
func newHTTPClient(transport http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     transport,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
