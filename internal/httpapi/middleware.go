package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
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
)

// requestInfo collects what the access log reports about a request as it is handled.
type requestInfo struct {
	principal *sesame.Principal
	code      sesame.Code
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

// authenticate requires a valid API key and puts its principal in the request context.
// Roles and app tokens extend this one place.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.cfg.Auth.Authenticate(r.Context(), auth.KeyFromRequest(r))
		if err != nil {
			if sesame.ErrorCode(err) == sesame.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sesame"`)
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "authentication failed",
					slog.String(logRequestID, requestIDFrom(r.Context())), slog.String("remote", r.RemoteAddr))
			}
			s.renderError(w, r, err)
			return
		}
		if info, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
			info.principal = &p
		}
		next.ServeHTTP(w, r.WithContext(sesame.WithPrincipal(r.Context(), p)))
	})
}
