package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sesamehq/sesame"
)

// --- developer certificates ---

// CreateAppCert stores an issued developer certificate; ErrAlreadyExists if the ID is taken.
func (s *Store) CreateAppCert(ctx context.Context, c sesame.AppCert) error {
	domains, err := json.Marshal(c.Domains)
	if err != nil {
		return fmt.Errorf("store: marshal certificate domains: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO app_certs (id, dev_pubkey, domains, issued_at, expires_at, body)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			c.ID, c.DevPubkey, string(domains), nanos(c.IssuedAt), nullNanos(c.ExpiresAt), string(c.Body))
		return err
	})
}

const appCertColumns = `id, dev_pubkey, domains, issued_at, expires_at, revoked_at, body`

func scanAppCert(scan func(...any) error) (sesame.AppCert, error) {
	var c sesame.AppCert
	var domains, body string
	var issued int64
	var expires, revoked sql.NullInt64
	if err := scan(&c.ID, &c.DevPubkey, &domains, &issued, &expires, &revoked, &body); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(domains), &c.Domains); err != nil {
		return c, fmt.Errorf("store: certificate %s: domains: %w", c.ID, err)
	}
	c.IssuedAt, c.ExpiresAt, c.RevokedAt = fromNanos(issued), fromNullNanos(expires), fromNullNanos(revoked)
	c.Body = []byte(body)
	return c, nil
}

// GetAppCert returns a developer certificate or ErrNotFound.
func (s *Store) GetAppCert(ctx context.Context, id string) (sesame.AppCert, error) {
	c, err := scanAppCert(s.reads.QueryRowContext(ctx, `SELECT `+appCertColumns+` FROM app_certs WHERE id = $1`, id).Scan)
	return c, s.wrap(err)
}

// ListAppCerts returns up to limit certificates with IDs after the cursor, by ID.
func (s *Store) ListAppCerts(ctx context.Context, after string, limit int) ([]sesame.AppCert, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT `+appCertColumns+` FROM app_certs WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.AppCert
	for rows.Next() {
		c, err := scanAppCert(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// RevokeAppCert marks a certificate revoked at `at` and revokes every unexpired token
// issued under it, in one transaction. It returns how many tokens it revoked. Revoking a
// revoked certificate changes nothing and is not an error; an unknown ID is ErrNotFound.
func (s *Store) RevokeAppCert(ctx context.Context, id string, at time.Time) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM app_certs WHERE id = $1`, id).Scan(&revoked); err != nil {
			return err
		}
		if !revoked.Valid {
			if _, err := tx.ExecContext(ctx, `UPDATE app_certs SET revoked_at = $1 WHERE id = $2`, nanos(at), id); err != nil {
				return err
			}
		}
		var err error
		n, _, err = revokeTokens(ctx, tx, `cert_id = $4`, id, at)
		return err
	})
	return n, err
}

// --- tokens ---

// CreateAppTokens records issued tokens' claims, all in one transaction: all or none.
func (s *Store) CreateAppTokens(ctx context.Context, ts []sesame.AppToken) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO app_tokens (id, app_id, version, mode, cert_id, source, issued_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, t := range ts {
			var cert sql.NullString
			if t.CertID != "" {
				cert = sql.NullString{String: t.CertID, Valid: true}
			}
			if _, err := st.ExecContext(ctx, t.ID, t.AppID, t.Version, t.Mode, cert, t.Source, nanos(t.IssuedAt), nanos(t.ExpiresAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

const appTokenColumns = `id, app_id, version, mode, cert_id, source, issued_at, expires_at, revoked_at`

// ListAppTokens returns up to limit tokens unexpired at now, with IDs after the cursor, by
// ID (which orders by issue time). appID, if not empty, keeps only that app's tokens.
// Revoked tokens are listed, with RevokedAt set, until they expire.
func (s *Store) ListAppTokens(ctx context.Context, appID, after string, limit int, now time.Time) ([]sesame.AppToken, error) {
	q := `SELECT ` + appTokenColumns + ` FROM app_tokens WHERE id > $1 AND expires_at > $2`
	args := []any{after, nanos(now)}
	if appID != "" {
		q += ` AND app_id = $4`
	} else {
		q += ` AND $4 = ''`
	}
	q += ` ORDER BY id LIMIT $3`
	args = append(args, limit, appID)
	rows, err := s.reads.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.AppToken
	for rows.Next() {
		var t sesame.AppToken
		var cert sql.NullString
		var issued, expires int64
		var revoked sql.NullInt64
		if err := rows.Scan(&t.ID, &t.AppID, &t.Version, &t.Mode, &cert, &t.Source, &issued, &expires, &revoked); err != nil {
			return nil, err
		}
		t.CertID = cert.String
		t.IssuedAt, t.ExpiresAt, t.RevokedAt = fromNanos(issued), fromNanos(expires), fromNullNanos(revoked)
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

// GetAppToken returns one recorded token, revoked or expired too, or ErrNotFound.
func (s *Store) GetAppToken(ctx context.Context, id string) (sesame.AppToken, error) {
	var t sesame.AppToken
	var cert sql.NullString
	var issued, expires int64
	var revoked sql.NullInt64
	err := s.reads.QueryRowContext(ctx, `SELECT `+appTokenColumns+` FROM app_tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.AppID, &t.Version, &t.Mode, &cert, &t.Source, &issued, &expires, &revoked)
	if err != nil {
		return t, s.wrap(err)
	}
	t.CertID = cert.String
	t.IssuedAt, t.ExpiresAt, t.RevokedAt = fromNanos(issued), fromNanos(expires), fromNullNanos(revoked)
	return t, nil
}

// RevokeAppToken revokes one token. Revoking a revoked token changes nothing and is not an
// error; an unknown ID is ErrNotFound.
func (s *Store) RevokeAppToken(ctx context.Context, id string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM app_tokens WHERE id = $1`, id).Scan(&one); err != nil {
			return err
		}
		_, _, err := revokeTokens(ctx, tx, `id = $4`, id, at)
		return err
	})
}

// RevokeAppTokensOf revokes every token of an app issued before at: the recorded ones
// (it returns how many of those were unexpired) and, through a per-app revocation under the
// same sequence number, those without a record (trial tokens).
func (s *Store) RevokeAppTokensOf(ctx context.Context, appID string, at time.Time) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var seq int64
		var err error
		if n, seq, err = revokeTokens(ctx, tx, `app_id = $4`, appID, at); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO app_revocations (app_id, revoked_before, seq) VALUES ($1, $2, $3)
			ON CONFLICT (app_id) DO UPDATE SET revoked_before = excluded.revoked_before, seq = excluded.seq`, appID, nanos(at), seq)
		return err
	})
	return n, err
}

