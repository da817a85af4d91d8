package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
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
	oidc     oidcFlags
}

// oidcFlags configure sign-in through an OpenID Connect identity provider.
type oidcFlags struct {
	issuer, clientID, secretFile, name, userClaim, groupsClaim, groupMap, scopes string
	createUsers                                                                  bool
	secret                                                                       sesame.Secret // SESAME_OIDC_CLIENT_SECRET or the file
}

func (f *consoleFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.BoolVar(&f.enabled, "console", envBool(getenv, "SESAME_CONSOLE", true), "serve the web console at / and /console/ (SESAME_CONSOLE)")
	fs.DurationVar(&f.lifetime, "console-session-lifetime", envDuration(getenv, "SESAME_CONSOLE_SESSION_LIFETIME", 12*time.Hour),
		"how long a console sign-in lasts (SESAME_CONSOLE_SESSION_LIFETIME)")
	fs.BoolVar(&f.secure, "console-secure-cookie", envBool(getenv, "SESAME_CONSOLE_SECURE_COOKIE", false),
		"mark the console's session cookie Secure (__Host-sesame_session) even when TLS ends in front of this server; on by itself when --public-url is https (SESAME_CONSOLE_SECURE_COOKIE)")
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	o := &f.oidc
	fs.StringVar(&o.issuer, "oidc-issuer", env("SESAME_OIDC_ISSUER", ""), "OpenID Connect issuer URL: the console offers sign-in through it (SESAME_OIDC_ISSUER); register <public-url>/console/oidc/callback as its redirect URI")
	fs.StringVar(&o.clientID, "oidc-client-id", env("SESAME_OIDC_CLIENT_ID", ""), "client ID at the OIDC issuer (SESAME_OIDC_CLIENT_ID)")
	fs.StringVar(&o.secretFile, "oidc-client-secret-file", env("SESAME_OIDC_CLIENT_SECRET_FILE", ""), "file holding the client secret at the OIDC issuer (SESAME_OIDC_CLIENT_SECRET_FILE); or set SESAME_OIDC_CLIENT_SECRET")
	fs.StringVar(&o.name, "oidc-name", env("SESAME_OIDC_NAME", "single sign-on"), "the identity provider's name on the console's button \"Sign in with <name>\" (SESAME_OIDC_NAME)")
	fs.StringVar(&o.userClaim, "oidc-user-claim", env("SESAME_OIDC_USER_CLAIM", "email"), "ID-token claim whose value is the Sesame user name; email also needs email_verified (SESAME_OIDC_USER_CLAIM)")
	fs.StringVar(&o.groupsClaim, "oidc-groups-claim", env("SESAME_OIDC_GROUPS_CLAIM", ""), "ID-token claim listing the user's groups at the provider; needs --oidc-group-map (SESAME_OIDC_GROUPS_CLAIM)")
	fs.StringVar(&o.groupMap, "oidc-group-map", env("SESAME_OIDC_GROUP_MAP", ""), "provider=sesame,... : at each sign-in, membership of these Sesame groups is set to what the groups claim says; no other group is touched (SESAME_OIDC_GROUP_MAP)")
	fs.BoolVar(&o.createUsers, "oidc-create-users", envBool(getenv, "SESAME_OIDC_CREATE_USERS", false), "create an unknown user, with no privileges, at their first OIDC sign-in (SESAME_OIDC_CREATE_USERS)")
	fs.StringVar(&o.scopes, "oidc-scopes", env("SESAME_OIDC_SCOPES", "email,profile"), "comma-separated scopes requested besides openid (SESAME_OIDC_SCOPES)")
	if v := getenv("SESAME_OIDC_CLIENT_SECRET"); v != "" {
		o.secret = sesame.NewSecret([]byte(v))
	}
}

// parseGroupMap reads provider=sesame,... into a map.
func parseGroupMap(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("--oidc-group-map: %q is not provider=sesame", pair)
		}
		if _, dup := m[from]; dup {
			return nil, fmt.Errorf("--oidc-group-map: provider group %q is mapped twice", from)
		}
		m[from] = to
	}
	return m, nil
}

// oidcConfig returns the console's OIDC settings, or nil when no issuer is set.
func (f *consoleFlags) oidcConfig() (*console.OIDC, error) {
	o := f.oidc
	if o.issuer == "" {
		return nil, nil
	}
	secret := o.secret
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		secret = sesame.NewSecret([]byte(strings.TrimSpace(string(b))))
	}
	gm, err := parseGroupMap(o.groupMap)
	if err != nil {
		return nil, err
	}
	var scopes []string
	for _, sc := range strings.Split(o.scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" && sc != "openid" {
			scopes = append(scopes, sc)
		}
	}
	return &console.OIDC{Issuer: o.issuer, ClientID: o.clientID, ClientSecret: secret, Name: o.name, UserClaim: o.userClaim,
		GroupsClaim: o.groupsClaim, GroupMap: gm, CreateUsers: o.createUsers, Scopes: scopes}, nil
}

func (f *consoleFlags) check() error {
	if f.lifetime <= 0 || f.lifetime > 30*24*time.Hour {
		return fmt.Errorf("--console-session-lifetime must be between 1s and 720h, not %s", f.lifetime)
	}
	o := f.oidc
	if o.issuer == "" {
		if o.clientID != "" || o.groupMap != "" || o.groupsClaim != "" {
			return fmt.Errorf("--oidc-client-id, --oidc-groups-claim and --oidc-group-map need --oidc-issuer")
		}
		return nil
	}
	u, err := url.Parse(o.issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
		return fmt.Errorf("--oidc-issuer must be an https URL (http only on a loopback address), not %q", o.issuer)
	}
	if o.clientID == "" {
		return fmt.Errorf("--oidc-issuer needs --oidc-client-id")
	}
	if !f.enabled {
		return fmt.Errorf("--oidc-issuer needs the console (--console)")
	}
	if o.userClaim == "" {
		return fmt.Errorf("--oidc-user-claim must not be empty")
	}
	gm, err := parseGroupMap(o.groupMap)
	if err != nil {
		return err
	}
	if (o.groupsClaim == "") != (len(gm) == 0) {
		return fmt.Errorf("--oidc-groups-claim and --oidc-group-map go together: the map lists the only Sesame groups sign-in may change")
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// cliTokens verifies `sesame login` session tokens when sign-in through an identity
// provider is configured; otherwise none is accepted.
func cliTokens(c serveConfig, st *store.Store, hasher *auth.Hasher) httpapi.CLITokens {
	if c.console.oidc.issuer == "" || !c.console.enabled {
		return nil
	}
	return &console.CLITokens{Sessions: st, Hasher: hasher, Now: time.Now}
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
	oc, err := c.console.oidcConfig()
	if err != nil {
		return nil, err
	}
	con, err := console.New(console.Config{
		PublicURL: public, OIDC: oc, Directory: acc, OIDCStates: st, Handoffs: st,
		API: api, Sessions: st, Audit: trail, Hasher: hasher, Auth: authn, Access: acc, Failures: failures,
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
