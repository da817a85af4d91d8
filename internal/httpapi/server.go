// Package httpapi is Sesame's HTTP API: the route table, middleware, JSON rendering and
// the mapping from domain error codes to HTTP statuses, all in one place.
package httpapi

import (
	"context"
	"github.com/sesamehq/sesame/internal/keylimit"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/vault"
)

// Vault is the credential vault the API serves.
type Vault interface {
	CreateWorkspace(ctx context.Context, name string) (sesame.Workspace, error)
	GetWorkspace(ctx context.Context, name string) (sesame.Workspace, error)
	ListWorkspaces(ctx context.Context, after string, limit int) ([]sesame.Workspace, error)
	DeleteWorkspace(ctx context.Context, name string, force bool) error
	CopyWorkspace(ctx context.Context, from, to string) (sesame.Workspace, error)

	PutCredential(ctx context.Context, ws, key string, body []byte, by vault.Actor) (vault.CredentialView, bool, error)
	GetCredential(ctx context.Context, ws, key string) (vault.CredentialView, error)
	ListCredentials(ctx context.Context, ws, after string, limit int) ([]vault.CredentialView, error)
	DeleteCredential(ctx context.Context, ws, key string, force bool) error
}

// Authenticator turns a presented API key into a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (sesame.Principal, error)
}

// AppTokens verifies app tokens ("v4.public." tokens) presented as bearer credentials.
type AppTokens interface {
	VerifyToken(ctx context.Context, token string) (sesame.Principal, error)
}

// CLITokens verifies the session tokens of `sesame login` presented as bearer credentials.
type CLITokens interface {
	Owns(token string) bool // by its form
	Verify(ctx context.Context, token string) (sesame.Principal, error)
}

// Rotator rotates the master key; newKey is empty to let the server generate one.
type Rotator func(ctx context.Context, newKey string) (vault.RotateResult, error)

// Config holds the server's dependencies.
type Config struct {
	Vault Vault
	Auth  Authenticator
	Ready func(ctx context.Context) error // reports whether the store is reachable (and writable) and the replica can serve
	// Version is the build's version and commit, shown by GET /healthz; empty: not shown.
	Version string
	// Classify, when set, recognises a store fault (outage, full disk) in an error that
	// reached the renderer without a client code, so it is answered 503, not 500
	// (store.Classify).
	Classify func(error) error
	Rotate   Rotator
	// KeyStatus reports the master-key ring and the replicas' heartbeats; nil: the route
	// answers unavailable.
	KeyStatus func(ctx context.Context) (vault.KeyStatus, error)
	Gateway   Gateway
	Access    *access.Service
	Apps      AppTokens // nil: app tokens are not accepted
	CLITokens CLITokens // nil: CLI session tokens (sesame login) are not accepted
	// AppService serves POST /api/v2/auth and /v1/apps/… (see apps.go); nil: those routes
	// answer unavailable. It is usually the same service as Apps.
	AppService AppService
	// OAuth serves /v1/oauth/… and the local-call token route (oauth.go); nil: those
	// routes answer unavailable.
	OAuth OAuth
	// OAuthLanding, when set, is the path of a human page (the web console's) that a
	// browser is sent to after an OAuth2 callback that named no return URL, or failed;
	// other clients get JSON as before.
	OAuthLanding string
	// Failures limits failed authentications per source address; nil means no limit.
	Failures *auth.FailureLimiter
	Logger   *slog.Logger
	MaxBody  int64 // largest JSON request body; 0 means 1 MiB

	// Agents serves /v1/workspaces/{ws}/agents and /v1/agents/connect (agents.go); nil:
	// those routes answer unavailable.
	Agents Agents

	// Audit serves /v1/audit (audit.go); nil: those routes answer unavailable.
	Audit AuditTrail

	// AnonymousBodyTimeout is how long a request has, from its start, to send its whole
	// body unless it authenticates (limits.go); 0 means no limit.
	AnonymousBodyTimeout time.Duration
	// MaxAnonymous caps unauthenticated requests in progress (limits.go); 0 means no cap.
	MaxAnonymous int
	// AuditStrict refuses (503 audit_unavailable) every request whose event cannot be
	// recorded durably, instead of recording reads and calls in the background.
	AuditStrict bool
	// Metrics serves GET /metrics (Prometheus text format); nil: 404.
	Metrics http.Handler
	// Observe, when set, is told about every finished request (route pattern, status,
	// error code, refusing limiter, duration): the request metrics.
	Observe func(Observation)
	// MetricsAnonymous lets GET /metrics be scraped without a key; otherwise it needs
	// read_audit (the metrics hold no secret, but say how busy and how healthy the server is).
	MetricsAnonymous bool
	// PublicURL is how callers reach this server (--public-url), named as the server in
	// GET /v1/openapi.json; empty: the origin each request came to.
	PublicURL string
	// OAuthApps serves /v1/oauth/apps (oauthapps.go); nil: those routes answer unavailable.
	OAuthApps OAuthApps
	// Limits enforces the rate limits and quotas of API keys that carry them; nil: such
	// keys are not limited.
	Limits *keylimit.Limiter
}

// Server serves the API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	// handler is mux behind the middleware every route shares, built once.
	handler http.Handler
	// buffers are the proxy's 32 KiB copy buffers: allocating one per request was most of
	// the garbage the proxy made.
	buffers sync.Pool
	// anonymous holds a token per unauthenticated request in progress; nil: no cap.
	anonymous chan struct{}
}

// New returns the API as an http.Handler.
func New(cfg Config) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	s.buffers.New = func() any { b := make([]byte, 32<<10); return &b }
	if cfg.MaxAnonymous > 0 {
		s.anonymous = make(chan struct{}, cfg.MaxAnonymous)
	}
	methods := map[string][]string{}
	for _, rt := range s.routes() {
		handler := s.handle(rt.h)
		switch {
		case !rt.anonymous:
			handler = s.guard(rt, handler)
		case !rt.uncapped:
			handler = s.limitAnonymous(handler)
		}
		// Outermost, so refused requests are recorded too; changes wait for their event.
		handler = s.auditRequest(rt, handler)
		handler = tagRoute(rt.pattern, handler)
		if rt.method == anyMethod {
			s.mux.Handle(rt.pattern, handler)
			continue
		}
		s.mux.Handle(rt.method+" "+rt.pattern, handler)
		methods[rt.pattern] = append(methods[rt.pattern], rt.method)
	}
	// Every known path answers other methods with a JSON 405 naming the allowed ones.
	for pattern, ms := range methods {
		allow := strings.Join(ms, ", ")
		s.mux.Handle(pattern, tagRoute(pattern, s.handle(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return sesame.Errorf(sesame.CodeMethodNotAllowed, "method %s is not allowed here; allowed: %s", r.Method, allow)
		})))
	}
	s.mux.Handle("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return sesame.Errorf(sesame.CodeRouteNotFound, "no route for %s %s", r.Method, r.URL.Path)
	}))
	s.handler = s.bodyDeadline(s.requestID(s.logRequests(s.recoverPanics(s.mux))))
	return s
}

// ServeHTTP runs the middleware shared by every route, then the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}
