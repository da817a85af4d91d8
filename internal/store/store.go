// Package store is Sesame's storage: one implementation of every query over database/sql,
// opened either on an embedded SQLite file (modernc.org/sqlite, no cgo) or on PostgreSQL
// (pgx/v5). Both dialects run the same SQL and the same migrations; only column types and
// error decoding differ.
//
// The store sees secrets only as sealed blobs (see internal/crypt); it never encrypts or
// decrypts. Every write that touches more than one row runs in one transaction.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sesamehq/sesame"
)

// Store is a connection to the database.
type Store struct {
	read    *sql.DB // queries outside transactions
	reads   *stmtCache
	write   *sql.DB // transactions; one connection for SQLite so writers queue in Go, not in busy loops
	dialect dialect
	// full is set when a write found the disk full and cleared by the next committed write:
	// readiness reports it while reads go on.
	full atomic.Bool
	// group shares commits between concurrent writes (SQLite; nil on PostgreSQL, whose
	// server groups concurrent commits' WAL flushes itself).
	group *groupCommit
}

type dialect interface {
	name() string
	// classify maps a driver error to a domain sentinel, or returns nil.
	classify(err error) error
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.name() }

// Close closes the database.
func (s *Store) Close() error {
	s.reads.close()
	err := s.read.Close()
	if s.write != s.read {
		err = errors.Join(err, s.write.Close())
	}
	return err
}

// Ping checks that the database answers and, after a write found the disk full, that
// writes work again (sesame.ErrStorageFull until they do).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reads.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.wrap(err)
	}
	if s.full.Load() {
		if err := s.probeFull(ctx); err != nil {
			return s.wrap(err)
		}
	}
	return nil
}

// StorageFull reports whether the last write found the disk full.
func (s *Store) StorageFull() bool { return s.full.Load() }

// tx runs fn in a write transaction and commits it durably; on SQLite, concurrent writes
// share one commit (see groupCommit).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.group != nil {
		return s.txGroup(ctx, fn)
	}
	return s.txOne(ctx, fn)
}

// txOne runs fn in a transaction of its own.
func (s *Store) txOne(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(fmt.Errorf("store: begin: %w", err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return s.wrap(err)
	}
	// The changes' audit events commit with the changes, or nothing does (§4.8).
	intents := sesame.AuditIntentsFrom(ctx)
	for _, in := range intents {
		if in == nil {
			continue
		}
		if err := writeOutbox(ctx, tx, in.ID, in.Event); err != nil {
			_ = tx.Rollback()
			return s.wrap(fmt.Errorf("store: audit outbox: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(fmt.Errorf("store: commit: %w", err))
	}
	s.full.Store(false)
	for _, in := range intents {
		if in != nil {
			in.MarkWritten()
		}
	}
	return nil
}

// wrap translates driver constraint errors into domain sentinels, keeping the cause.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	err = classify(err, true)
	if errors.Is(err, sesame.ErrStorageFull) {
		s.full.Store(true)
	}
	var se *sesame.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", sesame.ErrNotFound, err)
	}
	if d := s.dialect.classify(err); d != nil {
		return fmt.Errorf("%w: %w", d, err)
	}
	return err
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullNanos(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNullNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

// --- meta ---

// GetMeta returns a server-wide value. Sealed values are blobs; the caller opens them.
func (s *Store) GetMeta(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.reads.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = $1`, name).Scan(&v)
	return v, s.wrap(err)
}

// PutMeta inserts a server-wide value if it is not there yet. It returns
// ErrAlreadyExists when another writer got there first, so replicas agree on one value.
func (s *Store) PutMeta(ctx context.Context, name string, value []byte, sealed bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if sealed {
			if err := s.checkSealed(ctx, tx, value); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value, sealed) VALUES ($1, $2, $3)`, name, value, sealed)
		return err
	})
}

// --- workspaces ---

// CreateWorkspace inserts a workspace; ErrAlreadyExists if the name is taken.
func (s *Store) CreateWorkspace(ctx context.Context, ws sesame.Workspace) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO workspaces (name, created_at) VALUES ($1, $2)`, ws.Name, nanos(ws.CreatedAt))
		return err
	})
}

// GetWorkspace returns a workspace or ErrNotFound.
func (s *Store) GetWorkspace(ctx context.Context, name string) (sesame.Workspace, error) {
	ws := sesame.Workspace{Name: name}
	var created int64
	err := s.reads.QueryRowContext(ctx, `SELECT created_at FROM workspaces WHERE name = $1`, name).Scan(&created)
	ws.CreatedAt = fromNanos(created)
	return ws, s.wrap(err)
}

// ListWorkspaces returns up to limit workspaces with names after the cursor, by name.
// Names starting with "_" are internal (the OAuth apps' workspace) and left out.
func (s *Store) ListWorkspaces(ctx context.Context, after string, limit int) ([]sesame.Workspace, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT name, created_at FROM workspaces WHERE name > $1 AND substr(name, 1, 1) <> '_' ORDER BY name LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.Workspace
	for rows.Next() {
		var ws sesame.Workspace
		var created int64
		if err := rows.Scan(&ws.Name, &created); err != nil {
			return nil, err
		}
		ws.CreatedAt = fromNanos(created)
		out = append(out, ws)
	}
	return out, s.wrap(rows.Err())
}

// DeleteWorkspace removes a workspace and, if force, everything in it. Without force a
// workspace that still holds credentials is refused with CodeNotEmpty.
func (s *Store) DeleteWorkspace(ctx context.Context, name string, force bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if !force {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM credentials WHERE workspace = $1`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return sesame.Errorf(sesame.CodeNotEmpty, "workspace %q holds %d credential(s); delete them first or pass force=true", name, n)
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM workspaces WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if err := mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", name)); err != nil {
			return err
		}
		// Grants name workspaces without a foreign key (they may name "*"): drop them here,
		// or a workspace created again under the name would inherit them.
		_, err = tx.ExecContext(ctx, `DELETE FROM grants WHERE workspace = $1`, name)
		return err
	})
}

// CopyWorkspace creates workspace to with the credentials of from (types, public fields and
// the names of secret fields, but no secret values: their blobs are NULL, "needs secret")
// and its connections and functions.
func (s *Store) CopyWorkspace(ctx context.Context, from, to string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM workspaces WHERE name = $1`, from).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", from)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (name, created_at) VALUES ($1, $2)`, to, nanos(now)); err != nil {
			if s.dialect.classify(err) == sesame.ErrAlreadyExists {
				return sesame.Errorf(sesame.CodeAlreadyExists, "workspace %q already exists", to)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO credentials (workspace, cred_key, type, public, version, created_at, updated_at)
			SELECT $1, cred_key, type, public, 1, $2, $2 FROM credentials WHERE workspace = $3`, to, nanos(now), from); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO credential_secrets (workspace, cred_key, field, blob, updated_at)
			SELECT $1, cred_key, field, NULL, $2 FROM credential_secrets WHERE workspace = $3`, to, nanos(now), from); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO objects (workspace, kind, name, body, version, created_at, updated_at)
			SELECT $1, kind, name, body, 1, $2, $2 FROM objects WHERE workspace = $3 AND kind <> 'agent'`, to, nanos(now), from); err != nil {
			// Agents are not copied: a registration is its token, and tokens are not copied.
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO object_refs (workspace, kind, name, credential)
			SELECT $1, kind, name, credential FROM object_refs WHERE workspace = $2`, to, from)
		return err
	})
}

// --- credentials ---

// GetCredential returns a credential with its sealed fields, or ErrNotFound.
func (s *Store) GetCredential(ctx context.Context, ws, key string) (sesame.CredentialRecord, error) {
	// One query for the record and its sealed fields: one round trip, and one snapshot (two
	// queries could pair a record with the fields of a later write).
	rows, err := s.reads.QueryContext(ctx, `SELECT c.type, c.public, c.version, c.created_at, c.updated_at, f.field, f.blob, f.updated_at
		FROM credentials c LEFT JOIN credential_secrets f ON f.workspace = c.workspace AND f.cred_key = c.cred_key
		WHERE c.workspace = $1 AND c.cred_key = $2 ORDER BY f.field`, ws, key)
	rec := sesame.CredentialRecord{Workspace: ws, Key: key}
	if err != nil {
		return rec, s.wrap(err)
	}
	defer rows.Close()
	var public string
	var created, updated int64
	found := false
	for rows.Next() {
		var field sql.NullString
		var blob []byte
		var fieldUpdated sql.NullInt64
		if err := rows.Scan(&rec.Type, &public, &rec.Version, &created, &updated, &field, &blob, &fieldUpdated); err != nil {
			return rec, s.wrap(err)
		}
		found = true
		if field.Valid { // no row of credential_secrets: a credential without secret fields
			rec.Secrets = append(rec.Secrets, sesame.SealedField{Name: field.String, Blob: blob, UpdatedAt: fromNanos(fieldUpdated.Int64)})
		}
	}
	if err := rows.Err(); err != nil {
		return rec, s.wrap(err)
	}
	if !found {
		return rec, s.wrap(sql.ErrNoRows)
	}
	rec.CreatedAt, rec.UpdatedAt = fromNanos(created), fromNanos(updated)
	if err := json.Unmarshal([]byte(public), &rec.Public); err != nil {
		return rec, fmt.Errorf("store: credential %s/%s: public fields: %w", ws, key, err)
	}
	return rec, nil
}

