package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
)

// Every test runs on a real SQLite file and a real PostgreSQL schema (skipped unless
// SESAME_TEST_POSTGRES is set); tampering goes around the store with plain SQL.
type backend struct {
	name  string
	fresh func(t *testing.T) string
	open  func(ctx context.Context, loc string) (*store.Store, error)
	raw   func(t *testing.T, loc string) *sql.DB
	// lock takes the lock that appends need and holds it until unlock is called.
	lock func(t *testing.T, db *sql.DB) (unlock func())
}

var backends = []backend{
	{
		name:  "sqlite",
		fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "audit.db") },
		open:  store.OpenSQLite,
		raw: func(t *testing.T, loc string) *sql.DB {
			return openRaw(t, "sqlite", "file:"+loc+"?_pragma=busy_timeout(10000)")
		},
		lock: func(t *testing.T, db *sql.DB) func() {
			ctx := context.Background()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
					t.Error(err)
				}
				conn.Close()
			}
		},
	},
	{
		name:  "postgres",
		fresh: func(t *testing.T) string { return testpg.URL(t) },
		open:  store.OpenPostgres,
		raw:   func(t *testing.T, loc string) *sql.DB { return openRaw(t, "pgx", loc) },
		lock: func(t *testing.T, db *sql.DB) func() {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			return func() { _ = tx.Rollback() }
		},
	},
}

func openRaw(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var testSecret = []byte("audit-test-server-secret-0123456789")

// env is one fresh database with a trail on it.
type env struct {
	t     *testing.T
	ctx   context.Context
	b     backend
	loc   string
	st    *store.Store
	trail *audit.Log
	db    *sql.DB // around the store
}

func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, b, audit.Config{}))
		})
	}
}

func newEnv(t *testing.T, b backend, cfg audit.Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	loc := b.fresh(t)
	st, err := b.open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ctx: ctx, b: b, loc: loc, st: st, db: b.raw(t, loc)}
	e.trail = e.newTrail(st, cfg)
	return e
}

