package store

import (
	"context"
	"database/sql"
	"errors"
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
		if err := s.insertKey(ctx, tx, k); err != nil {
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
	return s.tx(ctx, func(tx *sql.Tx) error { return s.insertKey(ctx, tx, k) })
}

// errMinterRevoked refuses a key minted by a key that was revoked (or deleted with its
// user) while the request was under way.
var errMinterRevoked = sesame.Errorf(sesame.CodeUnauthenticated, "the key this request was made with has been revoked")

// insertKey inserts k. A key minted by another key is refused once that key is revoked:
// on PostgreSQL the minter's row is share-locked until commit, so a concurrent revocation
// either waits for this key and then revokes it too (see revokeTrees), or commits first
// and is seen here.
func (s *Store) insertKey(ctx context.Context, tx *sql.Tx, k sesame.APIKey) error {
	if k.CreatedByKey != "" {
		q := `SELECT revoked_at FROM api_keys WHERE id = $1`
		if s.dialect.name() == "postgres" {
			q += ` FOR SHARE`
		}
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, q, k.CreatedByKey).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && revoked.Valid) {
			return errMinterRevoked
		}
		if err != nil {
			return err
		}
	}
	var l keyLimitCols
	l.from(k)
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, user_id, name, hash, created_at, expires_at, created_by_key,
			rate_requests, rate_per_seconds, quota_calls, quota_per_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.UserID, k.Name, k.Hash, nanos(k.CreatedAt), nullNanos(k.ExpiresAt), nullString(k.CreatedByKey),
		l.rateRequests, l.ratePer, l.quotaCalls, l.quotaPer)
	return err
}

// keyLimitCols are a key's limit columns (zero: none).
type keyLimitCols struct{ rateRequests, ratePer, quotaCalls, quotaPer int64 }

// keyLimitColumns is their list for a SELECT from api_keys aliased k.
const keyLimitColumns = `k.rate_requests, k.rate_per_seconds, k.quota_calls, k.quota_per_seconds`

func (l *keyLimitCols) from(k sesame.APIKey) {
	if k.RateLimit != nil {
		l.rateRequests, l.ratePer = k.RateLimit.Requests, k.RateLimit.PerSeconds
	}
	if k.Quota != nil {
		l.quotaCalls, l.quotaPer = k.Quota.Calls, k.Quota.PerSeconds
	}
}

func (l *keyLimitCols) dest() []any {
	return []any{&l.rateRequests, &l.ratePer, &l.quotaCalls, &l.quotaPer}
}

func (l keyLimitCols) to(k *sesame.APIKey) {
	if l.rateRequests > 0 {
		k.RateLimit = &sesame.RateLimit{Requests: l.rateRequests, PerSeconds: l.ratePer}
	}
	if l.quotaCalls > 0 {
		k.Quota = &sesame.Quota{Calls: l.quotaCalls, PerSeconds: l.quotaPer}
	}
}

// ReserveQuota reserves up to batch calls of a key's quota in the period starting at
// window (Unix seconds), at most what is left of limit: granted is how many (0 when the
// quota is used up) and used the period's total reserved so far, this reservation
// included. Older periods' counts are dropped. It is one transaction, serialized with other
// reservations for the key on every replica (a row lock on PostgreSQL, the single writer on
// SQLite), so that together the replicas never reserve more than limit.
func (s *Store) ReserveQuota(ctx context.Context, keyID string, window, limit, batch int64) (granted, used int64, err error) {
	// Not a change of the request's: no audit outbox row.
	ctx = sesame.WithAuditIntents(ctx)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		granted = 0
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_quota_usage WHERE key_id = $1 AND window_start < $2`, keyID, window); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_quota_usage (key_id, window_start, used) VALUES ($1, $2, 0)
			ON CONFLICT (key_id, window_start) DO NOTHING`, keyID, window); err != nil {
			return err
		}
		q := `SELECT used FROM key_quota_usage WHERE key_id = $1 AND window_start = $2`
		if s.dialect.name() == "postgres" {
			q += ` FOR UPDATE`
		}
		if err := tx.QueryRowContext(ctx, q, keyID, window).Scan(&used); err != nil {
			return err
		}
		if used >= limit {
			return nil
		}
		granted = min(batch, limit-used)
		used += granted
		_, err := tx.ExecContext(ctx, `UPDATE key_quota_usage SET used = $3 WHERE key_id = $1 AND window_start = $2`, keyID, window, used)
		return err
	})
	return granted, used, err
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// APIKeyByHash returns the key with the given hash and its user, or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (sesame.APIKey, sesame.User, error) {
	var k sesame.APIKey
	var u sesame.User
	var kc, uc int64
	var exp, rev, used sql.NullInt64
	var by sql.NullString
	var l keyLimitCols
	err := s.reads.QueryRowContext(ctx, `SELECT k.id, k.name, k.hash, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.created_by_key,
			u.id, u.name, u.disabled, u.created_at, `+keyLimitColumns+`
		FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.hash = $1`, hash).
		Scan(append([]any{&k.ID, &k.Name, &k.Hash, &kc, &exp, &rev, &used, &by, &u.ID, &u.Name, &u.Disabled, &uc}, l.dest()...)...)
	if err != nil {
		return k, u, s.wrap(err)
	}
	l.to(&k)
	k.UserID, k.CreatedByKey = u.ID, by.String
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
