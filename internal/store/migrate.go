package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The migrations are written once, in PostgreSQL's types; SQLite reads them through
// sqliteTypes. Both dialects share every other piece of the SQL.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// sqliteTypes maps the PostgreSQL column types the migrations use to SQLite's.
var sqliteTypes = strings.NewReplacer("BYTEA", "BLOB", "BIGINT", "INTEGER", "BOOLEAN", "INTEGER")

// migrate applies, in order and each in its own transaction, the embedded migrations that
// the database has not recorded yet. lock, if not empty, runs first in each transaction to
// keep concurrent replicas from migrating twice.
func (s *Store) migrate(ctx context.Context, lock string) error {
	dir := "migrations"
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return err
	}
	type migration struct {
		version int
		name    string
	}
	var ms []migration
	for _, e := range entries {
		v, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return fmt.Errorf("store: bad migration file name %q", e.Name())
		}
		ms = append(ms, migration{n, e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	for _, m := range ms {
		body, err := fs.ReadFile(migrationFS, path.Join(dir, m.name))
		if err != nil {
			return err
		}
		if s.dialect.name() == "sqlite" {
			body = []byte(sqliteTypes.Replace(string(body)))
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if lock != "" {
				if _, err := tx.ExecContext(ctx, lock); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
				return err
			}
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
	}
	return nil
}
