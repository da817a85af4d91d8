// Command load is Sesame's load benchmark. In one run it starts a loopback upstream (a
// minimal Go "hello" server, the floor), builds and starts Sesame, nginx and a bare Go
// reverse proxy in front of it, and drives a closed-loop load against each target in turn:
// the upstream directly, nginx, the Go reference proxy, Sesame's proxy, and three Sesame API
// calls (POST /api/v2/auth for a trial app, a credential GET, a credential PUT). It prints
// the latency table, the CPU each process used per request, and the issue-13 table: each
// Sesame row as a ratio to its floor measured in the same run.
//
//	go run ./bench/load                          # 16 connections, 10 s per target
//	go run ./bench/load -rev HEAD -rounds 3 -markdown
//	go run ./bench/load -targets sesame -perf /tmp/sesame.perf.data
//
// Everything listens on 127.0.0.1 only, every load loop is bounded in time and in count,
// and every process it starts is stopped when it exits, on error or on Ctrl-C too.
// See BENCHMARKS.md at the repository root.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver, for -postgres
)

// upstreamBody is what the upstream answers: a small JSON document of about 100 bytes.
var upstreamBody = []byte(`{"id":42,"name":"bench","ok":true,"items":[1,2,3],"message":"hello from the loopback upstream"}` + "\n")

// childFlag makes this binary run as the upstream server, and goproxyFlag as the
// reference Go reverse proxy: separate processes, so that their CPU use is not mixed with
// the load generator's.
const (
	childFlag   = "-upstream-child"
	goproxyFlag = "-goproxy-child"
)

