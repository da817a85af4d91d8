// Package proctest runs Sesame as real processes for fault tests: the sesame binary built
// once per test binary, servers started as subprocesses (killed with SIGKILL by PID, stopped
// with SIGTERM, restarted on the same address and data), and private PostgreSQL clusters
// created with initdb in a temporary folder on their own port, which tests may stop and
// start without touching the shared server.
package proctest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/testlog"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a sesame binary built from this module, building it on first
// use. The binary lives in a temporary folder for the life of the test process.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sesame-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "sesame")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/sesame")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build sesame: %v", buildErr)
	}
	return buildPath
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Server is `sesame serve` running as a subprocess (or, from StartAgent, `sesame agent`:
// then Addr, URL and AdminKey are empty).
type Server struct {
	t     testing.TB
	bin   string
	args  []string
	env   []string
	wrap  []string // command prefix (ip netns exec NAME)
	ready string   // the log message that says the process is up

	Addr     string // host:port it listens on (kept across restarts)
	URL      string // http://Addr
	AdminKey string // the key printed on first start, if this start printed one
	Stdout   *testlog.Buffer
	Stderr   *testlog.Buffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Options configure a server process.
type Options struct {
	// Args are the flags after `serve`; --addr and --log-format are set by Start.
	Args []string
	// Env is added to a minimal environment (PATH, HOME, TMPDIR).
	Env map[string]string
	// Addr, when set, is the listen address; otherwise a free loopback port is chosen.
	Addr string
}

// Start runs `sesame serve` and waits until it listens. The process is killed when the
// test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Addr: o.Addr}
	if s.Addr == "" {
		s.Addr = FreeAddr(t)
	}
	s.URL = "http://" + s.Addr
	s.args = append([]string{"serve", "--addr", s.Addr, "--log-format", "json"}, o.Args...)
	s.ready = "sesame listening"
	s.env = minimalEnv(o.Env)
	t.Cleanup(func() { s.Kill() })
	if err := s.start(); err != nil {
		t.Fatalf("start sesame: %v\nstderr:\n%s", err, s.Stderr)
	}
	return s
}

func minimalEnv(extra map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// AgentOptions configure a `sesame agent` process.
type AgentOptions struct {
	// Args are the flags after `agent` (--server, --token, --allow…); --log-format is set.
	Args []string
	// Env is added to a minimal environment (PATH, HOME, TMPDIR).
	Env map[string]string
	// Wrap runs the agent through a command prefix, for example
	// []string{"ip", "netns", "exec", "NAME"} to run it inside a network namespace. The
	// prefix must exec the agent (so that Kill reaches it).
	Wrap []string
}

// StartAgent runs `sesame agent` and waits until it has connected to a server (its log says
// "agent connected"). The process is killed when the test ends.
func StartAgent(t testing.TB, o AgentOptions) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), wrap: o.Wrap, ready: "agent connected"}
	s.args = append([]string{"agent", "--log-format", "json"}, o.Args...)
	s.env = minimalEnv(o.Env)
	t.Cleanup(func() { s.Kill() })
	if err := s.start(); err != nil {
		t.Fatalf("start sesame agent: %v\nstderr:\n%s", err, s.Stderr)
	}
	return s
}

// Restart starts the server again with the same flags, environment and address, after a
// Kill or Stop.
func (s *Server) Restart() {
	s.t.Helper()
	if s.Running() {
		s.t.Fatalf("restart: server is still running")
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("restart sesame: %v\nstderr:\n%s", err, s.Stderr)
	}
}

// TryStart starts the server like Restart but returns the error (for example a refused
// start) instead of failing the test.
func (s *Server) TryStart() error { return s.start() }

func (s *Server) start() error {
	s.Stdout, s.Stderr = &testlog.Buffer{}, &testlog.Buffer{}
	argv := append(append(append([]string(nil), s.wrap...), s.bin), s.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = s.env
	cmd.Stdout = s.Stdout
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(s.Stderr, pw)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.err = cmd, done, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		pw.Close()
		close(done)
	}()
	listening := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct{ Msg string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == s.ready {
				select {
				case listening <- struct{}{}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-listening:
	case <-done:
		return fmt.Errorf("sesame exited before %q: %v", s.ready, s.exitErr())
	case <-time.After(60 * time.Second):
		s.Kill()
		return fmt.Errorf("sesame did not log %q within 60s", s.ready)
	}
	for _, line := range strings.Split(s.Stdout.String(), "\n") {
		if k, ok := strings.CutPrefix(line, "admin key: "); ok {
			s.AdminKey = k
		}
	}
	return nil
}

func (s *Server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// PID is the process ID of the running server.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop sends SIGTERM (graceful shutdown) and waits for the process to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil || done == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Wait waits up to d for the process to exit and returns its error (nil for exit 0).
func (s *Server) Wait(d time.Duration) (exited bool, err error) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
		return true, s.exitErr()
	case <-time.After(d):
		return false, nil
	}
}

// Run runs a sesame client command (for example "keys", "rotate") with the given
// environment and returns its combined output and error.
func Run(ctx context.Context, t testing.TB, env map[string]string, args ...string) (string, error) {
	t.Helper()
	out, err := command(ctx, t, env, args).CombinedOutput()
	return string(out), err
}

// Output runs a sesame client command like Run but returns only its standard output
// (for commands such as `keys generate` that print the result there and notes on
// standard error); standard error is in the error.
func Output(ctx context.Context, t testing.TB, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := command(ctx, t, env, args)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return string(out), err
}

func command(ctx context.Context, t testing.TB, env map[string]string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}
