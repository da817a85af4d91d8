package oauth

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

// Inject adds the current access token of an oauth2 credential to req: for the end user
// of ctx (sesame.EndUserFrom) with the authorization code grant, for the workspace with
// client credentials. The token goes in "Authorization: <scheme> <token>", or in the
// query when the provider (or a function parameter located in the query) says so.
func (m *Manager) Inject(ctx context.Context, req *http.Request, mat credential.Material, t credential.Target) error {
	c, wipe, err := m.clientOf(ctx, mat)
	if err != nil {
		return err
	}
	defer wipe()
	k := keyFor(c, sesame.EndUserFrom(ctx))
	tok, err := m.token(ctx, c, k)
	if err != nil {
		return err
	}
	defer tok.Access.Wipe()
	credential.ServedFrom(ctx).Set(k.String(), strconv.FormatInt(tok.version, 10))
	value := string(tok.Access.Reveal())
	if strings.ContainsAny(value, "\r\n\x00") {
		return sesame.Errorf(sesame.CodeUpstreamError, "the OAuth2 provider of credential %q issued an access token with CR, LF or NUL", mat.Key)
	}
	if t.In == "query" && t.Name != "" {
		return setQuery(req, t.Name, value)
	}
	if c.tokenIn == "query" {
		return setQuery(req, c.tokenParam, value)
	}
	req.Header.Set("Authorization", c.scheme+" "+value)
	return nil
}

func setQuery(req *http.Request, name, value string) error {
	if name == "" {
		return sesame.Errorf(sesame.CodeInvalidArgument, "no query parameter name for the OAuth2 token")
	}
	q := req.URL.Query()
	q.Set(name, value)
	req.URL.RawQuery = q.Encode()
	return nil
}

// ForceRefresh renews the access token that the upstream just rejected. If the request
// recorded which token version it carried (credential.WithServed) and a newer one is
// stored already, nothing is refreshed: the caller retries with the newer one. So callers
// that fail together with one token cause a single refresh.
func (m *Manager) ForceRefresh(ctx context.Context, mat credential.Material) error {
	c, wipe, err := m.clientOf(ctx, mat)
	if err != nil {
		return err
	}
	defer wipe()
	k := keyFor(c, sesame.EndUserFrom(ctx))
	g, err := m.current(ctx, c, k)
	if err != nil {
		return err
	}
	if g.Status == sesame.GrantReauthorize {
		return m.reauthError(k, g.Reason)
	}
	if v, ok := credential.ServedFrom(ctx).Get(k.String()); ok && v != strconv.FormatInt(g.Version, 10) && m.usable(g) {
		return nil
	}
	tok, err := m.refresh(ctx, c, k, g.Version, true)
	tok.Access.Wipe()
	return err
}

// AccessToken is what a local call gets: the current access token and when it expires,
// never the refresh token or the client secret.
type AccessToken struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Scope       string     `json:"scope,omitempty"`
}

// AccessToken returns the current access token of credential ws/key for end user user
// (ignored with client credentials), refreshing it first if it is about to expire.
func (m *Manager) AccessToken(ctx context.Context, ws, key, user string) (AccessToken, error) {
	if err := checkNames(ws, key, user); err != nil {
		return AccessToken{}, err
	}
	c, wipe, err := m.materialFor(ctx, ws, key)
	if err != nil {
		return AccessToken{}, err
	}
	defer wipe()
	tok, err := m.token(ctx, c, keyFor(c, user))
	if err != nil {
		return AccessToken{}, err
	}
	typ := tok.Type
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer"
	}
	return AccessToken{AccessToken: string(tok.Access.Reveal()), TokenType: typ, ExpiresAt: tok.ExpiresAt, Scope: tok.Scope}, nil
}

func checkNames(ws, key, user string) error {
	if !sesame.ValidWorkspaceName(ws) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid workspace name: use 1-63 lowercase letters, digits, '-' or '_'")
	}
	if !sesame.ValidCredentialKey(key) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid credential key: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit")
	}
	if user != "" && !sesame.ValidEndUser(user) {
		return sesame.Errorf(sesame.CodeInvalidArgument, "invalid end user: use 1-256 letters, digits and . _ @ : | + = -")
	}
	return nil
}
