package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/sesamehq/sesame"
)

// CreateSession stores a console session, and drops sessions that ended before now.
func (s *Store) CreateSession(ctx context.Context, sess sesame.Session, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, nanos(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			sess.IDHash, sess.KeyID, nanos(sess.CreatedAt), nanos(sess.ExpiresAt))
		return err
	})
}

// SessionByHash returns the session with the given ID hash with its API key and the key's
// user, read together from the store (so a revoked key or disabled user is seen at once,
// on every replica), or ErrNotFound when there is no such session or its key is gone.
func (s *Store) SessionByHash(ctx context.Context, hash []byte) (sesame.Session, sesame.APIKey, sesame.User, error) {
	var sess sesame.Session
	var k sesame.APIKey
	var u sesame.User
	var sc, se, kc, uc int64
	var exp, rev, used sql.NullInt64
	var by sql.NullString
	err := s.reads.QueryRowContext(ctx, `SELECT s.id_hash, s.created_at, s.expires_at,
			k.id, k.name, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.created_by_key,
			u.id, u.name, u.disabled, u.created_at
		FROM console_sessions s JOIN api_keys k ON k.id = s.key_id JOIN users u ON u.id = k.user_id
		WHERE s.id_hash = $1`, hash).
		Scan(&sess.IDHash, &sc, &se, &k.ID, &k.Name, &kc, &exp, &rev, &used, &by, &u.ID, &u.Name, &u.Disabled, &uc)
	if err != nil {
		return sess, k, u, s.wrap(err)
	}
	sess.KeyID, sess.CreatedAt, sess.ExpiresAt = k.ID, fromNanos(sc), fromNanos(se)
	k.UserID, k.CreatedByKey = u.ID, by.String
	k.CreatedAt, u.CreatedAt = fromNanos(kc), fromNanos(uc)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromNullNanos(exp), fromNullNanos(rev), fromNullNanos(used)
	return sess, k, u, nil
}

// DeleteSession removes a session (sign-out); deleting one that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, hash)
		return err
	})
}
