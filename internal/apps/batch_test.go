package apps

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
)

// Many concurrent callers: every record is written before its caller returns, in fewer
// transactions than records, and a failed transaction fails exactly its own callers.
func TestRecordBatcherGroupsCommitsAndReportsFailures(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var txs, records atomic.Int64
	b := &recordBatcher{write: func(ctx context.Context, ts []sesame.AppToken) error {
		txs.Add(1)
		records.Add(int64(len(ts)))
		return st.CreateAppTokens(ctx, ts)
	}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := func(id string) sesame.AppToken {
		return sesame.AppToken{ID: id, AppID: "com.example.a", Version: "1", Mode: sesame.AppModeTrial, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	const workers, each = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("tok_%02d_%02d", w, i)
				if err := b.record(ctx, tok(id)); err != nil {
					errs <- err
					continue
				}
				// Returned: the record is in the store.
				ts, err := st.ListAppTokens(ctx, "", id[:len(id)-1], 100, now)
				if err != nil {
					errs <- err
					continue
				}
				found := false
				for _, x := range ts {
					found = found || x.ID == id
				}
				if !found {
					errs <- fmt.Errorf("%s returned before its record was written", id)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if records.Load() != workers*each {
		t.Fatalf("%d records written, want %d", records.Load(), workers*each)
	}
	t.Logf("%d records in %d transactions", records.Load(), txs.Load())
	if txs.Load() >= workers*each {
		t.Fatalf("no grouping: %d transactions for %d records", txs.Load(), workers*each)
	}

	// A record that cannot be written (its ID is taken) fails its caller.
	if err := b.record(ctx, tok("tok_00_00")); err == nil {
		t.Fatal("a duplicate record was reported written")
	}
	if err := b.record(ctx, tok("tok_new")); err != nil {
		t.Fatalf("the batcher did not recover: %v", err)
	}
}
