package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/sesamehq/sesame"
)

// migrationLock is a transaction-scoped advisory lock so that replicas starting together
// apply each migration once.
const migrationLock = `SELECT pg_advisory_xact_lock(7367356101)`

// OpenPostgres connects to PostgreSQL at url (a postgres:// URL or key=value DSN) and
// applies migrations.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to postgres: %w", err)
	}
	s := &Store{read: db, reads: newStmtCache(db), write: db, dialect: postgresDialect{}}
	if err := s.migrate(ctx, migrationLock); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

type postgresDialect struct{}

func (postgresDialect) name() string { return "postgres" }

func (postgresDialect) classify(err error) error {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code {
	case "23505": // unique_violation
		return sesame.ErrAlreadyExists
	case "23503": // foreign_key_violation
		return sesame.ErrNotFound
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return sesame.ErrConflict
	}
	return nil
}
