package outbound

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Policy is how a connection's client behaves.
type Policy struct {
	Limits       Limits
	Retry        RetryPolicy
	Timeout      time.Duration // per attempt, until the response headers; 0 = 30s
	AllowPrivate bool          // allow loopback, private and link-local addresses
	// RootCAs, when not nil, replaces the system's roots for TLS. Only tests set it (to
	// trust an httptest TLS server); the server never does.
	RootCAs *x509.CertPool
	// Dial, when set, makes every connection (an on-premise agent's tunnel). It replaces
	// the address check: what Dial reaches is bounded by its own rules (the agent's
	// allowlist), and it is given the unresolved host:port.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultTimeout bounds each attempt until the response headers when Policy.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// maxRedirects is how many same-origin redirects Do follows.
const maxRedirects = 10

// drainLimit is how much of a discarded response body is read so that its connection can
// be reused; a longer body closes the connection instead.
const drainLimit = 64 << 10

// ErrTimeout is wrapped by the error of an attempt that got no response headers within
// the policy's Timeout.
var ErrTimeout = errors.New("outbound: upstream timed out")

var (
	errTooManyRedirects = fmt.Errorf("outbound: stopped after %d redirects", maxRedirects)
	errAttemptTimeout   = errors.New("outbound: attempt timeout") // cancel cause, never returned
)

// timeoutError reports an attempt timeout; it satisfies net.Error's Timeout.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("outbound: no response headers within %v", e.d)
}
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Unwrap() error   { return ErrTimeout }
func (e *timeoutError) Is(t error) bool { return t == errAttemptTimeout }

// Client sends requests for one connection. Build one per connection and keep it: it
// owns the connection's rate limiter and connection pool. It is safe for concurrent use.
type Client struct {
	retry     RetryPolicy
	timeout   time.Duration
	clock     Clock
	limiter   *Limiter
	transport *http.Transport
	http      *http.Client
	rnd       func() float64 // jitter source in [0,1)
}

// NewClient returns the client for a connection with policy p. A nil Clock means the
// system clock.
func NewClient(p Policy, c Clock) *Client {
	if c == nil {
		c = SystemClock()
	}
	t := NewTransport(p.AllowPrivate)
	if p.RootCAs != nil {
		t.TLSClientConfig.RootCAs = p.RootCAs
	}
	if p.Dial != nil {
		t.DialContext = p.Dial
	}
	cl := &Client{
		retry:     p.Retry.withDefaults(),
		timeout:   p.Timeout,
		clock:     c,
		limiter:   NewLimiter(p.Limits, c),
		transport: t,
		http:      &http.Client{Transport: t, CheckRedirect: checkRedirect},
		rnd:       rand.Float64,
	}
	if cl.timeout <= 0 {
		cl.timeout = DefaultTimeout
	}
	return cl
}

// Limiter returns the connection's rate limiter.
func (c *Client) Limiter() *Limiter { return c.limiter }

// CloseIdleConnections closes the connections of the pool that are idle, as when the
// connection's policy changes and this client is replaced.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// Do sends req and returns the upstream's response, whose body the caller must close; the
// body is streamed, never buffered.
//
// It takes a token from the limiter first (a *RateLimitedError is returned as is). It
// follows redirects only within the request's origin (same scheme, host and port, at most
// 10); a redirect anywhere else is returned to the caller as the 3xx response, so no
// credential leaves for another host. It retries idempotent requests whose body can be
// sent again on connection errors, attempt timeouts and 502/503/504, with backoff and
// jitter, within the policy's MaxAttempts and MaxElapsed; each retry takes a token too.
// A 429 or 503 with Retry-After penalizes the limiter until then, and a 503 is retried no
// sooner than that. When retries run out the last response or error is returned.
//
// Errors wrap their cause (ErrForbiddenAddress, ErrTimeout, *RateLimitedError, context
// errors, *url.Error) and never hold header values, the query or the path, which may
// carry credentials: a *url.Error names only the origin.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if req == nil || req.URL == nil {
		return nil, errors.New("outbound: request without URL")
	}
	ctx := req.Context()
	if err := c.limiter.Wait(ctx); err != nil {
		closeBody(req)
		return nil, err
	}
	start := c.clock.Now()
	canRetry := c.retry.MaxAttempts > 1 && idempotent(req)
	areq := req
	for n := 1; ; n++ {
		resp, err := c.attempt(areq)
		var retryAfter time.Duration
		if err == nil {
			retryAfter = c.honourRetryAfter(resp)
		}
		if !canRetry || n >= c.retry.MaxAttempts || ctx.Err() != nil {
			return resp, err
		}
		if err != nil && !retryableError(err) {
			return nil, err
		}
		if err == nil && !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		delay := c.retry.Backoff(n, c.rnd())
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			delay = max(delay, retryAfter)
		}
		if c.clock.Now().Add(delay).Sub(start) > c.retry.MaxElapsed {
			return resp, err
		}
		if resp != nil {
			discard(resp)
		}
		if err := c.clock.Sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("outbound: waiting to retry: %w", err)
		}
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, err
		}
		if areq, err = rewind(req); err != nil {
			return nil, err
		}
	}
}

// attempt sends one request through the connection's http.Client, bounding the time to
// the response headers. The attempt's context lives until the response body is closed.
func (c *Client) attempt(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(c.timeout, func() { cancel(errAttemptTimeout) })
	resp, err := c.http.Do(req.WithContext(ctx))
	fired := !timer.Stop()
	if err != nil {
		timedOut := context.Cause(ctx) == errAttemptTimeout && req.Context().Err() == nil
		cancel(nil)
		if timedOut {
			err = &url.Error{Op: urlOp(req.Method), URL: origin(req.URL), Err: &timeoutError{c.timeout}}
		}
		return nil, redact(err, req.URL)
	}
	if fired { // the timer went off as the headers arrived: the body is already cut off
		resp.Body.Close()
		cancel(nil)
		return nil, &url.Error{Op: urlOp(req.Method), URL: origin(req.URL), Err: &timeoutError{c.timeout}}
	}
	body := &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok { // 101 Switching Protocols
		resp.Body = &cancelRWBody{cancelBody: body, w: rw}
	} else {
		resp.Body = body
	}
	return resp, nil
}

// honourRetryAfter penalizes the limiter when a 429 or 503 carries Retry-After, and
// returns how long the upstream asked to wait.
func (c *Client) honourRetryAfter(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	now := c.clock.Now()
	d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	if !ok || d <= 0 {
		return 0
	}
	c.limiter.Penalize(now.Add(d))
	return d
}

// checkRedirect follows only same-origin redirects; for any other it hands the 3xx
// response back to the caller untouched.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return errTooManyRedirects
	}
	if !sameOrigin(req.URL, via[0].URL) {
		return http.ErrUseLastResponse
	}
	return nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// rewind returns req ready to be sent again, with a fresh body from GetBody.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.WithContext(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return r, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("outbound: rewinding request body: %w", err)
	}
	r.Body = body
	return r, nil
}

// redact keeps a *url.Error to the request's origin: paths and queries may hold
// credentials.
func redact(err error, u *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = origin(u)
	}
	return err
}

// origin is scheme://host[:port] of u, without user info, path or query.
func origin(u *url.URL) string {
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}

func urlOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// discard drains a little of a response that will not be returned, so that its
// connection can be reused, and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
}

// cancelBody ends the attempt's context when the response body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// cancelRWBody keeps the io.Writer of a 101 response body.
type cancelRWBody struct {
	*cancelBody
	w io.Writer
}

func (b *cancelRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
