package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sesamehq/sesame"
)

// OIDC configures sign-in through an OpenID Connect identity provider.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret sesame.Secret
	// Name labels the sign-in button ("Sign in with <Name>").
	Name string
	// UserClaim is the ID-token claim whose value is the Sesame user name; "email" (the
	// default) also needs email_verified true.
	UserClaim string
	// GroupsClaim is the claim listing the provider's groups; with GroupMap, membership of
	// the mapped Sesame groups follows it at every sign-in.
	GroupsClaim string
	// GroupMap maps provider group names to Sesame group names. Only the Sesame groups
	// named here are ever changed by sign-in.
	GroupMap map[string]string
	// CreateUsers creates an unknown user (no privileges) at first sign-in.
	CreateUsers bool
	// Scopes are requested besides openid; default email and profile.
	Scopes []string
	// HTTPClient talks to the provider; nil: a client with a 15-second timeout.
	HTTPClient *http.Client
}

// Directory finds, creates and regroups users for sign-in through the provider (access.Service).
type Directory interface {
	UserByName(ctx context.Context, name string) (sesame.User, error)
	CreateUser(ctx context.Context, name string) (sesame.User, error)
	SetDirectoryGroup(ctx context.Context, userID, group string, member bool) (bool, error)
}

// OIDCStates keeps started sign-ins server-side (store.Store).
type OIDCStates interface {
	CreateOIDCState(ctx context.Context, st sesame.OIDCState, now time.Time) error
	TakeOIDCState(ctx context.Context, hash []byte) (sesame.OIDCState, error)
}

const (
	oidcCookieName       = "sesame_oidc"
	secureOIDCCookieName = "__Host-sesame_oidc"
	oidcStateHashPrefix  = "oidc-state:"
	oidcStateLifetime    = 10 * time.Minute
)

// oidcClient discovers the provider once (at the first sign-in, so that the server starts
// while the provider is down) and keeps its verifier.
type oidcClient struct {
	cfg OIDC
	mu  sync.Mutex
	// set once discovery succeeded
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	issParam bool // the provider promises the RFC 9207 iss parameter
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	if o.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	return ctx
}

