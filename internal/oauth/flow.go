package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
)

// AuthorizeRequest starts the authorization code grant for a credential, for the
// workspace (User "") or one end user.
type AuthorizeRequest struct {
	Workspace  string
	Credential string
	User       string
	// ReturnURL is where the callback sends the browser afterwards; it must be allowed
	// (Config.ReturnURLs or this server's own origin). "" answers the callback in JSON.
	ReturnURL string
}

// Authorization is a started authorization: the provider URL to send the browser to.
type Authorization struct {
	URL       string    `json:"authorize_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Authorize records a single-use state bound to the request (workspace, credential, end
// user, return URL, PKCE verifier) and returns the provider's authorization URL. Only an
// HMAC of the state value is stored, and the verifier only sealed.
func (m *Manager) Authorize(ctx context.Context, r AuthorizeRequest) (Authorization, error) {
	if err := checkNames(r.Workspace, r.Credential, r.User); err != nil {
		return Authorization{}, err
	}
	if r.ReturnURL != "" && !m.returnAllowed(r.ReturnURL) {
		return Authorization{}, sesame.Errorf(sesame.CodeInvalidArgument,
			"return_url is not allowed: it must start with one of the server's allowed return URLs (--oauth-return-urls) or its own public URL")
	}
	if m.cfg.PublicURL == "" {
		return Authorization{}, sesame.Errorf(sesame.CodeUnavailable, "the server has no public URL for the OAuth2 callback; start it with --public-url")
	}
	c, wipe, err := m.materialFor(ctx, r.Workspace, r.Credential)
	if err != nil {
		return Authorization{}, err
	}
	defer wipe()
	if c.grant != grantAuthorizationCode {
		return Authorization{}, sesame.Errorf(sesame.CodeInvalidArgument,
			"credential %q uses the %s grant, which needs no authorization; only authorization_code credentials are authorized", r.Credential, c.grant)
	}
	if c.authURL == "" {
		return Authorization{}, sesame.Errorf(sesame.CodeInvalidField, "credential %q has no auth_url", r.Credential)
	}

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Authorization{}, err
	}
	state := base64.RawURLEncoding.EncodeToString(raw)
	verifier := ""
	if c.pkce {
		verifier = oauth2.GenerateVerifier()
	}
	id, err := m.stateID(ctx, state)
	if err != nil {
		return Authorization{}, err
	}
	now := m.now().UTC()
	st := sesame.OAuthState{
		ID: id, Workspace: r.Workspace, Credential: r.Credential, EndUser: r.User,
		ReturnURL: r.ReturnURL, RedirectURI: m.cfg.PublicURL + CallbackPath, CreatedAt: now, ExpiresAt: now.Add(m.cfg.StateTTL),
	}
	// The token endpoint is part of the verifier's associated data: the code and verifier
	// go only where the credential sent them when the authorization started.
	if st.Verifier, err = m.cfg.Keyring.Seal([]byte(verifier), "oauth-state", st.ID, c.tokenURL); err != nil {
		return Authorization{}, err
	}
	if _, err := m.cfg.Store.DeleteExpiredOAuthStates(ctx, now); err != nil {
		m.log.Warn("oauth: could not delete expired states", "err", err)
	}
	if err := m.cfg.Store.CreateOAuthState(ctx, st); err != nil {
		return Authorization{}, err
	}

	opts := []oauth2.AuthCodeOption{}
	for k, v := range c.authParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if len(c.scopes) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("scope", c.scope()))
	}
	if c.pkce {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	return Authorization{URL: c.config(st.RedirectURI).AuthCodeURL(state, opts...), ExpiresAt: st.ExpiresAt}, nil
}

// CallbackResult is the outcome of a callback: where to send the browser (Redirect, ""
// when the authorization named no return URL) and what happened.
type CallbackResult struct {
	Redirect   string `json:"-"`
	Status     string `json:"status"` // "authorized" or "error"
	Error      string `json:"error,omitempty"`
	Workspace  string `json:"workspace"`
	Credential string `json:"credential"`
	User       string `json:"user,omitempty"`
}

// Callback completes an authorization: it takes the state (single use, expiring), and
// exchanges the code with the PKCE verifier bound to it, then stores the grant sealed.
// The exchange and the write run on a context detached from the browser's request, so a
// closed tab cannot lose a code that the provider has already spent. Failures after the
// state was recognised go back to the return URL as ?status=error&error=<code>.
func (m *Manager) Callback(ctx context.Context, q url.Values) (CallbackResult, error) {
	state := q.Get("state")
	if state == "" || len(state) > 512 {
		return CallbackResult{}, sesame.Errorf(sesame.CodeInvalidArgument, "the callback has no valid state parameter")
	}
	id, err := m.stateID(ctx, state)
	if err != nil {
		return CallbackResult{}, err
	}
	st, err := m.cfg.Store.TakeOAuthState(ctx, id, m.now())
	if errors.Is(err, sesame.ErrNotFound) {
		return CallbackResult{}, sesame.Errorf(sesame.CodeInvalidArgument,
			"the state is unknown, expired or already used; start again with GET %s", AuthorizePath)
	}
	if err != nil {
		return CallbackResult{}, err
	}
	res := CallbackResult{Status: "error", Workspace: st.Workspace, Credential: st.Credential, User: st.EndUser}
	fail := func(code string, err error) (CallbackResult, error) {
		res.Error = code
		if st.ReturnURL != "" {
			res.Redirect = withQuery(st.ReturnURL, url.Values{"status": {"error"}, "error": {code}})
			return res, nil
		}
		return res, err
	}
	if e := q.Get("error"); e != "" {
		code := "access_denied"
		if plainCode.MatchString(e) {
			code = e
		}
		return fail(code, sesame.Errorf(sesame.CodeForbidden, "the provider did not authorize credential %q (%s)", st.Credential, code))
	}
	code := q.Get("code")
	if code == "" {
		return fail("invalid_request", sesame.Errorf(sesame.CodeInvalidArgument, "the callback has neither code nor error"))
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RefreshTimeout)
	defer cancel()
	c, wipe, err := m.materialFor(ctx, st.Workspace, st.Credential)
	if err != nil {
		return fail("credential_unavailable", err)
	}
	defer wipe()
	vb, err := m.cfg.Keyring.Open(st.Verifier, "oauth-state", st.ID, c.tokenURL)
	if err != nil && !errors.Is(err, crypt.ErrUnknownKey) {
		// Sealed for another token endpoint: the credential changed since the authorization
		// started, and the code must not follow it (PRODUCT.md §4.7).
		return fail("credential_changed", sesame.Errorf(sesame.CodeConflict,
			"credential %q changed its token endpoint after this authorization started; start again with GET %s", st.Credential, AuthorizePath))
	}
	if err != nil {
		return CallbackResult{}, fmt.Errorf("oauth: open state verifier: %w", err)
	}
	verifier := string(vb)
	clear(vb)
	var opts []oauth2.AuthCodeOption
	for k, v := range c.tokenParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	// The callback has no connection, so no agent: the code exchange goes to the token
	// endpoint directly (c, opened without one, has no dial).
	tok, err := c.config(st.RedirectURI).Exchange(m.withHTTP(ctx, c), code, opts...)
	if err != nil {
		f := classify(err)
		k := grantKey{ws: st.Workspace, cred: st.Credential, user: st.EndUser}
		m.log.Warn("oauth: code exchange failed", append(k.attrs(), logFailure, f.String())...)
		errCode := f.code
		if errCode == "" {
			errCode = "exchange_failed"
		}
		return fail(errCode, sesame.Errorf(sesame.CodeUpstreamError, "the provider did not exchange the authorization code of credential %q (%s)", st.Credential, f))
	}
	if err := m.storeExchanged(ctx, grantKey{ws: st.Workspace, cred: st.Credential, user: st.EndUser}, tok); err != nil {
		return CallbackResult{}, err
	}
	res.Status = "authorized"
	if st.ReturnURL != "" {
		res.Redirect = withQuery(st.ReturnURL, url.Values{"status": {"authorized"}})
	}
	return res, nil
}

// storeExchanged writes a freshly exchanged token as the grant, replacing any earlier
// one (a re-authorization).
func (m *Manager) storeExchanged(ctx context.Context, k grantKey, tok *oauth2.Token) error {
	now := m.now().UTC()
	g := sesame.OAuthGrant{Workspace: k.ws, Credential: k.cred, EndUser: k.user, TokenType: tok.Type(),
		Status: sesame.GrantValid, CreatedAt: now, UpdatedAt: now}
	if s, ok := tok.Extra("scope").(string); ok {
		g.Scope = s
	}
	if !tok.Expiry.IsZero() {
		e := tok.Expiry.UTC()
		g.ExpiresAt = &e
	}
	return m.sealAndWrite(ctx, func() error { return m.writeExchanged(ctx, k, tok, g) })
}

func (m *Manager) writeExchanged(ctx context.Context, k grantKey, tok *oauth2.Token, g sesame.OAuthGrant) error {
	var err error
	if g.Access, err = m.cfg.Keyring.Seal([]byte(tok.AccessToken), k.identity("access")...); err != nil {
		return err
	}
	if tok.RefreshToken != "" {
		if g.Refresh, err = m.cfg.Keyring.Seal([]byte(tok.RefreshToken), k.identity("refresh")...); err != nil {
			return err
		}
	}
	for range 5 {
		old, err := m.cfg.Store.GetOAuthGrant(ctx, k.ws, k.cred, k.user)
		if errors.Is(err, sesame.ErrNotFound) {
			err = m.cfg.Store.CreateOAuthGrant(ctx, g)
			if errors.Is(err, sesame.ErrAlreadyExists) {
				continue
			}
			if err == nil {
				m.log.Info("oauth: grant authorized", k.attrs()...)
			}
			return err
		}
		if err != nil {
			return err
		}
		g.CreatedAt = old.CreatedAt
		if _, err = m.cfg.Store.UpdateOAuthGrant(ctx, g, old.Version); errors.Is(err, sesame.ErrConflict) || errors.Is(err, sesame.ErrNotFound) {
			continue
		}
		if err == nil {
			m.log.Info("oauth: grant re-authorized", k.attrs()...)
		}
		return err
	}
	return sesame.Errorf(sesame.CodeConflict, "the grant of credential %q kept changing while it was stored; authorize again", k.cred)
}

// returnAllowed reports whether u may receive the browser after a callback: an allowed
// entry exactly, or below an allowed entry that ends in "/", with the same scheme and
// host; this server's public URL counts as an allowed prefix.
func (m *Manager) returnAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	if strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") || strings.Contains(u.Path, "\\") {
		return false
	}
	allowed := append([]string(nil), m.cfg.ReturnURLs...)
	if m.cfg.PublicURL != "" {
		allowed = append(allowed, m.cfg.PublicURL+"/")
	}
	for _, a := range allowed {
		au, err := url.Parse(a)
		if err != nil || !strings.EqualFold(au.Scheme, u.Scheme) || !strings.EqualFold(au.Host, u.Host) {
			continue
		}
		if strings.HasSuffix(au.Path, "/") {
			if strings.HasPrefix(u.Path, au.Path) || u.Path+"/" == au.Path {
				return true
			}
			continue
		}
		if u.Path == au.Path {
			return true
		}
	}
	return false
}

// withQuery adds q to the query of u.
func withQuery(u string, q url.Values) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	have := p.Query()
	for k, vs := range q {
		have[k] = vs
	}
	p.RawQuery = have.Encode()
	return p.String()
}
