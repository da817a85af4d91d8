package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sesamehq/sesame"
)

// OAuth2 grants and pending authorization states (PRODUCT.md C5). Tokens and PKCE
// verifiers arrive sealed; the store never sees them in clear. Every token write is a
// compare-and-swap on the grant's version, so a refresher that lost a race can never
// overwrite a newer token, and a write releases the refresh lease in the same statement.

const grantColumns = `access_blob, refresh_blob, token_type, scope, expires_at, status, reason, version, created_at, updated_at, refreshed_at`

func scanGrant(scan func(dest ...any) error, g *sesame.OAuthGrant, extra ...any) error {
	var expires, refreshed sql.NullInt64
	var created, updated int64
	dest := append(extra, &g.Access, &g.Refresh, &g.TokenType, &g.Scope, &expires, &g.Status, &g.Reason, &g.Version, &created, &updated, &refreshed)
	if err := scan(dest...); err != nil {
		return err
	}
	g.ExpiresAt, g.RefreshedAt = fromNullNanos(expires), fromNullNanos(refreshed)
	g.CreatedAt, g.UpdatedAt = fromNanos(created), fromNanos(updated)
	return nil
}

// GetOAuthGrant returns the grant of credential cred in ws for end user user ("" for the
// workspace's own), or ErrNotFound.
func (s *Store) GetOAuthGrant(ctx context.Context, ws, cred, user string) (sesame.OAuthGrant, error) {
	g := sesame.OAuthGrant{Workspace: ws, Credential: cred, EndUser: user}
	err := scanGrant(s.reads.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM oauth_grants
		WHERE workspace = $1 AND cred_key = $2 AND end_user = $3`, ws, cred, user).Scan, &g)
	return g, s.wrap(err)
}

// ListOAuthGrants returns up to limit grants of ws, of credential cred only unless it is
// "", ordered by credential then end user, after the cursor (afterCred, afterUser).
func (s *Store) ListOAuthGrants(ctx context.Context, ws, cred, afterCred, afterUser string, limit int) ([]sesame.OAuthGrant, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT cred_key, end_user, `+grantColumns+` FROM oauth_grants
		WHERE workspace = $1 AND ($2 = '' OR cred_key = $2) AND (cred_key, end_user) > ($3, $4)
		ORDER BY cred_key, end_user LIMIT $5`, ws, cred, afterCred, afterUser, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.OAuthGrant
	for rows.Next() {
		g := sesame.OAuthGrant{Workspace: ws}
		if err := scanGrant(rows.Scan, &g, &g.Credential, &g.EndUser); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, s.wrap(rows.Err())
}

// CreateOAuthGrant inserts g at version 1. It returns ErrAlreadyExists if the grant
// exists, and ErrNotFound if its credential does not.
func (s *Store) CreateOAuthGrant(ctx context.Context, g sesame.OAuthGrant) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkSealed(ctx, tx, g.Access, g.Refresh); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oauth_grants (workspace, cred_key, end_user, access_blob, refresh_blob,
			token_type, scope, expires_at, status, reason, version, created_at, updated_at, refreshed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $13)`,
			g.Workspace, g.Credential, g.EndUser, g.Access, g.Refresh, g.TokenType, g.Scope, nullNanos(g.ExpiresAt),
			g.Status, g.Reason, nanos(g.CreatedAt), nanos(g.UpdatedAt), nullNanos(g.RefreshedAt))
		return err
	})
}

// UpdateOAuthGrant replaces the tokens and status of g if its stored version is
// expectVersion, and releases any refresh lease, in one statement. It returns the new
// version; ErrConflict if the version moved (a newer token is stored) and ErrNotFound if
// the grant is gone (revoked meanwhile).
func (s *Store) UpdateOAuthGrant(ctx context.Context, g sesame.OAuthGrant, expectVersion int64) (int64, error) {
	newVersion := expectVersion + 1
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkSealed(ctx, tx, g.Access, g.Refresh); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE oauth_grants SET access_blob = $1, refresh_blob = $2, token_type = $3, scope = $4,
			expires_at = $5, status = $6, reason = $7, version = $8, updated_at = $9, refreshed_at = $10, lease_owner = '', lease_until = 0
			WHERE workspace = $11 AND cred_key = $12 AND end_user = $13 AND version = $14`,
			g.Access, g.Refresh, g.TokenType, g.Scope, nullNanos(g.ExpiresAt), g.Status, g.Reason, newVersion,
			nanos(g.UpdatedAt), nullNanos(g.RefreshedAt), g.Workspace, g.Credential, g.EndUser, expectVersion)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var v int64
		err = tx.QueryRowContext(ctx, `SELECT version FROM oauth_grants WHERE workspace = $1 AND cred_key = $2 AND end_user = $3`,
			g.Workspace, g.Credential, g.EndUser).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return sesame.ErrNotFound
		}
		if err != nil {
			return err
		}
		return sesame.ErrConflict
	})
	return newVersion, err
}