type config struct {
	conns       int
	duration    time.Duration
	warmup      time.Duration
	maxRequests int
	rounds      int
	markdown    bool
	targets     string
	sesameBin   string
	rev         string
	nginxBin    string
	nginxProcs  string
	perfOut     string
	perfTarget  string
	postgres    string
	sesameEnv   string
	keepTmp     bool
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == childFlag {
		runUpstream()
		return
	}
	if len(os.Args) == 3 && os.Args[1] == goproxyFlag {
		runGoProxy(os.Args[2])
		return
	}
	var c config
	flag.IntVar(&c.conns, "c", 16, "concurrent connections (closed loop: one request in flight per connection)")
	flag.DurationVar(&c.duration, "d", 10*time.Second, "measured duration per target")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured warm-up per target")
	flag.IntVar(&c.maxRequests, "n", 5_000_000, "upper bound on measured requests per target (the run stops at -d or -n, whichever comes first)")
	flag.IntVar(&c.rounds, "rounds", 1, "measure every target this many times, in turn, and report each target's median round by req/s")
	flag.BoolVar(&c.markdown, "markdown", false, "print the results as a markdown table")
	flag.StringVar(&c.targets, "targets", strings.Join(allTargets, ","), "comma-separated targets to measure, in order: direct (the hello floor), nginx, goproxy (a bare httputil.ReverseProxy, for reference), sesame (proxied GET), auth (POST /api/v2/auth, trial app), credget (credential GET by key), credput (credential PUT); also sesame-agent (the proxied GET through an on-premise agent), not measured by default")
	flag.StringVar(&c.rev, "rev", "", "build Sesame from this git commit (via git archive, leaving uncommitted edits out) instead of the working tree")
	flag.StringVar(&c.sesameBin, "sesame-bin", "", "use this Sesame binary instead of building ./cmd/sesame")
	flag.StringVar(&c.nginxBin, "nginx", "nginx", "nginx binary")
	flag.StringVar(&c.nginxProcs, "nginx-workers", "2", "nginx worker_processes")
	flag.StringVar(&c.perfOut, "perf", "", "if set, record a `perf` CPU profile (with call graphs) of the Sesame process during its measured run into this file")
	flag.StringVar(&c.perfTarget, "perf-target", "sesame", "the Sesame target -perf records: sesame, auth, credget or credput")
	flag.StringVar(&c.postgres, "postgres", "", "run Sesame on this PostgreSQL (a postgres:// URL) instead of SQLite: the run creates a schema of its own there and drops it at the end")
	flag.StringVar(&c.sesameEnv, "sesame-env", "", "comma-separated NAME=VALUE pairs added to Sesame's environment only (for example GOGC=400)")
	flag.BoolVar(&c.keepTmp, "keep", false, "keep the temporary folder (configs, logs, data) for inspection")
	flag.Parse()
	if c.conns < 1 || c.duration <= 0 || c.maxRequests < 1 || c.rounds < 1 {
		fmt.Fprintln(os.Stderr, "load: -c, -d, -n and -rounds must be positive")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	procs := &procSet{}
	err := run(ctx, c, procs)
	procs.stopAll()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// allTargets are the targets in the order they are measured by default.
var allTargets = []string{"direct", "nginx", "goproxy", "sesame", "auth", "credget", "credput"}

// sesameTargets are the targets served by Sesame.
var sesameTargets = []string{"sesame", "auth", "credget", "credput", "sesame-agent"}

// extraTargets are measured only when -targets names them.
var extraTargets = []string{"sesame-agent"}

// trialManifest is the body of the auth target: a trial app (com.example.*), no signature.
const trialManifest = `{"appId":"com.example.bench","displayName":"Bench","version":"1.0.0"}`

// request is what one target's workers send.
type request struct {
	method, url string
	header      map[string]string
	// body returns the body of worker w's nth request; nil: no body.
	body func(w, n int) []byte
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...) }

func run(ctx context.Context, c config, procs *procSet) error {
	tmp, err := os.MkdirTemp("", "sesame-bench-")
	if err != nil {
		return err
	}
	defer func() {
		procs.stopAll() // before the folder they use goes
		if c.keepTmp {
			logf("temporary folder kept: %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()

	targets := strings.Split(c.targets, ",")
	want := func(name string) bool { return slices.Contains(targets, name) }
	for _, t := range targets {
		if !slices.Contains(allTargets, t) && !slices.Contains(extraTargets, t) {
			return fmt.Errorf("-targets: unknown target %q (want some of %s)", t, strings.Join(append(slices.Clone(allTargets), extraTargets...), ", "))
		}
	}

	env := describeMachine()
	if busy := env.busyBefore; busy >= 10 {
		logf("warning: the machine was %.0f%% busy in the second before the run: other work will skew the numbers (see the \"other work\" column)", busy)
	}

	// 1. The upstream, as a child process of this same binary.
	upAddr, upPID, err := startUpstream(ctx, procs)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	logf("upstream listening on http://%s", upAddr)

	reqs := map[string]request{"direct": {method: http.MethodGet, url: "http://" + upAddr + "/hello"}}
	skipped := map[string]string{}
	var sesamePID int
	proxyPG := map[string]int{} // process group of each proxy, for its CPU time

	// 2. Sesame.
	if slices.ContainsFunc(sesameTargets, want) {
		bin := c.sesameBin
		if bin == "" {
			if bin, err = buildSesame(ctx, tmp, c.rev); err != nil {
				return err
			}
		}
		pgURL := ""
		if c.postgres != "" {
			var drop func()
			if pgURL, drop, err = benchSchema(ctx, c.postgres); err != nil {
				return fmt.Errorf("-postgres: %w", err)
			}
			defer drop()
			env.store = "PostgreSQL (" + redactURL(c.postgres) + ", a schema of its own)"
		}
		var extraEnv []string
		if c.sesameEnv != "" {
			extraEnv = strings.Split(c.sesameEnv, ",")
		}
		addr, key, pid, err := startSesame(ctx, procs, bin, tmp, upAddr, pgURL, extraEnv, want("auth"))
		if err != nil {
			return fmt.Errorf("sesame: %w", err)
		}
		sesamePID = pid
		for _, t := range sesameTargets {
			proxyPG[t] = pid
		}
		env.sesame = describeSesame(ctx, c)
		if c.sesameEnv != "" {
			env.sesame += "; Sesame's environment adds " + c.sesameEnv
		}
		ws := "http://" + addr + "/v1/workspaces/default"
		admin := map[string]string{"Authorization": "Bearer " + key}
		jsonAdmin := map[string]string{"Authorization": "Bearer " + key, "Content-Type": "application/json"}
		reqs["sesame"] = request{method: http.MethodGet, url: ws + "/proxy/up/hello", header: admin}
		reqs["auth"] = request{method: http.MethodPost, url: "http://" + addr + "/api/v2/auth",
			header: map[string]string{"Content-Type": "application/json"},
			body:   func(int, int) []byte { return []byte(trialManifest) }}
		reqs["credget"] = request{method: http.MethodGet, url: ws + "/credentials/up.key", header: admin}
		// Each worker writes its own credential (workers do not contend on one row), with a
		// new secret value every time, so that every PUT changes the stored row.
		reqs["credput"] = request{method: http.MethodPut, url: ws + "/credentials/bench.w{w}", header: jsonAdmin,
			body: func(w, n int) []byte {
				return fmt.Appendf(nil, `{"type":"api_key","fields":{"value":"bench-%d-%d","name":"X-API-Key"}}`, w, n)
			}}
		logf("sesame proxying on %s", reqs["sesame"].url)
		if want("sesame-agent") {
			// The same Sesame, through an on-premise agent (a second process) on loopback; the
			// agent's own CPU is not counted.
			if err := startAgent(ctx, procs, bin, tmp, addr, key, upAddr); err != nil {
				return fmt.Errorf("sesame agent: %w", err)
			}
			reqs["sesame-agent"] = request{method: http.MethodGet, url: ws + "/proxy/upagent/hello", header: admin}
			logf("sesame proxying through its agent on %s", reqs["sesame-agent"].url)
		}
	}

	// 3. nginx.
	if want("nginx") {
		addr, version, pid, err := startNginx(ctx, procs, c, tmp, upAddr)
		switch {
		case errors.Is(err, exec.ErrNotFound):
			skipped["nginx"] = "nginx is not installed (apt-get install -y nginx): row skipped"
			logf("%s", skipped["nginx"])
		case err != nil:
			return fmt.Errorf("nginx: %w", err)
		default:
			env.nginx = version
			proxyPG["nginx"] = pid
			reqs["nginx"] = request{method: http.MethodGet, url: "http://" + addr + "/hello"}
			logf("nginx proxying on %s", reqs["nginx"].url)
		}
	}

	// The reference Go proxy.
	if want("goproxy") {
		addr, pid, err := startChild(ctx, procs, goproxyFlag, upAddr)
		if err != nil {
			return fmt.Errorf("goproxy: %w", err)
		}
		proxyPG["goproxy"] = pid
		reqs["goproxy"] = request{method: http.MethodGet, url: "http://" + addr + "/hello"}
		logf("reference Go proxy (httputil.ReverseProxy) on %s", reqs["goproxy"].url)
	}

	// 4. The load, one target at a time; with -rounds, the targets take turns, so that a
	// burst of background load does not fall on one target only.
	rounds := map[string][]result{}
	for round := 1; round <= c.rounds; round++ {
		for _, t := range targets {
			if _, ok := skipped[t]; ok {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			var perf *exec.Cmd
			if t == c.perfTarget && c.perfOut != "" && round == 1 {
				if perf, err = startPerf(c, sesamePID); err != nil {
					return err
				}
			}
			logf("%s (round %d/%d): %d connections, %v warm-up, %v measured", t, round, c.rounds, c.conns, c.warmup, c.duration)
			probe := cpuProbe{proxyPG: proxyPG[t], upstreamPG: upPID}
			r, err := measure(ctx, c, t, reqs[t], perf != nil, probe)
			if perf != nil {
				stopPerf(perf)
			}
			if err != nil {
				return err
			}
			logf("%s (round %d/%d): %.0f req/s, p50 %s, p99 %s, %d errors", t, round, c.rounds, r.rps(), ms(r.pct(50)), ms(r.pct(99)), r.errors)
			rounds[t] = append(rounds[t], r)
		}
	}
	var results []result
	for _, t := range targets {
		if rs := rounds[t]; len(rs) > 0 {
			results = append(results, medianRound(rs))
		}
	}

	// 5. The table.
	if c.markdown {
		printMarkdown(os.Stdout, c, env, results, skipped)
	} else {
		printText(os.Stdout, c, env, results, skipped)
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Processes

// procSet holds the processes this run started; stopAll ends each one's process group.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
}

// start runs cmd in its own process group, killed if this process dies.
func (p *procSet) start(cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pr := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(pr.done) }()
	p.procs = append(p.procs, pr)
	return pr, nil
}

// stopAll sends SIGTERM to each started process group, waits up to 5 s, then SIGKILLs.
func (p *procSet) stopAll() {
	p.mu.Lock()
	procs := p.procs
	p.procs = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pgid := pr.cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-pr.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-pr.done
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL) // nginx workers, if any outlived the master
		}()
	}
	wg.Wait()
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v", addr, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("the process exited before listening")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------------------------------
// Upstream

func runUpstream() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	size := fmt.Sprint(len(upstreamBody))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/json"}
		hdr["Content-Length"] = []string{size}
		_, _ = w.Write(upstreamBody)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		// Stop when the parent goes away (its stdin pipe closes).
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = srv.Serve(ln)
}

func startUpstream(ctx context.Context, procs *procSet) (string, int, error) {
	return startChild(ctx, procs, childFlag)
}

// startChild runs this binary again with args and returns the address it listens on.
func startChild(ctx context.Context, procs *procSet, args ...string) (string, int, error) {
	self, err := os.Executable()
	if err != nil {
		return "", 0, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	// The child exits when its stdin closes, that is when this process exits; the pipe
	// stays open as long as cmd holds it.
	if _, err := cmd.StdinPipe(); err != nil {
		return "", 0, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, err
	}
	pr, err := procs.start(cmd)
	if err != nil {
		return "", 0, err
	}
	line, err := readLine(ctx, out, "listening ", 10*time.Second)
	if err != nil {
		return "", 0, err
	}
	return line, pr.cmd.Process.Pid, nil
}

// runGoProxy is the reference: the standard library's httputil.ReverseProxy doing what
// Sesame's proxy does to the request (drop the caller's Authorization, add X-API-Key),
// and nothing else: no authentication, no store, no logging.
func runGoProxy(upAddr string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "goproxy:", err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = upAddr
			r.Out.Host = ""
			r.Out.Header.Del("Authorization")
			r.Out.Header.Set("X-API-Key", "bench-secret")
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = srv.Serve(ln)
}

// readLine returns the rest of the first line of r starting with prefix; the reader is
// drained in the background afterwards.
func readLine(ctx context.Context, r io.Reader, prefix string, d time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			if !sent && strings.HasPrefix(sc.Text(), prefix) {
				found <- strings.TrimSpace(strings.TrimPrefix(sc.Text(), prefix))
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case s, ok := <-found:
		if !ok {
			return "", fmt.Errorf("the process exited without printing %q", prefix)
		}
		return s, nil
	case <-time.After(d):
		return "", fmt.Errorf("no %q line within %v", prefix, d)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// ---------------------------------------------------------------------------------------
// Sesame

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/sesamehq/sesame\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run this from inside the Sesame repository (no go.mod of github.com/sesamehq/sesame above the current folder), or pass -sesame-bin")
		}
		dir = parent
	}
}

// buildSesame builds ./cmd/sesame from the working tree or, with rev, from that commit
// (extracted with git archive into tmp, so uncommitted edits are left out).
func buildSesame(ctx context.Context, tmp, rev string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	src := root
	if rev != "" {
		src = filepath.Join(tmp, "src")
		if err := gitArchive(ctx, root, rev, src); err != nil {
			return "", err
		}
		logf("building ./cmd/sesame at %s", rev)
	} else {
		logf("building ./cmd/sesame from the working tree")
	}
	bin := filepath.Join(tmp, "sesame")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sesame")
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sesame: %w", err)
	}
	return bin, nil
}

// describeSesame says what the measured Sesame was built from.
func describeSesame(ctx context.Context, c config) string {
	if c.sesameBin != "" {
		return "prebuilt binary " + c.sesameBin
	}
	root, err := moduleRoot()
	if err != nil {
		return "unknown"
	}
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	if c.rev != "" {
		return fmt.Sprintf("commit %s (%s), built from git archive", git("rev-parse", "--short=12", c.rev+"^{commit}"), c.rev)
	}
	d := "working tree at commit " + git("rev-parse", "--short=12", "HEAD")
	if git("status", "--porcelain", "--", ".", ":(exclude)bench") != "" {
		d += " plus uncommitted changes outside bench/"
	}
	return d
}

// gitArchive extracts the tree of rev into dir (git archive; the repository is only read).
func gitArchive(ctx context.Context, root, rev, dir string) error {
	cmd := exec.CommandContext(ctx, "git", "archive", "--format=tar", rev)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	terr := untar(out, dir)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive %s: %w", rev, err)
	}
	return terr
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == "." || strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			continue
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// startAgent registers agent "bench" on the Sesame at addr, runs `sesame agent` allowed only
// the upstream, and adds connection "upagent" that goes through it.
func startAgent(ctx context.Context, procs *procSet, bin, tmp, addr, key, upAddr string) error {
	base := "http://" + addr + "/v1/workspaces/default"
	cl := &http.Client{Timeout: 10 * time.Second}
	send := func(method, path string, body any, out any) error {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(rb))
		}
		if out != nil {
			return json.Unmarshal(rb, out)
		}
		return nil
	}
	var created struct{ Token string }
	if err := send(http.MethodPost, "/agents", map[string]string{"name": "bench"}, &created); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(tmp, "agent.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "agent", "--server", "http://"+addr, "--allow", upAddr, "--log-level", "warn")
	cmd.Env = append(cleanEnv(), "SESAME_AGENT_TOKEN="+created.Token)
	cmd.Stderr = logFile
	_, err = procs.start(cmd)
	logFile.Close()
	if err != nil {
		return err
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		var st struct{ Online bool }
		if err := send(http.MethodGet, "/agents/bench", nil, &st); err != nil {
			return err
		}
		if st.Online {
			break
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("the agent did not connect (log: %s)", tail(filepath.Join(tmp, "agent.log")))
		}
	}
	return send(http.MethodPut, "/connections/upagent", map[string]any{"base_uri": "http://" + upAddr, "credential": "up.key", "agent": "bench"}, nil)
}

