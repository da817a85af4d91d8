package outbound

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustRateLimited(t *testing.T, err error, retryAfter time.Duration) {
	t.Helper()
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("Wait: %v, want *RateLimitedError", err)
	}
	if rl.RetryAfter != retryAfter {
		t.Fatalf("RetryAfter = %v, want %v", rl.RetryAfter, retryAfter)
	}
}

func TestLimiterBurstThenRefusal(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(Limits{Requests: 10, Per: time.Second}, clock) // burst defaults to 10
	ctx := context.Background()
	for i := range 10 {
		if err := l.Wait(ctx); err != nil {
			t.Fatalf("Wait %d: %v", i, err)
		}
	}
	err := l.Wait(ctx)
	mustRateLimited(t, err, 100*time.Millisecond)
	if got := err.Error(); got != "rate limited; retry after 1s" {
		t.Errorf("Error() = %q", got)
	}
	// A refusal consumes nothing: the next token is still 100ms away.
	mustRateLimited(t, l.Wait(ctx), 100*time.Millisecond)
	clock.Advance(40 * time.Millisecond)
	mustRateLimited(t, l.Wait(ctx), 60*time.Millisecond)
	if len(clock.Sleeps()) != 0 {
		t.Errorf("MaxWait 0 slept: %v", clock.Sleeps())
	}
}

func TestLimiterRefillsOverTime(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(Limits{Requests: 2, Per: time.Second, Burst: 4}, clock)
	ctx := context.Background()
	take := func(n int) {
		t.Helper()
		for i := range n {
			if err := l.Wait(ctx); err != nil {
				t.Fatalf("Wait %d of %d: %v", i+1, n, err)
			}
		}
	}
	take(4)
	mustRateLimited(t, l.Wait(ctx), 500*time.Millisecond)
	clock.Advance(500 * time.Millisecond)
	take(1)
	mustRateLimited(t, l.Wait(ctx), 500*time.Millisecond)
	// A long idle period refills to the burst, never beyond.
	clock.Advance(time.Hour)
	take(4)
	mustRateLimited(t, l.Wait(ctx), 500*time.Millisecond)
}

func TestLimiterWaitsUpToMaxWait(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(Limits{Requests: 1, Per: time.Second, MaxWait: 2 * time.Second}, clock)
	ctx := context.Background()
	for range 3 { // the first is free; the next two wait a second each
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := clock.Sleeps(); len(got) != 2 || got[0] != time.Second || got[1] != time.Second {
		t.Fatalf("sleeps = %v, want [1s 1s]", got)
	}
	// Two more callers reserve the next two slots without sleeping in between (as
	// concurrent callers would): the third would wait 3s > MaxWait and is refused.
	l2 := NewLimiter(Limits{Requests: 1, Per: time.Second, MaxWait: 2 * time.Second}, clock)
	if w, ok := l2.reserve(clock.Now()); !ok || w != 0 {
		t.Fatalf("reserve 1: %v %v", w, ok)
	}
	if w, ok := l2.reserve(clock.Now()); !ok || w != time.Second {
		t.Fatalf("reserve 2: %v %v", w, ok)
	}
	if w, ok := l2.reserve(clock.Now()); !ok || w != 2*time.Second {
		t.Fatalf("reserve 3: %v %v", w, ok)
	}
	mustRateLimited(t, l2.Wait(ctx), 3*time.Second)
}

func TestLimiterWaitCanceled(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(Limits{Requests: 1, Per: time.Second, MaxWait: time.Minute}, clock)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	// The canceled call took nothing: the next one waits one interval, not two.
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clock.Sleeps(); len(got) != 1 || got[0] != time.Second {
		t.Fatalf("sleeps = %v, want [1s]", got)
	}
}

func TestLimiterPenalizeBlocksUntil(t *testing.T) {
	for _, limits := range []Limits{{}, {Requests: 100, Per: time.Second}} {
		clock := newFakeClock()
		l := NewLimiter(limits, clock)
		ctx := context.Background()
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		until := clock.Now().Add(30 * time.Second)
		l.Penalize(until)
		l.Penalize(clock.Now().Add(time.Second)) // never shortens the penalty
		mustRateLimited(t, l.Wait(ctx), 30*time.Second)
		clock.Advance(29 * time.Second)
		mustRateLimited(t, l.Wait(ctx), time.Second)
		clock.Advance(time.Second)
		if err := l.Wait(ctx); err != nil {
			t.Fatalf("%+v: Wait at the end of the penalty: %v", limits, err)
		}
	}
}

func TestLimiterPenaltyWithMaxWaitSleeps(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(Limits{Requests: 10, Per: time.Second, MaxWait: 5 * time.Second}, clock)
	l.Penalize(clock.Now().Add(3 * time.Second))
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// At the end of the penalty the bucket holds one token, then refills at the rate.
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clock.Sleeps(); len(got) != 2 || got[0] != 3*time.Second || got[1] != 100*time.Millisecond {
		t.Fatalf("sleeps = %v, want [3s 100ms]", got)
	}
}

// A penalty that arrives while a call sleeps for its token holds that call too.
func TestLimiterPenaltyDuringSleep(t *testing.T) {
	clock := &penalizingClock{fakeClock: newFakeClock()}
	l := NewLimiter(Limits{Requests: 1, Per: time.Second, MaxWait: 10 * time.Second}, clock)
	clock.onSleep = func() { l.Penalize(clock.Now().Add(5 * time.Second)) }
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clock.Sleeps(); len(got) != 2 || got[0] != time.Second || got[1] != 4*time.Second {
		t.Fatalf("sleeps = %v, want [1s 4s]", got)
	}
}

type penalizingClock struct {
	*fakeClock
	onSleep func()
}

func (p *penalizingClock) Sleep(ctx context.Context, d time.Duration) error {
	if f := p.onSleep; f != nil {
		p.onSleep = nil
		f()
	}
	return p.fakeClock.Sleep(ctx, d)
}

func TestLimiterConcurrentWaitNeverExceedsBucket(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(Limits{Requests: 50, Per: time.Minute, Burst: 37}, clock)
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 500 {
		wg.Go(func() {
			var rl *RateLimitedError
			switch err := l.Wait(context.Background()); {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &rl):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 37 || refused.Load() != 463 {
		t.Fatalf("%d calls went and %d were refused, want 37 and 463", ok.Load(), refused.Load())
	}
}

func TestLimiterUnlimited(t *testing.T) {
	l := NewLimiter(Limits{}, newFakeClock())
	for range 10000 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"3600", time.Hour, true},
		{"3601", time.Hour, true},
		{"99999999999999999999999", time.Hour, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRateLimitedErrorSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 30 * time.Second: 30} {
		if got := (&RateLimitedError{RetryAfter: d}).Seconds(); got != want {
			t.Errorf("Seconds(%v) = %d, want %d", d, got, want)
		}
	}
}
