package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/auth"
)

// `sesame login` (RFC 8252, loopback redirect): the CLI listens on 127.0.0.1:<port> and
// opens /console/oidc/start?cli=http://127.0.0.1:<port>/…&cli_challenge=S256(verifier). After
// the provider, the browser is sent to the CLI's loopback URL with a one-time code (never the
// token); the CLI redeems code + verifier at POST /console/oidc/cli/token for a session token.
// The token is a bearer credential for the API, stored only as an HMAC, ending with the
// session lifetime, with the user (disabled or deleted), or at `sesame logout`.

// CLITokenPrefix starts every CLI session token (API keys start with sesame_).
const CLITokenPrefix = "sesamecli_"

const (
	cliSessionHashPrefix = "cli-session:"
	handoffHashPrefix    = "oidc-handoff:"
	handoffLifetime      = 2 * time.Minute
)

// Handoffs keeps finished CLI sign-ins until the CLI redeems them (store.Store).
type Handoffs interface {
	CreateOIDCHandoff(ctx context.Context, h sesame.OIDCHandoff, now time.Time) error
	TakeOIDCHandoff(ctx context.Context, hash []byte) (sesame.OIDCHandoff, error)
}

// loopbackReturn accepts only http://127.0.0.1:<port>/<path> or http://[::1]:<port>/<path>,
// with no user, query or fragment: the CLI's own listener on this machine.
func loopbackReturn(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || (host != "127.0.0.1" && host != "::1") {
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", false
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), true
}

func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// CLITokens verifies CLI session tokens presented to the API (httpapi.Config.CLITokens).
type CLITokens struct {
	Sessions Sessions
	Hasher   *auth.Hasher
	Now      sesame.Clock
}

// Owns reports whether a presented credential is a CLI session token by its form.
func (t *CLITokens) Owns(token string) bool { return strings.HasPrefix(token, CLITokenPrefix) }

func (t *CLITokens) hash(token string) ([]byte, bool) {
	id, ok := strings.CutPrefix(token, CLITokenPrefix)
	if !ok || !validSessionID(id) {
		return nil, false
	}
	return t.Hasher.Hash([]byte(cliSessionHashPrefix + id)), true
}

// Verify returns the user a CLI session token acts as. The session and its user are read
// from the store on every request, so logout, expiry, or disabling or deleting the user
// ends it at once on every replica.
func (t *CLITokens) Verify(ctx context.Context, token string) (sesame.Principal, error) {
	bad := sesame.Errorf(sesame.CodeUnauthenticated, "the session token is not valid or has ended: run sesame login")
	h, ok := t.hash(token)
	if !ok {
		return sesame.Principal{}, bad
	}
	sess, _, u, err := t.Sessions.SessionByHash(ctx, h)
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Principal{}, bad
	}
	if err != nil {
		return sesame.Principal{}, err
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if sess.KeyID != "" || !now().Before(sess.ExpiresAt) || u.Disabled {
		return sesame.Principal{}, bad
	}
	return sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID, UserName: u.Name}, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Console) jsonError(w http.ResponseWriter, status int, code sesame.Code, msg string) {
	writeJSON(w, status, map[string]string{"code": string(code), "message": msg})
}

// cliToken redeems a handoff code and the CLI's PKCE verifier for a session token.
func (c *Console) cliToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	code, verifier := r.PostFormValue("code"), r.PostFormValue("verifier")
	if !validSessionID(code) || verifier == "" {
		c.jsonError(w, http.StatusBadRequest, sesame.CodeInvalidArgument, "code and verifier are required")
		return
	}
	h, err := c.cfg.Handoffs.TakeOIDCHandoff(ctx, c.cfg.Hasher.Hash([]byte(handoffHashPrefix+code)))
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case errors.Is(err, sesame.ErrNotFound), err == nil && !c.cfg.Now().Before(h.ExpiresAt),
		err == nil && subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(h.Challenge)) != 1:
		c.record(r, sesame.Principal{}, "cli.login", sesame.AuditDenied, sesame.CodeOIDCState, "code unknown, used, expired or verifier wrong")
		c.jsonError(w, http.StatusBadRequest, sesame.CodeOIDCState, "the sign-in code is not valid (unknown, already used, expired, or not this CLI's): run sesame login again")
		return
	case err != nil:
		c.log.Error("cli token", "err", err)
		c.jsonError(w, http.StatusServiceUnavailable, sesame.CodeUnavailable, "try again")
		return
	}
	id := newSessionID()
	now := c.cfg.Now().UTC()
	sess := sesame.Session{IDHash: c.cfg.Hasher.Hash([]byte(cliSessionHashPrefix + id)), UserID: h.UserID, CreatedAt: now, ExpiresAt: now.Add(c.cfg.Lifetime)}
	if err := c.cfg.Sessions.CreateSession(ctx, sess, now); err != nil {
		c.log.Error("cli session", "err", err)
		w.Header().Set("Retry-After", "1")
		c.jsonError(w, http.StatusServiceUnavailable, sesame.CodeUnavailable, "try again")
		return
	}
	_, _, u, err := c.cfg.Sessions.SessionByHash(ctx, sess.IDHash)
	if err != nil || u.Disabled {
		_ = c.cfg.Sessions.DeleteSession(ctx, sess.IDHash)
		c.jsonError(w, http.StatusForbidden, sesame.CodeOIDCUser, "this user may not sign in")
		return
	}
	p := sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID, UserName: u.Name}
	c.record(r, p, "cli.login", sesame.AuditOK, "", "oidc")
	writeJSON(w, http.StatusOK, map[string]any{"token": CLITokenPrefix + id, "user": u.Name, "expires_at": sess.ExpiresAt})
}

// cliLogout ends the CLI session whose token is presented.
func (c *Console) cliLogout(w http.ResponseWriter, r *http.Request) {
	t := &CLITokens{Sessions: c.cfg.Sessions, Hasher: c.cfg.Hasher, Now: c.cfg.Now}
	token := auth.KeyFromRequest(r)
	h, ok := t.hash(token)
	if !ok {
		c.jsonError(w, http.StatusUnauthorized, sesame.CodeUnauthenticated, "no session token")
		return
	}
	p, err := t.Verify(r.Context(), token)
	if err := c.cfg.Sessions.DeleteSession(r.Context(), h); err != nil {
		w.Header().Set("Retry-After", "1")
		c.jsonError(w, http.StatusServiceUnavailable, sesame.CodeUnavailable, "try again")
		return
	}
	if err == nil {
		c.record(r, p, "cli.logout", sesame.AuditOK, "", "")
	}
	w.WriteHeader(http.StatusNoContent)
}
