// Package console is Sesame's web console: server-rendered pages (html/template, embedded
// static files) served at / and /console/ by the same binary as the API.
//
// A person signs in with an API key; the console keeps a server-side session that acts as
// that key's principal. Every page reads and every form changes through the API itself
// (httpapi.Server.ServeAs), so authorization, the privilege ceiling, redaction and the
// audit trail are exactly the API's: the console holds no rule of its own beyond which
// buttons to show.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// API serves API requests as an already authenticated principal (httpapi.Server).
type API interface {
	ServeAs(w http.ResponseWriter, r *http.Request, p sesame.Principal)
}

// Sessions is the storage sessions need.
type Sessions interface {
	CreateSession(ctx context.Context, s sesame.Session, now time.Time) error
	// SessionByHash returns the session, its key and the key's user, or ErrNotFound.
	SessionByHash(ctx context.Context, hash []byte) (sesame.Session, sesame.APIKey, sesame.User, error)
	DeleteSession(ctx context.Context, hash []byte) error
}

// Authenticator verifies the API key presented at sign-in (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (sesame.Principal, error)
	Touch(keyID string)
}

// Access answers what a principal may do (access.Service): the console shows only what
// the API would allow.
type Access interface {
	Has(ctx context.Context, p sesame.Principal, priv sesame.Privilege, ws string) (bool, error)
	HasAnywhere(ctx context.Context, p sesame.Principal, priv sesame.Privilege) (bool, error)
}

// Audit records the console's own events (sign-in, sign-out) in the audit trail; every
// other action is an API request and is recorded by the API.
type Audit interface {
	Record(ctx context.Context, e sesame.AuditEvent)
	HMAC(value string) string
}

// Config holds the console's dependencies.
type Config struct {
	API      API
	Sessions Sessions
	Hasher   *auth.Hasher
	Auth     Authenticator
	Access   Access
	Audit    Audit // nil: sign-ins are only logged
	// Failures limits failed sign-ins per source address (shared with the API); nil: no limit.
	Failures *auth.FailureLimiter
	Logger   *slog.Logger
	Now      sesame.Clock
	// Lifetime bounds a session; 0 means 12 hours.
	Lifetime time.Duration
	// Secure marks the cookie Secure and names it __Host-sesame_session (the server is
	// reached over https, for example behind a TLS-terminating proxy). A request that
	// arrived over TLS is always treated as secure.
	Secure bool
	// PublicURL is where browsers reach this server (--public-url, else http://<listen
	// address>): the OAuth2 callback returns the browser to PublicURL/console/oauth/done.
	PublicURL string
	// OIDC, when set, offers sign-in through that identity provider; it needs Directory
	// and OIDCStates.
	OIDC       *OIDC
	Directory  Directory
	OIDCStates OIDCStates
	Handoffs   Handoffs
}

// Console serves the web console.
type Console struct {
	cfg     Config
	log     *slog.Logger
	pages   map[string]*template.Template
	handler http.Handler
	oidc    *oidcClient // nil: no sign-in through a provider
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 12 * time.Hour
	}
	c := &Console{cfg: cfg, log: cfg.Logger}
	if cfg.OIDC != nil {
		o := *cfg.OIDC
		if o.Issuer == "" || o.ClientID == "" || cfg.Directory == nil || cfg.OIDCStates == nil || cfg.Handoffs == nil {
			return nil, errors.New("console: OIDC needs an issuer, a client ID, a directory and a state store")
		}
		if o.UserClaim == "" {
			o.UserClaim = "email"
		}
		if o.Name == "" {
			o.Name = "single sign-on"
		}
		if o.Scopes == nil {
			o.Scopes = []string{"email", "profile"}
		}
		if o.HTTPClient == nil {
			// Bounded: discovery holds a lock, and a hanging provider must not hold sign-ins.
			o.HTTPClient = &http.Client{Timeout: 15 * time.Second}
		}
		c.oidc = &oidcClient{cfg: o}
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves a console request.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// Owns reports whether path is the console's (/ and /console/…); everything else is the API's.
func Owns(path string) bool {
	return path == "/" || path == "/console" || strings.HasPrefix(path, "/console/")
}

// contentSecurityPolicy allows nothing but this origin's own files: no inline script or
// style, no frames, forms only to this origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// securityHeaders sets the browser hardening headers on every console response.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func staticFiles() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/console/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}
