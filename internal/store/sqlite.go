package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sesamehq/sesame"
)

// OpenSQLite opens (creating if needed) the SQLite database at path in WAL mode with
// foreign keys on, and applies migrations.
//
// Every commit is durable: the write connection runs with synchronous=FULL, so a commit
// returns only after the WAL is synced to disk, and concurrent writes share commits (see
// groupCommit) so that many writes cost one fsync.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	return openSQLite(ctx, path, true)
}

func openSQLite(ctx context.Context, path string, migrate bool) (*Store, error) {
	dsn := func(sync string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "foreign_keys(1)", "busy_timeout(10000)", "synchronous(" + sync + ")"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return "file:" + path + "?" + q.Encode()
	}
	// Readers commit nothing; the setting only matters for the connection that writes.
	read, err := sql.Open("sqlite", dsn("NORMAL"))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	write, err := sql.Open("sqlite", dsn("FULL"))
	if err != nil {
		read.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	read.SetMaxOpenConns(8)
	// Keep the readers open: database/sql keeps only 2 idle connections by default, and
	// reopening one costs a file open and every cached statement.
	read.SetMaxIdleConns(8)
	s := &Store{read: read, reads: newStmtCache(read), write: write, dialect: sqliteDialect{}, group: &groupCommit{}}
	if !migrate {
		return s, nil
	}
	if err := s.migrate(ctx, ""); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

type sqliteDialect struct{}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) classify(err error) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sesame.ErrAlreadyExists
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return sesame.ErrNotFound
	}
	return nil
}