// ClaimOAuthLease makes owner the only refresher of a grant until until, if the grant is
// still at version and no other owner holds an unexpired lease. It reports whether the
// claim succeeded; a false means another process is refreshing, or has refreshed (the
// version moved): re-read the grant.
func (s *Store) ClaimOAuthLease(ctx context.Context, ws, cred, user, owner string, version int64, now, until time.Time) (bool, error) {
	claimed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE oauth_grants SET lease_owner = $1, lease_until = $2
			WHERE workspace = $3 AND cred_key = $4 AND end_user = $5 AND version = $6 AND (lease_owner = '' OR lease_until < $7)`,
			owner, nanos(until), ws, cred, user, version, nanos(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return err
	})
	return claimed, err
}

// RenewOAuthLease extends owner's lease on a grant to until, if owner still holds it. It
// reports whether owner still held it. The holder renews while it refreshes (a heartbeat),
// so leases can be short: a holder that died stops renewing and its lease frees itself
// within one lease time.
func (s *Store) RenewOAuthLease(ctx context.Context, ws, cred, user, owner string, until time.Time) (bool, error) {
	held := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE oauth_grants SET lease_until = $1
			WHERE workspace = $2 AND cred_key = $3 AND end_user = $4 AND lease_owner = $5`, nanos(until), ws, cred, user, owner)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	return held, err
}

// ReleaseOAuthLease gives up owner's lease on a grant, if it still holds it.
func (s *Store) ReleaseOAuthLease(ctx context.Context, ws, cred, user, owner string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE oauth_grants SET lease_owner = '', lease_until = 0
			WHERE workspace = $1 AND cred_key = $2 AND end_user = $3 AND lease_owner = $4`, ws, cred, user, owner)
		return err
	})
}

// DeleteOAuthGrant removes a grant; ErrNotFound if there is none.
func (s *Store) DeleteOAuthGrant(ctx context.Context, ws, cred, user string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_grants WHERE workspace = $1 AND cred_key = $2 AND end_user = $3`, ws, cred, user)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.ErrNotFound)
	})
}

// CreateOAuthState stores a pending authorization. ErrNotFound if its credential does not
// exist; ErrAlreadyExists if the ID is taken.
func (s *Store) CreateOAuthState(ctx context.Context, st sesame.OAuthState) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkSealed(ctx, tx, st.Verifier); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oauth_states (state_id, workspace, cred_key, end_user, return_url, redirect_uri,
			verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			st.ID, st.Workspace, st.Credential, st.EndUser, st.ReturnURL, st.RedirectURI, st.Verifier, nanos(st.CreatedAt), nanos(st.ExpiresAt))
		return err
	})
}

// TakeOAuthState deletes the pending authorization id and returns it, in one
// transaction, so a state is used at most once however many callbacks race. A state
// that expired at now is deleted too, and reported as ErrNotFound like an unknown one.
func (s *Store) TakeOAuthState(ctx context.Context, id string, now time.Time) (sesame.OAuthState, error) {
	st := sesame.OAuthState{ID: id}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var created, expires int64
		err := tx.QueryRowContext(ctx, `SELECT workspace, cred_key, end_user, return_url, redirect_uri, verifier, created_at, expires_at
			FROM oauth_states WHERE state_id = $1`, id).Scan(&st.Workspace, &st.Credential, &st.EndUser, &st.ReturnURL,
			&st.RedirectURI, &st.Verifier, &created, &expires)
		if err != nil {
			return err
		}
		st.CreatedAt, st.ExpiresAt = fromNanos(created), fromNanos(expires)
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_states WHERE state_id = $1`, id)
		if err != nil {
			return err
		}
		// Zero rows: a concurrent callback took it between our read and our delete.
		return mustAffect(res, sesame.ErrNotFound)
	})
	if err != nil {
		return sesame.OAuthState{}, err
	}
	if !now.Before(st.ExpiresAt) {
		return sesame.OAuthState{}, fmt.Errorf("%w: oauth state expired", sesame.ErrNotFound)
	}
	return st, nil
}

// DeleteExpiredOAuthStates removes the pending authorizations that expired by now.
func (s *Store) DeleteExpiredOAuthStates(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_states WHERE expires_at <= $1`, nanos(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
