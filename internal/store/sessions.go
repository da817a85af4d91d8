package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/sesamehq/sesame"
)

// CreateSession stores a session, and drops sessions that ended before now.
func (s *Store) CreateSession(ctx context.Context, sess sesame.Session, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, nanos(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, key_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			sess.IDHash, sess.KeyID, sess.UserID, nanos(sess.CreatedAt), nanos(sess.ExpiresAt))
		return err
	})
}

// SessionByHash returns the session with the given ID hash with its API key (zero for an
// OIDC session) and its user, read together from the store (so a revoked key or disabled
// user is seen at once, on every replica), or ErrNotFound when there is no such session or
// its key or user is gone.
func (s *Store) SessionByHash(ctx context.Context, hash []byte) (sesame.Session, sesame.APIKey, sesame.User, error) {
	var sess sesame.Session
	var k sesame.APIKey
	var u sesame.User
	var sc, se, uc int64
	var kid, kname sql.NullString
	var kc, exp, rev, used sql.NullInt64
	var by sql.NullString
	err := s.reads.QueryRowContext(ctx, `SELECT s.id_hash, s.created_at, s.expires_at,
			k.id, k.name, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.created_by_key,
			u.id, u.name, u.disabled, u.created_at
		FROM console_sessions s LEFT JOIN api_keys k ON s.key_id <> '' AND k.id = s.key_id
		JOIN users u ON u.id = CASE WHEN s.key_id = '' THEN s.user_id ELSE k.user_id END
		WHERE s.id_hash = $1`, hash).
		Scan(&sess.IDHash, &sc, &se, &kid, &kname, &kc, &exp, &rev, &used, &by, &u.ID, &u.Name, &u.Disabled, &uc)
	if err != nil {
		return sess, k, u, s.wrap(err)
	}
	sess.UserID, sess.CreatedAt, sess.ExpiresAt = u.ID, fromNanos(sc), fromNanos(se)
	u.CreatedAt = fromNanos(uc)
	if kid.Valid {
		k.ID, k.Name = kid.String, kname.String
		sess.KeyID = k.ID
		k.UserID, k.CreatedByKey = u.ID, by.String
		k.CreatedAt = fromNanos(kc.Int64)
		k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromNullNanos(exp), fromNullNanos(rev), fromNullNanos(used)
	}
	return sess, k, u, nil
}

// DeleteSession removes a session (sign-out); deleting one that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, hash)
		return err
	})
}

// CreateOIDCState stores a started OIDC sign-in, and drops those that ended before now.
func (s *Store) CreateOIDCState(ctx context.Context, st sesame.OIDCState, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_states WHERE expires_at <= $1`, nanos(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oidc_states (state_hash, nonce, verifier, next, cli_return, cli_challenge, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			st.StateHash, st.Nonce, st.Verifier, st.Next, st.CLIReturn, st.CLIChallenge, nanos(st.ExpiresAt))
		return err
	})
}

// TakeOIDCState deletes and returns a started sign-in: a state is used once, whatever
// happens next. ErrNotFound when there is none (never started, already used, or dropped).
func (s *Store) TakeOIDCState(ctx context.Context, hash []byte) (sesame.OIDCState, error) {
	var st sesame.OIDCState
	var exp int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM oidc_states WHERE state_hash = $1 RETURNING state_hash, nonce, verifier, next, cli_return, cli_challenge, expires_at`, hash).
			Scan(&st.StateHash, &st.Nonce, &st.Verifier, &st.Next, &st.CLIReturn, &st.CLIChallenge, &exp)
	})
	if err != nil {
		return st, s.wrap(err)
	}
	st.ExpiresAt = fromNanos(exp)
	return st, nil
}

// CreateOIDCHandoff stores a finished CLI sign-in, and drops those that ended before now.
func (s *Store) CreateOIDCHandoff(ctx context.Context, h sesame.OIDCHandoff, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_handoffs WHERE expires_at <= $1`, nanos(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oidc_handoffs (code_hash, user_id, challenge, expires_at) VALUES ($1, $2, $3, $4)`,
			h.CodeHash, h.UserID, h.Challenge, nanos(h.ExpiresAt))
		return err
	})
}

// TakeOIDCHandoff deletes and returns a finished CLI sign-in: a code is redeemed once,
// whatever happens next. ErrNotFound when there is none.
func (s *Store) TakeOIDCHandoff(ctx context.Context, hash []byte) (sesame.OIDCHandoff, error) {
	var h sesame.OIDCHandoff
	var exp int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM oidc_handoffs WHERE code_hash = $1 RETURNING code_hash, user_id, challenge, expires_at`, hash).
			Scan(&h.CodeHash, &h.UserID, &h.Challenge, &exp)
	})
	if err != nil {
		return h, s.wrap(err)
	}
	h.ExpiresAt = fromNanos(exp)
	return h, nil
}
