package audit_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
)

// Benchmarks, on SQLite and (with SESAME_TEST_POSTGRES) PostgreSQL:
//
//	go test ./internal/audit -run '^$' -bench . -benchmem -benchtime 0.2s
//
// (BenchmarkRecord lets the writer catch up off the clock, so its wall time is about 200
// times its timed time: keep -benchtime short.)
//
// Record is what a request pays on the hot path; RecordSync what a change pays; Writer
// what the background writer sustains per event; Verify the chain check's throughput.

func benchTrail(b *testing.B, backend string, cfg audit.Config) (*audit.Log, *store.Store) {
	b.Helper()
	ctx := context.Background()
	var st *store.Store
	var err error
	switch backend {
	case "sqlite":
		st, err = store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
	default:
		st, err = store.OpenPostgres(ctx, testpg.URL(b))
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cfg.Store, cfg.Secret = st, sesame.NewSecret([]byte("bench-secret"))
	l, err := audit.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(context.Background()) })
	return l, st
}

func forBackends(b *testing.B, fn func(b *testing.B, backend string)) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) { fn(b, name) })
	}
}

// drain waits, off the clock, until the writer has caught up.
func drain(b *testing.B, l *audit.Log) {
	b.StopTimer()
	for l.Stats().Queued > 0 {
		runtime.Gosched()
	}
	b.StartTimer()
}

// BenchmarkRecord is the cost a caller pays per event: a hand-off to the writer, no
// database round trip. The timer stops while the writer catches up every half buffer, so
// the figure is the caller's cost, not the database's (see BenchmarkWriter for that).
func BenchmarkRecord(b *testing.B) {
	forBackends(b, func(b *testing.B, backend string) {
		const buffer = 1 << 14
		l, _ := benchTrail(b, backend, audit.Config{Buffer: buffer})
		ctx := context.Background()
		ev := event(1)
		i := 0
		for b.Loop() {
			l.Record(ctx, ev)
			if i++; i%(buffer/2) == 0 {
				drain(b, l)
			}
		}
		b.StopTimer()
		if s := l.Stats(); s.Dropped != 0 {
			b.Fatalf("dropped %d", s.Dropped)
		}
	})
}

// BenchmarkRecordSync is a change's cost: it waits for its own durable commit.
func BenchmarkRecordSync(b *testing.B) {
	forBackends(b, func(b *testing.B, backend string) {
		l, _ := benchTrail(b, backend, audit.Config{})
		ctx := context.Background()
		ev := event(1)
		for b.Loop() {
			if err := l.RecordSync(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriter is the background writer's sustained cost per event (batched appends,
// the final flush included); its inverse is the event rate one replica can record.
func BenchmarkWriter(b *testing.B) {
	forBackends(b, func(b *testing.B, backend string) {
		l, _ := benchTrail(b, backend, audit.Config{Buffer: 1 << 16, BlockFor: time.Minute})
		ctx := context.Background()
		ev := event(1)
		b.ResetTimer()
		for range b.N {
			l.Record(ctx, ev)
		}
		if err := l.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if s := l.Stats(); s.Dropped != 0 || s.Committed != int64(b.N) {
			b.Fatalf("%+v", s)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkVerify walks a chain of 20,000 events per op.
func BenchmarkVerify(b *testing.B) {
	forBackends(b, func(b *testing.B, backend string) {
		const n = 20000
		l, _ := benchTrail(b, backend, audit.Config{})
		ctx := context.Background()
		for i := range n {
			l.Record(ctx, event(i))
		}
		if err := l.RecordSync(ctx, event(n)); err != nil { // everything before it is in too
			b.Fatal(err)
		}
		start := time.Now()
		for b.Loop() {
			res, err := l.Verify(ctx)
			if err != nil || !res.OK || res.Events != n+1 {
				b.Fatalf("%+v %v", res, err)
			}
		}
		b.ReportMetric(float64((n+1)*b.N)/time.Since(start).Seconds(), "events/s")
	})
}