func (e *env) newTrail(st *store.Store, cfg audit.Config) *audit.Log {
	e.t.Helper()
	cfg.Store = st
	cfg.Secret = sesame.NewSecret(bytes.Clone(testSecret))
	l, err := audit.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

func (e *env) exec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.db.ExecContext(e.ctx, query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

func (e *env) count() int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM audit_events`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) verify() audit.VerifyResult {
	e.t.Helper()
	res, err := e.trail.Verify(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) list(f audit.Filter) []audit.Event {
	e.t.Helper()
	events, err := e.st.ListAudit(e.ctx, f)
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)

func event(i int) audit.Event {
	return audit.Event{
		Time:           t0.Add(time.Duration(i) * time.Second),
		Workspace:      "default",
		Principal:      sesame.PrincipalUser,
		UserID:         "u-admin",
		KeyID:          "k-1",
		AppID:          "",
		Action:         []string{"credential.put", "outbound.proxy", "credential.get"}[i%3],
		Target:         fmt.Sprintf("svc.key%d", i),
		Result:         sesame.AuditOK,
		Status:         200,
		UpstreamStatus: 201,
		LatencyMicros:  int64(1000 + i),
		Source:         "192.0.2.7",
		RequestID:      fmt.Sprintf("req-%d", i),
		Detail:         "GET api.example.com",
	}
}

// fill records n events synchronously, so that they are in the chain when it returns.
func (e *env) fill(n int) {
	e.t.Helper()
	for i := range n {
		if err := e.trail.RecordSync(e.ctx, event(i)); err != nil {
			e.t.Fatal(err)
		}
	}
}

func wantBroken(t *testing.T, res audit.VerifyResult, seq int64, reason string) {
	t.Helper()
	if res.OK || res.FirstBroken == nil {
		t.Fatalf("Verify said ok (%d events); want %s at seq %d", res.Events, reason, seq)
	}
	if res.FirstBroken.Seq != seq || res.FirstBroken.Reason != reason {
		t.Fatalf("first broken link: seq %d %s (%s); want seq %d %s",
			res.FirstBroken.Seq, res.FirstBroken.Reason, res.FirstBroken.Detail, seq, reason)
	}
}

func wantOK(t *testing.T, res audit.VerifyResult, events int64) {
	t.Helper()
	if !res.OK || res.FirstBroken != nil || res.Events != events || res.Head.Seq != events {
		t.Fatalf("Verify: %+v (broken: %+v); want ok with %d events", res, res.FirstBroken, events)
	}
}

func TestChainVerifies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		wantOK(t, e.verify(), 0)
		e.fill(5)
		for i := 5; i < 40; i++ {
			e.trail.Record(e.ctx, event(i))
		}
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		res := e.verify()
		wantOK(t, res, 40)
		events := e.list(audit.Filter{})
		if res.Head.Hash != events[39].Hash || events[0].PrevHash != audit.GenesisHash {
			t.Fatalf("head %+v, first prev %s", res.Head, events[0].PrevHash)
		}
		for i, ev := range events {
			if ev.Seq != int64(i+1) || ev.Version != audit.Version || len(ev.Hash) != 64 || len(ev.MAC) != 64 {
				t.Fatalf("event %d: %+v", i, ev)
			}
			if i > 0 && ev.PrevHash != events[i-1].Hash {
				t.Fatalf("event %d does not link to %d", ev.Seq, ev.Seq-1)
			}
		}
	})
}

// forge returns an event that continues the chain after prev with a correct SHA-256, as
// an attacker who knows the encoding can compute, and a MAC they cannot.
func forge(prev audit.Event, target string) audit.Event {
	f := event(99)
	f.Seq, f.Version, f.PrevHash, f.Target = prev.Seq+1, audit.Version, prev.Hash, target
	f.Hash = audit.ContentHash(&f)
	f.MAC = strings.Repeat("ab", 32)
	return f
}

const insertEvent = `INSERT INTO audit_events (seq, version, at, workspace, principal, user_id, key_id, app_id, action,
	target, result, code, status, upstream_status, latency_us, source, request_id, detail, prev_hash, hash, mac)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`

func (e *env) insert(ev audit.Event) {
	e.t.Helper()
	e.exec(insertEvent, ev.Seq, ev.Version, ev.Time.UnixNano(), ev.Workspace, ev.Principal, ev.UserID, ev.KeyID, ev.AppID,
		ev.Action, ev.Target, ev.Result, ev.Code, ev.Status, ev.UpstreamStatus, ev.LatencyMicros, ev.Source, ev.RequestID,
		ev.Detail, ev.PrevHash, ev.Hash, ev.MAC)
}

// Every way of tampering with a chain of 10 events, each on its own fresh chain, with the
// first broken link Verify must report.
var tamperCases = []struct {
	name   string
	tamper func(e *env)
	seq    int64
	reason string
}{
	// Editing any field of an event.
	{"edit/time", func(e *env) { e.exec(`UPDATE audit_events SET at = at + 1 WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/workspace", func(e *env) { e.exec(`UPDATE audit_events SET workspace = 'other' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/principal", func(e *env) { e.exec(`UPDATE audit_events SET principal = 'app' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/user_id", func(e *env) { e.exec(`UPDATE audit_events SET user_id = 'u-other' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/key_id", func(e *env) { e.exec(`UPDATE audit_events SET key_id = 'k-2' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/app_id", func(e *env) { e.exec(`UPDATE audit_events SET app_id = 'com.x' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/action", func(e *env) { e.exec(`UPDATE audit_events SET action = 'credential.get' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/target", func(e *env) { e.exec(`UPDATE audit_events SET target = 'innocent' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/result", func(e *env) { e.exec(`UPDATE audit_events SET result = 'denied' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/code", func(e *env) { e.exec(`UPDATE audit_events SET code = 'forbidden' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/status", func(e *env) { e.exec(`UPDATE audit_events SET status = 403 WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/upstream_status", func(e *env) { e.exec(`UPDATE audit_events SET upstream_status = 500 WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/latency", func(e *env) { e.exec(`UPDATE audit_events SET latency_us = 1 WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/source", func(e *env) { e.exec(`UPDATE audit_events SET source = '10.0.0.1' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/request_id", func(e *env) { e.exec(`UPDATE audit_events SET request_id = 'r' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/detail", func(e *env) { e.exec(`UPDATE audit_events SET detail = '' WHERE seq = 5`) }, 5, audit.ReasonHashMismatch},
	{"edit/version", func(e *env) { e.exec(`UPDATE audit_events SET version = 2 WHERE seq = 5`) }, 5, audit.ReasonVersion},
	{"edit/hash", func(e *env) { e.exec(`UPDATE audit_events SET hash = $1 WHERE seq = 5`, strings.Repeat("0", 64)) }, 5, audit.ReasonHashMismatch},
	{"edit/mac", func(e *env) { e.exec(`UPDATE audit_events SET mac = $1 WHERE seq = 5`, strings.Repeat("0", 64)) }, 5, audit.ReasonMACMismatch},
	{"edit/prev_hash", func(e *env) { e.exec(`UPDATE audit_events SET prev_hash = hash WHERE seq = 5`) }, 5, audit.ReasonPrevMismatch},
	{"edit/first event", func(e *env) { e.exec(`UPDATE audit_events SET target = 'x' WHERE seq = 1`) }, 1, audit.ReasonHashMismatch},
	{"edit/last event", func(e *env) { e.exec(`UPDATE audit_events SET target = 'x' WHERE seq = 10`) }, 10, audit.ReasonHashMismatch},

	// Deleting events.
	{"delete/first", func(e *env) { e.exec(`DELETE FROM audit_events WHERE seq = 1`) }, 1, audit.ReasonMissing},
	{"delete/middle", func(e *env) { e.exec(`DELETE FROM audit_events WHERE seq = 5`) }, 5, audit.ReasonMissing},
	{"delete/range", func(e *env) { e.exec(`DELETE FROM audit_events WHERE seq BETWEEN 4 AND 7`) }, 4, audit.ReasonMissing},
	{"delete/last", func(e *env) { e.exec(`DELETE FROM audit_events WHERE seq = 10`) }, 10, audit.ReasonHead},
	{"delete/all", func(e *env) { e.exec(`DELETE FROM audit_events`) }, 1, audit.ReasonHead},
	{"delete/middle and renumber the rest", func(e *env) {
		e.exec(`DELETE FROM audit_events WHERE seq = 5`)
		for s := 6; s <= 10; s++ {
			e.exec(`UPDATE audit_events SET seq = seq - 1 WHERE seq = $1`, s)
		}
	}, 5, audit.ReasonPrevMismatch},

	// Reordering.
	{"reorder/swap two", func(e *env) {
		e.exec(`UPDATE audit_events SET seq = -4 WHERE seq = 4`)
		e.exec(`UPDATE audit_events SET seq = 4 WHERE seq = 5`)
		e.exec(`UPDATE audit_events SET seq = 5 WHERE seq = -4`)
	}, 4, audit.ReasonPrevMismatch},
	{"reorder/swap first and last", func(e *env) {
		e.exec(`UPDATE audit_events SET seq = -1 WHERE seq = 1`)
		e.exec(`UPDATE audit_events SET seq = 1 WHERE seq = 10`)
		e.exec(`UPDATE audit_events SET seq = 10 WHERE seq = -1`)
	}, 1, audit.ReasonPrevMismatch},

	// Inserting forged events.
	{"forge/append with the right hash", func(e *env) {
		e.insert(forge(e.list(audit.Filter{})[9], "forged"))
	}, 11, audit.ReasonMACMismatch},
	{"forge/append and move the head", func(e *env) {
		f := forge(e.list(audit.Filter{})[9], "forged")
		e.insert(f)
		e.exec(`UPDATE audit_head SET seq = $1, hash = $2`, f.Seq, f.Hash)
	}, 11, audit.ReasonMACMismatch},
	{"forge/append a copy of a real event", func(e *env) {
		c := e.list(audit.Filter{})[2]
		c.Seq = 11
		e.insert(c)
	}, 11, audit.ReasonPrevMismatch},
	{"forge/replace an event and recompute every hash after it", func(e *env) {
		events := e.list(audit.Filter{})
		prev := events[3].Hash
		for i := 4; i < 10; i++ {
			ev := events[i]
			if i == 4 {
				ev.Target = "rewritten"
			}
			ev.PrevHash = prev
			ev.Hash = audit.ContentHash(&ev)
			prev = ev.Hash
			e.exec(`UPDATE audit_events SET target = $1, prev_hash = $2, hash = $3 WHERE seq = $4`, ev.Target, ev.PrevHash, ev.Hash, ev.Seq)
		}
		e.exec(`UPDATE audit_head SET hash = $1`, prev)
	}, 5, audit.ReasonMACMismatch},
	{"forge/insert in the middle, renumbering the rest", func(e *env) {
		events := e.list(audit.Filter{})
		for s := 10; s >= 5; s-- {
			e.exec(`UPDATE audit_events SET seq = seq + 1 WHERE seq = $1`, s)
		}
		e.insert(forge(events[3], "inserted"))
		e.exec(`UPDATE audit_head SET seq = 11`)
	}, 5, audit.ReasonMACMismatch},

	// The head.
	{"head/deleted", func(e *env) { e.exec(`DELETE FROM audit_head`) }, 11, audit.ReasonHead},
	{"head/reset to genesis", func(e *env) {
		e.exec(`UPDATE audit_head SET seq = 0, hash = $1, mac = ''`, audit.GenesisHash)
	}, 1, audit.ReasonHead},
	{"head/rewritten to hide deleted newest events", func(e *env) {
		events := e.list(audit.Filter{})
		e.exec(`DELETE FROM audit_events WHERE seq > 8`)
		e.exec(`UPDATE audit_head SET seq = 8, hash = $1`, events[7].Hash)
	}, 8, audit.ReasonHead},
	{"head/rewritten, then more events appended", func(e *env) {
		events := e.list(audit.Filter{})
		e.exec(`DELETE FROM audit_events WHERE seq > 8`)
		e.exec(`UPDATE audit_head SET seq = 8, hash = $1`, events[7].Hash)
		// The next append finds the head without the server's MAC and records that in the
		// chain, so the evidence outlives the new head's fresh MAC.
		if err := e.trail.RecordSync(e.ctx, event(50)); err != nil {
			e.t.Fatal(err)
		}
	}, 9, audit.ReasonHead},
}

// TestTamperingIsDetected runs every case on one chain per backend, restoring the chain
// with plain SQL after each.
func TestTamperingIsDetected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.fill(10)
		saved := e.list(audit.Filter{})
		head, err := e.st.AuditHead(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range tamperCases {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				wantOK(t, e.verify(), 10)
				c.tamper(e)
				wantBroken(t, e.verify(), c.seq, c.reason)
				e.exec(`DELETE FROM audit_events`)
				for _, ev := range saved {
					e.insert(ev)
				}
				e.exec(`DELETE FROM audit_head`)
				e.exec(`INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, $1, $2, $3)`, head.Seq, head.Hash, head.MAC)
				wantOK(t, e.verify(), 10)
			})
		}
	})
}

// TestTamperEvidenceSurvivesAppends: after the head was rewritten, the event the appender
// records about it is itself chained and MAC'd, so it cannot be removed either.
func TestTamperEvidenceSurvivesAppends(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.fill(4)
		e.exec(`DELETE FROM audit_events WHERE seq = 4`)
		ev := e.list(audit.Filter{})[2]
		e.exec(`UPDATE audit_head SET seq = 3, hash = $1`, ev.Hash)
		e.fill(3)
		got := e.list(audit.Filter{Action: "audit.*"})
		if len(got) != 1 || got[0].Seq != 4 || got[0].Result != sesame.AuditError || !strings.Contains(got[0].Detail, "rewritten") {
			t.Fatalf("tamper evidence: %+v", got)
		}
		wantBroken(t, e.verify(), 4, audit.ReasonHead)
		e.exec(`DELETE FROM audit_events WHERE seq = 4`)
		wantBroken(t, e.verify(), 4, audit.ReasonMissing)
	})
}

// TestConcurrentTrailsKeepOneChain runs two trails on two stores over one database (two
// replicas), each recording from many goroutines at once, both ways.
func TestConcurrentTrailsKeepOneChain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		st2, err := e.b.open(e.ctx, e.loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st2.Close() })
		trails := []*audit.Log{e.trail, e.newTrail(st2, audit.Config{MaxBatch: 7})}
		const goroutines, each = 8, 40
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr := trails[g%2]
				for i := range each {
					ev := event(g*each + i)
					if i%4 == 0 {
						if err := tr.RecordSync(e.ctx, ev); err != nil {
							errs <- err
						}
					} else {
						tr.Record(e.ctx, ev)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, tr := range trails {
			if err := tr.Close(e.ctx); err != nil {
				t.Fatal(err)
			}
			if s := tr.Stats(); s.Dropped != 0 {
				t.Fatalf("dropped %d", s.Dropped)
			}
		}
		wantOK(t, e.verify(), goroutines*each)
		targets := map[string]bool{}
		for _, ev := range e.list(audit.Filter{}) {
			targets[ev.Target] = true
		}
		if len(targets) != goroutines*each {
			t.Fatalf("%d distinct events, want %d", len(targets), goroutines*each)
		}
	})
}

// TestRecordSyncReturnsAfterCommit: once RecordSync returns, the event is in the database,
// as another connection sees it, even when Record's events queue up with it.
func TestRecordSyncReturnsAfterCommit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for i := range 30 {
			for j := range 20 {
				e.trail.Record(e.ctx, event(j))
			}
			ev := event(i)
			ev.Target = fmt.Sprintf("sync-%d", i)
			if err := e.trail.RecordSync(e.ctx, ev); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM audit_events WHERE target = $1`, ev.Target).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("RecordSync returned before event %q was committed", ev.Target)
			}
		}
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		wantOK(t, e.verify(), 30*21)
	})
}

// TestRecordDoesNotWaitForTheDatabase holds the lock every append needs: Record still
// returns at once (the test would hang otherwise), RecordSync waits, and everything is
// written once the lock is released.
func TestRecordDoesNotWaitForTheDatabase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.fill(1)
		unlock := e.b.lock(t, e.db)
		for i := range 500 {
			e.trail.Record(e.ctx, event(i))
		}
		if s := e.trail.Stats(); s.Committed != 1 || s.Dropped != 0 {
			t.Fatalf("while the database is locked: %+v", s)
		}
		short, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
		err := e.trail.RecordSync(short, event(1000))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("RecordSync while the database is locked: %v, want a deadline error", err)
		}
		unlock()
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		// The event whose RecordSync gave up was still written: "may still be recorded".
		if s := e.trail.Stats(); s.Committed != 502 || s.Dropped != 0 {
			t.Fatalf("after unlock: %+v", s)
		}
		wantOK(t, e.verify(), 502)
	})
}

// TestRecordDropsWhenFullAndCounts: with a tiny buffer and the database locked, Record waits
// BlockFor, then drops and counts; nothing is lost without being counted, and the count is
// written into the chain as an audit.gap event.
func TestRecordDropsWhenFullAndCounts(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b, audit.Config{Buffer: 1, BlockFor: time.Millisecond, Linger: -1})
			unlock := e.b.lock(t, e.db)
			for i := range 20 {
				e.trail.Record(e.ctx, event(i))
			}
			unlock()
			if err := e.trail.Close(e.ctx); err != nil {
				t.Fatal(err)
			}
			s := e.trail.Stats()
			// Drops that straddle a commit are written as more than one gap event; every
			// drop is in one of them.
			if s.Dropped == 0 || s.Committed+s.Dropped != 20 || s.GapEvents < 1 || int64(e.count()) != s.Committed+s.GapEvents {
				t.Fatalf("stats %+v with %d events stored", s, e.count())
			}
			// The loss is in the chain: verification reports the gaps and their size.
			res := e.verify()
			wantOK(t, res, s.Committed+s.GapEvents)
			if res.Lost != s.Dropped || int64(len(res.Gaps)) != s.GapEvents {
				t.Fatalf("verify reports lost %d in %v, want %d", res.Lost, res.Gaps, s.Dropped)
			}
		})
	}
}

