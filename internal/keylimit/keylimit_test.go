package keylimit_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/keylimit"
	"github.com/sesamehq/sesame/internal/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func openStore(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(tb.TempDir(), "sesame.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// TestRateWindow: a rate limit allows its requests per fixed window, says how many remain
// and when the window ends, and starts again in the next window.
func TestRateWindow(t *testing.T) {
	c := &clock{t: time.Unix(960_000_020, 0)} // 20 s into a 60 s window
	l := keylimit.New(openStore(t), c.now)
	lim := &sesame.KeyLimits{KeyID: "key_1", Rate: &sesame.RateLimit{Requests: 2, PerSeconds: 60}}
	ctx := context.Background()
	for i, want := range []int64{1, 0} {
		d, err := l.Allow(ctx, lim)
		if err != nil || d.Err != nil || d.Limit != 2 || d.Remaining != want || d.Reset != 40*time.Second {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
	}
	d, _ := l.Allow(ctx, lim)
	if d.Err == nil || d.Err.Code != sesame.CodeRateLimited || d.Err.RetryAfter != 40*time.Second || d.Remaining != 0 {
		t.Fatalf("third request: %+v", d)
	}
	c.add(40 * time.Second)
	if d, _ := l.Allow(ctx, lim); d.Err != nil || d.Remaining != 1 || d.Reset != 60*time.Second {
		t.Fatalf("next window: %+v", d)
	}
}

// TestQuotaHeadersShowTheNearestLimit: with a rate limit and a quota, the figures are those
// of the limit closer to running out, and the quota refuses with quota_exceeded.
func TestQuotaHeadersShowTheNearestLimit(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000_000, 0)}
	l := keylimit.New(openStore(t), c.now)
	lim := &sesame.KeyLimits{KeyID: "key_1", Rate: &sesame.RateLimit{Requests: 100, PerSeconds: 60}, Quota: &sesame.Quota{Calls: 3, PerSeconds: 3600}}
	ctx := context.Background()
	for _, want := range []int64{2, 1, 0} {
		d, err := l.Allow(ctx, lim)
		if err != nil || d.Err != nil || d.Limit != 3 || d.Remaining != want {
			t.Fatalf("%+v %v", d, err)
		}
	}
	d, _ := l.Allow(ctx, lim)
	if d.Err == nil || d.Err.Code != sesame.CodeQuotaExceeded || d.Limit != 3 || d.Err.RetryAfter <= 0 {
		t.Fatalf("over the quota: %+v", d)
	}
}

// BenchmarkAllowRate is the added cost of a key with a rate limit (memory only).
func BenchmarkAllowRate(b *testing.B) {
	l := keylimit.New(openStore(b), time.Now)
	lim := &sesame.KeyLimits{KeyID: "key_1", Rate: &sesame.RateLimit{Requests: 1 << 62, PerSeconds: 60}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := l.Allow(ctx, lim); err != nil || d.Err != nil {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkAllowQuota is the added cost of a key with a large quota on SQLite: one store
// reservation every MaxBatch calls.
func BenchmarkAllowQuota(b *testing.B) {
	l := keylimit.New(openStore(b), time.Now)
	lim := &sesame.KeyLimits{KeyID: "key_1", Quota: &sesame.Quota{Calls: 1 << 62, PerSeconds: 366 * 24 * 3600}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := l.Allow(ctx, lim); err != nil || d.Err != nil {
			b.Fatal(d, err)
		}
	}
}
