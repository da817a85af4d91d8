// Package outbound is the HTTP client that every outbound call (proxy, functions,
// connection tests) goes through, one per connection (PRODUCT.md C3, §4.3).
//
// A Client combines four things:
//
//   - SSRF protection: the dialer checks the resolved address of every connection, so
//     loopback, private, link-local (cloud metadata) and similar addresses are refused
//     unless the connection allows private networks; DNS rebinding cannot get around it.
//   - A token-bucket rate limiter per connection that also honours an upstream's
//     Retry-After on 429 and 503.
//   - Retries with exponential backoff and full jitter, for idempotent requests only.
//   - Redirects followed only within the request's origin, so no credential (header,
//     query-string or path) is ever sent to another host.
//
// Errors from this package never hold header values, query strings or paths: those may
// carry credentials.
package outbound

import (
	"context"
	"time"
)

// Clock is injectable time. Sleep returns ctx.Err() if ctx ends first.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock returns the real clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
