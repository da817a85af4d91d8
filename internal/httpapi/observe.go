package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/sesamehq/sesame"
)

// Names of the limiters that refuse requests here (sesame.Error.Limiter); the gateway's
// connection limiter and the trial-app limiter name themselves "connection" and "trial".
const (
	LimiterAuthFailures = "auth_failures"
	LimiterAnonymous    = "anonymous"
)

// RouteUnmatched is the route of a request that matched no route.
const RouteUnmatched = "unmatched"

// Observation is what the server reports about each finished request, for metrics. It
// names the route by its pattern, never by the path asked for, so that callers cannot
// create series (or smuggle text into them) by inventing paths.
type Observation struct {
	Route    string // the route pattern ("/v1/workspaces/{ws}/credentials/{key}") or RouteUnmatched
	Method   string // a standard HTTP method, or "OTHER"
	Status   int
	Code     sesame.Code // the error code, when an error was rendered
	Limiter  string      // the limiter that refused the request, if one did
	Duration time.Duration
}

// methodLabel keeps the method label to the standard methods: the proxy takes any method,
// and a caller must not be able to mint series with made-up ones.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// tagRoute records the route pattern of the request for the access log's observation.
func tagRoute(pattern string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
			info.route = pattern
		}
		next.ServeHTTP(w, r)
	})
}

func setLimiterForLog(ctx context.Context, limiter string) {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		info.limiter = limiter
	}
}

// observe reports a finished request to Config.Observe.
func (s *Server) observe(r *http.Request, info *requestInfo, status int, d time.Duration) {
	route := info.route
	if route == "" {
		route = RouteUnmatched
	}
	if status == 0 {
		status = http.StatusOK
	}
	s.cfg.Observe(Observation{Route: route, Method: methodLabel(r.Method), Status: status, Code: info.code, Limiter: info.limiter, Duration: d})
}
