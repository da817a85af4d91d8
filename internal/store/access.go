package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sesamehq/sesame"
)

// --- users ---

// GetUser returns a user or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (sesame.User, error) {
	u := sesame.User{ID: id}
	var created int64
	err := s.reads.QueryRowContext(ctx, `SELECT name, disabled, created_at FROM users WHERE id = $1`, id).Scan(&u.Name, &u.Disabled, &created)
	u.CreatedAt = fromNanos(created)
	return u, s.wrap(err)
}

// ListUsers returns up to limit users with IDs after the cursor.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]sesame.User, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT id, name, disabled, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.User
	for rows.Next() {
		var u sesame.User
		var created int64
		if err := rows.Scan(&u.ID, &u.Name, &u.Disabled, &created); err != nil {
			return nil, err
		}
		u.CreatedAt = fromNanos(created)
		out = append(out, u)
	}
	return out, s.wrap(rows.Err())
}

// CreateUser inserts a user; ErrAlreadyExists if the name is taken.
func (s *Store) CreateUser(ctx context.Context, u sesame.User) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, disabled, created_at) VALUES ($1, $2, $3, $4)`, u.ID, u.Name, u.Disabled, nanos(u.CreatedAt))
		return err
	})
}

// SetUserDisabled disables or enables a user.
func (s *Store) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = $1 WHERE id = $2`, disabled, id)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "user %q not found", id))
	})
}

// DeleteUser removes a user with its keys, memberships and grants, and revokes every key
// its keys minted.
// at is the revocation time.
func (s *Store) DeleteUser(ctx context.Context, id string, at int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Its keys go with it, so the keys they minted (for other users too) are revoked.
		if _, err := s.revokeTrees(ctx, tx, `SELECT id FROM api_keys WHERE user_id = $1`, id, at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE subject_kind = 'user' AND subject = $1`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "user %q not found", id))
	})
}

// --- API keys ---

// ListAPIKeys returns a user's keys (never their hashes' preimages, which are not stored).
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]sesame.APIKey, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT k.id, k.name, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.created_by_key, `+keyLimitColumns+`
		FROM api_keys k WHERE k.user_id = $1 ORDER BY k.created_at, k.id`, userID)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.APIKey
	for rows.Next() {
		k := sesame.APIKey{UserID: userID}
		var created int64
		var exp, rev, used sql.NullInt64
		var by sql.NullString
		var l keyLimitCols
		if err := rows.Scan(append([]any{&k.ID, &k.Name, &created, &exp, &rev, &used, &by}, l.dest()...)...); err != nil {
			return nil, err
		}
		l.to(&k)
		k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromNanos(created), fromNullNanos(exp), fromNullNanos(rev), fromNullNanos(used)
		k.CreatedByKey = by.String
		out = append(out, k)
	}
	return out, s.wrap(rows.Err())
}

// GetAPIKey returns a key's metadata by ID.
func (s *Store) GetAPIKey(ctx context.Context, id string) (sesame.APIKey, error) {
	k := sesame.APIKey{ID: id}
	var created int64
	var exp, rev, used sql.NullInt64
	var by sql.NullString
	var l keyLimitCols
	err := s.reads.QueryRowContext(ctx, `SELECT k.user_id, k.name, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.created_by_key, `+keyLimitColumns+`
		FROM api_keys k WHERE k.id = $1`, id).
		Scan(append([]any{&k.UserID, &k.Name, &created, &exp, &rev, &used, &by}, l.dest()...)...)
	l.to(&k)
	k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromNanos(created), fromNullNanos(exp), fromNullNanos(rev), fromNullNanos(used)
	k.CreatedByKey = by.String
	return k, s.wrap(err)
}

// RevokeAPIKey marks a key revoked (once; revoking again keeps the first time), with every
// key it minted, and theirs.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM api_keys WHERE id = $1`, id).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "key %q not found", id)
			}
			return err
		}
		_, err := s.revokeTrees(ctx, tx, `SELECT id FROM api_keys WHERE id = $1`, id, at)
		return err
	})
}

