package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/sesamehq/sesame"
)

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.reads.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, s.wrap(err)
}

// CreateUserWithKey creates a user, its first API key and its grants in one transaction.
// ErrAlreadyExists if the user name or key hash is taken.
func (s *Store) CreateUserWithKey(ctx context.Context, u sesame.User, k sesame.APIKey, grants ...sesame.Grant) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, disabled, created_at) VALUES ($1, $2, $3, $4)`,
			u.ID, u.Name, u.Disabled, nanos(u.CreatedAt)); err != nil {
			return err
		}
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		for _, g := range grants {
			if _, err := tx.ExecContext(ctx, `INSERT INTO grants (id, role, subject_kind, subject, workspace, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
				g.ID, g.Role, g.SubjectKind, g.Subject, g.Workspace, nanos(g.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateAPIKey stores a key's hash for an existing user.
func (s *Store) CreateAPIKey(ctx context.Context, k sesame.APIKey) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return insertKey(ctx, tx, k) })
}

func insertKey(ctx context.Context, tx *sql.Tx, k sesame.APIKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, user_id, name, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.UserID, k.Name, k.Hash, nanos(k.CreatedAt), nullNanos(k.ExpiresAt))
	return err
}

// APIKeyByHash returns the key with the given hash and its user, or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (sesame.APIKey, sesame.User, error) {
	var k sesame.APIKey
	var u sesame.User
	var kc, uc int64
	var exp, rev, used sql.NullInt64
	err := s.reads.QueryRowContext(ctx, `SELECT k.id, k.name, k.hash, k.created_at, k.expires_at, k.revoked_at, k.last_used_at,
			u.id, u.name, u.disabled, u.created_at
		FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.hash = $1`, hash).
		Scan(&k.ID, &k.Name, &k.Hash, &kc, &exp, &rev, &used, &u.ID, &u.Name, &u.Disabled, &uc)
	if err != nil {
		return k, u, s.wrap(err)
	}
	k.UserID = u.ID
	k.CreatedAt, u.CreatedAt = fromNanos(kc), fromNanos(uc)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromNullNanos(exp), fromNullNanos(rev), fromNullNanos(used)
	return k, u, nil
}

// TouchAPIKeys records last use for several keys in one transaction; callers batch uses in
// memory so that authentication never waits on a write.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUse map[string]time.Time) error {
	if len(lastUse) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for id, t := range lastUse {
			if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $1
				WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, nanos(t), id); err != nil {
				return err
			}
		}
		return nil
	})
}
