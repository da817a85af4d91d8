package auth

import (
	"sync"
	"time"

	"github.com/sesamehq/sesame"
)

// FailureLimiter counts failed authentications per source address in fixed windows and
// refuses a source that failed too often until its window ends.
type FailureLimiter struct {
	limit  int
	window time.Duration
	now    sesame.Clock

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	count int
	start time.Time
}

// NewFailureLimiter allows limit failures per source per window.
func NewFailureLimiter(limit int, window time.Duration, now sesame.Clock) *FailureLimiter {
	if now == nil {
		now = time.Now
	}
	return &FailureLimiter{limit: limit, window: window, now: now, sources: map[string]*failures{}}
}

// Blocked reports whether source is refused, and for how long.
func (l *FailureLimiter) Blocked(source string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.sources[source]
	if !ok {
		return 0, false
	}
	end := f.start.Add(l.window)
	now := l.now()
	if !now.Before(end) {
		delete(l.sources, source)
		return 0, false
	}
	if f.count < l.limit {
		return 0, false
	}
	return end.Sub(now), true
}

// Fail records a failed attempt from source.
func (l *FailureLimiter) Fail(source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f, ok := l.sources[source]
	if !ok || !now.Before(f.start.Add(l.window)) {
		if len(l.sources) >= 100_000 {
			l.sweep(now)
		}
		l.sources[source] = &failures{count: 1, start: now}
		return
	}
	f.count++
}

func (l *FailureLimiter) sweep(now time.Time) {
	for s, f := range l.sources {
		if !now.Before(f.start.Add(l.window)) {
			delete(l.sources, s)
		}
	}
	if len(l.sources) >= 100_000 {
		clear(l.sources) // a flood of sources: start over rather than grow without bound
	}
}

// Take counts one request from source and reports whether it is within the limit, and if
// not, how long until its window ends: the limiter used as a plain per-source rate limit
// (trial app tokens), where every request counts, not only failures.
func (l *FailureLimiter) Take(source string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f, ok := l.sources[source]
	if !ok || !now.Before(f.start.Add(l.window)) {
		if len(l.sources) >= 100_000 {
			l.sweep(now)
		}
		l.sources[source] = &failures{count: 1, start: now}
		return 0, true
	}
	if f.count >= l.limit {
		return f.start.Add(l.window).Sub(now), false
	}
	f.count++
	return 0, true
}