// RevokeUserAPIKeys revokes every key of a user, with every key they minted, and returns
// how many keys it revoked. ErrNotFound for an unknown user.
func (s *Store) RevokeUserAPIKeys(ctx context.Context, userID string, at int64) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = $1`, userID).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "user %q not found", userID)
			}
			return err
		}
		var err error
		n, err = s.revokeTrees(ctx, tx, `SELECT id FROM api_keys WHERE user_id = $1`, userID, at)
		return err
	})
	return n, err
}

// keyTree is the recursive query of the keys that roots (a query of key IDs with
// parameter $1) selects and every key minted by them, transitively.
func keyTree(roots string) string {
	return `WITH RECURSIVE tree (id) AS (` + roots + `
			UNION
			SELECT k.id FROM api_keys k JOIN tree t ON k.created_by_key = t.id)`
}

// MintedKeyOwners returns the users (sorted, without repeats) owning key id and the keys it
// minted, transitively; with byUser, owning any key of user id and the keys they minted.
// Revoked keys count too.
func (s *Store) MintedKeyOwners(ctx context.Context, id string, byUser bool) ([]string, error) {
	roots := `SELECT id FROM api_keys WHERE id = $1`
	if byUser {
		roots = `SELECT id FROM api_keys WHERE user_id = $1`
	}
	rows, err := s.reads.QueryContext(ctx, keyTree(roots)+` SELECT DISTINCT k.user_id FROM api_keys k JOIN tree t ON k.id = t.id ORDER BY k.user_id`, id)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, s.wrap(rows.Err())
}

// revokeTrees revokes the keys that roots (a query of key IDs with parameter $1 = arg)
// selects and every key minted by them, transitively, and returns how many it revoked
// that were not revoked before. It repeats until a pass revokes nothing: a key minted
// concurrently holds a share lock on its minter's row (see insertKey), so the pass that
// revokes the minter waits for it to commit and the next pass, reading afresh, sees it.
func (s *Store) revokeTrees(ctx context.Context, tx *sql.Tx, roots string, arg any, at int64) (int, error) {
	q := keyTree(roots) + `
		UPDATE api_keys SET revoked_at = $2 WHERE revoked_at IS NULL AND id IN (SELECT id FROM tree)`
	total := 0
	for {
		res, err := tx.ExecContext(ctx, q, arg, at)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		total += int(n)
	}
}

// --- groups ---

// CreateGroup inserts a group with its members.
func (s *Store) CreateGroup(ctx context.Context, g sesame.Group) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)`, g.ID, g.Name, nanos(g.CreatedAt)); err != nil {
			return err
		}
		return insertMembers(ctx, tx, g.ID, g.Members)
	})
}

func insertMembers(ctx context.Context, tx *sql.Tx, groupID string, members []string) error {
	for _, m := range members {
		if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)`, groupID, m); err != nil {
			return fmt.Errorf("member %q: %w", m, err)
		}
	}
	return nil
}

// SetGroupMembers replaces a group's members.
func (s *Store) SetGroupMembers(ctx context.Context, id string, members []string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM groups WHERE id = $1`, id).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "group %q not found", id)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = $1`, id); err != nil {
			return err
		}
		return insertMembers(ctx, tx, id, members)
	})
}

// GetGroup returns a group with its members.
func (s *Store) GetGroup(ctx context.Context, id string) (sesame.Group, error) {
	g := sesame.Group{ID: id, Members: []string{}}
	var created int64
	if err := s.reads.QueryRowContext(ctx, `SELECT name, created_at FROM groups WHERE id = $1`, id).Scan(&g.Name, &created); err != nil {
		return g, s.wrap(err)
	}
	g.CreatedAt = fromNanos(created)
	rows, err := s.reads.QueryContext(ctx, `SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id`, id)
	if err != nil {
		return g, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return g, err
		}
		g.Members = append(g.Members, m)
	}
	return g, s.wrap(rows.Err())
}

// ListGroups returns every group (without members).
func (s *Store) ListGroups(ctx context.Context) ([]sesame.Group, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT id, name, created_at FROM groups ORDER BY name`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.Group
	for rows.Next() {
		var g sesame.Group
		var created int64
		if err := rows.Scan(&g.ID, &g.Name, &created); err != nil {
			return nil, err
		}
		g.CreatedAt = fromNanos(created)
		out = append(out, g)
	}
	return out, s.wrap(rows.Err())
}

// DeleteGroup removes a group, its memberships and grants.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE subject_kind = 'group' AND subject = $1`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "group %q not found", id))
	})
}

// --- roles ---

