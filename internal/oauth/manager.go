// Package oauth is Sesame's OAuth2 service (PRODUCT.md C5): the client credentials and
// authorization code (PKCE, state) grants, per workspace or per end user; tokens sealed
// above the store; refresh before expiry exactly once however many callers and replicas
// ask at once; re-authorization when the provider refuses a refresh; revocation.
//
// Refresh exactly once. In one process, callers of one grant share one refresh
// (singleflight). Across processes, the refresher first claims a short lease on the
// grant's row, conditioned on the version it read, and renews it while it works (a
// heartbeat); others wait for the version to move, at most LeaseWait, then answer 503
// refresh_in_progress. A holder that dies stops renewing, and its lease is taken over
// within LeaseTTL. Every token write is a compare-and-swap on that version, so a
// refresher that lost its lease can never overwrite a newer token. The refresh runs on a context detached from the
// caller's cancellation, and the rotated refresh token is committed before the new
// access token is handed to anyone: a caller going away cannot lose it.
package oauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/outbound"
	"github.com/sesamehq/sesame/internal/vault"
)

// Store is the storage the OAuth service needs. Token writes are compare-and-swap:
// UpdateOAuthGrant returns sesame.ErrConflict when the version moved and
// sesame.ErrNotFound when the grant is gone; TakeOAuthState returns sesame.ErrNotFound
// for an unknown, used or expired state.
type Store interface {
	GetOAuthGrant(ctx context.Context, ws, cred, user string) (sesame.OAuthGrant, error)
	ListOAuthGrants(ctx context.Context, ws, cred, afterCred, afterUser string, limit int) ([]sesame.OAuthGrant, error)
	CreateOAuthGrant(ctx context.Context, g sesame.OAuthGrant) error
	UpdateOAuthGrant(ctx context.Context, g sesame.OAuthGrant, expectVersion int64) (int64, error)
	ClaimOAuthLease(ctx context.Context, ws, cred, user, owner string, version int64, now, until time.Time) (bool, error)
	RenewOAuthLease(ctx context.Context, ws, cred, user, owner string, until time.Time) (bool, error)
	ReleaseOAuthLease(ctx context.Context, ws, cred, user, owner string) error
	DeleteOAuthGrant(ctx context.Context, ws, cred, user string) error
	CreateOAuthState(ctx context.Context, st sesame.OAuthState) error
	TakeOAuthState(ctx context.Context, id string, now time.Time) (sesame.OAuthState, error)
	DeleteExpiredOAuthStates(ctx context.Context, now time.Time) (int64, error)
}

// Vault opens credentials.
type Vault interface {
	Resolve(ctx context.Context, ws, key string) (vault.Resolved, error)
	// ResolveOAuthApp opens a shared OAuth app that credentials name in oauth_app.
	ResolveOAuthApp(ctx context.Context, name string) (vault.Resolved, error)
}

// ServerSecrets returns a server-wide random secret by name, the same on every replica.
type ServerSecrets interface {
	ServerSecret(ctx context.Context, name string) (sesame.Secret, error)
}

// stateKeyName names the server secret that keys the state HMAC.
const stateKeyName = "oauth-state-hmac"