// sealedFields returns the sealed fields of the credentials in ws with keys in [first, last].
func (s *Store) sealedFields(ctx context.Context, ws, first, last string) (map[string][]sesame.SealedField, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT cred_key, field, blob, updated_at FROM credential_secrets
		WHERE workspace = $1 AND cred_key >= $2 AND cred_key <= $3 ORDER BY cred_key, field`, ws, first, last)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	out := map[string][]sesame.SealedField{}
	for rows.Next() {
		var key string
		var f sesame.SealedField
		var updated int64
		if err := rows.Scan(&key, &f.Name, &f.Blob, &updated); err != nil {
			return nil, err
		}
		f.UpdatedAt = fromNanos(updated)
		out[key] = append(out[key], f)
	}
	return out, s.wrap(rows.Err())
}

// ListCredentials returns up to limit credentials of ws with keys after the cursor, by key.
func (s *Store) ListCredentials(ctx context.Context, ws, after string, limit int) ([]sesame.CredentialRecord, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT cred_key, type, public, version, created_at, updated_at FROM credentials
		WHERE workspace = $1 AND cred_key > $2 ORDER BY cred_key LIMIT $3`, ws, after, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.CredentialRecord
	for rows.Next() {
		rec := sesame.CredentialRecord{Workspace: ws}
		var public string
		var created, updated int64
		if err := rows.Scan(&rec.Key, &rec.Type, &public, &rec.Version, &created, &updated); err != nil {
			return nil, err
		}
		rec.CreatedAt, rec.UpdatedAt = fromNanos(created), fromNanos(updated)
		if err := json.Unmarshal([]byte(public), &rec.Public); err != nil {
			return nil, fmt.Errorf("store: credential %s/%s: public fields: %w", ws, rec.Key, err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}
	secrets, err := s.sealedFields(ctx, ws, out[0].Key, out[len(out)-1].Key)
	for i := range out {
		out[i].Secrets = secrets[out[i].Key]
	}
	return out, err
}

// PutCredential writes a credential and replaces its sealed fields, in one transaction.
// With expectVersion 0 it creates the credential (ErrAlreadyExists if it exists); otherwise
// it updates only if the stored version is expectVersion (ErrConflict if not), so a
// concurrent writer is never silently overwritten. It returns the new version.
func (s *Store) PutCredential(ctx context.Context, rec sesame.CredentialRecord, expectVersion int64) (int64, error) {
	public, err := json.Marshal(rec.Public)
	if err != nil {
		return 0, fmt.Errorf("store: marshal public fields: %w", err)
	}
	newVersion := expectVersion + 1
	blobs := make([][]byte, len(rec.Secrets))
	for i, f := range rec.Secrets {
		blobs[i] = f.Blob
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkSealed(ctx, tx, blobs...); err != nil {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM workspaces WHERE name = $1`, rec.Workspace).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", rec.Workspace)
			}
			return err
		}
		if expectVersion == 0 {
			_, err := tx.ExecContext(ctx, `INSERT INTO credentials (workspace, cred_key, type, public, version, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 1, $5, $6)`, rec.Workspace, rec.Key, rec.Type, string(public), nanos(rec.CreatedAt), nanos(rec.UpdatedAt))
			if err != nil {
				if s.dialect.classify(err) == sesame.ErrAlreadyExists {
					return sesame.Errorf(sesame.CodeConflict, "credential %q was created concurrently; retry", rec.Key)
				}
				return err
			}
		} else {
			res, err := tx.ExecContext(ctx, `UPDATE credentials SET type = $1, public = $2, version = $3, updated_at = $4
				WHERE workspace = $5 AND cred_key = $6 AND version = $7`,
				rec.Type, string(public), newVersion, nanos(rec.UpdatedAt), rec.Workspace, rec.Key, expectVersion)
			if err != nil {
				return err
			}
			if err := mustAffect(res, sesame.Errorf(sesame.CodeConflict, "credential %q was changed concurrently; retry", rec.Key)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM credential_secrets WHERE workspace = $1 AND cred_key = $2`, rec.Workspace, rec.Key); err != nil {
				return err
			}
		}
		for _, f := range rec.Secrets {
			if _, err := tx.ExecContext(ctx, `INSERT INTO credential_secrets (workspace, cred_key, field, blob, updated_at)
				VALUES ($1, $2, $3, $4, $5)`, rec.Workspace, rec.Key, f.Name, f.Blob, nanos(f.UpdatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	return newVersion, err
}

// DeleteCredential removes a credential and its sealed fields. Unless force, a credential
// that a connection or function refers to is refused with CodeInUse naming them.
func (s *Store) DeleteCredential(ctx context.Context, ws, key string, force bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if !force {
			users, err := credentialUsers(ctx, tx, ws, key)
			if err != nil {
				return err
			}
			if len(users) > 0 {
				return inUse(key, users)
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE workspace = $1 AND cred_key = $2`, ws, key)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "credential %q not found in workspace %q", key, ws))
	})
}

func mustAffect(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}
