package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/auth"
)

// Log keys, so that every line names things the same way.
const (
	logRequestID = "request_id"
	logMethod    = "method"
	logPath      = "path"
	logStatus    = "status"
	logDuration  = "duration_ms"
	logKeyID     = "key_id"
	logUser      = "user"
	logCode      = "code"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	requestInfoKey
	actingAsKey
)

// ServeAs serves r as principal p, already authenticated by the caller (the web console,
// whose session acts as the API key it signed in with): every route is authorized and
// audited exactly as for a request carrying that key. Only code holding the Server can do
// this; nothing a client sends can set the principal.
func (s *Server) ServeAs(w http.ResponseWriter, r *http.Request, p sesame.Principal) {
	s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actingAsKey, p)))
}

// requestInfo collects what the access log reports about a request as it is handled.
type requestInfo struct {
	principal *sesame.Principal
	code      sesame.Code
	route     string // the route pattern, for metrics (observe.go)
	limiter   string // the limiter that refused the request, if one did
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func setErrorForLog(ctx context.Context, code sesame.Code) {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		info.code = code
	}
}

// requestID gives every request an ID: the caller's X-Request-Id if it is short and
// plain, otherwise a new one. It is echoed on every response.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests writes one structured line per request. It logs the path, never the query
// or any header, so nothing a caller sends in them reaches the log.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestInfoKey, info)))
		if s.cfg.Observe != nil {
			s.observe(r, info, sw.status, time.Since(start))
		}
		if !s.log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		attrs := []slog.Attr{
			slog.String(logRequestID, requestIDFrom(r.Context())),
			slog.String(logMethod, r.Method),
			slog.String(logPath, r.URL.Path),
			slog.Int(logStatus, sw.status),
			slog.Float64(logDuration, float64(time.Since(start).Microseconds())/1000),
		}
		if info.principal != nil {
			attrs = append(attrs, slog.String(logUser, info.principal.UserName), slog.String(logKeyID, info.principal.KeyID))
		}
		if info.code != "" {
			attrs = append(attrs, slog.String(logCode, string(info.code)))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// recoverPanics turns a panic into a 500. The panic value and stack go to the log only.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.renderError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// authenticatePrincipal turns the presented credential into a principal: an app token
// (v4.public.…) when apps are enabled, a CLI session token (sesamecli_…) when OIDC sign-in
// is, otherwise an API key. Users presenting an API key also need use_api_key.
func (s *Server) authenticatePrincipal(r *http.Request, presented string) (sesame.Principal, error) {
	ctx := r.Context()
	if s.cfg.Apps != nil && strings.HasPrefix(presented, "v4.public.") {
		return s.cfg.Apps.VerifyToken(ctx, presented)
	}
	if s.cfg.CLITokens != nil && s.cfg.CLITokens.Owns(presented) {
		// A person signed in through the identity provider: no API key, so no use_api_key.
		return s.cfg.CLITokens.Verify(ctx, presented)
	}
	p, err := s.cfg.Auth.Authenticate(ctx, presented)
	if err != nil {
		return p, err
	}
	if s.cfg.Access != nil {
		ok, err := s.cfg.Access.HasAnywhere(ctx, p, sesame.PrivUseAPIKey)
		if err != nil {
			return p, err
		}
		if !ok {
			return p, &sesame.Error{Code: sesame.CodeMissingPrivilege, Message: "missing privilege use_api_key: this user may not use API keys"}
		}
	}
	return p, nil
}

// sourceOf is the address failed attempts are counted against.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// guard authenticates the request and authorizes it for the route: the principal must hold
// one of the route's privileges in the route's workspace. Failed authentications are
// counted per source address; once a source is over the limit its failing attempts get 429
// instead of 401 until its window ends. A valid credential is never refused by the limiter:
// many callers share one address behind a NAT or load balancer, and one of them presenting
// bad keys must not lock the others out. Roles and app tokens plug in here, in one place.
func (s *Server) guard(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		source := sourceOf(r)
		presented := auth.KeyFromRequest(r)
		if scheme, _, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " "); ok && !strings.EqualFold(scheme, "Bearer") {
			// "Basic …", "Token …": a scheme we do not take (the Actyx code, for app clients).
			s.authEvent(r, "failed", source, "", sesame.CodeUnsupportedAuthType)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sesame"`)
			s.renderError(w, r, sesame.Errorf(sesame.CodeUnsupportedAuthType, "the Authorization scheme must be Bearer"))
			return
		}
		var p sesame.Principal
		if as, ok := ctx.Value(actingAsKey).(sesame.Principal); ok && as.Kind == sesame.PrincipalUser {
			p = as
			if err := s.authorize(r, rt, p); err != nil {
				s.authEvent(r, "denied", source, p.KeyID, sesame.ErrorCode(err))
				if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
					info.principal = &p
				}
				s.renderError(w, r, err)
				return
			}
		} else if presented == "" && rt.optional {
			p = sesame.Principal{Kind: sesame.PrincipalAnonymous}
			release, ok := s.acquireAnonymous()
			if !ok {
				s.renderError(w, r, errTooManyAnonymous)
				return
			}
			defer release()
		} else {
			var err error
			p, err = s.authenticatePrincipal(r, presented)
			if err != nil {
				code := sesame.ErrorCode(err)
				if code != sesame.CodeInternal && !sesame.Retryable(code) {
					if s.cfg.Failures != nil && code != sesame.CodeMissingPrivilege {
						if wait, blocked := s.cfg.Failures.Blocked(source); blocked {
							s.authEvent(r, "blocked", source, p.KeyID, sesame.CodeRateLimited)
							s.renderError(w, r, &sesame.Error{Code: sesame.CodeRateLimited, Message: "too many failed authentications from this address; retry later", RetryAfter: wait, Limiter: LimiterAuthFailures})
							return
						}
						s.cfg.Failures.Fail(source)
					}
					s.authEvent(r, "failed", source, p.KeyID, code)
					w.Header().Set("WWW-Authenticate", `Bearer realm="sesame"`)
				}
				s.renderError(w, r, err)
				return
			}
			if p.Limits != nil && s.cfg.Limits != nil {
				if err := s.limit(w, r, p); err != nil {
					if sesame.ErrorCode(err) == sesame.CodeRateLimited || sesame.ErrorCode(err) == sesame.CodeQuotaExceeded {
						s.authEvent(r, "limited", source, p.KeyID, sesame.ErrorCode(err))
					}
					if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
						info.principal = &p
					}
					s.renderError(w, r, err)
					return
				}
			}
			if err := s.authorize(r, rt, p); err != nil {
				s.authEvent(r, "denied", source, p.KeyID, sesame.ErrorCode(err))
				if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
					info.principal = &p
				}
				s.renderError(w, r, err)
				return
			}
		}
		if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
			info.principal = &p
		}
		if p.Kind != sesame.PrincipalAnonymous {
			// Authenticated: its body may take as long as it needs (the proxy streams uploads).
			liftBodyDeadline(w)
		}
		if in, ok := sesame.AuditIntentFrom(ctx); ok {
			in.SetPrincipal(p) // the outbox event names who made the change
		}
		next.ServeHTTP(w, r.WithContext(sesame.WithPrincipal(ctx, p)))
	})
}