// benchSchema creates a new schema on the PostgreSQL at base and returns a URL whose
// search_path is that schema, and a func that drops it.
func benchSchema(ctx context.Context, base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sesame_bench_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, err
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			logf("drop schema %s: %v", schema, err)
		}
		db.Close()
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// redactURL drops a URL's password.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "postgres"
	}
	return u.Redacted()
}

func startSesame(ctx context.Context, procs *procSet, bin, tmp, upAddr, pgURL string, extraEnv []string, trial bool) (addr, key string, pid int, err error) {
	if addr, err = freeLoopbackAddr(); err != nil {
		return "", "", 0, err
	}
	data := filepath.Join(tmp, "sesame-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", "", 0, err
	}
	logFile, err := os.Create(filepath.Join(tmp, "sesame.log"))
	if err != nil {
		return "", "", 0, err
	}
	args := []string{"serve", "--data", data, "--addr", addr, "--log-level", "warn"}
	if pgURL != "" {
		args = append(args, "--postgres", pgURL)
	}
	if trial {
		// The auth target asks for trial tokens from one address as fast as it can.
		args = append(args, "--trial-tokens-per-minute", "1000000000")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), extraEnv...)
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", 0, err
	}
	pr, err := procs.start(cmd)
	logFile.Close()
	if err != nil {
		return "", "", 0, err
	}
	exited := pr.done
	if key, err = readLine(ctx, out, "admin key: ", 30*time.Second); err != nil {
		return "", "", 0, fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(tmp, "sesame.log")))
	}
	if err := waitTCP(ctx, addr, 30*time.Second, exited); err != nil {
		return "", "", 0, fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(tmp, "sesame.log")))
	}

	base := "http://" + addr + "/v1/workspaces/default"
	cl := &http.Client{Timeout: 10 * time.Second}
	put := func(path string, body any) error {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("PUT %s: %s: %s", path, resp.Status, bytes.TrimSpace(rb))
		}
		return nil
	}
	if err := put("/credentials/up.key", map[string]any{"type": "api_key", "fields": map[string]string{"value": "bench-secret", "name": "X-API-Key"}}); err != nil {
		return "", "", 0, err
	}
	if err := put("/connections/up?test=false", map[string]any{"base_uri": "http://" + upAddr, "credential": "up.key", "allow_private_networks": true}); err != nil {
		return "", "", 0, err
	}

	// Check the injection once: the upstream must see X-API-Key (it echoes nothing, so ask
	// through the proxy and check the status and body only).
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/proxy/up/hello", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := cl.Do(req)
	if err != nil {
		return "", "", 0, fmt.Errorf("first proxied request: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, upstreamBody) {
		return "", "", 0, fmt.Errorf("first proxied request: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return addr, key, cmd.Process.Pid, nil
}

// cleanEnv is the environment without SESAME_* variables, so that a developer's settings
// do not change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESAME_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// ---------------------------------------------------------------------------------------
// nginx

const nginxConf = `# generated by bench/load
worker_processes {{WORKERS}};
{{USER}}pid {{TMP}}/nginx.pid;
error_log {{TMP}}/nginx-error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path {{TMP}}/nginx-client-body;
    proxy_temp_path {{TMP}}/nginx-proxy;
    fastcgi_temp_path {{TMP}}/nginx-fastcgi;
    uwsgi_temp_path {{TMP}}/nginx-uwsgi;
    scgi_temp_path {{TMP}}/nginx-scgi;

    keepalive_requests 1000000;
    keepalive_timeout 120s;

    upstream up {
        server {{UPSTREAM}};
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen {{LISTEN}};
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer static";
        }
    }
}
`

func startNginx(ctx context.Context, procs *procSet, c config, tmp, upAddr string) (addr, version string, pid int, err error) {
	bin, err := exec.LookPath(c.nginxBin)
	if err != nil {
		return "", "", 0, exec.ErrNotFound
	}
	if out, err := exec.Command(bin, "-v").CombinedOutput(); err == nil {
		version = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: "))
	}
	if addr, err = freeLoopbackAddr(); err != nil {
		return "", "", 0, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	conf := strings.NewReplacer("{{WORKERS}}", c.nginxProcs, "{{USER}}", user, "{{TMP}}", tmp,
		"{{UPSTREAM}}", upAddr, "{{LISTEN}}", addr).Replace(nginxConf)
	confPath := filepath.Join(tmp, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", "", 0, err
	}
	cmd := exec.Command(bin, "-p", tmp, "-c", confPath, "-e", filepath.Join(tmp, "nginx-error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	pr, err := procs.start(cmd)
	if err != nil {
		return "", "", 0, err
	}
	exited := pr.done
	if err := waitTCP(ctx, addr, 10*time.Second, exited); err != nil {
		return "", "", 0, fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(tmp, "nginx-error.log")))
	}
	return addr, version, pr.cmd.Process.Pid, nil
}

// ---------------------------------------------------------------------------------------
// perf

func startPerf(c config, pid int) (*exec.Cmd, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, errors.New("-perf: perf is not installed (apt-get install -y linux-perf)")
	}
	out, err := filepath.Abs(c.perfOut)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "record", "-F", "999", "-g", "-p", fmt.Sprint(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

func stopPerf(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// ---------------------------------------------------------------------------------------
// Load

type result struct {
	target   string
	requests int
	elapsed  time.Duration
	errors   int
	firstErr string
	lat      []time.Duration // sorted
	allRPS   []float64       // req/s of every round, when there were several
	cpu      cpuSample       // CPU used during the measured run
}

// perReq is CPU time per request, in µs.
func (r result) perReq(d time.Duration) float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(r.requests)
}

// medianRound returns the round with the median req/s (the lower middle one of an even
// count), remembering every round's req/s.
func medianRound(rs []result) result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.rps(), b.rps()) })
	m := sorted[(len(sorted)-1)/2]
	if len(rs) > 1 {
		for _, r := range rs {
			m.allRPS = append(m.allRPS, r.rps())
		}
	}
	return m
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p/100*float64(len(r.lat))+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// measure runs a warm-up, then the measured closed loop, against url.
func measure(ctx context.Context, c config, target string, rq request, slowStart bool, probe cpuProbe) (result, error) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        2 * c.conns,
		MaxIdleConnsPerHost: 2 * c.conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	if c.warmup > 0 {
		if _, err := loop(ctx, client, c.conns, c.warmup, c.maxRequests, rq, false); err != nil {
			return result{}, err
		}
	}
	if slowStart {
		time.Sleep(200 * time.Millisecond) // let perf attach
	}
	before := probe.read()
	r, err := loop(ctx, client, c.conns, c.duration, c.maxRequests, rq, true)
	r.cpu = probe.read().sub(before)
	r.target = target
	return r, err
}

