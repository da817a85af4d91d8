package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver

	"github.com/sesamehq/sesame"
)

// migrationLock is a transaction-scoped advisory lock so that replicas starting together
// apply each migration once.
const migrationLock = `SELECT pg_advisory_xact_lock(7367356101)`

// connectTimeout bounds a connection attempt unless the URL sets connect_timeout.
const connectTimeout = 5 * time.Second

// OpenPostgres connects to PostgreSQL at url (a postgres:// URL or key=value DSN) and
// applies migrations.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	return openPostgres(ctx, url, true)
}

func openPostgres(ctx context.Context, url string, migrate bool) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	// An unreachable server (a dropped route, a host that does not answer) must turn into
	// store_unavailable in seconds, not hang calls; connect_timeout in the URL overrides.
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to postgres: %w", err)
	}
	s := &Store{read: db, reads: newStmtCache(db), write: db, dialect: postgresDialect{}}
	if !migrate {
		return s, nil
	}
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

// Notify tells every replica listening on channel that something changed. On SQLite,
// which has a single server process, it does nothing.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if s.dialect.name() != "postgres" {
		return nil
	}
	_, err := s.write.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return err
}

// Listen calls fn with the payload of every notification on channel until ctx ends, and
// with "" once the LISTEN is in place (the first time, and after every reconnect) and when
// the connection is lost (notifications may have been missed: the listener should drop all
// cached state). On SQLite it returns at once.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if s.dialect.name() != "postgres" {
		return nil
	}
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return nil
		}
		fn("") // reconnecting: anything may have changed meanwhile
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		_ = err
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string)) error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		pc := driverConn.(*stdlib.Conn).Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
		defer pc.Exec(context.WithoutCancel(ctx), "UNLISTEN *")
		// Listening from here on: whatever changed before (at start, or while the previous
		// connection was gone) was not heard, so the listener drops what it cached.
		fn("")
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			fn(n.Payload)
		}
	})
}
