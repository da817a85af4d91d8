package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	tests := []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{1, 0.5, 50 * time.Millisecond},
		{2, 0.5, 100 * time.Millisecond},
		{3, 0.5, 200 * time.Millisecond},
		{4, 0.5, 400 * time.Millisecond},
		{5, 0.5, 500 * time.Millisecond}, // capped at MaxDelay
		{60, 0.5, 500 * time.Millisecond},
		{1000, 0.999, 999 * time.Millisecond},
		{3, 0, 0},
	}
	for _, tt := range tests {
		if got := p.Backoff(tt.n, tt.rnd); got != tt.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tt.n, tt.rnd, got, tt.want)
		}
	}
	// Defaults: 100ms base, 2s cap.
	if got := (RetryPolicy{}).Backoff(10, 0.5); got != time.Second {
		t.Errorf("default Backoff(10, 0.5) = %v, want 1s", got)
	}
}

// sequenceServer answers with the given statuses in turn, then 200, and records each
// request's method and body.
type sequenceServer struct {
	*countingServer
	mu     sync.Mutex
	bodies []string
}

func newSequenceServer(t *testing.T, statuses ...int) *sequenceServer {
	s := &sequenceServer{}
	var n atomic.Int64
	s.countingServer = newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		i := int(n.Add(1)) - 1
		code := http.StatusOK
		if i < len(statuses) {
			code = statuses[i]
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "attempt %d", i+1)
	})
	return s
}

func (s *sequenceServer) Bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

func newTestClient(p Policy, clock Clock) *Client {
	p.AllowPrivate = true
	c := NewClient(p, clock)
	c.rnd = func() float64 { return 0.5 }
	return c
}

func do(t *testing.T, c *Client, method, url string, body io.Reader) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b), nil
}

func TestRetryGetOn503ThenSuccess(t *testing.T) {
	srv := newSequenceServer(t, 503, 503)
	clock := newFakeClock()
	c := newTestClient(Policy{}, clock)
	resp, body, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "attempt 3" {
		t.Fatalf("got %d %q, want 200 from the third attempt", resp.StatusCode, body)
	}
	if got := clock.Sleeps(); len(got) != 2 || got[0] != 50*time.Millisecond || got[1] != 100*time.Millisecond {
		t.Errorf("sleeps = %v, want [50ms 100ms]", got)
	}
	// Discarded responses were drained and closed: all three attempts shared one connection.
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestRetryOnlyIdempotentMethods(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodPatch, "CONNECTX"} {
		srv := newSequenceServer(t, 503, 503)
		clock := newFakeClock()
		c := newTestClient(Policy{}, clock)
		resp, body, err := do(t, c, method, srv.URL, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 503 || body != "attempt 1" || srv.reqs.Load() != 1 {
			t.Errorf("%s: %d %q after %d requests, want one 503", method, resp.StatusCode, body, srv.reqs.Load())
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace} {
		srv := newSequenceServer(t, 502)
		c := newTestClient(Policy{}, newFakeClock())
		resp, _, err := do(t, c, method, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || srv.reqs.Load() != 2 {
			t.Errorf("%s: %d after %d requests, want 200 after 2", method, resp.StatusCode, srv.reqs.Load())
		}
	}
}

func TestRetryStopsAtMaxAttempts(t *testing.T) {
	srv := newSequenceServer(t, 502, 502, 502)
	c := newTestClient(Policy{Retry: RetryPolicy{MaxAttempts: 2}}, newFakeClock())
	resp, body, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 502 || body != "attempt 2" || srv.reqs.Load() != 2 {
		t.Fatalf("got %d %q after %d requests, want the second 502", resp.StatusCode, body, srv.reqs.Load())
	}

	srv = newSequenceServer(t, 504, 504)
	c = newTestClient(Policy{Retry: RetryPolicy{MaxAttempts: 1}}, newFakeClock())
	if resp, _, _ := do(t, c, http.MethodGet, srv.URL, nil); resp.StatusCode != 504 || srv.reqs.Load() != 1 {
		t.Fatalf("MaxAttempts 1: %d after %d requests", resp.StatusCode, srv.reqs.Load())
	}
}

func TestRetryNotOnOtherStatuses(t *testing.T) {
	for _, code := range []int{400, 401, 404, 429, 500, 501} {
		srv := newSequenceServer(t, code)
		c := newTestClient(Policy{}, newFakeClock())
		if resp, _, _ := do(t, c, http.MethodGet, srv.URL, nil); resp.StatusCode != code || srv.reqs.Load() != 1 {
			t.Errorf("%d: got %d after %d requests", code, resp.StatusCode, srv.reqs.Load())
		}
	}
}

func TestRetryBoundedByMaxElapsed(t *testing.T) {
	srv := newSequenceServer(t, 502, 502, 502, 502, 502, 502, 502, 502)
	clock := newFakeClock()
	c := newTestClient(Policy{Retry: RetryPolicy{MaxAttempts: 10, BaseDelay: time.Second, MaxDelay: 8 * time.Second, MaxElapsed: 5 * time.Second}}, clock)
	c.rnd = func() float64 { return 0.999 }
	resp, body, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Delays ~1s, ~2s, then ~4s would pass 5s: three attempts.
	if resp.StatusCode != 502 || body != "attempt 3" {
		t.Fatalf("got %d %q, want the third 502", resp.StatusCode, body)
	}
	if got := clock.Sleeps(); len(got) != 2 {
		t.Errorf("sleeps = %v, want 2", got)
	}
}

func TestRetryAfterOn503(t *testing.T) {
	var n atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(503)
		}
	})
	clock := newFakeClock()
	c := newTestClient(Policy{}, clock)
	resp, _, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || n.Load() != 2 {
		t.Fatalf("got %d after %d requests", resp.StatusCode, n.Load())
	}
	if got := clock.Sleeps(); len(got) != 1 || got[0] != 2*time.Second {
		t.Errorf("sleeps = %v, want [2s]: at least Retry-After", got)
	}

	// A Retry-After beyond MaxElapsed returns the 503 at once, and penalizes the limiter.
	n.Store(0)
	clock = newFakeClock()
	c = newTestClient(Policy{Retry: RetryPolicy{MaxElapsed: time.Second}}, clock)
	resp, _, err = do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || n.Load() != 1 || len(clock.Sleeps()) != 0 {
		t.Fatalf("got %d after %d requests and sleeps %v, want the 503 at once", resp.StatusCode, n.Load(), clock.Sleeps())
	}
	_, _, err = do(t, c, http.MethodGet, srv.URL, nil)
	mustRateLimited(t, err, 2*time.Second)
}