// cpuProbe reads the CPU time used by the proxy's and the upstream's process groups, by
// this process (the load generator) and by the whole machine, from /proc.
type cpuProbe struct {
	proxyPG, upstreamPG int // 0: none
}

type cpuSample struct {
	proxy, upstream, generator, machineBusy, machineTotal time.Duration
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.proxy - b.proxy, a.upstream - b.upstream, a.generator - b.generator, a.machineBusy - b.machineBusy, a.machineTotal - b.machineTotal}
}

// userHZ is the unit of the CPU times in /proc (USER_HZ, 100 on Linux).
const userHZ = 100

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }

func (p cpuProbe) read() cpuSample {
	var s cpuSample
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pgrp, cpu, ok := procCPU(pid)
		if !ok {
			continue
		}
		switch {
		case pid == self:
			s.generator += cpu
		case p.proxyPG != 0 && pgrp == p.proxyPG:
			s.proxy += cpu
		case pgrp == p.upstreamPG:
			s.upstream += cpu
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f) && i <= 8; i++ {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			s.machineTotal += ticks(n)
			if i != 4 && i != 5 { // idle, iowait
				s.machineBusy += ticks(n)
			}
		}
	}
	return s
}

// procCPU returns the process group and the user+system CPU time of pid.
func procCPU(pid int) (pgrp int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // from field 3 (state) on
	if len(f) < 13 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return pgrp, ticks(ut + st), true
}

