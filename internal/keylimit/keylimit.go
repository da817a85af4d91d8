// Package keylimit enforces the limits an API key may carry: a rate limit, counted in
// memory by each replica, and a quota of calls per period, counted in the store so that it
// holds across replicas. Replicas reserve quota calls a few at a time (never more than are
// left), so that a busy key does not cost a store write per request.
package keylimit

import (
	"context"
	"sync"
	"time"

	"github.com/sesamehq/sesame"
)

// Store is the storage the quota needs (internal/store implements it).
type Store interface {
	// ReserveQuota reserves up to batch calls of limit in the period starting at window
	// (Unix seconds), atomically across replicas: granted may be 0 (used up).
	ReserveQuota(ctx context.Context, keyID string, window, limit, batch int64) (granted, used int64, err error)
}

// MaxBatch is the most quota calls a replica reserves at once. A replica that stops may
// leave up to this many reserved calls of the current period unused.
const MaxBatch = 32

// Limiter counts the requests of keys with limits.
type Limiter struct {
	store Store
	now   sesame.Clock

	mu    sync.Mutex
	rate  map[string]*counter // key ID → requests in the current rate window
	quota map[string]*reserve // key ID → calls reserved here and not yet used
}

type counter struct {
	window int64 // start, Unix seconds
	n      int64
}

type reserve struct {
	window int64
	left   int64 // reserved by this replica, not yet used
	used   int64 // the period's total reserved, by every replica, at the last reservation
}

// New returns a limiter.
func New(st Store, now sesame.Clock) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{store: st, now: now, rate: map[string]*counter{}, quota: map[string]*reserve{}}
}

// Decision is the outcome for one request: the figures for the RateLimit headers (the limit
// closest to running out), and, when refused, the error to answer with.
type Decision struct {
	Limit, Remaining int64
	Reset            time.Duration // until the limit's current period ends
	Err              *sesame.Error // nil: allowed
}

// Allow counts one request made with a key with limits l.
func (l *Limiter) Allow(ctx context.Context, lim *sesame.KeyLimits) (Decision, error) {
	now := l.now()
	var d Decision
	if r := lim.Rate; r != nil {
		window, reset := period(now, r.PerSeconds)
		l.mu.Lock()
		c := l.rate[lim.KeyID]
		if c == nil || c.window != window {
			c = &counter{window: window}
			l.rate[lim.KeyID] = c
		}
		allowed := c.n < r.Requests
		if allowed {
			c.n++
		}
		remaining := r.Requests - c.n
		l.mu.Unlock()
		d = Decision{Limit: r.Requests, Remaining: remaining, Reset: reset}
		if !allowed {
			d.Err = &sesame.Error{Code: sesame.CodeRateLimited, RetryAfter: reset,
				Message: "this API key's rate limit is reached; retry after the period ends"}
			return d, nil
		}
	}
	if q := lim.Quota; q != nil {
		qd, err := l.allowQuota(ctx, lim.KeyID, q, now)
		if err != nil {
			return Decision{}, err
		}
		if qd.Err != nil || lim.Rate == nil || qd.Remaining < d.Remaining {
			d = qd
		}
	}
	return d, nil
}

func (l *Limiter) allowQuota(ctx context.Context, keyID string, q *sesame.Quota, now time.Time) (Decision, error) {
	window, reset := period(now, q.PerSeconds)
	d := Decision{Limit: q.Calls, Reset: reset}
	l.mu.Lock()
	r := l.quota[keyID]
	if r != nil && r.window == window && r.left > 0 {
		r.left--
		d.Remaining = max(0, q.Calls-r.used+r.left)
		l.mu.Unlock()
		return d, nil
	}
	l.mu.Unlock()
	// Reserve in the store: few at a time while much is left, one at a time near the end,
	// so that the replicas together use the whole quota and never more.
	batch := int64(1)
	if r != nil && r.window == window {
		batch = max(1, min(MaxBatch, (q.Calls-r.used)/16))
	}
	granted, used, err := l.store.ReserveQuota(ctx, keyID, window, q.Calls, batch)
	if err != nil {
		return Decision{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r = l.quota[keyID]
	if r == nil || r.window != window {
		r = &reserve{window: window}
		l.quota[keyID] = r
	}
	r.used = max(r.used, used)
	if granted == 0 {
		d.Remaining = 0
		d.Err = &sesame.Error{Code: sesame.CodeQuotaExceeded, RetryAfter: reset,
			Message: "this API key's quota of calls is used up for this period; retry after it ends"}
		return d, nil
	}
	r.left += granted - 1 // one is this request's
	d.Remaining = max(0, q.Calls-r.used+r.left)
	return d, nil
}

// period returns the start of the fixed window of length per seconds that now falls in
// (Unix seconds) and the time until it ends.
func period(now time.Time, per int64) (int64, time.Duration) {
	if per < 1 {
		per = 1
	}
	sec := now.Unix()
	start := sec - sec%per
	end := time.Unix(start+per, 0)
	return start, end.Sub(now)
}