func TestCloseFlushesAndIsFinal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for i := range 700 {
			e.trail.Record(e.ctx, event(i))
		}
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.count(); n != 700 {
			t.Fatalf("%d events after Close, want 700", n)
		}
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := e.trail.RecordSync(e.ctx, event(1)); !errors.Is(err, audit.ErrClosed) {
			t.Fatalf("RecordSync after Close: %v", err)
		}
		e.trail.Record(e.ctx, event(1))
		if s := e.trail.Stats(); s.Dropped != 1 || s.Committed != 700 {
			t.Fatalf("Record after Close: %+v", s)
		}
	})
}

// TestCloseGivesUpWhenTheStoreIsStuck: Close waits for the flush only as long as its context
// allows, then reports what was lost.
func TestCloseGivesUpWhenTheStoreIsStuck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		unlock := e.b.lock(t, e.db)
		defer unlock()
		for i := range 3 {
			e.trail.Record(e.ctx, event(i))
		}
		ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
		defer cancel()
		err := e.trail.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "not written") {
			t.Fatalf("Close on a stuck store: %v", err)
		}
		if s := e.trail.Stats(); s.Dropped != 3 || s.Committed != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestQueryPagesAndFollows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.fill(9) // actions cycle put, proxy, get
		p, err := e.trail.Query(e.ctx, audit.Filter{Limit: 4}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != 4 || !p.More || p.Follow != 4 {
			t.Fatalf("first page: %d events, more %v, follow %d", len(p.Events), p.More, p.Follow)
		}
		p, _ = e.trail.Query(e.ctx, audit.Filter{Limit: 4, AfterSeq: 8}, 0)
		if len(p.Events) != 1 || p.More || p.Follow != 9 {
			t.Fatalf("last page: %+v", p)
		}
		// A filter that matches little still moves the follow point to the head, so that
		// following does not scan the same events again.
		p, _ = e.trail.Query(e.ctx, audit.Filter{Action: "credential.put", AfterSeq: 5}, 0)
		if len(p.Events) != 1 || p.Events[0].Seq != 7 || p.Follow != 9 {
			t.Fatalf("filtered page: %+v", p)
		}
		// Newest first.
		p, _ = e.trail.Query(e.ctx, audit.Filter{Desc: true, Limit: 2}, 0)
		if len(p.Events) != 2 || p.Events[0].Seq != 9 || !p.More || p.Follow != 9 {
			t.Fatalf("descending page: %+v", p)
		}

		// Waiting: a query with nothing to return yet wakes when a matching event commits.
		got := make(chan audit.Page, 1)
		go func() {
			p, err := e.trail.Query(e.ctx, audit.Filter{AfterSeq: 9, Action: "wanted"}, time.Minute)
			if err != nil {
				t.Error(err)
			}
			got <- p
		}()
		e.trail.Record(e.ctx, audit.Event{Action: "unwanted"})
		ev := event(0)
		ev.Action = "wanted"
		e.trail.Record(e.ctx, ev)
		select {
		case p := <-got:
			if len(p.Events) != 1 || p.Events[0].Action != "wanted" || p.Events[0].Seq != 11 {
				t.Fatalf("woke with %+v", p)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the waiting query did not wake")
		}
		// And it returns empty when the wait is over.
		p, _ = e.trail.Query(e.ctx, audit.Filter{AfterSeq: 11}, time.Millisecond)
		if len(p.Events) != 0 || p.Follow != 11 {
			t.Fatalf("empty wait: %+v", p)
		}
	})
}

