package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
)

// sqliteEnv opens a fresh SQLite store (group commit is SQLite's; PostgreSQL's server
// groups its WAL flushes itself).
func sqliteEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b := backends[0]
	loc := filepath.Join(t.TempDir(), "x.db")
	s, err := store.OpenSQLite(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{ctx: ctx, b: b, loc: loc, s: s}
}

// TestSQLiteWritesAreDurable: the connection that commits syncs every commit to disk
// (synchronous=FULL), so an acknowledged write survives a power loss, not only a crash of
// the process.
func TestSQLiteWritesAreDurable(t *testing.T) {
	e := sqliteEnv(t)
	n, err := e.s.WriteSynchronous(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("PRAGMA synchronous on the write connection is %d, want 2 (FULL)", n)
	}
}

// TestGroupCommit: concurrent writes share one commit, and each writer gets its own
// outcome. While another connection holds SQLite's write lock, 30 credential writes queue
// up, a third of them bound to fail (an injected trigger failure on their secrets, after
// their credential row is written). Once the lock goes, the good writes all commit, in at
// most two transactions (the first writer's, then everyone else's), and the failed writes
// leave nothing behind: not their credential rows, and not the others' either.
func TestGroupCommit(t *testing.T) {
	e := sqliteEnv(t)
	createWorkspace(t, e, "good")
	createWorkspace(t, e, "bad")
	e.b.failSecretInserts(t, e.raw(t), "bad")
	before := e.s.GroupCommits()

	lock, err := e.raw(t).Conn(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(e.ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}

	const writers = 30
	type outcome struct {
		ws  string
		err error
	}
	out := make(chan outcome, writers)
	for i := range writers {
		ws := "good"
		if i%3 == 0 {
			ws = "bad"
		}
		go func() {
			rec := record(ws, fmt.Sprintf("k%d", i), secret("token", "v", at(1)))
			_, err := e.s.PutCredential(e.ctx, rec, 0)
			out <- outcome{ws, err}
		}()
	}
	for e.s.GroupQueued() < writers {
		if e.ctx.Err() != nil {
			t.Fatal("the writes never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := lock.ExecContext(e.ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	for range writers {
		o := <-out
		switch {
		case o.ws == "good" && o.err != nil:
			t.Errorf("a good write failed with the bad ones: %v", o.err)
		case o.ws == "bad" && o.err == nil:
			t.Error("a write whose secret insert failed succeeded")
		case o.ws == "bad" && (errors.Is(o.err, sesame.ErrStoreUnavailable) || errors.Is(o.err, sesame.ErrStorageFull)):
			t.Errorf("a failed write got another write's error: %v", o.err)
		}
	}
	if n := e.count(t, `SELECT COUNT(*) FROM credentials WHERE workspace = 'good'`); n != 20 {
		t.Errorf("%d good credentials stored, want 20", n)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM credential_secrets WHERE workspace = 'good'`); n != 20 {
		t.Errorf("%d good secrets stored, want 20", n)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM credentials WHERE workspace = 'bad'`); n != 0 {
		t.Errorf("failed writes left %d credential rows", n)
	}
	if c := e.s.GroupCommits() - before; c > 2 {
		t.Errorf("%d concurrent writes took %d commits, want at most 2", writers, c)
	}
	// Alone, a write still commits on its own.
	put(t, e, record("good", "alone", secret("token", "v", at(1))), 0)
	get(t, e, "good", "alone")
}

// TestGroupCommitAuditIntents: each write of a group writes its own request's audit
// outbox row, and only the writes that commit do (PRODUCT.md §4.8).
func TestGroupCommitAuditIntents(t *testing.T) {
	e := sqliteEnv(t)
	createWorkspace(t, e, "good")
	createWorkspace(t, e, "bad")
	e.b.failSecretInserts(t, e.raw(t), "bad")
	lock, err := e.raw(t).Conn(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(e.ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	const writers = 10
	intents := make([]*sesame.AuditIntent, writers)
	done := make(chan error, writers)
	for i := range writers {
		ws := "good"
		if i%2 == 1 {
			ws = "bad"
		}
		intents[i] = &sesame.AuditIntent{ID: fmt.Sprintf("intent-%d", i), Event: sesame.AuditEvent{Time: at(1), Action: "credential.put", Workspace: ws}}
		go func() {
			ctx := sesame.WithAuditIntent(e.ctx, intents[i])
			_, err := e.s.PutCredential(ctx, record(ws, fmt.Sprintf("k%d", i), secret("token", "v", at(1))), 0)
			done <- err
		}()
	}
	for e.s.GroupQueued() < writers {
		if e.ctx.Err() != nil {
			t.Fatal("the writes never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := lock.ExecContext(e.ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	for range writers {
		<-done
	}
	for i, in := range intents {
		n := e.count(t, `SELECT COUNT(*) FROM audit_outbox WHERE id = $1`, in.ID)
		want := 1 - i%2
		if n != want || in.Written() != (want == 1) {
			t.Errorf("intent %d: %d outbox rows, written %v; want %d", i, n, in.Written(), want)
		}
	}
}

// TestGroupCommitInterruptedWrite: a write whose caller goes away while its statement runs
// may be interrupted, and SQLite may end the whole shared transaction for it. Whatever
// happens to the group (the cancellation may also come before the write runs, or after it
// is done), no write is acknowledged unless its row is stored, no row is stored for a write
// that was not acknowledged, and the others fail, if at all, with a retryable error.
func TestGroupCommitInterruptedWrite(t *testing.T) {
	e := sqliteEnv(t)
	if _, err := e.raw(t).ExecContext(e.ctx, `CREATE TABLE grouped_test (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		lock, err := e.raw(t).Conn(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lock.ExecContext(e.ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		const writers = 12
		errs := make([]error, writers)
		done := make(chan struct{}, writers)
		for i := range writers {
			id := round*100 + i
			ctx := e.ctx
			if i == writers/2 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(e.ctx)
				defer cancel()
				go func() {
					// Cancel once this write's slow statement runs (or has been skipped).
					for e.s.GroupQueued() > 0 {
						time.Sleep(time.Millisecond)
						if e.s.GroupQueued() < writers {
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
					cancel()
				}()
			}
			go func() {
				defer func() { done <- struct{}{} }()
				errs[i] = e.s.TxForTest(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO grouped_test (id) VALUES ($1)`, id); err != nil {
						return err
					}
					if i == writers/2 {
						// Slow enough to be interrupted by the cancellation.
						_, err := tx.ExecContext(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) SELECT COUNT(*) FROM c`)
						return err
					}
					return nil
				})
			}()
		}
		for e.s.GroupQueued() < writers {
			time.Sleep(time.Millisecond)
		}
		if _, err := lock.ExecContext(e.ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
		lock.Close()
		for range writers {
			<-done
		}
		for i, err := range errs {
			n := e.count(t, `SELECT COUNT(*) FROM grouped_test WHERE id = $1`, round*100+i)
			if (err == nil) != (n == 1) {
				t.Fatalf("round %d, write %d: error %v, %d rows stored", round, i, err, n)
			}
			if err != nil && i != writers/2 && !errors.Is(err, sesame.ErrStoreUnavailable) {
				t.Fatalf("round %d, write %d failed with another's interruption, not retryable: %v", round, i, err)
			}
		}
	}
}
