package console

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

const (
	cookieName       = "sesame_session"
	secureCookieName = "__Host-sesame_session" // needs Secure, Path=/ and no Domain
	// sessionHashPrefix separates session-ID hashes from API-key hashes under the same HMAC key.
	sessionHashPrefix = "console-session:"
)

func (c *Console) secure(r *http.Request) bool { return c.cfg.Secure || r.TLS != nil }

func (c *Console) cookieName(r *http.Request) string {
	if c.secure(r) {
		return secureCookieName
	}
	return cookieName
}

func (c *Console) hashSession(id string) []byte {
	return c.cfg.Hasher.Hash([]byte(sessionHashPrefix + id))
}

// newSessionID returns 256 random bits, base64url.
func newSessionID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func validSessionID(id string) bool {
	b, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil && len(b) == 32
}

// session returns the principal of the request's session. The session's key and user are
// read from the store with it on every request, so a revoked or expired key, a disabled or
// deleted user, or a lost use_api_key privilege ends the session at once on every replica.
func (c *Console) session(r *http.Request) (sesame.Principal, bool, error) {
	ck, err := r.Cookie(c.cookieName(r))
	if err != nil || !validSessionID(ck.Value) {
		return sesame.Principal{}, false, nil
	}
	ctx := r.Context()
	hash := c.hashSession(ck.Value)
	sess, k, u, err := c.cfg.Sessions.SessionByHash(ctx, hash)
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Principal{}, false, nil
	}
	if err != nil {
		return sesame.Principal{}, false, err
	}
	now := c.cfg.Now()
	keyless := sess.KeyID == "" // signed in through the identity provider: the user alone
	if !now.Before(sess.ExpiresAt) || k.RevokedAt != nil || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) || u.Disabled || (keyless && c.oidc == nil) {
		if err := c.cfg.Sessions.DeleteSession(ctx, hash); err != nil {
			c.log.Warn("delete ended console session", "err", err)
		}
		return sesame.Principal{}, false, nil
	}
	p := sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID, UserName: u.Name, KeyID: k.ID}
	if keyless {
		return p, true, nil
	}
	ok, err := c.cfg.Access.HasAnywhere(ctx, p, sesame.PrivUseAPIKey)
	if err != nil || !ok {
		return sesame.Principal{}, false, err
	}
	c.cfg.Auth.Touch(k.ID)
	return p, true, nil
}

func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok, _ := c.session(r); ok {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin", &page{Title: "Sign in", Data: c.signInData("", safeNext(r.URL.Query().Get("next")))})
}

type signInData struct {
	Error string
	Next  string
	OIDC  string // the identity provider's name, when sign-in through it is offered
}

func (c *Console) signInData(msg, next string) signInData {
	d := signInData{Error: msg, Next: next}
	if c.oidc != nil {
		d.OIDC = c.oidc.cfg.Name
	}
	return d
}

