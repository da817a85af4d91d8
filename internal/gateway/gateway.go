// Package gateway makes the outbound calls (PRODUCT.md C2, C3): it keeps connections and
// functions, and runs functions and the proxy, injecting the stored credential at call
// time through the outbound client of each connection.
package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/outbound"
	"github.com/sesamehq/sesame/internal/redact"
	"github.com/sesamehq/sesame/internal/ttlcache"
	"github.com/sesamehq/sesame/internal/vault"
)

// Object kinds in the store.
const (
	KindConnection = "connection"
	KindFunction   = "function"
)

// Store is the storage the gateway needs.
type Store interface {
	GetObject(ctx context.Context, ws, kind, name string) (sesame.Object, error)
	ListObjects(ctx context.Context, ws, kind, after string, limit int) ([]sesame.Object, error)
	PutObject(ctx context.Context, o sesame.Object, expectVersion int64) (int64, error)
	DeleteObject(ctx context.Context, ws, kind, name string) error
	GetCredential(ctx context.Context, ws, key string) (sesame.CredentialRecord, error)
}

// Vault opens credentials for injection and decides where they may be sent.
type Vault interface {
	Resolve(ctx context.Context, ws, key string) (vault.Resolved, error)
	AllowDestination(ctx context.Context, ws, key string, u *url.URL) error
}

// Injector adds credential material that must be fetched or signed at call time (oauth2,
// jwt_bearer). Static kinds use credential.Inject.
type Injector interface {
	Inject(ctx context.Context, req *http.Request, m credential.Material, t credential.Target) error
}

// CallRecord is what the gateway reports about every outbound call, for the audit trail.
// It never holds a secret.
type CallRecord struct {
	Time       time.Time
	Workspace  string
	UserID     string
	KeyID      string
	Kind       string // "function", "proxy" or "test"
	Target     string // function or connection name
	Connection string
	Method     string
	Host       string
	Status     int // upstream status; 0 if no response
	Latency    time.Duration
	Error      string // error code, if the call failed
}

// Recorder receives call records.
type Recorder interface {
	RecordCall(ctx context.Context, r CallRecord)
}

// LogRecorder writes call records to a structured log.
type LogRecorder struct{ Log *slog.Logger }

// RecordCall logs r.
func (l LogRecorder) RecordCall(ctx context.Context, r CallRecord) {
	if !l.Log.Enabled(ctx, slog.LevelInfo) {
		return // skip building the attributes on the call path
	}
	l.Log.LogAttrs(ctx, slog.LevelInfo, "outbound call",
		slog.String("workspace", r.Workspace), slog.String("user_id", r.UserID), slog.String("key_id", r.KeyID),
		slog.String("kind", r.Kind), slog.String("target", r.Target), slog.String("connection", r.Connection),
		slog.String("method", r.Method), slog.String("host", r.Host), slog.Int("status", r.Status),
		slog.Float64("latency_ms", float64(r.Latency.Microseconds())/1000), slog.String("error", r.Error))
}

// Config holds the gateway's dependencies and limits.
type Config struct {
	Store    Store
	Vault    Vault
	Clock    outbound.Clock
	Logger   *slog.Logger
	Recorder Recorder
	// MaxBody bounds proxied request and response bodies and function responses; 0 means 1 GiB.
	MaxBody int64
	// Injectors for kinds without a static injector, by credential type.
	Injectors map[string]Injector
	// MaxPages bounds how many pages one call of a function with a continuation (Jigx)
	// fetches; 0 means DefaultMaxPages.
	MaxPages int
	// RootCAs, when not nil, replaces the system's TLS roots for outbound calls. Only
	// tests set it (to trust an httptest TLS upstream).
	RootCAs *x509.CertPool
	// Agents carries the calls of connections that name an on-premise agent; nil: such
	// calls fail with agent_unavailable.
	Agents Agents
}

// Agents opens connections inside an agent's private network (agent.Hub).
type Agents interface {
	Dial(ctx context.Context, ws, agent, addr string) (net.Conn, error)
	// Begin counts a call through the agent as in flight until end is called.
	Begin(ws, agent string) (end func())
}

// DefaultMaxPages is Config.MaxPages when it is 0.
const DefaultMaxPages = 100

