package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/console"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/store"
)

// consoleFlags configure the web console (internal/console).
type consoleFlags struct {
	enabled  bool
	lifetime time.Duration
	secure   bool
}

func (f *consoleFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.BoolVar(&f.enabled, "console", envBool(getenv, "SESAME_CONSOLE", true), "serve the web console at / and /console/ (SESAME_CONSOLE)")
	fs.DurationVar(&f.lifetime, "console-session-lifetime", envDuration(getenv, "SESAME_CONSOLE_SESSION_LIFETIME", 12*time.Hour),
		"how long a console sign-in lasts (SESAME_CONSOLE_SESSION_LIFETIME)")
	fs.BoolVar(&f.secure, "console-secure-cookie", envBool(getenv, "SESAME_CONSOLE_SECURE_COOKIE", false),
		"mark the console's session cookie Secure (__Host-sesame_session) even when TLS ends in front of this server; on by itself when --public-url is https (SESAME_CONSOLE_SECURE_COOKIE)")
}

func (f *consoleFlags) check() error {
	if f.lifetime <= 0 || f.lifetime > 30*24*time.Hour {
		return fmt.Errorf("--console-session-lifetime must be between 1s and 720h, not %s", f.lifetime)
	}
	return nil
}

// consoleLanding is where a browser lands after an OAuth2 callback: the console's page
// when the console is served, otherwise nowhere (JSON).
func consoleLanding(c serveConfig) string {
	if !c.console.enabled {
		return ""
	}
	return "/console/oauth/done"
}

// withConsole puts the console in front of the API: / and /console/… are the console's,
// every other path the API's.
func withConsole(c serveConfig, addr string, api *httpapi.Server, st *store.Store, hasher *auth.Hasher, authn *auth.Authenticator,
	acc *access.Service, failures *auth.FailureLimiter, trail *audit.Log, log *slog.Logger) (http.Handler, error) {
	if !c.console.enabled {
		return api, nil
	}
	public := strings.TrimRight(c.oauth.publicURL, "/")
	if public == "" {
		public = "http://" + addr
	}
	con, err := console.New(console.Config{
		PublicURL: public,
		API:       api, Sessions: st, Audit: trail, Hasher: hasher, Auth: authn, Access: acc, Failures: failures,
		Logger: log.With("component", "console"), Lifetime: c.console.lifetime,
		Secure: c.console.secure || strings.HasPrefix(c.oauth.publicURL, "https://"),
	})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if console.Owns(r.URL.Path) {
			con.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}), nil
}