type workerResult struct {
	lat      []time.Duration
	errors   int
	firstErr string
}

// loop runs conns workers, each sending one request rq at a time, until d has passed or
// maxReq requests have been sent in all. Requests in flight at the deadline finish and
// count; the elapsed time runs until the last one is done. Any 2xx answer is a success.
func loop(ctx context.Context, client *http.Client, conns int, d time.Duration, maxReq int, rq request, record bool) (result, error) {
	perWorker := max(maxReq/conns, 1)
	results := make([]workerResult, conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			if record {
				res.lat = make([]time.Duration, 0, min(perWorker, 1<<16))
			}
			req, err := http.NewRequestWithContext(ctx, rq.method, strings.ReplaceAll(rq.url, "{w}", strconv.Itoa(w)), nil)
			if err != nil {
				res.errors++
				res.firstErr = err.Error()
				return
			}
			for k, v := range rq.header {
				req.Header.Set(k, v)
			}
			buf := make([]byte, 4096)
			for n := 0; n < perWorker && ctx.Err() == nil; n++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				if rq.body != nil {
					b := rq.body(w, n)
					req.Body = io.NopCloser(bytes.NewReader(b))
					req.ContentLength = int64(len(b))
				}
				resp, err := client.Do(req)
				if err == nil {
					for {
						_, rerr := resp.Body.Read(buf)
						if rerr != nil {
							if rerr != io.EOF {
								err = rerr
							}
							break
						}
					}
					resp.Body.Close()
				}
				lat := time.Since(t0)
				if err == nil && resp.StatusCode/100 != 2 {
					err = fmt.Errorf("status %s", resp.Status)
				}
				if err != nil {
					res.errors++
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
					continue
				}
				if record {
					res.lat = append(res.lat, lat)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return result{}, err // interrupted
	}
	r := result{elapsed: time.Since(start)}
	for _, w := range results {
		r.lat = append(r.lat, w.lat...)
		r.errors += w.errors
		if r.firstErr == "" {
			r.firstErr = w.firstErr
		}
	}
	slices.Sort(r.lat)
	r.requests = len(r.lat)
	return r, nil
}

// ---------------------------------------------------------------------------------------
// Report

type machine struct {
	nproc, gomaxprocs int
	cpu, goVersion    string
	nginx             string
	loadavg           string  // before this run started anything
	busyBefore        float64 // % of all CPUs busy in the second before the run
	sesame            string  // what Sesame was built from
	store             string  // what Sesame stores in
}

func describeMachine() machine {
	m := machine{nproc: runtime.NumCPU(), gomaxprocs: runtime.GOMAXPROCS(0), goVersion: runtime.Version(), nginx: "nginx not run", sesame: "not run",
		store: "SQLite (a file in the temporary folder; every commit synced to disk)"}
	before := cpuProbe{}.read()
	time.Sleep(time.Second)
	if d := (cpuProbe{}).read().sub(before); d.machineTotal > 0 {
		m.busyBefore = 100 * d.machineBusy.Seconds() / d.machineTotal.Seconds()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.loadavg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d.Microseconds())/1000)
}