// Gateway runs outbound calls.
type Gateway struct {
	cfg Config

	mu      sync.Mutex
	clients map[string]cachedClient // by workspace/kind/name
	parsed  map[string]cachedFunc
	// objects caches connections and functions for the call path; this process's writes
	// drop entries at once, another replica's show within the TTL.
	objects *ttlcache.Cache[string, sesame.Object]
	// conns holds the same connections decoded, for the proxy's per-call path. Callers
	// treat the decoded value as read-only.
	conns *ttlcache.Cache[string, parsedConn]
	// byOrigin caches which connection serves a Jigx function's url (connectionName),
	// by workspace and url; this process's writes clear it, another replica's show
	// within the TTL.
	byOrigin *ttlcache.Cache[string, string]
	// buffers are the redacting readers' buffers (see redactResponse).
	buffers *redact.Buffers
}

type parsedConn struct {
	c Connection
	o sesame.Object
}

type cachedClient struct {
	key    clientKey
	client *outbound.Client
}

// clientKey is what a cached client was built for: the object's version and every setting
// of its policy, with the agent standing for the dial function (which cannot be compared).
type clientKey struct {
	version int64
	limits  outbound.Limits
	retry   outbound.RetryPolicy
	timeout time.Duration
	private bool
	agent   string
}

// New returns a gateway.
func New(cfg Config) *Gateway {
	if cfg.Clock == nil {
		cfg.Clock = outbound.SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		cfg.Recorder = LogRecorder{Log: cfg.Logger}
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = DefaultMaxPages
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 30
	}
	return &Gateway{cfg: cfg, clients: map[string]cachedClient{}, parsed: map[string]cachedFunc{},
		objects: ttlcache.New[string, sesame.Object](time.Second, 10_000, nil),
		conns:   ttlcache.New[string, parsedConn](time.Second, 10_000, nil), buffers: redact.NewBuffers(),
		byOrigin: ttlcache.New[string, string](time.Second, 10_000, nil)}
}

// client returns the outbound client for an object version and connection c of workspace
// ws, building it on first use.
func (g *Gateway) client(cacheKey string, version int64, ws string, c Connection) *outbound.Client {
	p := g.policy(ws, c)
	p.RootCAs = g.cfg.RootCAs
	k := clientKey{version: version, limits: p.Limits, retry: p.Retry, timeout: p.Timeout, private: p.AllowPrivate, agent: c.Agent}
	g.mu.Lock()
	defer g.mu.Unlock()
	// The version alone does not identify an object: one deleted and created again (on
	// another replica, or with its workspace) starts again at 1. A client is only ever
	// used with the policy it was built for (allow_private_networks and the agent above all).
	if cc, ok := g.clients[cacheKey]; ok && cc.key == k {
		return cc.client
	}
	if old, ok := g.clients[cacheKey]; ok {
		old.client.CloseIdleConnections()
	}
	cl := outbound.NewClient(p, g.cfg.Clock)
	g.clients[cacheKey] = cachedClient{key: k, client: cl}
	return cl
}

// object reads a connection or function through the cache.
func (g *Gateway) object(ctx context.Context, ws, kind, name string) (sesame.Object, error) {
	key := objectKey(ws, kind, name)
	if o, ok := g.objects.Get(key); ok {
		return o, nil
	}
	o, err := g.cfg.Store.GetObject(ctx, ws, kind, name)
	if err == nil {
		g.objects.Set(key, o)
	}
	return o, err
}

func (g *Gateway) forget(cacheKey string) {
	g.byOrigin.Clear()
	g.objects.Delete(cacheKey)
	g.conns.Delete(cacheKey)
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.clients[cacheKey]; ok {
		c.client.CloseIdleConnections()
		delete(g.clients, cacheKey)
	}
	delete(g.parsed, cacheKey)
}

func objectKey(ws, kind, name string) string { return ws + "/" + kind + "/" + name }

func checkName(what, name string) error {
	if !sesame.ValidCredentialKey(name) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid %s name: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit", what)
	}
	return nil
}

func checkWorkspace(ws string) error {
	if !sesame.ValidWorkspaceName(ws) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid workspace name: use 1-63 lowercase letters, digits, '-' or '_'")
	}
	return nil
}

// notFound translates a store miss into a message naming the object.
func notFound(err error, what, name, ws string) error {
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Errorf(sesame.CodeNotFound, "%s %q not found in workspace %q", what, name, ws)
	}
	return err
}

func errorCodeOf(err error) string {
	if err == nil {
		return ""
	}
	return string(sesame.ErrorCode(err))
}
