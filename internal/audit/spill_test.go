package audit_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/audit"
)

// TestSpilledEventsAreReplayedInOrder: while the store cannot take events (its table is
// gone), Record's events go to the spill file, nothing is dropped, and once the store is
// back they are chained in the order they were recorded; a trail started on a leftover
// spill file (a restart during the outage) replays it.
func TestSpilledEventsAreReplayedInOrder(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			spill := t.TempDir()
			e := newEnv(t, b, audit.Config{SpillDir: spill, Linger: -1})
			e.fill(2)
			e.exec(`ALTER TABLE audit_events RENAME TO audit_events_away`)
			for i := range 300 {
				ev := event(i)
				ev.Target = fmt.Sprintf("spilled-%03d", i)
				e.trail.Record(e.ctx, ev)
			}
			// Closing during the outage leaves the events in the spill file, not lost.
			if err := e.trail.Close(e.ctx); err != nil {
				t.Fatal(err)
			}
			s := e.trail.Stats()
			if s.Dropped != 0 || s.Spilled != 300 || s.SpillPending != 300 {
				t.Fatalf("after the outage: %+v", s)
			}
			if fi, err := os.Stat(filepath.Join(spill, "audit-spill.jsonl")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("spill file: %v %v", fi, err)
			}
			e.exec(`ALTER TABLE audit_events_away RENAME TO audit_events`)
			e.trail = e.newTrail(e.st, audit.Config{SpillDir: spill})
			if err := e.trail.Close(e.ctx); err != nil {
				t.Fatal(err)
			}
			if s := e.trail.Stats(); s.Replayed != 300 || s.SpillPending != 0 {
				t.Fatalf("after the replay: %+v", s)
			}
			events := e.list(audit.Filter{})
			if len(events) != 302 {
				t.Fatalf("%d events, want 302", len(events))
			}
			for i, ev := range events[2:] {
				if want := fmt.Sprintf("spilled-%03d", i); ev.Target != want {
					t.Fatalf("event %d is %q, want %q: replay out of order", ev.Seq, ev.Target, want)
				}
			}
			wantOK(t, e.verify(), 302)
			if fi, err := os.Stat(filepath.Join(spill, "audit-spill.jsonl")); err != nil || fi.Size() != 0 {
				t.Fatalf("spill file after the replay: %v %v", fi, err)
			}
		})
	}
}

// TestDropsAreRecordedAcrossARestart: events dropped on a full buffer while the store is
// stuck are not forgotten when the server stops before it recovers: the audit.gap event
// goes to the spill file with the spilled events, and the next start chains both.
func TestDropsAreRecordedAcrossARestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			spill := t.TempDir()
			e := newEnv(t, b, audit.Config{Buffer: 1, Linger: -1, SpillDir: spill, AttemptTimeout: 50 * time.Millisecond})
			unlock := e.b.lock(t, e.db)
			for i := range 20 {
				e.trail.Record(e.ctx, event(i))
			}
			if err := e.trail.Close(e.ctx); err != nil {
				t.Fatal(err)
			}
			unlock()
			s := e.trail.Stats()
			if s.Dropped == 0 || s.Spilled+s.Dropped != 20 || s.SpillPending != s.Spilled+1 {
				t.Fatalf("stats %+v", s)
			}
			e.trail = e.newTrail(e.st, audit.Config{SpillDir: spill})
			if err := e.trail.Close(e.ctx); err != nil {
				t.Fatal(err)
			}
			res := e.verify()
			wantOK(t, res, s.Spilled+1)
			if res.Lost != s.Dropped {
				t.Fatalf("verify reports %d lost, want %d (%+v)", res.Lost, s.Dropped, res.Gaps)
			}
		})
	}
}