func TestRetryAfterOn429PenalizesLimiter(t *testing.T) {
	var n atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	clock := newFakeClock()
	c := newTestClient(Policy{}, clock)
	resp, _, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 || n.Load() != 1 {
		t.Fatalf("got %d after %d requests, want one 429", resp.StatusCode, n.Load())
	}
	_, _, err = do(t, c, http.MethodGet, srv.URL, nil)
	mustRateLimited(t, err, 30*time.Second)
	if n.Load() != 1 {
		t.Fatalf("a refused call reached the upstream")
	}

	// With MaxWait, the next call waits out the penalty instead.
	n.Store(0)
	clock = newFakeClock()
	c = newTestClient(Policy{Limits: Limits{Requests: 10, Per: time.Second, MaxWait: time.Minute}}, clock)
	do(t, c, http.MethodGet, srv.URL, nil)
	resp, _, err = do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the penalty: %v", err)
	}
	if got := clock.Sleeps(); len(got) != 1 || got[0] != 30*time.Second {
		t.Errorf("sleeps = %v, want [30s]", got)
	}
}

func TestRetryWithBodyUsesGetBody(t *testing.T) {
	srv := newSequenceServer(t, 503, 502)
	c := newTestClient(Policy{}, newFakeClock())
	payload := strings.Repeat("0123456789", 1000)
	resp, _, err := do(t, c, http.MethodPut, srv.URL, bytes.NewReader([]byte(payload))) // sets GetBody
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	bodies := srv.Bodies()
	if len(bodies) != 3 {
		t.Fatalf("%d attempts, want 3", len(bodies))
	}
	for i, b := range bodies {
		if b != payload {
			t.Errorf("attempt %d got %d bytes, want the full %d", i+1, len(b), len(payload))
		}
	}
}