// Config holds the service's dependencies and settings. Zero durations take the defaults.
type Config struct {
	Store   Store
	Vault   Vault
	Keyring *crypt.Keyring
	// SyncKeys, when set, picks up the store's primary master key after a write was refused
	// because a rotation changed it (master_key_unavailable); the write is sealed again and
	// retried once, so a token just received from a provider is not lost.
	SyncKeys func(ctx context.Context) error
	// Secrets gives the server secret under which state values are HMACed; it is
	// created on the first authorization, not before.
	Secrets ServerSecrets
	// Transport reaches token and revocation endpoints; nil means the SSRF-safe outbound
	// transport that refuses private addresses.
	Transport http.RoundTripper
	// PublicURL is how browsers and callers reach this server (scheme://host[:port][/prefix]);
	// the redirect URI is PublicURL + CallbackPath.
	PublicURL string
	// ReturnURLs are the URLs (or prefixes ending in "/") a callback may send the browser
	// back to, besides PublicURL's origin.
	ReturnURLs []string
	Clock      sesame.Clock
	Logger     *slog.Logger

	RefreshMargin time.Duration // refresh this long before expiry (at most half the lifetime); default 60s
	StateTTL      time.Duration // how long an authorization may take; default 10m
	// LeaseTTL is how long a refresh lease lasts unless its holder renews it; the holder
	// renews it every LeaseTTL/3 while it refreshes, so a dead holder's lease frees within
	// LeaseTTL. Default 5s.
	LeaseTTL time.Duration
	// LeaseWait bounds how long a caller waits for another replica's refresh before it
	// gets 503 refresh_in_progress with Retry-After. Default 10s.
	LeaseWait       time.Duration
	RefreshTimeout  time.Duration // bounds one refresh, waits and retries included; default 60s
	RefreshAttempts int           // token endpoint tries on transient failures; default 3
	RetryBase       time.Duration // first backoff between tries; default 250ms
	// Owner names this process in refresh leases; default random.
	Owner string
}

// Paths of the OAuth routes, for redirect and re-authorization URLs.
const (
	AuthorizePath = "/v1/oauth/authorize"
	CallbackPath  = "/v1/oauth/callback"
)

// Log keys.
const (
	logWorkspace  = "workspace"
	logCredential = "credential"
	logEndUser    = "end_user"
	logFailure    = "failure"
	logVersion    = "version"
)

// Manager is the OAuth service. It is the gateway's injector for oauth2 credentials.
type Manager struct {
	cfg    Config
	http   *http.Client
	now    sesame.Clock
	log    *slog.Logger
	flight singleflight.Group

	stateMu  sync.Mutex
	stateKey sesame.Secret // loaded on first use

	refreshed, failed, reauthorized atomic.Uint64 // for Stats
}

// Stats counts this process's token refreshes (client-credentials fetches included).
type Stats struct {
	Refreshes        uint64 // new tokens obtained and stored
	RefreshFailures  uint64 // refreshes the token endpoint refused or failed
	Reauthorizations uint64 // grants marked as needing a person to authorize again
}

// Stats reports the refresh counters.
func (m *Manager) Stats() Stats {
	return Stats{Refreshes: m.refreshed.Load(), RefreshFailures: m.failed.Load(), Reauthorizations: m.reauthorized.Load()}
}

// New returns the OAuth service.
func New(cfg Config) *Manager {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = outbound.NewTransport(false)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RefreshMargin, time.Minute)
	def(&cfg.StateTTL, 10*time.Minute)
	def(&cfg.RefreshTimeout, time.Minute)
	def(&cfg.LeaseTTL, 5*time.Second)
	def(&cfg.LeaseWait, 10*time.Second)
	def(&cfg.RetryBase, 250*time.Millisecond)
	if cfg.RefreshAttempts <= 0 {
		cfg.RefreshAttempts = 3
	}
	if cfg.Owner == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		cfg.Owner = hex.EncodeToString(b)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Manager{cfg: cfg, http: newHTTPClient(cfg.Transport), now: cfg.Clock, log: cfg.Logger}
}

// grantKey names one grant.
type grantKey struct{ ws, cred, user string }

func (k grantKey) String() string { return k.ws + "\x00" + k.cred + "\x00" + k.user }

func (k grantKey) identity(part string) []string {
	return []string{"oauth", k.ws, k.cred, k.user, part}
}

func (k grantKey) attrs() []any {
	return []any{logWorkspace, k.ws, logCredential, k.cred, logEndUser, k.user}
}

// Token is an access token ready for use. Access must not reach a log or an error.
type Token struct {
	Access    sesame.Secret
	Type      string
	Scope     string
	ExpiresAt *time.Time
	version   int64
}