func find(rs []result, target string) (result, bool) {
	for _, r := range rs {
		if r.target == target {
			return r, true
		}
	}
	return result{}, false
}

func summary(rs []result) []string {
	var lines []string
	direct, okD := find(rs, "direct")
	for _, t := range []string{"nginx", "goproxy", "sesame"} {
		r, ok := find(rs, t)
		if ok && okD {
			lines = append(lines, fmt.Sprintf("%s added over direct: p50 %s, p99 %s", t, signedMS(r.pct(50)-direct.pct(50)), signedMS(r.pct(99)-direct.pct(99))))
		}
	}
	s, okS := find(rs, "sesame")
	n, okN := find(rs, "nginx")
	if okS && okN && n.rps() > 0 {
		lines = append(lines, fmt.Sprintf("sesame throughput / nginx throughput: %.2f (target >= 1.00: %s)", s.rps()/n.rps(), verdict(s.rps() >= n.rps())))
	}
	if okS && okD {
		added := s.pct(99) - direct.pct(99)
		lines = append(lines, fmt.Sprintf("sesame added p99 over direct: %s (target <= 1 ms: %s)", signedMS(added), verdict(added <= time.Millisecond)))
	}
	for _, r := range rs {
		if len(r.allRPS) > 1 {
			parts := make([]string, len(r.allRPS))
			for i, v := range r.allRPS {
				parts[i] = fmt.Sprintf("%.0f", v)
			}
			lines = append(lines, fmt.Sprintf("%s req/s by round: %s", r.target, strings.Join(parts, ", ")))
		}
	}
	for _, r := range rs {
		if r.errors > 0 {
			lines = append(lines, fmt.Sprintf("%s: %d errors, first: %s", r.target, r.errors, r.firstErr))
		}
	}
	return lines
}

