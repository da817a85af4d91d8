package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/agent"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/cli"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/keylimit"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// serveConfig is the server's configuration: flags override the environment, which
// overrides the defaults.
type serveConfig struct {
	addr          string
	data          string
	postgres      string
	masterKeyFile string
	logFormat     string
	logLevel      string
	functions     string
	maxBody       int64
	maxPages      int
	authFailures  int
	// decisionMaxAge bounds how long a cached key or access decision is used without
	// asking the store (a missed notification heals within it).
	decisionMaxAge time.Duration
	limits         limitFlags
	replicaID      string
	heartbeat      time.Duration
	oauth          oauthFlags
	apps           appFlags
	audit          auditFlags
	metricsAnon    bool
	metricsAddr    string
	configFile     string
	console        consoleFlags
}

func parseServeFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := newServeFlags("sesame serve", &c, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: sesame serve [flags]\n\nFlags override the environment variables named in parentheses, which override --config.\n\nflags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return c, cli.ErrHelp
		}
		return c, cli.Usagef("%v (sesame serve --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return c, cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	return c, c.finish(fs, getenv)
}

// newServeFlags registers the serve flags onto c. backup and restore take them too, so
// that one config file and environment serve all three.
func newServeFlags(name string, c *serveConfig, getenv func(string) string, stderr io.Writer) *flag.FlagSet {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.configFile, "config", env("SESAME_CONFIG", ""), "YAML file of serve settings: keys are these flags' names (addr, audit-spill-dir…); a flag or environment variable overrides the file (SESAME_CONFIG)")
	fs.Usage = func() {} // help and errors are printed by the caller
	fs.StringVar(&c.addr, "addr", env("SESAME_ADDR", "127.0.0.1:8420"), "listen address (SESAME_ADDR)")
	fs.StringVar(&c.data, "data", env("SESAME_DATA", "./sesame-data"), "data folder: the SQLite file and, in development, master.key (SESAME_DATA)")
	fs.StringVar(&c.postgres, "postgres", env("SESAME_POSTGRES", ""), "PostgreSQL URL; when set, SQLite is not used (SESAME_POSTGRES)")
	fs.StringVar(&c.masterKeyFile, "master-key-file", env("SESAME_MASTER_KEY_FILE", ""), "file holding the base64 master key (SESAME_MASTER_KEY_FILE); default: SESAME_MASTER_KEY, else <data>/master.key")
	fs.StringVar(&c.logFormat, "log-format", env("SESAME_LOG_FORMAT", "text"), "log format: text or json (SESAME_LOG_FORMAT)")
	fs.StringVar(&c.logLevel, "log-level", env("SESAME_LOG_LEVEL", "info"), "log level: debug, info, warn, error (SESAME_LOG_LEVEL)")
	fs.StringVar(&c.functions, "functions", env("SESAME_FUNCTIONS", ""), "folder of function YAML files loaded at start into the default workspace; subfolders load into the workspace of their name (SESAME_FUNCTIONS)")
	fs.IntVar(&c.maxPages, "function-max-pages", envInt(getenv, "SESAME_FUNCTION_MAX_PAGES", gateway.DefaultMaxPages),
		"most pages one call of a function with a continuation (Jigx) fetches; the result then says truncated (SESAME_FUNCTION_MAX_PAGES)")
	fs.IntVar(&c.authFailures, "auth-failures-per-minute", envInt(getenv, "SESAME_AUTH_FAILURES_PER_MINUTE", 20), "failed authentications allowed per source address per minute before it gets 429 (SESAME_AUTH_FAILURES_PER_MINUTE)")
	fs.DurationVar(&c.decisionMaxAge, "decision-cache-max-age", envDuration(getenv, "SESAME_DECISION_CACHE_MAX_AGE", access.DefaultMaxAge),
		"longest a cached API key or access decision is used before it is read from the store again; changes clear the caches at once on every replica, this bounds a missed notification (SESAME_DECISION_CACHE_MAX_AGE)")
	c.limits.register(fs, getenv)
	fs.Int64Var(&c.maxBody, "max-body", int64(envInt(getenv, "SESAME_MAX_BODY", 1<<30)), "largest proxied request or response body, and function response, in bytes (SESAME_MAX_BODY)")
	fs.StringVar(&c.oauth.publicURL, "public-url", env("SESAME_PUBLIC_URL", ""), "URL at which browsers and callers reach this server, for the OAuth2 redirect URI (SESAME_PUBLIC_URL); default http://<listen address>")
	fs.StringVar(&c.oauth.returnURLs, "oauth-return-urls", env("SESAME_OAUTH_RETURN_URLS", ""), "comma-separated URLs (or prefixes ending in /) an OAuth2 callback may send the browser back to (SESAME_OAUTH_RETURN_URLS)")
	fs.DurationVar(&c.oauth.leaseWait, "oauth-lease-wait", envDuration(getenv, "SESAME_OAUTH_LEASE_WAIT", 10*time.Second), "how long a call waits for another replica's OAuth2 token refresh before it gets 503 refresh_in_progress (SESAME_OAUTH_LEASE_WAIT)")
	fs.DurationVar(&c.oauth.refreshMargin, "oauth-refresh-margin", envDuration(getenv, "SESAME_OAUTH_REFRESH_MARGIN", time.Minute), "refresh OAuth2 access tokens this long before they expire, at most half their lifetime (SESAME_OAUTH_REFRESH_MARGIN)")
	fs.StringVar(&c.replicaID, "replica-id", env("SESAME_REPLICA_ID", ""), "this replica's name in the master-key heartbeat (SESAME_REPLICA_ID); default <hostname>/<listen address>")
	fs.DurationVar(&c.heartbeat, "heartbeat", envDuration(getenv, "SESAME_HEARTBEAT", 5*time.Second), "how often a replica re-reads its key file, picks up the store's primary master key and records which keys it holds; a replica silent for 3 heartbeats is not live (SESAME_HEARTBEAT)")
	c.apps.register(fs, getenv)
	c.audit.register(fs, getenv)
	fs.BoolVar(&c.metricsAnon, "metrics-anonymous", envBool(getenv, "SESAME_METRICS_ANONYMOUS", true), "serve GET /metrics on --addr without a key; false: it needs read_audit. Default true, or false when --metrics-addr is set (SESAME_METRICS_ANONYMOUS)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", env("SESAME_METRICS_ADDR", ""), "a second listen address that serves only GET /metrics, without a key (for an internal network); --addr then asks read_audit for /metrics unless --metrics-anonymous (SESAME_METRICS_ADDR)")
	c.console.register(fs, getenv)
	return fs
}

