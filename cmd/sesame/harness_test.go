package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/sesamehq/sesame/internal/testlog"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer collects output written from many goroutines.
type syncBuffer = testlog.Buffer

// testServer is a real `sesame serve` running in this process on 127.0.0.1:0.
type testServer struct {
	t        *testing.T
	URL      string
	AdminKey string
	Stdout   *syncBuffer
	Stderr   *syncBuffer
	cancel   context.CancelFunc
	done     chan int
	stopped  bool
	code     int
}

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// startServer runs `sesame serve` with args and env and waits until it listens. If the
// server exits first, the returned server has exited set and the code recorded.
func startServer(t *testing.T, env map[string]string, args ...string) *testServer {
	t.Helper()
	return startServerIn(t, context.Background(), env, args...)
}

// startServerIn is startServer with the server's context derived from base (which tests
// use to hand the server test-only settings, see testroots.go).
func startServerIn(t *testing.T, base context.Context, env map[string]string, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(base)
	s := &testServer{t: t, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	addr := make(chan string, 1)
	go func() {
		s.done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), envFunc(env), strings.NewReader(""),
			s.Stdout, s.Stderr, func(a string) { addr <- a })
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case code := <-s.done:
		s.stopped, s.code = true, code
		cancel()
		return s
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server did not start; stderr:\n%s", s.Stderr.String())
	}
	for _, line := range strings.Split(s.Stdout.String(), "\n") {
		if k, ok := strings.CutPrefix(line, "admin key: "); ok {
			s.AdminKey = k
		}
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stop shuts the server down gracefully and returns its exit code.
func (s *testServer) Stop() int {
	if s.stopped {
		return s.code
	}
	s.cancel()
	select {
	case s.code = <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatal("server did not shut down")
	}
	s.stopped = true
	return s.code
}

// response is what a test request returned.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

// do sends a request with the admin key and records the whole response in seen, so a test
// can check that no response ever carried a secret.
func (s *testServer) do(method, path, body string) response {
	s.t.Helper()
	h := http.Header{}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return s.doWith(method, path, body, h)
}

// doWith sends a request with extra headers (the admin key is added unless the headers
// carry their own Authorization).
func (s *testServer) doWith(method, path, body string, h http.Header) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// cli runs a client command against the server and returns its exit code and output.
func (s *testServer) cli(stdin string, args ...string) (int, string, string) {
	s.t.Helper()
	var out, errOut bytes.Buffer
	env := envFunc(map[string]string{"SESAME_SERVER": s.URL, "SESAME_KEY": s.AdminKey})
	code := run(context.Background(), args, env, strings.NewReader(stdin), &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

// watchHeap samples the heap in use every 5 ms from now on; the func it returns stops the
// sampling and reports the peak.
func watchHeap() (peak func() uint64) {
	runtime.GC()
	var max atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > max.Load() {
					max.Store(m.HeapInuse)
				}
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return max.Load()
	}
}