func (o *oidcClient) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, o.verifier, o.issParam, nil
	}
	// The provider keeps this context for fetching its keys later: not the request's.
	p, err := oidc.NewProvider(o.ctx(context.WithoutCancel(ctx)), o.cfg.Issuer)
	if err != nil {
		return nil, nil, false, err
	}
	var meta struct {
		ISSParam bool `json:"authorization_response_iss_parameter_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, nil, false, err
	}
	o.provider, o.issParam = p, meta.ISSParam
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	return o.provider, o.verifier, o.issParam, nil
}

func (o *oidcClient) oauth2(p *oidc.Provider, redirect string) *oauth2.Config {
	scopes := append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...)
	return &oauth2.Config{
		ClientID: o.cfg.ClientID, ClientSecret: string(o.cfg.ClientSecret.Reveal()),
		Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: scopes,
	}
}

func (c *Console) oidcRedirect() string { return c.cfg.PublicURL + "/console/oidc/callback" }

func (c *Console) oidcCookieName(r *http.Request) string {
	if c.secure(r) {
		return secureOIDCCookieName
	}
	return oidcCookieName
}

// oidcStart begins a sign-in: a new state (bound to this browser by a short-lived cookie and
// kept server-side with the nonce and PKCE verifier), then off to the provider. It is a GET
// (a link): the page's CSP form-action 'self' would stop a form's redirect to the provider,
// and starting a sign-in changes nothing but an expiring row.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _, _, err := c.oidc.discover(ctx)
	if err != nil {
		c.log.Warn("oidc discovery", "issuer", c.oidc.cfg.Issuer, "err", err)
		// Retryable: 503 with Retry-After, like every passing condition.
		c.renderError(w, r, sesame.Errorf(sesame.CodeUnavailable, "the identity provider cannot be reached; try again later"))
		return
	}
	state, nonce, verifier := newSessionID(), newSessionID(), oauth2.GenerateVerifier()
	now := c.cfg.Now().UTC()
	q := r.URL.Query()
	st := sesame.OIDCState{StateHash: c.cfg.Hasher.Hash([]byte(oidcStateHashPrefix + state)), Nonce: nonce, Verifier: verifier,
		Next: safeNext(q.Get("next")), ExpiresAt: now.Add(oidcStateLifetime)}
	if cli := q.Get("cli"); cli != "" {
		// `sesame login`: the browser comes back to the CLI's loopback listener only.
		ret, ok := loopbackReturn(cli)
		if !ok || !validChallenge(q.Get("cli_challenge")) {
			c.renderError(w, r, sesame.Errorf(sesame.CodeInvalidArgument, "cli must be http://127.0.0.1:<port>/… and cli_challenge a PKCE S256 challenge"))
			return
		}
		st.CLIReturn, st.CLIChallenge = ret, q.Get("cli_challenge")
	}
	if err := c.cfg.OIDCStates.CreateOIDCState(ctx, st, now); err != nil {
		c.renderError(w, r, err)
		return
	}
	// Lax, not Strict: the provider sends the browser back with a cross-site GET.
	http.SetCookie(w, &http.Cookie{Name: c.oidcCookieName(r), Value: state, Path: "/", MaxAge: int(oidcStateLifetime / time.Second),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	u := c.oidc.oauth2(p, c.oidcRedirect()).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// oidcFailure is a refused sign-in: its audit reason and what the person is told.
type oidcFailure struct {
	code   sesame.Code
	reason string // for the audit trail and log: never a token
	user   sesame.Principal
}

func (f *oidcFailure) Error() string { return string(f.code) + ": " + f.reason }

func fail(code sesame.Code, format string, args ...any) error {
	return &oidcFailure{code: code, reason: fmt.Sprintf(format, args...)}
}

// oidcCallback finishes a sign-in. Every check refuses on its own; the state is used once.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// The state cookie is for this one callback, whatever its outcome.
	http.SetCookie(w, &http.Cookie{Name: c.oidcCookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	p, st, err := c.oidcVerify(r)
	if err != nil {
		var f *oidcFailure
		if !errors.As(err, &f) {
			c.log.Error("oidc sign-in", "err", err)
			c.renderError(w, r, err)
			return
		}
		c.record(r, f.user, "console.signin", sesame.AuditDenied, f.code, "oidc: "+f.reason)
		c.log.LogAttrs(ctx, slog.LevelWarn, "console oidc sign-in refused", slog.String("code", string(f.code)), slog.String("reason", f.reason), slog.String("remote", sourceOf(r)))
		status := http.StatusUnauthorized
		if f.code == sesame.CodeOIDCUser {
			status = http.StatusForbidden
		}
		c.render(w, r, status, "signin", &page{Title: "Sign in", Data: c.signInData("Sign-in through "+c.oidc.cfg.Name+" failed ("+string(f.code)+").", "/console/")})
		return
	}
	now := c.cfg.Now().UTC()
	if st.CLIReturn != "" {
		// Back to the CLI with a one-time code that only its verifier redeems.
		code := newSessionID()
		h := sesame.OIDCHandoff{CodeHash: c.cfg.Hasher.Hash([]byte(handoffHashPrefix + code)), UserID: p.UserID, Challenge: st.CLIChallenge, ExpiresAt: now.Add(handoffLifetime)}
		if err := c.cfg.Handoffs.CreateOIDCHandoff(ctx, h, now); err != nil {
			c.renderError(w, r, err)
			return
		}
		c.record(r, p, "console.signin", sesame.AuditOK, "", "oidc for sesame login")
		http.Redirect(w, r, st.CLIReturn+"?code="+code, http.StatusSeeOther)
		return
	}
	next := st.Next
	if old, err := r.Cookie(c.cookieName(r)); err == nil && validSessionID(old.Value) {
		if err := c.cfg.Sessions.DeleteSession(ctx, c.hashSession(old.Value)); err != nil {
			c.renderError(w, r, err)
			return
		}
	}
	if err := c.startSession(w, r, sesame.Session{UserID: p.UserID}); err != nil {
		c.renderError(w, r, err)
		return
	}
	c.record(r, p, "console.signin", sesame.AuditOK, "", "oidc")
	c.log.LogAttrs(ctx, slog.LevelInfo, "console sign-in", slog.String("user", p.UserName), slog.String("via", "oidc"), slog.String("remote", sourceOf(r)))
	// A page of this origin moves on (not a redirect): the navigation came from the provider's
	// site, and the browser sends the SameSite=Strict session cookie only on a same-site one.
	c.render(w, r, http.StatusOK, "oidcdone", &page{Title: "Signed in", Data: next, RefreshTo: next})
}

// oidcVerify checks the callback and returns the principal to sign in and the sign-in it ends.
func (c *Console) oidcVerify(r *http.Request) (sesame.Principal, sesame.OIDCState, error) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	ck, err := r.Cookie(c.oidcCookieName(r))
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCState, "state does not match this browser's sign-in")
	}
	st, err := c.cfg.OIDCStates.TakeOIDCState(ctx, c.cfg.Hasher.Hash([]byte(oidcStateHashPrefix+state)))
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCState, "state unknown or already used")
	}
	if err != nil {
		return sesame.Principal{}, sesame.OIDCState{}, err
	}
	if !c.cfg.Now().Before(st.ExpiresAt) {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCState, "state expired")
	}
	prov, verifier, issParam, err := c.oidc.discover(ctx)
	if err != nil {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCProvider, "discovery failed")
	}
	// RFC 9207: an authorization response names its issuer; one from another is a mix-up.
	if iss, sent := q["iss"]; sent || issParam {
		if !sent || len(iss) != 1 || iss[0] != c.oidc.cfg.Issuer {
			return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "iss parameter is not the configured issuer")
		}
	}
	if e := q.Get("error"); e != "" {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCProvider, "provider answered error %q", clip(e, 64))
	}
	code := q.Get("code")
	if code == "" {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCProvider, "no code")
	}
	tok, err := c.oidc.oauth2(prov, c.oidcRedirect()).Exchange(c.oidc.ctx(ctx), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) { // its body is the provider's; log only its error code
			c.log.Warn("oidc code exchange refused", "error", re.ErrorCode)
		} else {
			c.log.Warn("oidc code exchange", "err", err)
		}
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCProvider, "code exchange failed")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "no ID token")
	}
	idt, err := verifier.Verify(c.oidc.ctx(ctx), raw)
	if err != nil {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "ID token does not verify: %s", verifyReason(err))
	}
	if idt.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "ID token nonce missing or not this sign-in's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "ID token claims unreadable")
	}
	name, _ := claims[c.oidc.cfg.UserClaim].(string)
	if name == "" {
		return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "claim %q missing", c.oidc.cfg.UserClaim)
	}
	if c.oidc.cfg.UserClaim == "email" {
		if v, _ := claims["email_verified"].(bool); !v {
			return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCToken, "email not verified by the provider")
		}
	}
	u, err := c.cfg.Directory.UserByName(ctx, name)
	if sesame.ErrorCode(err) == sesame.CodeNotFound {
		if !c.oidc.cfg.CreateUsers {
			return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCUser, "no Sesame user %q", clip(name, 128))
		}
		// The new user commits with its event (the audit outbox).
		e := sesame.AuditEvent{Time: c.cfg.Now().UTC(), Action: "oidc.user_created", Result: sesame.AuditOK, Target: name, Source: sourceOf(r),
			Detail: "user " + name + " created at first sign-in through the identity provider"}
		cctx := ctx
		var intent *sesame.AuditIntent
		if c.cfg.Audit != nil {
			intent = &sesame.AuditIntent{ID: newSessionID(), Event: e}
			cctx = sesame.WithAuditIntent(ctx, intent)
		}
		u, err = c.cfg.Directory.CreateUser(cctx, name)
		if intent != nil && intent.Written() {
			e.Outbox, e.Principal, e.UserID = intent.ID, sesame.PrincipalUser, u.ID
			c.cfg.Audit.Record(ctx, e)
		}
		if err != nil {
			if code := sesame.ErrorCode(err); code != sesame.CodeInternal && !sesame.Retryable(code) {
				return sesame.Principal{}, sesame.OIDCState{}, fail(sesame.CodeOIDCUser, "cannot create user %q: %s", clip(name, 128), code)
			}
			return sesame.Principal{}, sesame.OIDCState{}, err
		}
	} else if err != nil {
		return sesame.Principal{}, sesame.OIDCState{}, err
	}
	p := sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID, UserName: u.Name}
	if u.Disabled {
		return p, sesame.OIDCState{}, &oidcFailure{code: sesame.CodeOIDCUser, reason: "user is disabled", user: p}
	}
	if c.oidc.cfg.GroupsClaim != "" && len(c.oidc.cfg.GroupMap) > 0 {
		if err := c.oidcGroups(r, p, claims[c.oidc.cfg.GroupsClaim]); err != nil {
			return p, sesame.OIDCState{}, err
		}
	}
	return p, st, nil
}

// oidcGroups sets the user's membership of the mapped groups to what the token says; each
// change commits with its oidc.groups event (the audit outbox).
func (c *Console) oidcGroups(r *http.Request, p sesame.Principal, claim any) error {
	managed, member := map[string]bool{}, map[string]bool{}
	for _, g := range c.oidc.cfg.GroupMap {
		managed[g] = true
	}
	list, _ := claim.([]any) // absent or not a list: member of none
	for _, v := range list {
		if s, ok := v.(string); ok {
			if g, ok := c.oidc.cfg.GroupMap[s]; ok {
				member[g] = true
			}
		}
	}
	for _, g := range slices.Sorted(maps.Keys(managed)) {
		what := "removed from"
		if member[g] {
			what = "added to"
		}
		e := sesame.AuditEvent{Time: c.cfg.Now().UTC(), Action: "oidc.groups", Result: sesame.AuditOK, Target: g, Source: sourceOf(r),
			Principal: p.Kind, UserID: p.UserID, Detail: "user " + p.UserName + " " + what + " group " + g + " by the identity provider's groups claim"}
		ctx := r.Context()
		var intent *sesame.AuditIntent
		if c.cfg.Audit != nil {
			intent = &sesame.AuditIntent{ID: newSessionID(), Event: e}
			ctx = sesame.WithAuditIntent(ctx, intent)
		}
		_, err := c.cfg.Directory.SetDirectoryGroup(ctx, p.UserID, g, member[g])
		if intent != nil && intent.Written() {
			e.Outbox = intent.ID
			c.cfg.Audit.Record(r.Context(), e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// verifyReason names why go-oidc refused a token, without the token.
func verifyReason(err error) string {
	var exp *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &exp):
		return "expired"
	case strings.Contains(msg, "audience"):
		return "wrong audience"
	case strings.Contains(msg, "issuer"):
		return "wrong issuer"
	case strings.Contains(msg, "signature"):
		return "bad signature"
	default:
		return "malformed"
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
