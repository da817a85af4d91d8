package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sesamehq/sesame"
)

// Classify recognises the store's retryable faults, whichever the backend, and wraps err in
// the sentinel clients see: sesame.ErrStorageFull when the disk is full (SQLITE_FULL,
// ENOSPC, PostgreSQL's disk_full), sesame.ErrStoreUnavailable when the database cannot be
// reached or is going away (refused, reset or closed connections, PostgreSQL classes 08 and
// 57P01-57P03, a connect that timed out, SQLite still busy after its busy timeout). Any
// other error, and nil, is returned unchanged, so callers can apply it to every error.
//
// It is the one place that knows what a store outage looks like; the HTTP layer maps the
// sentinels to 503 with Retry-After. Applied to an error of unknown origin (the HTTP
// layer's safety net), it recognises only errors that can come from nothing but a
// database driver: a network error from an upstream call is not a store outage. The
// store itself applies the broader rules (classify) to what its driver returned.
func Classify(err error) error { return classify(err, false) }

// classify is Classify; fromStore says err certainly came from the database driver, so
// that plain network and I/O errors count as store faults too.
func classify(err error, fromStore bool) error {
	if err == nil || errors.Is(err, sesame.ErrStoreUnavailable) || errors.Is(err, sesame.ErrStorageFull) {
		return err
	}
	if f := fault(err, fromStore); f != nil {
		return fmt.Errorf("%w: %w", f, err)
	}
	return err
}

func fault(err error, fromStore bool) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53100": // disk_full
			return sesame.ErrStorageFull
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin/crash shutdown, cannot connect now
			pe.Code == "53300": // too_many_connections
			return sesame.ErrStoreUnavailable
		}
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_FULL:
			return sesame.ErrStorageFull
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return sesame.ErrStoreUnavailable
		}
		return nil
	}
	// Errors only a database driver or database/sql returns. Every error pgconn makes about
	// its connection (I/O, timeouts, closed) answers SafeToRetry, whatever its value.
	var ce *pgconn.ConnectError
	var pgconnErr interface{ SafeToRetry() bool }
	switch {
	case errors.As(err, &ce), errors.As(err, &pgconnErr),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone):
		return sesame.ErrStoreUnavailable
	}
	if strings.Contains(err.Error(), "sql: database is closed") {
		return sesame.ErrStoreUnavailable
	}
	if !fromStore {
		return nil
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return sesame.ErrStorageFull
	case errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "conn closed"):
		return sesame.ErrStoreUnavailable
	}
	return nil
}

// probeFull checks, after a write found the disk full, whether writes work again: it
// commits a transaction that writes (and removes) a probe row a few pages long. Success
// clears the flag.
func (s *Store) probeFull(ctx context.Context) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value, sealed) VALUES ('_write_probe', $1, false)`,
			make([]byte, 64<<10)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE name = '_write_probe'`)
		return err
	})
	if err != nil {
		return err
	}
	return nil
}