// finish applies the config file to the flags that the command line and the environment
// left unset, and checks the result: a bad file is a failure (exit 1), bad values a wrong
// command line (exit 2).
func (c *serveConfig) finish(fs *flag.FlagSet, getenv func(string) string) error {
	if c.configFile != "" {
		if err := applyConfigFile(fs, c.configFile, getenv); err != nil {
			return err
		}
	}
	if c.metricsAddr != "" && getenv("SESAME_METRICS_ANONYMOUS") == "" && !isSet(fs, "metrics-anonymous") {
		c.metricsAnon = false
	}
	if err := c.check(); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}

// check validates the settings.
func (c *serveConfig) check() error {
	if err := c.audit.check(); err != nil {
		return err
	}
	if err := c.console.check(); err != nil {
		return err
	}
	if c.decisionMaxAge <= 0 {
		return fmt.Errorf("--decision-cache-max-age must be positive, not %s", c.decisionMaxAge)
	}
	if err := c.limits.check(); err != nil {
		return err
	}
	if c.heartbeat <= 0 {
		return fmt.Errorf("--heartbeat must be positive")
	}
	if c.maxPages < 1 || c.maxPages > 100_000 {
		return fmt.Errorf("--function-max-pages must be from 1 to 100000")
	}
	return nil
}

