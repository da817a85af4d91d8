package outbound

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits is a connection's rate limit.
type Limits struct {
	Requests int           // tokens added per Per; 0 = unlimited
	Per      time.Duration // default 1s
	Burst    int           // bucket size; default Requests
	MaxWait  time.Duration // how long a call may wait for a token; 0 = do not wait
}

// RateLimitedError is returned when a call would have to wait longer than Limits.MaxWait,
// either for a token or for a penalty set by an upstream's Retry-After.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited; retry after %ds", e.Seconds())
}

// Seconds is RetryAfter rounded up to whole seconds, at least 1: the value for a
// Retry-After response header.
func (e *RateLimitedError) Seconds() int64 {
	s := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Limiter is a token bucket, safe for concurrent use. It is implemented as GCRA (the
// "virtual scheduling" form of a token bucket): tat is the theoretical arrival time of
// the next request at the steady rate, and a request may go once now >= tat - tau, where
// tau is the burst allowance. A caller that waits reserves its slot before sleeping, so
// concurrent waiters queue fairly and never exceed the bucket.
type Limiter struct {
	clock    Clock
	limited  bool
	interval time.Duration // time per token
	tau      time.Duration // (burst-1) * interval
	maxWait  time.Duration

	mu      sync.Mutex
	tat     time.Time
	penalty time.Time // no call proceeds before this (upstream Retry-After)
}

// NewLimiter returns a limiter for l, starting with a full bucket. A nil Clock means the
// system clock.
func NewLimiter(l Limits, c Clock) *Limiter {
	if c == nil {
		c = SystemClock()
	}
	lim := &Limiter{clock: c, maxWait: max(l.MaxWait, 0)}
	if l.Requests > 0 {
		per := l.Per
		if per <= 0 {
			per = time.Second
		}
		burst := l.Burst
		if burst <= 0 {
			burst = l.Requests
		}
		lim.limited = true
		lim.interval = max(per/time.Duration(l.Requests), 1)
		lim.tau = lim.interval * time.Duration(burst-1)
		lim.tat = c.Now()
	}
	return lim
}

// reserve takes a token for a call at now, unless the call would have to wait longer
// than maxWait. It returns how long the caller must wait before going.
func (l *Limiter) reserve(now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	allow := l.penalty
	tat := l.tat
	if l.limited {
		if tat.Before(now) {
			tat = now
		}
		if a := tat.Add(-l.tau); a.After(allow) {
			allow = a
		}
	}
	wait = max(allow.Sub(now), 0)
	if wait > l.maxWait {
		return wait, false
	}
	if l.limited {
		l.tat = tat.Add(l.interval)
	}
	return wait, true
}

// refund gives back a reserved token that was not used.
func (l *Limiter) refund() {
	if !l.limited {
		return
	}
	l.mu.Lock()
	l.tat = l.tat.Add(-l.interval)
	l.mu.Unlock()
}

// Wait takes a token, sleeping (via the Clock) up to MaxWait. If the wait would exceed
// MaxWait it returns a *RateLimitedError without consuming a token. If ctx ends while
// waiting it returns ctx.Err() and gives the token back.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := l.clock.Now()
	wait, ok := l.reserve(start)
	if !ok {
		return &RateLimitedError{RetryAfter: wait}
	}
	if wait == 0 {
		return nil // reserve has seen any penalty
	}
	if err := l.clock.Sleep(ctx, wait); err != nil {
		l.refund()
		return err
	}
	// A penalty may have arrived (an upstream 429) while this call slept: honour it too,
	// within what is left of MaxWait.
	for {
		l.mu.Lock()
		penalty := l.penalty
		l.mu.Unlock()
		now := l.clock.Now()
		if !penalty.After(now) {
			return nil
		}
		wait := penalty.Sub(now)
		if penalty.Sub(start) > l.maxWait {
			l.refund()
			return &RateLimitedError{RetryAfter: wait}
		}
		if err := l.clock.Sleep(ctx, wait); err != nil {
			l.refund()
			return err
		}
	}
}

// Penalize blocks the connection until t, as an upstream's 429 or 503 with Retry-After
// asks: until t Wait behaves as if the bucket were empty, and at t it holds one token.
// A penalty never shortens an earlier one.
func (l *Limiter) Penalize(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.penalty) {
		l.penalty = t
	}
	if l.limited {
		if a := t.Add(l.tau); a.After(l.tat) {
			l.tat = a
		}
	}
}

// maxRetryAfter bounds what an upstream may ask for in Retry-After.
const maxRetryAfter = time.Hour

// ParseRetryAfter parses a Retry-After value, delta-seconds or an HTTP-date, relative to
// now. A date in the past gives 0; anything over an hour gives an hour.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true // all digits, so only too large
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > maxRetryAfter:
		return maxRetryAfter, true
	}
	return d, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
