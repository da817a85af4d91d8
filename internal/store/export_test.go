package store

import (
	"context"
	"database/sql"
)

// ClassifyDriverError is classify for an error known to come from the database driver.
var ClassifyDriverError = func(err error) error { return classify(err, true) }

// GroupQueued returns how many writes wait for, or are in, a group commit (SQLite).
func (s *Store) GroupQueued() int64 { return s.group.queued.Load() }

// GroupCommits returns how many transactions the group commit has committed (SQLite).
func (s *Store) GroupCommits() int64 { return s.group.commits.Load() }

// WriteSynchronous returns PRAGMA synchronous of the connection that writes (SQLite: 2 is
// FULL, 1 NORMAL).
func (s *Store) WriteSynchronous(ctx context.Context) (int, error) {
	var n int
	err := s.write.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n)
	return n, err
}

// TxForTest runs fn in a write transaction, as every write of the store does.
func (s *Store) TxForTest(ctx context.Context, fn func(*sql.Tx) error) error { return s.tx(ctx, fn) }