// goal is one row of issue 13's table: a Sesame target measured against a reference from
// the same run (or, with no reference, against an absolute rate).
type goal struct {
	what, target, ref string
	minRatio          float64 // Sesame req/s / reference req/s; with ref "" the least req/s
	maxAddedP99       time.Duration
	refNote           string
}

var goals = []goal{
	{what: "proxied GET with an injected key", target: "sesame", ref: "nginx", minRatio: 1.0, maxAddedP99: time.Millisecond},
	{what: "`POST /api/v2/auth` (trial app)", target: "auth", ref: "direct", minRatio: 0.53},
	{what: "credential GET by key", target: "credget", ref: "direct", minRatio: 0.27},
	{what: "credential PUT, durable", target: "credput", minRatio: 2000, refNote: "OpenBao raft write ≈ 395/s on this machine (issue 13)"},
}

// goalTable is issue 13's table: each Sesame row, its floor from the same run, the ratio
// and whether the target is met.
func goalTable(rs []result) [][]string {
	rows := [][]string{{"what", "Sesame req/s", "p99", "Sesame CPU/req", "reference in this run", "ratio", "ratio by CPU", "target", "met"}}
	direct, okD := find(rs, "direct")
	for _, g := range goals {
		r, ok := find(rs, g.target)
		if !ok {
			continue
		}
		row := []string{g.what, fmt.Sprintf("%.0f", r.rps()), ms(r.pct(99)), fmt.Sprintf("%.1f µs", r.perReq(r.cpu.proxy))}
		if g.ref == "" {
			row = append(row, g.refNote, "-", "-", fmt.Sprintf(">= %.0f/s", g.minRatio), verdict(r.rps() >= g.minRatio))
			rows = append(rows, row)
			continue
		}
		ref, okR := find(rs, g.ref)
		if !okR || ref.rps() == 0 {
			row = append(row, g.ref+" not measured", "-", "-", fmt.Sprintf(">= %.2f× %s", g.minRatio, refName(g.ref)), "unknown")
			rows = append(rows, row)
			continue
		}
		ratio := r.rps() / ref.rps()
		met := ratio >= g.minRatio
		refCell := fmt.Sprintf("%s %.0f req/s, p99 %s, %.1f µs CPU/req", refName(g.ref), ref.rps(), ms(ref.pct(99)), ref.perReq(ref.cpu.proxy))
		if g.ref == "direct" {
			refCell = fmt.Sprintf("%s %.0f req/s, p99 %s, %.1f µs CPU/req", refName(g.ref), ref.rps(), ms(ref.pct(99)), ref.perReq(ref.cpu.upstream))
		}
		tgt := fmt.Sprintf(">= %.2f× %s", g.minRatio, refName(g.ref))
		if g.maxAddedP99 > 0 {
			tgt += fmt.Sprintf(", <= %s added p99", ms(g.maxAddedP99))
			if okD {
				added := r.pct(99) - direct.pct(99)
				met = met && added <= g.maxAddedP99
				tgt += fmt.Sprintf(" (added %s)", signedMS(added))
			} else {
				met = false
			}
		}
		byCPU := "-"
		if rc, rr := r.perReq(r.cpu.proxy+r.cpu.upstream+r.cpu.generator), ref.perReq(ref.cpu.proxy+ref.cpu.upstream+ref.cpu.generator); rc > 0 {
			byCPU = fmt.Sprintf("%.2f×", rr/rc)
		}
		rows = append(rows, append(row, refCell, fmt.Sprintf("%.2f×", ratio), byCPU, tgt, verdict(met)))
	}
	return rows
}