// PutRole creates or replaces a role. Built-in roles cannot be changed.
func (s *Store) PutRole(ctx context.Context, r sesame.Role) (created bool, err error) {
	privs, _ := json.Marshal(r.Privileges)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var builtin bool
		err := tx.QueryRowContext(ctx, `SELECT builtin FROM roles WHERE name = $1`, r.Name).Scan(&builtin)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			_, err = tx.ExecContext(ctx, `INSERT INTO roles (name, privileges, builtin, created_at) VALUES ($1, $2, FALSE, $3)`, r.Name, string(privs), nanos(r.CreatedAt))
			return err
		case err != nil:
			return err
		case builtin:
			return sesame.Errorf(sesame.CodeProtected, "role %q is built in and cannot be changed", r.Name)
		}
		_, err = tx.ExecContext(ctx, `UPDATE roles SET privileges = $1 WHERE name = $2`, string(privs), r.Name)
		return err
	})
	if errors.Is(err, sesame.ErrAlreadyExists) {
		// Another writer created the role between our read and insert: ours is an update.
		created, err = false, s.tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE roles SET privileges = $1 WHERE name = $2 AND builtin = FALSE`, string(privs), r.Name)
			return err
		})
	}
	return created && err == nil, err
}

// GetRole returns a role.
func (s *Store) GetRole(ctx context.Context, name string) (sesame.Role, error) {
	r := sesame.Role{Name: name}
	var privs string
	var created int64
	err := s.reads.QueryRowContext(ctx, `SELECT privileges, builtin, created_at FROM roles WHERE name = $1`, name).Scan(&privs, &r.Builtin, &created)
	if err != nil {
		return r, s.wrap(err)
	}
	r.CreatedAt = fromNanos(created)
	return r, json.Unmarshal([]byte(privs), &r.Privileges)
}

// ListRoles returns every role.
func (s *Store) ListRoles(ctx context.Context) ([]sesame.Role, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT name, privileges, builtin, created_at FROM roles ORDER BY name`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.Role
	for rows.Next() {
		var r sesame.Role
		var privs string
		var created int64
		if err := rows.Scan(&r.Name, &privs, &r.Builtin, &created); err != nil {
			return nil, err
		}
		r.CreatedAt = fromNanos(created)
		if err := json.Unmarshal([]byte(privs), &r.Privileges); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// DeleteRole removes a role and its grants. Built-in roles cannot be deleted.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var builtin bool
		if err := tx.QueryRowContext(ctx, `SELECT builtin FROM roles WHERE name = $1`, name).Scan(&builtin); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return sesame.Errorf(sesame.CodeNotFound, "role %q not found", name)
			}
			return err
		}
		if builtin {
			return sesame.Errorf(sesame.CodeProtected, "role %q is built in and cannot be deleted", name)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE name = $1`, name)
		return err
	})
}

// --- grants ---

// CreateGrant gives a role to a subject. ErrAlreadyExists if the same grant exists.
func (s *Store) CreateGrant(ctx context.Context, g sesame.Grant) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO grants (id, role, subject_kind, subject, workspace, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			g.ID, g.Role, g.SubjectKind, g.Subject, g.Workspace, nanos(g.CreatedAt))
		return err
	})
}

// DeleteGrant removes a grant.
func (s *Store) DeleteGrant(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, sesame.Errorf(sesame.CodeNotFound, "grant %q not found", id))
	})
}

// ListGrants returns every grant.
func (s *Store) ListGrants(ctx context.Context) ([]sesame.Grant, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT id, role, subject_kind, subject, workspace, created_at FROM grants ORDER BY created_at, id`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.Grant
	for rows.Next() {
		var g sesame.Grant
		var created int64
		if err := rows.Scan(&g.ID, &g.Role, &g.SubjectKind, &g.Subject, &g.Workspace, &created); err != nil {
			return nil, err
		}
		g.CreatedAt = fromNanos(created)
		out = append(out, g)
	}
	return out, s.wrap(rows.Err())
}

// EffectivePrivileges returns, by workspace ("*" for all), the privileges of a user
// (directly and through its groups) or of an app.
func (s *Store) EffectivePrivileges(ctx context.Context, kind, subject string) (map[string][]sesame.Privilege, error) {
	var rows *sql.Rows
	var err error
	switch kind {
	case sesame.SubjectUser:
		rows, err = s.reads.QueryContext(ctx, `SELECT g.workspace, r.privileges FROM grants g JOIN roles r ON r.name = g.role
			WHERE (g.subject_kind = 'user' AND g.subject = $1)
			   OR (g.subject_kind = 'group' AND g.subject IN (SELECT group_id FROM group_members WHERE user_id = $1))`, subject)
	case sesame.SubjectApp:
		// App grants may name a pattern ("com.acme.*"); they are few, so match here.
		rows, err = s.reads.QueryContext(ctx, `SELECT g.workspace, r.privileges, g.subject FROM grants g JOIN roles r ON r.name = g.role
			WHERE g.subject_kind = 'app'`)
	default:
		return map[string][]sesame.Privilege{}, nil
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	out := map[string][]sesame.Privilege{}
	cols, _ := rows.Columns()
	for rows.Next() {
		var ws, privs, pattern string
		dest := []any{&ws, &privs, &pattern}[:len(cols)]
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if kind == sesame.SubjectApp && !AppMatches(pattern, subject) {
			continue
		}
		var ps []sesame.Privilege
		if err := json.Unmarshal([]byte(privs), &ps); err != nil {
			return nil, err
		}
		out[ws] = append(out[ws], ps...)
	}
	return out, s.wrap(rows.Err())
}

// AppMatches reports whether an app grant's subject (an app ID, or "prefix.*") covers appID
// (sesame.AppPatternMatches: trial apps only under patterns that name com.example).
func AppMatches(pattern, appID string) bool { return sesame.AppPatternMatches(pattern, appID) }

// UserByName returns the user with the given name or ErrNotFound.
func (s *Store) UserByName(ctx context.Context, name string) (sesame.User, error) {
	u := sesame.User{Name: name}
	var created int64
	err := s.reads.QueryRowContext(ctx, `SELECT id, disabled, created_at FROM users WHERE name = $1`, name).Scan(&u.ID, &u.Disabled, &created)
	u.CreatedAt = fromNanos(created)
	return u, s.wrap(err)
}

// SetGroupMember adds user to group (member) or removes them, one row at a time so that
// concurrent changes to other members are not lost; it reports whether anything changed.
func (s *Store) SetGroupMember(ctx context.Context, groupID, userID string, member bool) (bool, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		q := `DELETE FROM group_members WHERE group_id = $1 AND user_id = $2`
		if member {
			q = `INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`
		}
		res, err := tx.ExecContext(ctx, q, groupID, userID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, s.wrap(err)
}
