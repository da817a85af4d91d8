package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/sesamehq/sesame"
)

// groupCommit makes SQLite's durable writes share their commits. SQLite has one writer at a
// time, and every commit on the write connection is synced to disk (synchronous=FULL), so a
// commit per write would be a sequence of fsyncs. Instead a write that finds another one
// in flight queues; the next writer takes everything queued (up to maxGroup) and runs it in
// one transaction, each write inside its own savepoint, then commits once: one fsync for
// the group. Every caller gets only its own outcome, and only after the commit that holds
// its write is durable:
//   - a write that fails is rolled back to its savepoint and gets its error; the others
//     commit without it (as if it had run alone and failed);
//   - if the commit fails, every write in the group gets the error (none is acknowledged);
//   - writes run one after another in the transaction, so each sees the ones before it,
//     exactly as if they had committed in that order.
//
// A write alone runs as a plain transaction, as it would without grouping.
type groupCommit struct {
	mu      sync.Mutex
	pending []*groupWrite
	writing bool
	// queued counts writes waiting or in the batch being written; commits counts
	// transactions committed through the group (tests use both).
	queued  atomic.Int64
	commits atomic.Int64
}

type groupWrite struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error // receives the outcome, or errYouWrite
}

// maxGroup bounds the writes of one transaction.
const maxGroup = 256

// errYouWrite hands the writer's role to a waiting caller; it never leaves this file.
var errYouWrite = errors.New("store: take over the group commit")

// txGroup runs fn in a transaction shared with the writes queued at the same time; see
// groupCommit.
func (s *Store) txGroup(ctx context.Context, fn func(*sql.Tx) error) error {
	g := s.group
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.queued.Add(1)
	defer g.queued.Add(-1)
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if g.writing {
		g.mu.Unlock()
		// Waiting does not watch ctx: a write handed the writer's role must take it, and
		// one in a batch is committed or rolled back with it.
		if err := <-w.done; err != errYouWrite {
			return err
		}
		g.mu.Lock()
	}
	g.writing = true
	// Let writes that are ready join this group before it is taken; alone, this returns
	// at once.
	g.mu.Unlock()
	runtime.Gosched()
	g.mu.Lock()
	n := min(len(g.pending), maxGroup)
	batch := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.mu.Unlock()

	errs := s.commitGroup(batch)
	var mine error
	for i, b := range batch {
		if b == w {
			mine = errs[i]
			continue
		}
		b.done <- errs[i]
	}

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].done <- errYouWrite
	} else {
		g.writing = false
		g.pending = nil
	}
	g.mu.Unlock()
	return mine
}

// commitGroup runs batch in one transaction and returns each write's outcome.
func (s *Store) commitGroup(batch []*groupWrite) []error {
	errs := make([]error, len(batch))
	if len(batch) == 1 {
		errs[0] = s.txOne(batch[0].ctx, batch[0].fn)
		if errs[0] == nil {
			s.group.commits.Add(1)
		}
		return errs
	}
	// The transaction holds other callers' writes: it must not end because one left.
	ctx := context.WithoutCancel(batch[0].ctx)
	fail := func(err error, which func(i int) bool) []error {
		for i := range batch {
			if which(i) {
				errs[i] = err
			}
		}
		return errs
	}
	all := func(int) bool { return true }
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fail(s.wrap(fmt.Errorf("store: begin: %w", err)), all)
	}
	ok := make([]bool, len(batch))
	for i, w := range batch {
		if err := w.ctx.Err(); err != nil {
			errs[i] = err // its caller is gone: it does not run, as a lone write would not
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT grouped`); err != nil {
			_ = tx.Rollback()
			return fail(s.wrap(fmt.Errorf("store: savepoint: %w", err)), all)
		}
		err := runGrouped(ctx, w, tx)
		if err == nil {
			if _, err := tx.ExecContext(ctx, `RELEASE grouped`); err != nil {
				_ = tx.Rollback()
				return fail(s.wrap(fmt.Errorf("store: release savepoint: %w", err)), all)
			}
			ok[i] = true
			continue
		}
		errs[i] = s.wrap(err)
		// Undo this write only. Some errors (an interrupted statement, a full disk) end
		// SQLite's whole transaction; then nothing in the group commits, and the others are
		// told so with a retryable error.
		_, rerr := tx.ExecContext(ctx, `ROLLBACK TO grouped`)
		if rerr == nil {
			_, rerr = tx.ExecContext(ctx, `RELEASE grouped`)
		}
		if rerr != nil {
			_ = tx.Rollback()
			other := fmt.Errorf("store: a write committed in the same group failed and ended the transaction (%v): %w", err, sesame.ErrStoreUnavailable)
			if errors.Is(errs[i], sesame.ErrStorageFull) {
				other = fmt.Errorf("store: a write committed in the same group found the disk full: %w", sesame.ErrStorageFull)
			}
			return fail(other, func(j int) bool { return j != i && (ok[j] || j > i) && errs[j] == nil })
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(s.wrap(fmt.Errorf("store: commit: %w", err)), func(i int) bool { return ok[i] })
	}
	s.group.commits.Add(1)
	s.full.Store(false)
	for i, w := range batch {
		if ok[i] {
			for _, in := range sesame.AuditIntentsFrom(w.ctx) {
				if in != nil {
					in.MarkWritten()
				}
			}
		}
	}
	return errs
}

// runGrouped runs one write of a group and writes its audit intents (see txOne), turning a
// panic into an error so that the other writes and the writer's role survive it.
func runGrouped(ctx context.Context, w *groupWrite, tx *sql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: write panicked: %v", r)
		}
	}()
	if err := w.fn(tx); err != nil {
		return err
	}
	for _, in := range sesame.AuditIntentsFrom(w.ctx) {
		if in == nil {
			continue
		}
		if err := writeOutbox(ctx, tx, in.ID, in.Event); err != nil {
			return fmt.Errorf("store: audit outbox: %w", err)
		}
	}
	return nil
}