// AppRevocations returns the per-app revocations with sequence numbers after afterSeq, in
// sequence order.
func (s *Store) AppRevocations(ctx context.Context, afterSeq int64) ([]sesame.AppRevocation, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT seq, app_id, revoked_before FROM app_revocations WHERE seq > $1 ORDER BY seq`, afterSeq)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.AppRevocation
	for rows.Next() {
		var r sesame.AppRevocation
		var before int64
		if err := rows.Scan(&r.Seq, &r.AppID, &before); err != nil {
			return nil, err
		}
		r.Before = fromNanos(before)
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// revokeTokens revokes the unrevoked, unexpired tokens matching where (which uses $4 for
// arg) under a new revocation sequence number. Taking the number locks the sequence row
// until the transaction ends, so revocations commit in the order of their numbers: a
// reader that sees number n has already been able to see every number below it.
func revokeTokens(ctx context.Context, tx *sql.Tx, where string, arg string, at time.Time) (int, int64, error) {
	var seq int64
	if err := tx.QueryRowContext(ctx, `UPDATE app_revocation_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq); err != nil {
		return 0, 0, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE app_tokens SET revoked_at = $1, revoked_seq = $2
		WHERE revoked_at IS NULL AND expires_at > $3 AND `+where, nanos(at), seq, nanos(at), arg)
	if err != nil {
		return 0, 0, err
	}
	n, err := res.RowsAffected()
	return int(n), seq, err
}

// AppTokenRevocations returns up to limit revoked tokens still unexpired at now that come
// after (afterSeq, afterID) in revocation order: by sequence number, then token ID (one
// revocation of an app or certificate revokes many tokens under one number).
func (s *Store) AppTokenRevocations(ctx context.Context, afterSeq int64, afterID string, now time.Time, limit int) ([]sesame.AppTokenRevocation, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT revoked_seq, id, expires_at FROM app_tokens
		WHERE (revoked_seq > $1 OR (revoked_seq = $1 AND id > $2)) AND expires_at > $3
		ORDER BY revoked_seq, id LIMIT $4`, afterSeq, afterID, nanos(now), limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.AppTokenRevocation
	for rows.Next() {
		var r sesame.AppTokenRevocation
		var expires int64
		if err := rows.Scan(&r.Seq, &r.TokenID, &expires); err != nil {
			return nil, err
		}
		r.ExpiresAt = fromNanos(expires)
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// AppRevocationSeq returns the last revocation sequence number.
func (s *Store) AppRevocationSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := s.reads.QueryRowContext(ctx, `SELECT seq FROM app_revocation_seq WHERE id = 1`).Scan(&seq)
	return seq, s.wrap(err)
}

// PruneAppTokens deletes the records of tokens that expired before `before` and returns
// how many. An expired token is refused on its expiry alone, so its record is no longer
// needed, revoked or not.
func (s *Store) PruneAppTokens(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM app_tokens WHERE expires_at < $1`, nanos(before))
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}