func TestNoRetryWithUnrewindableBody(t *testing.T) {
	srv := newSequenceServer(t, 503)
	c := newTestClient(Policy{}, newFakeClock())
	req, _ := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(strings.NewReader("once")))
	req.GetBody = nil
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || srv.reqs.Load() != 1 {
		t.Fatalf("got %d after %d requests, want one 503", resp.StatusCode, srv.reqs.Load())
	}
}

func TestRetryOnConnectionError(t *testing.T) {
	// The upstream drops the first connection without answering.
	var n atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, "ok")
	})
	clock := newFakeClock()
	c := newTestClient(Policy{}, clock)
	resp, body, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "ok" || n.Load() != 2 || len(clock.Sleeps()) != 1 {
		t.Fatalf("got %d %q after %d requests, sleeps %v", resp.StatusCode, body, n.Load(), clock.Sleeps())
	}

	// POST is not retried after a dropped connection.
	n.Store(0)
	if _, _, err := do(t, c, http.MethodPost, srv.URL, strings.NewReader("x")); err == nil || n.Load() != 1 {
		t.Fatalf("POST: err %v after %d requests, want an error after one", err, n.Load())
	}
}

func TestRetryOnConnectionRefused(t *testing.T) {
	srv := newCountingServer(t, nil)
	u := srv.URL
	srv.Close()
	clock := newFakeClock()
	c := newTestClient(Policy{}, clock)
	_, _, err := do(t, c, http.MethodGet, u+"/v1/thing?api_key=SECRET", nil)
	var ue *url.Error
	var oe *net.OpError
	if !errors.As(err, &ue) || !errors.As(err, &oe) {
		t.Fatalf("Do = %v, want a *url.Error wrapping a *net.OpError", err)
	}
	if errors.Is(err, ErrForbiddenAddress) {
		t.Fatal("refused connection reported as forbidden")
	}
	if got := clock.Sleeps(); len(got) != 2 {
		t.Errorf("sleeps = %v, want 2 (3 attempts)", got)
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "/v1/thing") {
		t.Errorf("error %q holds the path or query", err)
	}
}

func TestNoRetryWhenCallerCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		cancel()
		<-r.Context().Done()
	})
	clock := newFakeClock()
	c := newTestClient(Policy{}, clock)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := c.Do(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	if n.Load() != 1 || len(clock.Sleeps()) != 0 {
		t.Errorf("%d requests, sleeps %v: a canceled call was retried", n.Load(), clock.Sleeps())
	}
}

func TestAttemptTimeout(t *testing.T) {
	var n atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // never answers
			return
		}
		io.WriteString(w, "ok")
	})
	clock := newFakeClock()
	c := newTestClient(Policy{Timeout: 20 * time.Millisecond}, clock)
	resp, body, err := do(t, c, http.MethodGet, srv.URL, nil)
	if err != nil || resp.StatusCode != 200 || body != "ok" || n.Load() != 2 {
		t.Fatalf("got %v %q after %d requests, want the timed-out attempt retried", err, body, n.Load())
	}

	n.Store(0)
	c = newTestClient(Policy{Timeout: 20 * time.Millisecond, Retry: RetryPolicy{MaxAttempts: 1}}, clock)
	_, _, err = do(t, c, http.MethodGet, srv.URL, nil)
	var ne net.Error
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Do = %v, want ErrTimeout, a net.Error with Timeout()", err)
	}
}

// The timeout covers the headers only: a body that trickles in after them is streamed to
// the caller as it comes, past the timeout.
func TestResponseBodyIsStreamed(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "second")
	})
	c := newTestClient(Policy{Timeout: 20 * time.Millisecond}, newFakeClock())
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first;" {
		t.Fatalf("first chunk: %q %v", buf, err)
	}
	time.Sleep(40 * time.Millisecond) // past the header timeout
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestRateLimitedBeforeSending(t *testing.T) {
	srv := newSequenceServer(t)
	c := newTestClient(Policy{Limits: Limits{Requests: 2, Per: time.Minute}}, newFakeClock())
	for range 2 {
		if _, _, err := do(t, c, http.MethodGet, srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPut, srv.URL, body)
	_, err := c.Do(req)
	mustRateLimited(t, err, 30*time.Second)
	if srv.reqs.Load() != 2 {
		t.Errorf("server saw %d requests, want 2", srv.reqs.Load())
	}
	if !body.closed {
		t.Error("request body not closed on the refusal")
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }
