package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
)

// backupTables is every table a backup holds, parents before children (foreign keys).
// schema_migrations is not copied (the target's migrations recreate it) and neither is
// replicas (heartbeats of running processes, meaningless elsewhere). A migration that adds
// a table adds it here; TestBackupCoversEveryTable fails until it does.
var backupTables = []string{
	"meta", "workspaces", "credentials", "credential_secrets", "users", "api_keys", "key_quota_usage",
	"objects", "object_refs", "oauth_grants", "oauth_states",
	"groups", "group_members", "roles", "grants",
	"app_certs", "app_tokens", "app_revocation_seq", "app_revocations",
	"audit_events", "audit_head", "audit_outbox",
	"keyring_state", "master_keys",
}

// notBackedUp are the tables a backup leaves out on purpose.
var notBackedUp = []string{"schema_migrations", "replicas", "console_sessions", "oidc_states", "oidc_handoffs"}

// seededTables hold rows that the migrations insert (built-in roles and the admin grant,
// counters); a restore replaces them with the backup's.
var seededTables = map[string]bool{"roles": true, "grants": true, "app_revocation_seq": true, "audit_head": true}

// Snapshot describes a consistent copy of the store.
type Snapshot struct {
	Schema  int            // the store's schema version (its newest migration)
	Dialect string         // "sqlite" or "postgres"
	KeyIDs  map[string]int // sealed blobs by the ID of the master key they are sealed under
	// KeyCheck is the sealed key-check value (meta "keycheck"); nil in a store that has
	// never been unlocked.
	KeyCheck []byte
}

// BackupWriter receives a backup: Begin once, then for each table Table and its rows.
// Row values are nil, int64, bool, string or []byte, in the order of Table's columns.
type BackupWriter interface {
	Begin(Snapshot) error
	Table(name string, columns []string) error
	Row(values []any) error
}

// SchemaVersion is the newest migration this binary knows: the schema of every store it
// opens.
func SchemaVersion() int {
	entries, _ := fs.ReadDir(migrationFS, "migrations")
	v := 0
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if n, err := strconv.Atoi(prefix); err == nil && n > v {
			v = n
		}
	}
	return v
}

// storeSchema reads the newest migration recorded in the database.
func storeSchema(ctx context.Context, q querier) (int, error) {
	rows, err := q.QueryContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	v := 0
	if rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return 0, err
		}
	}
	return v, rows.Err()
}

// OpenForBackup opens a store to back it up without changing it: no migration runs. On
// PostgreSQL url is the store; on SQLite path is the live database file.
func OpenForBackup(ctx context.Context, url, path string) (*Store, error) {
	if url != "" {
		return openPostgres(ctx, url, false)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return openSQLite(ctx, path, false)
}

// Backup writes a consistent copy of every backed-up table to w. On PostgreSQL it reads
// in one REPEATABLE READ, read-only transaction, so writers go on and the copy is the
// state at one instant. On SQLite it first copies the live database with VACUUM INTO to
// tmpPath (one read transaction: writers are not held up), then reads the copy, and
// removes it. Secrets stay sealed: nothing here can open them. The store's schema must be
// this binary's (back up with the version that runs the store).
func (s *Store) Backup(ctx context.Context, w BackupWriter, tmpPath string) error {
	if s.dialect.name() == "sqlite" {
		// The copy holds what the database holds: create it 0600 (VACUUM INTO accepts an
		// empty file) rather than let SQLite create it with the umask's mode.
		f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		f.Close()
		defer os.Remove(tmpPath)
		if _, err := s.read.ExecContext(ctx, `VACUUM INTO `+quoteSQLiteString(tmpPath)); err != nil {
			return fmt.Errorf("store: copy the database (VACUUM INTO): %w", err)
		}
		cp, err := openSQLite(ctx, tmpPath, false)
		if err != nil {
			return err
		}
		defer cp.Close()
		return cp.backupFrom(ctx, cp.read, w)
	}
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return s.wrap(fmt.Errorf("store: begin backup: %w", err))
	}
	defer tx.Rollback()
	return s.backupFrom(ctx, tx, w)
}

func (s *Store) backupFrom(ctx context.Context, q querier, w BackupWriter) error {
	schema, err := storeSchema(ctx, q)
	if err != nil {
		return fmt.Errorf("store: schema version: %w", err)
	}
	if want := SchemaVersion(); schema != want {
		return fmt.Errorf("store: the store's schema is version %d and this sesame's is %d: back up with the sesame version that runs the store", schema, want)
	}
	keys, err := countSealedByKey(ctx, q)
	if err != nil {
		return fmt.Errorf("store: count sealed values: %w", err)
	}
	snap := Snapshot{Schema: schema, Dialect: s.dialect.name(), KeyIDs: keys}
	if snap.KeyCheck, err = keyCheck(ctx, q); err != nil {
		return err
	}
	if err := w.Begin(snap); err != nil {
		return err
	}
	for _, table := range backupTables {
		if err := dumpTable(ctx, q, table, w); err != nil {
			return fmt.Errorf("store: back up %s: %w", table, err)
		}
	}
	return nil
}

func keyCheck(ctx context.Context, q querier) ([]byte, error) {
	rows, err := q.QueryContext(ctx, `SELECT value FROM meta WHERE name = 'keycheck'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var blob []byte
	if rows.Next() {
		if err := rows.Scan(&blob); err != nil {
			return nil, err
		}
	}
	return blob, rows.Err()
}

func dumpTable(ctx context.Context, q querier, table string, w BackupWriter) error {
	rows, err := q.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if err := w.Table(table, cols); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		out := make([]any, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil, int64, bool, string:
				out[i] = v
			case []byte:
				out[i] = append([]byte(nil), v...)
			case int32:
				out[i] = int64(v)
			case int:
				out[i] = int64(v)
			default:
				return fmt.Errorf("column %s: unexpected value type %T", cols[i], v)
			}
		}
		if err := w.Row(out); err != nil {
			return err
		}
	}
	return rows.Err()
}

func quoteSQLiteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// BackupReader yields a backup's tables and rows, in the order Backup wrote them.
type BackupReader interface {
	// Next returns the next table (columns set, values nil) or row (values set); io.EOF
	// after the last, which the reader returns only once it has checked that the backup is
	// complete.
	Next() (table string, columns []string, values []any, err error)
}

// Empty reports whether the store holds nothing but what its migrations seeded: no
// workspace, user, secret, audit event or key. A restore goes only into an empty store.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	for _, table := range backupTables {
		if seededTables[table] {
			continue
		}
		var n int
		if err := s.reads.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			return false, s.wrap(err)
		}
		if n > 0 {
			return false, nil
		}
	}
	return true, nil
}

// ErrNotEmpty is returned by Restore into a store that holds data.
var ErrNotEmpty = errors.New("store: the store is not empty: restore only into a new data folder or an empty PostgreSQL database (schema)")

// Restore loads a backup into this store, which must be empty, in one transaction: either
// every row is in, or nothing changed. The backup must be of this binary's schema version
// (checked by the caller from its header). Before the transaction commits, check is given
// what the restored rows hold (the master key IDs of their sealed values, the key check),
// read back from the transaction rather than taken from the file's header; an error from
// it rolls everything back.
func (s *Store) Restore(ctx context.Context, r BackupReader, check func(Snapshot) error) (rows int, err error) {
	empty, err := s.Empty(ctx)
	if err != nil {
		return 0, err
	}
	if !empty {
		return 0, ErrNotEmpty
	}
	types := map[string]map[string]string{}
	for _, t := range backupTables {
		if types[t], err = s.columnTypes(ctx, t); err != nil {
			return 0, fmt.Errorf("store: columns of %s: %w", t, err)
		}
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// The rows the migrations seeded are replaced by the backup's. Children first.
		for i := len(backupTables) - 1; i >= 0; i-- {
			if t := backupTables[i]; seededTables[t] {
				if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
					return err
				}
			}
		}
		known := map[string]bool{}
		for _, t := range backupTables {
			known[t] = true
		}
		var stmt *sql.Stmt
		var table string
		var colTypes []string
		defer func() {
			if stmt != nil {
				stmt.Close()
			}
		}()
		for {
			t, cols, vals, err := r.Next()
			if errors.Is(err, io.EOF) {
				var snap Snapshot
				if snap.KeyIDs, err = countSealedByKey(ctx, tx); err != nil {
					return err
				}
				if snap.KeyCheck, err = keyCheck(ctx, tx); err != nil {
					return err
				}
				snap.Schema, snap.Dialect = SchemaVersion(), s.dialect.name()
				return check(snap)
			}
			if err != nil {
				return err
			}
			if vals == nil {
				if !known[t] {
					return fmt.Errorf("store: the backup holds table %q, which this schema does not back up", t)
				}
				if stmt != nil {
					stmt.Close()
				}
				table, colTypes = t, make([]string, len(cols))
				for i, c := range cols {
					typ, ok := types[t][c]
					if !ok {
						return fmt.Errorf("store: the backup's table %s has column %q, which this schema does not", t, c)
					}
					colTypes[i] = typ
				}
				stmt, err = tx.PrepareContext(ctx, fmt.Sprintf(`INSERT INTO %s (%s) VALUES (%s)`, t, strings.Join(cols, ", "), placeholders(1, len(cols))))
				if err != nil {
					return err
				}
				continue
			}
			if stmt == nil || len(vals) != len(colTypes) {
				return fmt.Errorf("store: the backup has a malformed row in %s", table)
			}
			for i, v := range vals {
				vals[i] = convertFor(colTypes[i], v)
			}
			if _, err := stmt.ExecContext(ctx, vals...); err != nil {
				return fmt.Errorf("store: restore a row of %s: %w", table, err)
			}
			rows++
		}
	})
	return rows, err
}

// columnTypes maps a table's columns to their declared types, in lower case.
func (s *Store) columnTypes(ctx context.Context, table string) (map[string]string, error) {
	var rows *sql.Rows
	var err error
	if s.dialect.name() == "postgres" {
		rows, err = s.read.QueryContext(ctx, `SELECT column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1`, table)
	} else {
		rows, err = s.read.QueryContext(ctx, `SELECT name, type FROM pragma_table_info($1)`, table)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		out[name] = strings.ToLower(typ)
	}
	if len(out) == 0 && rows.Err() == nil {
		return nil, fmt.Errorf("no such table")
	}
	return out, rows.Err()
}

// convertFor adapts a value read from one dialect to a column of the other: SQLite keeps
// booleans as integers, PostgreSQL as booleans.
func convertFor(colType string, v any) any {
	switch x := v.(type) {
	case int64:
		if colType == "boolean" {
			return x != 0
		}
	case bool:
		if colType != "boolean" {
			if x {
				return int64(1)
			}
			return int64(0)
		}
	}
	return v
}

// BackupTables lists the tables a backup holds and those it leaves out, sorted, for the
// test that every table of the schema is one or the other.
func BackupTables() (included, excluded []string) {
	included = append([]string(nil), backupTables...)
	excluded = append([]string(nil), notBackedUp...)
	sort.Strings(included)
	sort.Strings(excluded)
	return included, excluded
}