// token returns a usable access token for the grant of c, refreshing it if needed.
func (m *Manager) token(ctx context.Context, c *client, k grantKey) (Token, error) {
	g, err := m.current(ctx, c, k)
	if err != nil {
		return Token{}, err
	}
	if g.Status == sesame.GrantReauthorize {
		return Token{}, m.reauthError(k, g.Reason)
	}
	if m.usable(g) {
		return m.open(k, g)
	}
	return m.refresh(ctx, c, k, g.Version, false)
}

// keyFor returns the grant a call uses: client credentials grants belong to the
// workspace whatever the end user.
func keyFor(c *client, user string) grantKey {
	if c.grant == grantClientCredentials {
		user = ""
	}
	return grantKey{ws: c.ws, cred: c.key, user: user}
}

// current reads the grant. A client credentials grant is created empty on first use (its
// first token is fetched like a refresh); an authorization code grant must have been
// authorized.
func (m *Manager) current(ctx context.Context, c *client, k grantKey) (sesame.OAuthGrant, error) {
	g, err := m.cfg.Store.GetOAuthGrant(ctx, k.ws, k.cred, k.user)
	if !errors.Is(err, sesame.ErrNotFound) {
		return g, err
	}
	if c.grant != grantClientCredentials {
		return g, m.reauthError(k, "not_authorized")
	}
	now := m.now().UTC()
	err = m.cfg.Store.CreateOAuthGrant(ctx, sesame.OAuthGrant{Workspace: k.ws, Credential: k.cred, EndUser: k.user,
		Status: sesame.GrantValid, CreatedAt: now, UpdatedAt: now})
	if err != nil && !errors.Is(err, sesame.ErrAlreadyExists) {
		return g, err
	}
	return m.cfg.Store.GetOAuthGrant(ctx, k.ws, k.cred, k.user)
}

// usable reports whether g's access token can be used now: it is valid and not within
// the refresh margin of its expiry. The margin is at most half the token's lifetime, so
// short-lived tokens are not refreshed on every call.
func (m *Manager) usable(g sesame.OAuthGrant) bool {
	if g.Status != sesame.GrantValid || g.Access == nil {
		return false
	}
	if g.ExpiresAt == nil {
		return true
	}
	margin := m.cfg.RefreshMargin
	if life := g.ExpiresAt.Sub(g.UpdatedAt); life > 0 && life/2 < margin {
		margin = life / 2
	}
	return m.now().Add(margin).Before(*g.ExpiresAt)
}

// unexpired reports whether g's access token has not expired yet (margin aside).
func (m *Manager) unexpired(g sesame.OAuthGrant) bool {
	return g.Status == sesame.GrantValid && g.Access != nil && (g.ExpiresAt == nil || m.now().Before(*g.ExpiresAt))
}

func (m *Manager) open(k grantKey, g sesame.OAuthGrant) (Token, error) {
	pt, err := m.cfg.Keyring.Open(g.Access, k.identity("access")...)
	if err != nil {
		return Token{}, fmt.Errorf("oauth: open access token of %s/%s: %w", k.ws, k.cred, err)
	}
	return Token{Access: sesame.NewSecret(pt), Type: g.TokenType, Scope: g.Scope, ExpiresAt: g.ExpiresAt, version: g.Version}, nil
}

// refresh renews the grant's token once for every caller of this process: the first
// caller's refresh runs on a context detached from its cancellation, and every caller
// waits for it (or for its own context to end). seen is the version the caller found
// wanting; force renews even a token that looks usable (the upstream rejected it).
func (m *Manager) refresh(ctx context.Context, c *client, k grantKey, seen int64, force bool) (Token, error) {
	ch := m.flight.DoChan(k.String(), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RefreshTimeout)
		defer cancel()
		return m.refreshLeader(rctx, c, k, seen, force)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		// Every waiter gets its own copy of the secret, which it may wipe; the shared
		// one is never wiped.
		t := r.Val.(Token)
		t.Access = sesame.NewSecret(bytes.Clone(t.Access.Reveal()))
		return t, nil
	case <-ctx.Done():
		return Token{}, sesame.Errorf(sesame.CodeUpstreamError, "the call was canceled while the OAuth2 token was being refreshed (the refresh goes on)")
	}
}

