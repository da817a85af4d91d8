package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/agent"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/cli"
)

// listFlag is a repeatable flag; each use may hold several comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// agentFile is the agent's config file: one "key value" (or "key = value") per line, "#"
// comments; keys server, token, allow (server and allow may repeat) and keepalive.
type agentFile struct {
	servers, allow  []string
	token           string
	keepalive       time.Duration
	hasToken, hasKA bool
}

func readAgentFile(path string) (agentFile, error) {
	var f agentFile
	file, err := os.Open(path)
	if err != nil {
		return f, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, " ")
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return f, fmt.Errorf("%s:%d: want \"key value\"", path, n)
		}
		switch k {
		case "server":
			f.servers = append(f.servers, splitList(v)...)
		case "allow":
			f.allow = append(f.allow, splitList(v)...)
		case "token":
			f.token, f.hasToken = v, true
		case "keepalive":
			d, err := time.ParseDuration(v)
			if err != nil {
				return f, fmt.Errorf("%s:%d: keepalive: %w", path, n, err)
			}
			f.keepalive, f.hasKA = d, true
		default:
			return f, fmt.Errorf("%s:%d: unknown key %q (server, token, allow, keepalive)", path, n, k)
		}
	}
	return f, sc.Err()
}

// runAgent is `sesame agent`: the on-premise agent.
func runAgent(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseAgentFlags(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	cfg.Logger.Info("sesame agent starting", "servers", strings.Join(cfg.Servers, ","), "allow", cfg.Allow.String(), "version", cfg.Version)
	return agent.Run(ctx, cfg)
}

// parseAgentFlags builds the agent's configuration: flags override the environment, which
// overrides the config file.
func parseAgentFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (agent.Config, error) {
	fs := flag.NewFlagSet("sesame agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // help and errors are printed below
	var servers, allow listFlag
	fs.Var(&servers, "server", "Sesame server URL to connect to; repeat (or comma-separate) to connect to every replica (SESAME_AGENT_SERVER)")
	token := fs.String("token", "", "agent token from `sesame agent create` (SESAME_AGENT_TOKEN; prefer the environment or --token-file: flags show in ps)")
	tokenFile := fs.String("token-file", "", "file holding the agent token (SESAME_AGENT_TOKEN_FILE)")
	fs.Var(&allow, "allow", "HOST:PORT or CIDR the agent may reach; repeat or comma-separate (SESAME_AGENT_ALLOW). Nothing else is dialled, whatever the server asks")
	config := fs.String("config", getenv("SESAME_AGENT_CONFIG"), "config file: lines of \"server URL\", \"token T\", \"allow RULE\", \"keepalive 3s\" (SESAME_AGENT_CONFIG)")
	keepalive := fs.Duration("keepalive", 0, "ping interval on the link; a dead link is noticed within about three times this (SESAME_AGENT_KEEPALIVE, default 2s)")
	logFormat := fs.String("log-format", envOr(getenv, "SESAME_LOG_FORMAT", "text"), "log format: text or json (SESAME_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr(getenv, "SESAME_LOG_LEVEL", "info"), "log level (SESAME_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: sesame agent [flags]   runs an on-premise agent\n       sesame agent list|get|create|rm ...   manage agents (sesame agent list --help)\n\nflags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return agent.Config{}, cli.ErrHelp
		}
		return agent.Config{}, cli.Usagef("%v (sesame agent --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return agent.Config{}, cli.Usagef("unexpected argument %q (sesame agent list|get|create|rm are client commands)", fs.Arg(0))
	}
	var file agentFile
	if *config != "" {
		var err error
		if file, err = readAgentFile(*config); err != nil {
			return agent.Config{}, fmt.Errorf("--config: %w", err)
		}
	}
	pick := func(flagVal []string, env string, fileVal []string) []string {
		if len(flagVal) > 0 {
			return flagVal
		}
		if v := splitList(getenv(env)); len(v) > 0 {
			return v
		}
		return fileVal
	}
	cfg := agent.Config{Servers: pick(servers, "SESAME_AGENT_SERVER", file.servers)}
	rules := pick(allow, "SESAME_AGENT_ALLOW", file.allow)
	tok := *token
	if tok == "" && *tokenFile == "" {
		*tokenFile = getenv("SESAME_AGENT_TOKEN_FILE")
	}
	switch {
	case tok != "":
	case *tokenFile != "":
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return agent.Config{}, fmt.Errorf("--token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	case getenv("SESAME_AGENT_TOKEN") != "":
		tok = getenv("SESAME_AGENT_TOKEN")
	default:
		tok = file.token
	}
	cfg.Token = sesame.NewSecret([]byte(tok))
	al, err := agent.ParseAllowlist(rules)
	if err != nil {
		return agent.Config{}, err
	}
	cfg.Allow = al
	cfg.KeepAlive = *keepalive
	if cfg.KeepAlive == 0 {
		if d, err := time.ParseDuration(getenv("SESAME_AGENT_KEEPALIVE")); err == nil {
			cfg.KeepAlive = d
		} else if file.hasKA {
			cfg.KeepAlive = file.keepalive
		}
	}
	log, err := newLogger(serveConfig{logFormat: *logFormat, logLevel: *logLevel}, stderr)
	if err != nil {
		return agent.Config{}, err
	}
	cfg.Logger = log
	cfg.Version = binaryVersion()
	return cfg, nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// binaryVersion is the module version the binary was built from, or its VCS revision.
func binaryVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
			v = "devel-" + s.Value[:12]
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// registerAgentMetrics adds the agent gauges to the server's registry.
func registerAgentMetrics(reg *prometheus.Registry, hub *agent.Hub) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sesame_agent_sessions",
			Help: "On-premise agent links connected to this replica."},
			func() float64 { return float64(hub.Sessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sesame_agent_streams_in_flight",
			Help: "Streams (upstream TCP connections, busy or pooled) open through agents from this replica."},
			func() float64 { return float64(hub.StreamsInFlight()) }),
	)
}

// agentEvents records the hub's connects, disconnects and refused targets in the audit
// trail.
func agentEvents(trail *audit.Log) func(context.Context, agent.Event) {
	return func(ctx context.Context, e agent.Event) {
		result := sesame.AuditOK
		code := ""
		if e.Action == "agent.target_refused" {
			result, code = sesame.AuditDenied, string(sesame.CodeAgentTargetRefused)
		}
		trail.Record(ctx, audit.Event{Time: time.Now().UTC(), Workspace: e.Workspace, Principal: "agent",
			Action: e.Action, Target: e.Name, Result: result, Code: code, Source: e.Source, Detail: e.Detail})
	}
}