func newLogger(c serveConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", c.logFormat)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, listening func(string)) error {
	c, err := parseServeFlags(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	version := readBuildVersion(debug.ReadBuildInfo)
	log.Info("sesame starting", "version", version.Version, "commit", version.Revision, "modified", version.Modified, "go", version.GoVersion)

	st, err := openStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()

	keys, save, keyFile, err := loadMasterKeys(ctx, c, getenv, st, log)
	if err != nil {
		return err
	}
	kr := crypt.NewKeyring(keys[0], keys[1:]...)
	v := vault.New(st, kr, time.Now, log)
	if err := v.Unlock(ctx); err != nil {
		return err
	}
	if n, err := v.FinishRotation(ctx, save); sesame.ErrorCode(err) == sesame.CodeRotationRefused {
		log.Warn("an interrupted master key rotation is left for a replica that holds its keys", "err", err)
	} else if err != nil {
		return fmt.Errorf("finish interrupted master key rotation: %w", err)
	} else if n > 0 {
		log.Warn("finished an interrupted master key rotation", "rewrapped", n)
	}

	// The audit trail (cmd/sesame/audit.go): its writer flushes on every return path, after
	// the HTTP server has stopped and before the store closes.
	trail, err := newAuditTrail(ctx, c, v, st, log)
	if err != nil {
		return err
	}
	defer closeAuditTrail(ctx, trail, log)
	v.SetAuditor(vaultAuditor{trail})
	metrics := newMetrics(trail)

	pepper, err := v.ServerSecret(ctx, "api-key-hmac")
	if err != nil {
		return err
	}
	hasher := auth.NewHasher(pepper)
	authn := auth.New(st, hasher, time.Now, log)
	acc := access.New(st, hasher, time.Now, log)
	authn.SetMaxAge(c.decisionMaxAge)
	acc.SetMaxAge(c.decisionMaxAge)
	metrics.registerCaches(authn, acc)
	acc.OnChange(authn.Invalidate)
	// Deleting a workspace deletes its grants: cached decisions go, on every replica.
	v.OnWorkspaceChange(acc.Changed)
	// Listen before creating the admin user and building the services: a taken address must
	// not consume the one showing of the admin key, and without --public-url the OAuth2
	// redirect URI is this address.
	ln, err := listen(c.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	adminKey, err := authn.Bootstrap(ctx, getenv("SESAME_ADMIN_KEY"))
	if err != nil {
		return err
	}
	if !adminKey.IsZero() {
		// The one time the admin key is shown: on stdout, never in the log.
		fmt.Fprintf(stdout, "admin key: %s\n", adminKey.Reveal())
		log.Warn("created the admin user; its key was printed once on standard output, store it now")
	}
	replicaID := c.replicaID
	if replicaID == "" {
		host, _ := os.Hostname()
		replicaID = host + "/" + ln.Addr().String()
	}
	v.SetReplica(vault.Replica{ID: replicaID, Live: 3 * c.heartbeat})
	if err := v.Heartbeat(ctx); err != nil {
		return fmt.Errorf("replica heartbeat: %w", err)
	}
	defer func() {
		if err := v.Leave(context.WithoutCancel(ctx)); err != nil {
			log.Warn("remove replica heartbeat", "err", err)
		}
	}()
	om, err := newOAuth(c.oauth, getenv, v, st, kr, ln.Addr().String(), log)
	if err != nil {
		return err
	}
	metrics.registerOAuth(om)
	if c.metricsAddr != "" {
		stop, err := serveMetrics(c.metricsAddr, metrics.handler(), log)
		if err != nil {
			return err
		}
		defer stop()
	}

	jwtInj, err := newJWTInjector(getenv, kr, log)
	if err != nil {
		return err
	}
	// On-premise agents (internal/agent): their links live on this replica's hub.
	hub := agent.NewHub(agent.HubConfig{Logger: log, Events: agentEvents(trail)})
	agents := agent.NewRegistry(st, hasher, hub, time.Now)
	gw := gateway.New(gateway.Config{Store: st, Vault: v, Logger: log, MaxBody: c.maxBody, Recorder: teeRecorder{callRecorder(trail, log), metrics},
		MaxPages: c.maxPages, RootCAs: testRootCAs(ctx), Agents: hub,
		Injectors: map[string]gateway.Injector{
			"oauth2":     om,
			"jwt_bearer": jwtInj,
		},
	})
	if c.functions != "" {
		if err := loadFunctions(ctx, gw, v, c.functions, log); err != nil {
			return err
		}
	}

	registerAgentMetrics(metrics.reg, hub)

	appSvc, err := newApps(ctx, c.apps, c.limits.trialPerMinute, v, st, trail, log)
	if err != nil {
		return err
	}

	// 20 failed authentications per source address per minute, then 429 until the minute
	// ends; console sign-ins count against the same limit.
	failures := auth.NewFailureLimiter(c.authFailures, time.Minute, time.Now)
	api := httpapi.New(httpapi.Config{
		Vault:    v,
		Auth:     authn,
		Access:   acc,
		Failures: failures,
		Gateway:  gw,
		Ready: func(ctx context.Context) error {
			if err := st.Ping(ctx); err != nil {
				return err
			}
			return v.Ready()
		},
		Classify:  store.Classify,
		Rotate:    rotator(v, save),
		KeyStatus: v.KeyStatus,
		OAuth:     om,
		// A browser back from a provider lands on the console's page, not on JSON.
		OAuthLanding: consoleLanding(c),
		Apps:         appSvc,                   // accepts app tokens wherever API keys are
		CLITokens:    cliTokens(c, st, hasher), // sesame login's session tokens, with OIDC
		AppService:   appSvc,                   // POST /api/v2/auth, /v1/apps
		Logger:       log,
		Version:      version.Short(),
		Audit:        trail, // GET /v1/audit, POST /v1/audit/verify
		Agents:       agents,

		AnonymousBodyTimeout: c.limits.anonBodyTimeout,
		MaxAnonymous:         c.limits.maxAnonymous,
		// --audit strict: a request whose event cannot be made durable is refused.
		AuditStrict:      c.audit.mode == auditStrict,
		Metrics:          metrics.handler(),
		MetricsAnonymous: c.metricsAnon,
		Observe:          metrics.observe,
		PublicURL:        strings.TrimRight(c.oauth.publicURL, "/"), // checked by newOAuth
		Limits:           keylimit.New(st, time.Now),
		OAuthApps:        v, // /v1/oauth/apps: shared OAuth apps that credentials name in oauth_app
	})

	handler, err := withConsole(c, ln.Addr().String(), api, st, hasher, authn, acc, failures, trail, log)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.limits.readHeaderTimeout,
		IdleTimeout:       c.limits.idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(hub.Close) // hijacked agent links are not closed by Shutdown
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	// On PostgreSQL this replica serves only once it hears other replicas' access changes
	// (revocations, grants): a change made before its LISTEN was in place is never announced.
	accessListening, accessHeard := make(chan struct{}), &sync.Once{}
	bgDone := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { authn.Run(bgCtx, 10*time.Second) })
		wg.Go(func() { runApps(bgCtx, appSvc, st, log) })
		wg.Go(func() { logCheckpoints(bgCtx, trail, c.audit.checkpointEvery, log) })
		wg.Go(func() { keyRingLoop(bgCtx, v, keyFile, c.heartbeat, hup, log) })
		// A rotation on another replica announces the new primary key (PostgreSQL).
		wg.Go(func() {
			if err := st.Listen(bgCtx, vault.KeysChannel, func(string) {
				if err := v.SyncKeys(bgCtx); err != nil && bgCtx.Err() == nil {
					log.Warn("sync master key ring", "err", err)
				}
			}); err != nil {
				log.Warn("listen for master key changes", "err", err)
			}
		})
		// Other replicas announce access changes (revoked keys, disabled users, grants) on
		// PostgreSQL; drop cached decisions at once. On SQLite this returns immediately.
		wg.Go(func() {
			if err := st.Listen(bgCtx, access.Channel, func(payload string) {
				acc.Invalidate()
				if payload == "" {
					accessHeard.Do(func() { close(accessListening) })
				}
			}); err != nil {
				log.Warn("listen for access changes", "err", err)
			}
		})
		wg.Wait()
		close(bgDone)
	}()

	if st.Dialect() == "postgres" {
		select {
		case <-accessListening:
		case <-time.After(10 * time.Second):
			log.Warn("not yet listening for other replicas' access changes; cached decisions may lag until --decision-cache-max-age")
		case <-ctx.Done():
		}
	}
	logCheckpoint(ctx, trail, log)
	log.Info("sesame listening", "addr", "http://"+ln.Addr().String(), "store", st.Dialect(), "version", version.Short())
	if listening != nil {
		listening(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		stopBg()
		<-bgDone
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	stopBg()
	<-bgDone
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// listen binds the listen address, naming --addr when it is taken or not allowed.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("cannot listen on %s: the address is already in use (another sesame serve?); stop that process or choose another address with --addr or SESAME_ADDR", addr)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("cannot listen on %s: permission denied (ports below 1024 need privileges); choose another address with --addr or SESAME_ADDR", addr)
	case err != nil:
		return nil, fmt.Errorf("cannot listen on %s (--addr, SESAME_ADDR): %w", addr, err)
	}
	return ln, nil
}

// loadFunctions loads dir into the default workspace and each subfolder into the
// workspace of its name (created if needed).
func loadFunctions(ctx context.Context, gw *gateway.Gateway, v *vault.Vault, dir string, log *slog.Logger) error {
	n, err := gw.LoadDir(ctx, sesame.DefaultWorkspace, dir)
	if err != nil {
		return fmt.Errorf("--functions: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--functions: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !sesame.ValidWorkspaceName(e.Name()) {
			continue
		}
		if _, err := v.CreateWorkspace(ctx, e.Name()); err != nil && sesame.ErrorCode(err) != sesame.CodeAlreadyExists {
			return fmt.Errorf("--functions: %w", err)
		}
		m, err := gw.LoadDir(ctx, e.Name(), filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("--functions: %w", err)
		}
		n += m
	}
	log.Info("loaded functions", "dir", dir, "count", n)
	return nil
}

func openStore(ctx context.Context, c serveConfig) (*store.Store, error) {
	if c.postgres != "" {
		return store.OpenPostgres(ctx, c.postgres)
	}
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	return store.OpenSQLite(ctx, filepath.Join(c.data, "sesame.db"))
}

// rotator rotates to a given key or, when the keys live in a file, to a generated one.
func rotator(v *vault.Vault, save vault.KeySaver) httpapi.Rotator {
	return func(ctx context.Context, newKey string) (vault.RotateResult, error) {
		var k *crypt.MasterKey
		var err error
		switch {
		case newKey != "":
			if k, err = crypt.ParseMasterKey(newKey); err != nil {
				return vault.RotateResult{}, sesame.Errorf(sesame.CodeInvalidField, "new_key: %v", err)
			}
		case save == nil:
			return vault.RotateResult{}, sesame.Errorf(sesame.CodeMissingField,
				"the master key comes from SESAME_MASTER_KEY, so the server cannot store a new one: pass new_key (make one with `sesame keys generate`) and set SESAME_MASTER_KEY to it before the next restart")
		default:
			if k, err = crypt.GenerateMasterKey(); err != nil {
				return vault.RotateResult{}, err
			}
		}
		res, err := v.RotateMasterKey(ctx, k, save)
		if err != nil && errors.Is(err, vault.ErrKeyInUse) {
			return res, sesame.Errorf(sesame.CodeInvalidField, "new_key is already the master key")
		}
		return res, err
	}
}

// isSet reports whether the flag name was set (on the command line or from the config file).
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// envBool reads a boolean from the environment, or def when it is unset or invalid.
func envBool(getenv func(string) string, name string, def bool) bool {
	if b, err := strconv.ParseBool(getenv(name)); err == nil {
		return b
	}
	return def
}

// envDuration reads a duration from the environment, or def when it is unset or invalid
// (newOAuth reports an invalid one).
func envDuration(getenv func(string) string, name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(name)); err == nil {
		return d
	}
	return def
}