func TestExportJSONLines(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for i := range 2500 {
			e.trail.Record(e.ctx, event(i))
		}
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		flushes := 0
		n, err := e.trail.Export(e.ctx, &buf, audit.Filter{Limit: 3, Desc: true}, func() { flushes++ })
		if err != nil || n != 2500 || flushes != 3 {
			t.Fatalf("export: %d events, %d flushes, %v", n, flushes, err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 2500 {
			t.Fatalf("%d lines", len(lines))
		}
		stored := e.list(audit.Filter{})
		for i, line := range lines {
			var ev audit.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if !reflect.DeepEqual(ev, stored[i]) {
				t.Fatalf("line %d round-trips to %+v, stored %+v", i, ev, stored[i])
			}
			// The export carries everything needed to check the hashes offline.
			if audit.ContentHash(&ev) != ev.Hash {
				t.Fatalf("line %d: exported event does not match its hash", i)
			}
		}
		buf.Reset()
		if n, _ := e.trail.Export(e.ctx, &buf, audit.Filter{Action: "credential.put", AfterSeq: 2400}, nil); n != 34 {
			t.Fatalf("filtered export: %d events", n)
		}
	})
}

const canary = "CANARY-a9f1-audit-s3cr3t"

// TestNoSecretInEvents: a value that identifies a secret goes in only as an HMAC, and
// nothing in the stored trail holds the value in any encoding.
func TestNoSecretInEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		h := e.trail.HMAC(canary)
		if !strings.HasPrefix(h, "hmac:") || len(h) != 5+64 || strings.Contains(h, canary) {
			t.Fatalf("HMAC = %q", h)
		}
		if e.trail.HMAC(canary) != h || e.trail.HMAC(canary+"x") == h {
			t.Fatal("HMAC is not a deterministic function of the value")
		}
		other, err := audit.New(audit.Config{Store: e.st, Secret: sesame.NewSecret([]byte("another server"))})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close(e.ctx)
		if other.HMAC(canary) == h {
			t.Fatal("HMAC does not depend on the server secret")
		}
		ev := event(1)
		ev.Action, ev.Result, ev.Code, ev.Target = "auth.failed", sesame.AuditDenied, "unauthenticated", e.trail.HMAC(canary)
		if err := e.trail.RecordSync(e.ctx, ev); err != nil {
			t.Fatal(err)
		}
		e.trail.RecordCall(e.ctx, gateway.CallRecord{Workspace: "default", Kind: "proxy", Target: "svc", Method: "GET", Host: "api.example.com"})
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		var dump bytes.Buffer
		for _, table := range []string{"audit_events", "audit_head"} {
			rows, err := e.db.QueryContext(e.ctx, `SELECT * FROM `+table)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&dump, "%v\n", vals)
				for _, v := range vals {
					if b, ok := v.([]byte); ok {
						dump.Write(b)
					}
				}
			}
			rows.Close()
		}
		if !strings.Contains(dump.String(), "auth.failed") {
			t.Fatalf("the dump misses the events: %s", dump.String())
		}
		for _, form := range []string{canary, hex.EncodeToString([]byte(canary)), base64.StdEncoding.EncodeToString([]byte(canary))} {
			if strings.Contains(strings.ToLower(dump.String()), strings.ToLower(form)) {
				t.Fatalf("the canary appears in the audit tables as %q", form)
			}
		}
		if strings.Contains(string(testSecret), h) || strings.Contains(dump.String(), string(testSecret)) {
			t.Fatal("the server secret appears in the trail")
		}
	})
}

