package httpapi

import (
	"io"
	"net/http"
	"time"

	"github.com/sesamehq/sesame"
)

// Unauthenticated callers must not be able to hold the server's connections, goroutines and
// file descriptors. Two limits apply to them (authenticated callers are accountable, and
// the proxy streams their uploads at their pace):
//
//   - A request body must arrive within Config.AnonymousBodyTimeout of the request's start:
//     one fixed deadline on the connection, which a client trickling a byte at a time
//     cannot extend. It is lifted as soon as the caller authenticates (guard), and once
//     the body has been read to its end (so a slow handler is not cut off by it).
//   - At most Config.MaxAnonymous unauthenticated requests run at once; more get 503 with
//     Retry-After.

// bodyDeadline sets the body deadline on every request that has a body.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	timeout := s.cfg.AnonymousBodyTimeout
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(timeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the body deadline once the body has been read to its end, so that a
// slow handler (an anonymous call waiting on its upstream) is not cut off by it. net/http
// (1.26) clears the deadline itself when it starts its background read at the body's end;
// this does not depend on that.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// liftBodyDeadline removes the body deadline for an authenticated caller.
func liftBodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// errTooManyAnonymous answers an unauthenticated request over the cap.
var errTooManyAnonymous = &sesame.Error{Code: sesame.CodeUnavailable,
	Message: "too many unauthenticated requests in progress; retry shortly", RetryAfter: time.Second, Limiter: LimiterAnonymous}

// acquireAnonymous takes one of the MaxAnonymous slots, or reports that none is free.
func (s *Server) acquireAnonymous() (release func(), ok bool) {
	if s.anonymous == nil {
		return func() {}, true
	}
	select {
	case s.anonymous <- struct{}{}:
		return func() { <-s.anonymous }, true
	default:
		return nil, false
	}
}

// limitAnonymous runs an anonymous route within the cap on unauthenticated requests.
func (s *Server) limitAnonymous(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := s.acquireAnonymous()
		if !ok {
			s.renderError(w, r, errTooManyAnonymous)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}
