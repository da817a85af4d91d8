package store_test

import (
	"sync"
	"sync/atomic"
	"testing"
)

// testQuotaReservations: two stores on one database (two replicas) reserve a key's quota
// concurrently; together they get exactly the limit, each period counts apart, and an
// older period's count is dropped.
func testQuotaReservations(t *testing.T, e *env) {
	other, err := e.b.open(e.ctx, e.loc)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const limit = 250
	var total atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		st := e.s
		if i%2 == 1 {
			st = other
		}
		wg.Go(func() {
			for {
				granted, used, err := st.ReserveQuota(e.ctx, "key_1", 1000, limit, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if used > limit {
					t.Errorf("used %d > limit", used)
				}
				if granted == 0 {
					return
				}
				total.Add(granted)
			}
		})
	}
	wg.Wait()
	if total.Load() != limit {
		t.Fatalf("reserved %d in all, want %d", total.Load(), limit)
	}
	// The next period starts from zero; another key counts apart.
	if g, used, err := e.s.ReserveQuota(e.ctx, "key_1", 2000, limit, 5); err != nil || g != 5 || used != 5 {
		t.Fatalf("next period: %d %d %v", g, used, err)
	}
	if g, _, err := e.s.ReserveQuota(e.ctx, "key_2", 1000, 3, 5); err != nil || g != 3 {
		t.Fatalf("another key: %d %v", g, err)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM key_quota_usage WHERE key_id = 'key_1'`); n != 1 {
		t.Fatalf("periods kept for key_1: %d", n)
	}
}
