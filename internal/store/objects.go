package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/sesamehq/sesame"
)

// GetObject returns a workspace object (a connection, a function) or ErrNotFound.
func (s *Store) GetObject(ctx context.Context, ws, kind, name string) (sesame.Object, error) {
	o := sesame.Object{Workspace: ws, Kind: kind, Name: name}
	var body string
	var created, updated int64
	err := s.reads.QueryRowContext(ctx, `SELECT body, version, created_at, updated_at FROM objects
		WHERE workspace = $1 AND kind = $2 AND name = $3`, ws, kind, name).Scan(&body, &o.Version, &created, &updated)
	if err != nil {
		return o, s.wrap(err)
	}
	o.Body, o.CreatedAt, o.UpdatedAt = []byte(body), fromNanos(created), fromNanos(updated)
	return o, nil
}

// ObjectRefs returns the credentials an object refers to.
func (s *Store) ObjectRefs(ctx context.Context, ws, kind, name string) ([]string, error) {
	return s.objectRefs(ctx, ws, kind, name)
}

func (s *Store) objectRefs(ctx context.Context, ws, kind, name string) ([]string, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT credential FROM object_refs WHERE workspace = $1 AND kind = $2 AND name = $3 ORDER BY credential`, ws, kind, name)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// ListObjects returns up to limit objects of a kind in ws with names after the cursor.
// Refs are not filled in.
func (s *Store) ListObjects(ctx context.Context, ws, kind, after string, limit int) ([]sesame.Object, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT name, body, version, created_at, updated_at FROM objects
		WHERE workspace = $1 AND kind = $2 AND name > $3 ORDER BY name LIMIT $4`, ws, kind, after, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.Object
	for rows.Next() {
		o := sesame.Object{Workspace: ws, Kind: kind}
		var body string
		var created, updated int64
		if err := rows.Scan(&o.Name, &body, &o.Version, &created, &updated); err != nil {
			return nil, err
		}
		o.Body, o.CreatedAt, o.UpdatedAt = []byte(body), fromNanos(created), fromNanos(updated)
		out = append(out, o)
	}
	return out, s.wrap(rows.Err())
}

// PutObject creates (expectVersion 0) or updates (compare-and-swap on expectVersion) an
// object and replaces its credential references, in one transaction. Each referenced
// credential must exist. It returns the new version.
func (s *Store) PutObject(ctx context.Context, o sesame.Object, expectVersion int64) (int64, error) {
	newVersion := expectVersion + 1
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM workspaces WHERE name = $1`, o.Workspace).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", o.Workspace)
			}
			return err
		}
		for _, c := range o.Refs {
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM credentials WHERE workspace = $1 AND cred_key = $2`, o.Workspace, c).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeInvalidField, "credential %q does not exist in workspace %q", c, o.Workspace)
			}
			if err != nil {
				return err
			}
		}
		if expectVersion == 0 {
			_, err := tx.ExecContext(ctx, `INSERT INTO objects (workspace, kind, name, body, version, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 1, $5, $6)`, o.Workspace, o.Kind, o.Name, string(o.Body), nanos(o.CreatedAt), nanos(o.UpdatedAt))
			if err != nil {
				if s.dialect.classify(err) == sesame.ErrAlreadyExists {
					return sesame.Errorf(sesame.CodeConflict, "%s %q was created concurrently; retry", o.Kind, o.Name)
				}
				return err
			}
		} else {
			res, err := tx.ExecContext(ctx, `UPDATE objects SET body = $1, version = $2, updated_at = $3
				WHERE workspace = $4 AND kind = $5 AND name = $6 AND version = $7`,
				string(o.Body), newVersion, nanos(o.UpdatedAt), o.Workspace, o.Kind, o.Name, expectVersion)
			if err != nil {
				return err
			}
			if err := mustAffect(res, sesame.Errorf(sesame.CodeConflict, "%s %q was changed concurrently; retry", o.Kind, o.Name)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM object_refs WHERE workspace = $1 AND kind = $2 AND name = $3`, o.Workspace, o.Kind, o.Name); err != nil {
				return err
			}
		}
		for _, c := range o.Refs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO object_refs (workspace, kind, name, credential) VALUES ($1, $2, $3, $4)`,
				o.Workspace, o.Kind, o.Name, c); err != nil {
				return err
			}
		}
		return nil
	})
	return newVersion, err
}

// DeleteObject removes an object and its references.
func (s *Store) DeleteObject(ctx context.Context, ws, kind, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM objects WHERE workspace = $1 AND kind = $2 AND name = $3`, ws, kind, name)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "%s %q not found in workspace %q", kind, name, ws))
	})
}

// credentialUsers lists "kind name" for every object that refers to credential key.
func credentialUsers(ctx context.Context, tx *sql.Tx, ws, key string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT kind, name FROM object_refs WHERE workspace = $1 AND credential = $2 ORDER BY kind, name`, ws, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var kind, name string
		if err := rows.Scan(&kind, &name); err != nil {
			return nil, err
		}
		out = append(out, kind+" "+name)
	}
	return out, rows.Err()
}

func inUse(key string, users []string) error {
	return sesame.Errorf(sesame.CodeInUse, "credential %q is used by %s; change those first or delete with force=true",
		key, strings.Join(users, ", "))
}