func refName(t string) string {
	if t == "direct" {
		return "hello floor"
	}
	return t
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func header(c config, m machine) []string {
	return []string{
		fmt.Sprintf("machine: %d CPUs (%s), GOMAXPROCS %d, %s, %s; before the run: load average %s, %.0f%% busy; the load generator, the upstream and the proxy under test share these CPUs",
			m.nproc, m.cpu, m.gomaxprocs, m.goVersion, m.nginx, m.loadavg, m.busyBefore),
		"sesame: " + m.sesame + "; store: " + m.store,
		fmt.Sprintf("load: %d keep-alive connections, closed loop (one request in flight each), %v measured per target after %v warm-up, %d round(s) (median round shown), GET of a %d-byte JSON body",
			c.conns, c.duration, c.warmup, c.rounds, len(upstreamBody)),
	}
}

func tables(rs []result) (main, cpu [][]string) {
	main = [][]string{{"target", "requests", "req/s", "p50", "p90", "p99", "max", "errors"}}
	cpu = [][]string{{"target", "server CPU/req", "server cores", "upstream CPU/req", "generator CPU/req", "machine busy", "other work"}}
	for _, r := range rs {
		main = append(main, []string{r.target, fmt.Sprint(r.requests), fmt.Sprintf("%.0f", r.rps()),
			ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.pct(100)), fmt.Sprint(r.errors)})
		proxy, cores := "-", "-"
		if r.target != "direct" {
			proxy = fmt.Sprintf("%.1f µs", r.perReq(r.cpu.proxy))
			cores = fmt.Sprintf("%.2f", r.cpu.proxy.Seconds()/r.elapsed.Seconds())
		}
		busy, other := "-", "-"
		if r.cpu.machineTotal > 0 {
			ours := r.cpu.proxy + r.cpu.upstream + r.cpu.generator
			busy = fmt.Sprintf("%.0f%%", 100*r.cpu.machineBusy.Seconds()/r.cpu.machineTotal.Seconds())
			other = fmt.Sprintf("%.0f%%", max(0, 100*(r.cpu.machineBusy-ours).Seconds()/r.cpu.machineTotal.Seconds()))
		}
		cpu = append(cpu, []string{r.target, proxy, cores, fmt.Sprintf("%.1f µs", r.perReq(r.cpu.upstream)),
			fmt.Sprintf("%.1f µs", r.perReq(r.cpu.generator)), busy, other})
	}
	return main, cpu
}

func writeText(w io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
}

func writeMarkdown(w io.Writer, rows [][]string) {
	for i, row := range rows {
		fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
		if i == 0 {
			fmt.Fprintln(w, "|---"+strings.Repeat("|--:", len(row)-1)+"|")
		}
	}
}

const cpuNote = "CPU time from /proc (10 ms ticks) during the measured run; server is the process under test (the proxy, or Sesame for its API rows); machine busy is all CPUs together; other work is busy time not used by the server, the upstream or the generator (other processes on the machine, kernel work not charged to them)."

const goalNote = "Ratios are req/s against the reference measured in the same run: nginx for the proxy, the hello floor (the upstream itself, a minimal Go net/http server) for the API calls; CPU/req of the hello floor is the upstream's. " +
	"Ratio by CPU is the reference's CPU per request over the row's, each counting every process of the benchmark (server, upstream, load generator): what the req/s ratio is on two otherwise idle CPUs, where the closed loop is CPU-bound; it moves much less than req/s when other work shares the machine. Met is judged on req/s."

func printText(w io.Writer, c config, m machine, rs []result, skipped map[string]string) {
	for _, l := range header(c, m) {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	main, cpu := tables(rs)
	writeText(w, main)
	fmt.Fprintln(w)
	for _, l := range summary(rs) {
		fmt.Fprintln(w, l)
	}
	for _, t := range slices.Sorted(maps.Keys(skipped)) {
		fmt.Fprintf(w, "%s: %s\n", t, skipped[t])
	}
	fmt.Fprintln(w)
	writeText(w, cpu)
	fmt.Fprintln(w, cpuNote)
	if g := goalTable(rs); len(g) > 1 {
		fmt.Fprintln(w)
		writeText(w, g)
		fmt.Fprintln(w, goalNote)
	}
}

func printMarkdown(w io.Writer, c config, m machine, rs []result, skipped map[string]string) {
	for _, l := range header(c, m) {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintln(w)
	main, cpu := tables(rs)
	writeMarkdown(w, main)
	fmt.Fprintln(w)
	for _, l := range summary(rs) {
		fmt.Fprintf(w, "- %s\n", l)
	}
	for _, t := range slices.Sorted(maps.Keys(skipped)) {
		fmt.Fprintf(w, "- %s: %s\n", t, skipped[t])
	}
	fmt.Fprintln(w)
	writeMarkdown(w, cpu)
	fmt.Fprintln(w)
	fmt.Fprintln(w, cpuNote)
	if g := goalTable(rs); len(g) > 1 {
		fmt.Fprintln(w)
		writeMarkdown(w, g)
		fmt.Fprintln(w)
		fmt.Fprintln(w, goalNote)
	}
}
