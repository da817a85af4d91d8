package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/oauth/provider"
)

// GrantView is a grant as the API shows it: its state, never a token.
type GrantView struct {
	Workspace    string     `json:"workspace"`
	Credential   string     `json:"credential"`
	User         string     `json:"user,omitempty"`
	Status       string     `json:"status"`
	Reason       string     `json:"reason,omitempty"`
	ValidUntil   *time.Time `json:"valid_until,omitempty"`
	Scope        string     `json:"scope,omitempty"`
	RefreshToken bool       `json:"has_refresh_token"`
	LastRefresh  *time.Time `json:"last_refresh_at,omitempty"`
	AuthorizeURL string     `json:"authorize_url,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

func (m *Manager) view(g sesame.OAuthGrant) GrantView {
	v := GrantView{Workspace: g.Workspace, Credential: g.Credential, User: g.EndUser, Status: g.Status, Reason: g.Reason,
		ValidUntil: g.ExpiresAt, Scope: g.Scope, RefreshToken: g.Refresh != nil, LastRefresh: g.RefreshedAt,
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
	if g.Status == sesame.GrantReauthorize {
		v.AuthorizeURL = m.authorizeURL(grantKey{ws: g.Workspace, cred: g.Credential, user: g.EndUser})
	}
	return v
}

// GrantCursor returns the opaque list cursor that follows v.
func GrantCursor(v GrantView) string { return v.Credential + "\x00" + v.User }

// ListGrants returns up to limit grants of ws (of credential cred unless ""), after the
// cursor made by GrantCursor.
func (m *Manager) ListGrants(ctx context.Context, ws, cred, after string, limit int) ([]GrantView, error) {
	if err := checkNames(ws, "x", ""); err != nil {
		return nil, err
	}
	if cred != "" && !sesame.ValidCredentialKey(cred) {
		return nil, sesame.Errorf(sesame.CodeInvalidName, "invalid credential key")
	}
	afterCred, afterUser, _ := strings.Cut(after, "\x00")
	gs, err := m.cfg.Store.ListOAuthGrants(ctx, ws, cred, afterCred, afterUser, limit)
	if err != nil {
		return nil, err
	}
	out := make([]GrantView, len(gs))
	for i, g := range gs {
		out[i] = m.view(g)
	}
	return out, nil
}

// Revocation is the outcome of deleting a grant.
type Revocation struct {
	Deleted bool `json:"deleted"`
	// RevokedAtProvider says whether the provider's revocation endpoint (RFC 7009)
	// accepted the token; false when it has none or failed (see RevocationError).
	RevokedAtProvider bool   `json:"revoked_at_provider"`
	RevocationError   string `json:"revocation_error,omitempty"`
}

// DeleteGrant revokes a grant at the provider, when the provider has a revocation
// endpoint, and deletes it. A failed revocation does not keep the grant: Sesame forgets
// the tokens either way, and says that the provider may still hold the consent.
func (m *Manager) DeleteGrant(ctx context.Context, ws, cred, user string) (Revocation, error) {
	if err := checkNames(ws, cred, user); err != nil {
		return Revocation{}, err
	}
	k := grantKey{ws: ws, cred: cred, user: user}
	g, err := m.cfg.Store.GetOAuthGrant(ctx, ws, cred, user)
	if errors.Is(err, sesame.ErrNotFound) {
		return Revocation{}, grantNotFound(k)
	}
	if err != nil {
		return Revocation{}, err
	}
	var res Revocation
	if c, wipe, err := m.materialFor(ctx, ws, cred); err != nil {
		res.RevocationError = "the credential could not be opened"
	} else {
		defer wipe()
		if c.revocationURL == "" {
			res.RevocationError = "the provider has no revocation endpoint"
		} else if err := m.revoke(context.WithoutCancel(ctx), c, k, g); err != nil {
			res.RevocationError = err.Error()
			m.log.Warn("oauth: revocation at the provider failed", append(k.attrs(), logFailure, err.Error())...)
		} else {
			res.RevokedAtProvider = true
		}
	}
	if err := m.cfg.Store.DeleteOAuthGrant(ctx, ws, cred, user); errors.Is(err, sesame.ErrNotFound) {
		return Revocation{}, grantNotFound(k)
	} else if err != nil {
		return Revocation{}, err
	}
	res.Deleted = true
	m.log.Info("oauth: grant deleted", append(k.attrs(), "revoked_at_provider", res.RevokedAtProvider)...)
	return res, nil
}

func grantNotFound(k grantKey) error {
	if k.user != "" {
		return sesame.Errorf(sesame.CodeNotFound, "credential %q has no grant for end user %q in workspace %q", k.cred, k.user, k.ws)
	}
	return sesame.Errorf(sesame.CodeNotFound, "credential %q has no workspace grant in workspace %q", k.cred, k.ws)
}

// revoke posts the grant's refresh token (or, without one, its access token) to the
// revocation endpoint (RFC 7009), authenticating the client as at the token endpoint.
// Its error is safe to show: a status, never a body.
func (m *Manager) revoke(ctx context.Context, c *client, k grantKey, g sesame.OAuthGrant) error {
	blob, part, hint := g.Refresh, "refresh", "refresh_token"
	if blob == nil {
		blob, part, hint = g.Access, "access", "access_token"
	}
	if blob == nil {
		return nil // nothing was ever issued
	}
	pt, err := m.cfg.Keyring.Open(blob, k.identity(part)...)
	if err != nil {
		return errors.New("the token could not be opened")
	}
	form := url.Values{"token": {string(pt)}, "token_type_hint": {hint}}
	clear(pt)
	secret := string(c.clientSecret.Reveal())
	if c.authStyle != oauth2.AuthStyleInHeader || secret == "" {
		form.Set("client_id", c.clientID)
		if secret != "" && c.authStyle == oauth2.AuthStyleInParams {
			form.Set("client_secret", secret)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.revocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return errors.New("the revocation URL is not valid")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" && c.authStyle != oauth2.AuthStyleInParams {
		req.SetBasicAuth(url.QueryEscape(c.clientID), url.QueryEscape(secret))
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return errors.New("the revocation endpoint could not be reached")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the revocation endpoint answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// Providers returns the provider template catalogue.
func (m *Manager) Providers() []provider.Template { return provider.All() }