// limit counts a request made with a key that has limits and sets the RateLimit headers
// (the limit closest to running out); a refusal is 429 with Retry-After.
func (s *Server) limit(w http.ResponseWriter, r *http.Request, p sesame.Principal) error {
	d, err := s.cfg.Limits.Allow(r.Context(), p.Limits)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.FormatInt(d.Limit, 10))
	h.Set("X-RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(int64((d.Reset+time.Second-1)/time.Second), 10))
	if d.Err != nil {
		return d.Err
	}
	return nil
}

// authorize checks the route's privileges for p.
func (s *Server) authorize(r *http.Request, rt route, p sesame.Principal) error {
	if s.cfg.Access == nil {
		return nil
	}
	ctx := r.Context()
	ws := ""
	if strings.Contains(rt.pattern, "{ws}") {
		ws = r.PathValue("ws")
	}
	if rt.inWorkspace {
		names, all, err := s.cfg.Access.Workspaces(ctx, p)
		if err != nil {
			return err
		}
		if all || names[ws] {
			return nil
		}
		return &sesame.Error{Code: sesame.CodeMissingPrivilege, Message: "missing privilege: no rights in this workspace"}
	}
	if len(rt.privileges) == 0 {
		return nil
	}
	if rt.anyWorkspace {
		for _, priv := range rt.privileges {
			ok, err := s.cfg.Access.HasAnywhere(ctx, p, priv)
			if err != nil || ok {
				return err
			}
		}
		return &sesame.Error{Code: sesame.CodeMissingPrivilege, Message: "missing privilege " + string(rt.privileges[0]) + " in any workspace"}
	}
	var first error
	for _, priv := range rt.privileges {
		err := s.cfg.Access.Authorize(ctx, p, priv, ws)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// authEvent logs a structured authentication event. It never logs the credential.
func (s *Server) authEvent(r *http.Request, outcome, source, keyID string, code sesame.Code) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "auth "+outcome,
		slog.String(logRequestID, requestIDFrom(r.Context())), slog.String("remote", source),
		slog.String(logMethod, r.Method), slog.String(logPath, r.URL.Path),
		slog.String(logKeyID, keyID), slog.String(logCode, string(code)))
}