// signIn checks the API key, then starts a new session (a new ID every time, whatever
// cookie came with the request). Failures count against the source address in the same
// limiter as the API's failed authentications, with the same rule.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	source := sourceOf(r)
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		c.render(w, r, status, "signin", &page{Title: "Sign in", Data: c.signInData(msg, next)})
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	p, err := c.cfg.Auth.Authenticate(ctx, key)
	if err == nil {
		var ok bool
		if ok, err = c.cfg.Access.HasAnywhere(ctx, p, sesame.PrivUseAPIKey); err == nil && !ok {
			err = sesame.Errorf(sesame.CodeMissingPrivilege, "this user may not use API keys")
		}
	}
	if err != nil {
		code := sesame.ErrorCode(err)
		if code == sesame.CodeInternal || sesame.Retryable(code) {
			c.renderError(w, r, err)
			return
		}
		if code == sesame.CodeMissingPrivilege {
			// A valid key of a user who may not use keys: not a guess, not counted (as in the API).
			c.record(r, p, "console.signin", sesame.AuditDenied, code, "")
			fail(http.StatusForbidden, "This user may not sign in with an API key (no use_api_key privilege).")
			return
		}
		// As the API does: once an address failed too often its failures get 429 until
		// its window ends; a valid key is never refused (many people share an address).
		if c.cfg.Failures != nil {
			if wait, blocked := c.cfg.Failures.Blocked(source); blocked {
				w.Header().Set("Retry-After", retryAfter(wait))
				c.authEvent(r, "blocked", source, "")
				c.record(r, sesame.Principal{}, "console.signin", sesame.AuditDenied, sesame.CodeRateLimited, c.presented(key))
				fail(http.StatusTooManyRequests, "Too many failed sign-ins from this address; try again later.")
				return
			}
			c.cfg.Failures.Fail(source)
		}
		c.authEvent(r, "failed", source, p.KeyID)
		c.record(r, sesame.Principal{}, "console.signin", sesame.AuditDenied, sesame.ErrorCode(err), c.presented(key))
		fail(http.StatusUnauthorized, "That API key is not valid.")
		return
	}
	// Rotate: whatever session came with the request ends; the new one gets a new ID.
	if old, err := r.Cookie(c.cookieName(r)); err == nil && validSessionID(old.Value) {
		if err := c.cfg.Sessions.DeleteSession(ctx, c.hashSession(old.Value)); err != nil {
			c.renderError(w, r, err)
			return
		}
	}
	if err := c.startSession(w, r, sesame.Session{KeyID: p.KeyID}); err != nil {
		c.renderError(w, r, err)
		return
	}
	c.record(r, p, "console.signin", sesame.AuditOK, "", "")
	c.log.LogAttrs(ctx, slog.LevelInfo, "console sign-in", slog.String("user", p.UserName), slog.String("key_id", p.KeyID), slog.String("remote", source))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut ends the session in the store and clears the cookie.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if p, ok, _ := c.session(r); ok {
		c.record(r, p, "console.signout", sesame.AuditOK, "", "")
	}
	if ck, err := r.Cookie(c.cookieName(r)); err == nil && validSessionID(ck.Value) {
		if err := c.cfg.Sessions.DeleteSession(r.Context(), c.hashSession(ck.Value)); err != nil {
			c.renderError(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// record adds a console event to the audit trail. A presented key appears only as an
// HMAC, as in the API's auth.failed events.
func (c *Console) record(r *http.Request, p sesame.Principal, action, result string, code sesame.Code, detail string) {
	if c.cfg.Audit == nil {
		return
	}
	e := sesame.AuditEvent{Action: action, Result: result, Code: string(code), Source: sourceOf(r), Detail: detail,
		Principal: p.Kind, UserID: p.UserID, KeyID: p.KeyID, RequestID: r.Header.Get("X-Request-Id")}
	if !validRequestIDText(e.RequestID) {
		e.RequestID = ""
	}
	c.cfg.Audit.Record(r.Context(), e)
}

// presented names a presented key in an event by its HMAC only.
func (c *Console) presented(key string) string {
	if c.cfg.Audit == nil || key == "" {
		return ""
	}
	return "credential " + c.cfg.Audit.HMAC(key)
}

func validRequestIDText(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, ch := range id {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

func (c *Console) authEvent(r *http.Request, outcome, source, keyID string) {
	c.log.LogAttrs(r.Context(), slog.LevelWarn, "console sign-in "+outcome, slog.String("remote", source), slog.String("key_id", keyID))
}

// safeNext keeps a post-sign-in destination only if it is a console path on this origin.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/console/") || strings.Contains(next, "\\") || strings.HasPrefix(next, "//") {
		return "/console/"
	}
	return u.RequestURI()
}

func retryAfter(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return itoa(s)
}

// startSession stores a new session for sess's key or user under a fresh random ID (only
// its hash is kept) and sets the session cookie: HttpOnly, SameSite=Strict, Secure behind
// https, living as long as the session.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, sess sesame.Session) error {
	id := newSessionID()
	now := c.cfg.Now().UTC()
	sess.IDHash, sess.CreatedAt, sess.ExpiresAt = c.hashSession(id), now, now.Add(c.cfg.Lifetime)
	if err := c.cfg.Sessions.CreateSession(r.Context(), sess, now); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(r), Value: id, Path: "/", Expires: sess.ExpiresAt, MaxAge: int(c.cfg.Lifetime / time.Second),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
	return nil
}