func TestRecordCallMapsTheCall(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := sesame.WithPrincipal(e.ctx, sesame.Principal{Kind: sesame.PrincipalApp, UserID: "u1", KeyID: "k1", AppID: "com.example.app"})
		ctx = audit.WithRequest(ctx, audit.Request{ID: "req-42", Source: "198.51.100.9"})
		e.trail.RecordCall(ctx, gateway.CallRecord{
			Time: t0, Workspace: "acme", UserID: "u1", KeyID: "k1", Kind: "function", Target: "weather",
			Connection: "owm", Method: "GET", Host: "api.example.com", Status: 503, Latency: 1500 * time.Microsecond,
			Error: "upstream_error",
		})
		e.trail.RecordCall(e.ctx, gateway.CallRecord{Time: t0, Workspace: "acme", UserID: "u2", Kind: "proxy", Target: "owm",
			Connection: "owm", Method: "POST", Host: "10.0.0.1", Error: "forbidden_address"})
		e.trail.RecordCall(e.ctx, gateway.CallRecord{Time: t0, Workspace: "acme", Kind: "test", Target: "owm", Connection: "owm", Status: 200})
		if err := e.trail.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		got := e.list(audit.Filter{})
		if len(got) != 3 {
			t.Fatalf("%d events", len(got))
		}
		want := audit.Event{Seq: 1, Version: 1, Time: t0, Workspace: "acme", Principal: sesame.PrincipalApp, UserID: "u1", KeyID: "k1",
			AppID: "com.example.app", Action: "outbound.function", Target: "weather", Result: sesame.AuditError, Code: "upstream_error",
			UpstreamStatus: 503, LatencyMicros: 1500, Source: "198.51.100.9", RequestID: "req-42", Detail: "connection owm: GET api.example.com"}
		g := got[0]
		g.PrevHash, g.Hash, g.MAC = "", "", ""
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("function call:\n got %+v\nwant %+v", g, want)
		}
		if g := got[1]; g.Action != "outbound.proxy" || g.Result != sesame.AuditDenied || g.Principal != sesame.PrincipalUser || g.UserID != "u2" || g.Detail != "POST 10.0.0.1" {
			t.Fatalf("proxy call: %+v", g)
		}
		if g := got[2]; g.Action != "outbound.test" || g.Result != sesame.AuditOK || g.Principal != "" || g.UpstreamStatus != 200 {
			t.Fatalf("test call: %+v", g)
		}
	})
}