// errRetry means a compare-and-swap found a newer grant: read it again.
var errRetry = errors.New("oauth: grant changed; read it again")

// refreshLeader runs one process's refresh: it takes the grant's lease (waiting while
// another process holds it) and refreshes, unless the version moved meanwhile, in which
// case the newer token is used.
func (m *Manager) refreshLeader(ctx context.Context, c *client, k grantKey, seen int64, force bool) (Token, error) {
	wait := 10 * time.Millisecond
	var waitingSince time.Time // when another process's lease first kept us out
	for {
		g, err := m.current(ctx, c, k)
		if err != nil {
			return Token{}, err
		}
		if g.Status == sesame.GrantReauthorize {
			return Token{}, m.reauthError(k, g.Reason)
		}
		if m.usable(g) && (g.Version != seen || !force) {
			return m.open(k, g) // refreshed elsewhere meanwhile
		}
		now := m.now()
		claimed, err := m.cfg.Store.ClaimOAuthLease(ctx, k.ws, k.cred, k.user, m.cfg.Owner, g.Version, now, now.Add(m.cfg.LeaseTTL))
		if err != nil {
			return Token{}, err
		}
		if claimed {
			t, err := m.refreshHeld(ctx, c, k, g, force)
			if errors.Is(err, errRetry) {
				seen, force = -1, false // whatever is stored now is newer than what was rejected
				continue
			}
			return t, err
		}
		// Another process holds the lease, or the version moved: look again shortly, but
		// not for longer than LeaseWait (a dead holder's lease frees within LeaseTTL).
		if waitingSince.IsZero() {
			waitingSince = time.Now()
		}
		if time.Since(waitingSince) >= m.cfg.LeaseWait {
			return Token{}, m.inProgress(k)
		}
		if err := sleep(ctx, wait); err != nil {
			return Token{}, m.inProgress(k)
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

// inProgress is the answer to a caller that waited LeaseWait for another replica's refresh.
func (m *Manager) inProgress(k grantKey) error {
	return &sesame.Error{Code: sesame.CodeRefreshInProgress, RetryAfter: m.cfg.LeaseTTL,
		Message: fmt.Sprintf("the OAuth2 token of credential %q is being refreshed by another replica, which did not finish within %s; retry shortly", k.cred, m.cfg.LeaseWait)}
}

// heartbeat renews the lease on k every LeaseTTL/3 until the returned stop is called.
func (m *Manager) heartbeat(ctx context.Context, k grantKey) (stop func()) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(m.cfg.LeaseTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
			}
			held, err := m.cfg.Store.RenewOAuthLease(hctx, k.ws, k.cred, k.user, m.cfg.Owner, m.now().Add(m.cfg.LeaseTTL))
			if hctx.Err() != nil {
				return
			}
			if err != nil || !held {
				// The write that ends the refresh is fenced by the grant's version, so a lost
				// lease costs at most a discarded token, never a lost one.
				m.log.Warn("oauth: could not renew refresh lease", append(k.attrs(), "held", held, "err", err)...)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// refreshHeld refreshes g while holding its lease (renewing it), and writes the result
// fenced by g's version, which also releases the lease.
func (m *Manager) refreshHeld(ctx context.Context, c *client, k grantKey, g sesame.OAuthGrant, force bool) (t Token, err error) {
	written := false
	stopHeartbeat := m.heartbeat(ctx, k)
	defer func() {
		stopHeartbeat()
		if !written {
			if rerr := m.cfg.Store.ReleaseOAuthLease(context.WithoutCancel(ctx), k.ws, k.cred, k.user, m.cfg.Owner); rerr != nil {
				m.log.Warn("oauth: could not release refresh lease; it expires by itself", append(k.attrs(), "err", rerr)...)
			}
		}
	}()
	var refresh sesame.Secret
	if c.grant != grantClientCredentials {
		if g.Refresh == nil {
			return Token{}, m.markReauthorize(ctx, k, g, "no_refresh_token")
		}
		pt, err := m.cfg.Keyring.Open(g.Refresh, k.identity("refresh")...)
		if err != nil {
			return Token{}, fmt.Errorf("oauth: open refresh token of %s/%s: %w", k.ws, k.cred, err)
		}
		refresh = sesame.NewSecret(pt)
		defer refresh.Wipe()
	}

	tok, err := m.retrieve(ctx, c, k, refresh)
	if err != nil {
		if aerr := agentError(err, k); aerr != nil {
			m.failed.Add(1)
			m.log.Warn("oauth: token refresh failed", append(k.attrs(), logFailure, string(sesame.ErrorCode(aerr)))...)
			// As with a transient failure, a token that has not quite expired still serves.
			if !force && m.unexpired(g) {
				return m.open(k, g)
			}
			return Token{}, aerr
		}
		f := classify(err)
		m.failed.Add(1)
		m.log.Warn("oauth: token refresh failed", append(k.attrs(), logFailure, f.String())...)
		switch f.kind {
		case revoked:
			if c.grant == grantClientCredentials {
				return Token{}, rejectedError(k, f)
			}
			return Token{}, m.markReauthorize(ctx, k, g, f.code)
		case rejected:
			return Token{}, rejectedError(k, f)
		}
		// Transient: the grant stays as it is. A token that has not quite expired (we
		// were only within the margin) still serves, unless the upstream refused it.
		if !force && m.unexpired(g) {
			return m.open(k, g)
		}
		code := sesame.CodeUpstreamError
		if f.status == 0 && errors.Is(err, context.DeadlineExceeded) {
			code = sesame.CodeUpstreamTimeout
		}
		return Token{}, &sesame.Error{Code: code, Message: fmt.Sprintf(
			"the OAuth2 token endpoint of credential %q failed (%s) after %d tries; the grant stays valid, retry later", k.cred, f, m.cfg.RefreshAttempts),
			RetryAfter: time.Second}
	}

	now := m.now().UTC()
	ng := g
	ng.Status, ng.Reason, ng.UpdatedAt, ng.RefreshedAt = sesame.GrantValid, "", now, &now
	ng.TokenType = tok.Type()
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		ng.Scope = s
	}
	ng.ExpiresAt = nil
	if !tok.Expiry.IsZero() {
		e := tok.Expiry.UTC()
		ng.ExpiresAt = &e
	}
	var v int64
	err = m.sealAndWrite(ctx, func() error {
		var err error
		if ng.Access, err = m.cfg.Keyring.Seal([]byte(tok.AccessToken), k.identity("access")...); err != nil {
			return err
		}
		switch {
		case c.grant == grantClientCredentials:
			ng.Refresh = nil
		case tok.RefreshToken != "" && tok.RefreshToken != string(refresh.Reveal()):
			// Rotated: the new refresh token replaces the old in the same write.
			if ng.Refresh, err = m.cfg.Keyring.Seal([]byte(tok.RefreshToken), k.identity("refresh")...); err != nil {
				return err
			}
		}
		// A response without a refresh token keeps the old one (ng.Refresh = g.Refresh).
		v, err = m.cfg.Store.UpdateOAuthGrant(ctx, ng, g.Version)
		return err
	})
	written = err == nil
	switch {
	case errors.Is(err, sesame.ErrConflict):
		// Only possible if our lease expired mid-refresh and another process wrote a
		// newer token; what we received is discarded and the newer one used.
		m.log.Error("oauth: a newer token was stored while this process refreshed; discarding the one it received", k.attrs()...)
		return Token{}, errRetry
	case errors.Is(err, sesame.ErrNotFound):
		return Token{}, m.reauthError(k, "grant_deleted")
	case err != nil:
		return Token{}, err
	}
	m.refreshed.Add(1)
	m.log.Info("oauth: token refreshed", append(k.attrs(), logVersion, v)...)
	return Token{Access: sesame.NewSecret([]byte(tok.AccessToken)), Type: ng.TokenType, Scope: ng.Scope, ExpiresAt: ng.ExpiresAt, version: v}, nil
}

// retrieve asks the token endpoint for a new token (client credentials, or the refresh
// token), retrying transient failures with backoff and jitter.
func (m *Manager) retrieve(ctx context.Context, c *client, k grantKey, refresh sesame.Secret) (*oauth2.Token, error) {
	var lastErr error
	for attempt := 0; attempt < m.cfg.RefreshAttempts; attempt++ {
		if attempt > 0 {
			d := m.cfg.RetryBase << (attempt - 1)
			d = d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
			if err := sleep(ctx, d); err != nil {
				break
			}
		}
		var tok *oauth2.Token
		var err error
		if c.grant == grantClientCredentials {
			tok, err = m.fetchClientCredentials(ctx, c)
		} else {
			tok, err = m.refreshToken(ctx, c, string(refresh.Reveal()))
		}
		if err == nil {
			return tok, nil
		}
		lastErr = err
		if classify(err).kind != transient || agentError(err, k) != nil {
			break
		}
	}
	return nil, lastErr
}

// agentError is the error for a token request that the connection's agent did not carry
// (it is offline, or its allowlist refuses the token endpoint), nil for any other error.
// The grant is left as it is: the agent, not the provider, failed.
func agentError(err error, k grantKey) error {
	var se *sesame.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code {
	case sesame.CodeAgentTargetRefused, sesame.CodeAgentUnavailable:
		return &sesame.Error{Code: se.Code, RetryAfter: se.RetryAfter,
			Message: fmt.Sprintf("the OAuth2 token endpoint of credential %q is reached through the connection's agent: %s", k.cred, se.Message)}
	}
	return nil
}

// markReauthorize records that the grant needs a new authorization (dropping its tokens,
// which no longer work) and returns the error for callers.
func (m *Manager) markReauthorize(ctx context.Context, k grantKey, g sesame.OAuthGrant, reason string) error {
	ng := g
	ng.Status, ng.Reason, ng.Access, ng.Refresh, ng.ExpiresAt, ng.UpdatedAt = sesame.GrantReauthorize, reason, nil, nil, nil, m.now().UTC()
	_, err := m.cfg.Store.UpdateOAuthGrant(ctx, ng, g.Version)
	switch {
	case errors.Is(err, sesame.ErrConflict):
		return errRetry // someone stored a newer token: that one may work
	case errors.Is(err, sesame.ErrNotFound):
		reason = "grant_deleted"
	case err != nil:
		return err
	}
	m.reauthorized.Add(1)
	m.log.Warn("oauth: grant needs re-authorization", append(k.attrs(), "reason", reason)...)
	return m.reauthError(k, reason)
}

// reauthError tells the caller that a person must authorize again, and where to start.
func (m *Manager) reauthError(k grantKey, reason string) error {
	u := m.authorizeURL(k)
	who := ""
	if k.user != "" {
		who = fmt.Sprintf(" for end user %q", k.user)
	}
	why := map[string]string{
		"not_authorized":   "it has not been authorized yet",
		"no_refresh_token": "its access token expired and the provider gave no refresh token",
		"invalid_grant":    "the provider refused the refresh token (invalid_grant: consent revoked or token expired)",
		"grant_deleted":    "its grant was deleted",
	}[reason]
	if why == "" {
		why = "the provider refused the grant (" + reason + ")"
	}
	return &sesame.Error{Code: sesame.CodeReauthorizationRequired,
		Message: fmt.Sprintf("credential %q needs a new authorization%s: %s; start one with GET %s", k.cred, who, why, u),
		Details: map[string]string{"authorize_url": u, "reason": reason, "workspace": k.ws, "credential": k.cred, "user": k.user}}
}

// authorizeURL is this server's URL that starts a new authorization for k.
func (m *Manager) authorizeURL(k grantKey) string {
	q := url.Values{"workspace": {k.ws}, "credential": {k.cred}}
	if k.user != "" {
		q.Set("user", k.user)
	}
	return m.cfg.PublicURL + AuthorizePath + "?" + q.Encode()
}

func rejectedError(k grantKey, f failure) error {
	if f.code == "forbidden_address" {
		return sesame.Errorf(sesame.CodeForbiddenAddress,
			"the OAuth2 token endpoint of credential %q is on a loopback, private or link-local address, which the server refuses", k.cred)
	}
	return sesame.Errorf(sesame.CodeUpstreamError,
		"the OAuth2 token endpoint refused credential %q (%s): check its client_id, client_secret, scopes and token_url", k.cred, f)
}

// stateID is the stored form of a state value: its HMAC under the server's state key.
func (m *Manager) stateID(ctx context.Context, state string) (string, error) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.stateKey.IsZero() {
		k, err := m.cfg.Secrets.ServerSecret(ctx, stateKeyName)
		if err != nil {
			return "", err
		}
		m.stateKey = k
	}
	h := hmac.New(sha256.New, m.stateKey.Reveal())
	h.Write([]byte(state))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// materialFor opens credential ws/key for the OAuth flows.
func (m *Manager) materialFor(ctx context.Context, ws, key string) (*client, func(), error) {
	r, err := m.cfg.Vault.Resolve(ctx, ws, key)
	if err != nil {
		return nil, nil, err
	}
	wipe := func() {
		for _, s := range r.Secrets {
			s.Wipe()
		}
	}
	c, wipeApp, err := m.clientOf(ctx, credential.Material{Workspace: ws, Key: key, Type: r.Type, Public: r.Public, Secrets: r.Secrets})
	if err != nil {
		wipe()
		return nil, nil, err
	}
	return c, func() { wipeApp(); wipe() }, nil
}

// clientOf is newClient for a credential that may name a shared OAuth app: the app's
// fields (client ID and secret, URLs, provider template) are used, with the few the
// credential may set (credential.AliasFields) over them; the client keeps the
// credential's workspace and key, so its grants stay the workspace's. The returned func
// wipes the app's opened secrets.
func (m *Manager) clientOf(ctx context.Context, mat credential.Material) (*client, func(), error) {
	name, _ := mat.Public[credential.OAuthAppField].(string)
	if name == "" || mat.Type != "oauth2" {
		c, err := newClient(mat)
		return c, func() {}, err
	}
	app, err := m.cfg.Vault.ResolveOAuthApp(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	wipe := func() {
		for _, s := range app.Secrets {
			s.Wipe()
		}
	}
	if !credential.AppAllows(app.Public, mat.Workspace) {
		// Checked at every use: taking a workspace off the app's list stops it at once.
		wipe()
		return nil, nil, sesame.Errorf(sesame.CodeForbidden, "credential %q names the OAuth app %q, which is not for workspace %q", mat.Key, name, mat.Workspace)
	}
	public := make(map[string]any, len(app.Public)+len(credential.AliasFields))
	for k, v := range app.Public {
		public[k] = v
	}
	for _, f := range credential.AliasFields {
		if v, ok := mat.Public[f]; ok && f != "hosts" {
			public[f] = v
		}
	}
	c, err := newClient(credential.Material{Workspace: mat.Workspace, Key: mat.Key, Type: "oauth2", Public: public, Secrets: app.Secrets, Dial: mat.Dial})
	if err != nil {
		wipe()
		return nil, nil, err
	}
	return c, wipe, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sealAndWrite runs write (which seals and stores); if the store refused it because the
// primary master key changed meanwhile, it picks up the new key and runs it once more.
func (m *Manager) sealAndWrite(ctx context.Context, write func() error) error {
	err := write()
	if sesame.ErrorCode(err) == sesame.CodeMasterKeyUnavailable && m.cfg.SyncKeys != nil {
		if serr := m.cfg.SyncKeys(ctx); serr != nil {
			return errors.Join(err, serr)
		}
		err = write()
	}
	return err
}
