package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// RetryPolicy says how a connection retries idempotent requests.
type RetryPolicy struct {
	MaxAttempts int           // total attempts including the first; default 3; 1 = no retries
	BaseDelay   time.Duration // default 100ms
	MaxDelay    time.Duration // default 2s
	MaxElapsed  time.Duration // give up once this much time has passed; default 10s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 2 * time.Second
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 10 * time.Second
	}
	return p
}

// Backoff returns the delay before retry number n (1-based): exponential with full
// jitter, a uniform pick in [0, min(MaxDelay, BaseDelay*2^(n-1))) using rnd in [0,1).
func (p RetryPolicy) Backoff(n int, rnd float64) time.Duration {
	p = p.withDefaults()
	ceiling := p.BaseDelay
	for i := 1; i < n && ceiling < p.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	rnd = min(max(rnd, 0), 1)
	return time.Duration(rnd * float64(ceiling))
}

// idempotent reports whether a request may be sent again: an idempotent method and a
// body that is absent or can be obtained again.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// retryableStatus reports whether an upstream status is worth another attempt.
func retryableStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// retryableError reports whether a failed attempt failed at the connection level in a way
// that another attempt may fix: dial failures, resets, EOFs and the attempt timeout. A
// forbidden address, the caller's cancellation, redirect limits and TLS verification
// failures are final.
func retryableError(err error) bool {
	switch {
	case errors.Is(err, ErrForbiddenAddress), errors.Is(err, errTooManyRedirects):
		return false
	case errors.Is(err, errAttemptTimeout):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}