// TestAwkwardValuesAreStoredAndVerify: NUL bytes (which PostgreSQL text refuses), invalid
// UTF-8 and oversized fields are cleaned before hashing, so the batch is not poisoned and
// the chain verifies.
func TestAwkwardValuesAreStoredAndVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ev := event(1)
		ev.Target = "a\x00b"
		ev.Detail = "bad \xff\xfe utf8"
		ev.RequestID = strings.Repeat("é", 2000)
		ev.Result = ""
		if err := e.trail.RecordSync(e.ctx, ev); err != nil {
			t.Fatal(err)
		}
		got := e.list(audit.Filter{})[0]
		if got.Target != "a\uFFFDb" || got.Detail != "bad \uFFFD utf8" || len(got.RequestID) != 1024 || got.Result != sesame.AuditOK {
			t.Fatalf("stored %q %q %d %q", got.Target, got.Detail, len(got.RequestID), got.Result)
		}
		wantOK(t, e.verify(), 1)
	})
}

// TestRecordSyncGroupCommits: changes waiting for their events share one append (one
// transaction, on SQLite one fsync) instead of taking turns. The append lock is held while
// the waiters queue up; once it is released, the first waiter's append goes through and
// every other waiter is in the next one. Each RecordSync returns only after its own event
// is committed.
func TestRecordSyncGroupCommits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const waiters = 40
		unlock := e.b.lock(t, e.db)
		errs := make(chan error, waiters)
		for i := range waiters {
			go func() {
				ev := event(i)
				ev.Target = fmt.Sprintf("sync-%d", i)
				if err := e.trail.RecordSync(e.ctx, ev); err != nil {
					errs <- err
					return
				}
				var n int
				err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM audit_events WHERE target = $1`, ev.Target).Scan(&n)
				if err == nil && n != 1 {
					err = fmt.Errorf("RecordSync returned before event %q was committed", ev.Target)
				}
				errs <- err
			}()
		}
		// Some events are with the writer, stuck on the lock; the others wait in the queue.
		for s := e.trail.Stats(); s.Queued+int(s.Writing) < waiters; s = e.trail.Stats() {
			if e.ctx.Err() != nil {
				t.Fatal("the waiters never queued")
			}
			time.Sleep(time.Millisecond)
		}
		unlock()
		for range waiters {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if s := e.trail.Stats(); s.Committed != waiters || s.Appends > 2 {
			t.Fatalf("%d concurrent RecordSync calls: %+v, want them committed in at most 2 appends", waiters, s)
		}
		wantOK(t, e.verify(), waiters)
	})
}
