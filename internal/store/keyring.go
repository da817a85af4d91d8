package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
)

// Master-key states in master_keys.
const (
	KeyPrimary  = "primary"  // new blobs are sealed under it
	KeyDraining = "draining" // a rotation away from it is re-wrapping its blobs
	KeyRetired  = "retired"  // no blob is sealed under it
)

// KeyRing is the store's record of the master keys: which one is primary and the state of
// every key it has known. Version grows with every change of primary.
type KeyRing struct {
	Primary string
	Version int64
	Keys    []MasterKeyState
}

// Draining returns the IDs of keys a rotation is still moving blobs away from.
func (k KeyRing) Draining() []string {
	var out []string
	for _, m := range k.Keys {
		if m.State == KeyDraining {
			out = append(out, m.ID)
		}
	}
	return out
}

// MasterKeyState is one master key's ID and state. The store never sees key material.
type MasterKeyState struct {
	ID        string    `json:"key_id"`
	State     string    `json:"state"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Replica is a running server's heartbeat: the master-key IDs it holds.
type Replica struct {
	ID           string    `json:"id"`
	KeyIDs       []string  `json:"key_ids"`
	HoldsPrimary bool      `json:"holds_primary"`
	StartedAt    time.Time `json:"started_at"`
	SeenAt       time.Time `json:"seen_at"`
}

// Holds reports whether the replica holds key id.
func (r Replica) Holds(id string) bool {
	for _, k := range r.KeyIDs {
		if k == id {
			return true
		}
	}
	return false
}

// lockRow is the row-lock clause that makes a reader of keyring_state wait for, and then
// see, a concurrent change of primary. SQLite serializes writers, so it needs none.
func (s *Store) lockRow(mode string) string {
	if s.dialect.name() == "postgres" {
		return " FOR " + mode
	}
	return ""
}

// GetKeyRing returns the key-ring record; ErrNotFound if none was recorded yet.
func (s *Store) GetKeyRing(ctx context.Context) (KeyRing, error) {
	var k KeyRing
	err := s.read.QueryRowContext(ctx, `SELECT primary_key, version FROM keyring_state WHERE id = 1`).Scan(&k.Primary, &k.Version)
	if err != nil {
		return KeyRing{}, s.wrap(err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT key_id, state, updated_at FROM master_keys ORDER BY updated_at DESC, key_id`)
	if err != nil {
		return KeyRing{}, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var m MasterKeyState
		var at int64
		if err := rows.Scan(&m.ID, &m.State, &at); err != nil {
			return KeyRing{}, err
		}
		m.UpdatedAt = fromNanos(at)
		k.Keys = append(k.Keys, m)
	}
	return k, s.wrap(rows.Err())
}

// InitKeyRing records primary as the primary key, and draining as keys a rotation must
// still move blobs away from, unless a key ring is already recorded (another replica got
// there first, or this is not the first start): then it changes nothing.
func (s *Store) InitKeyRing(ctx context.Context, primary string, draining []string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM keyring_state`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO keyring_state (id, primary_key, version, updated_at) VALUES (1, $1, 1, $2)
			ON CONFLICT (id) DO NOTHING`, primary, nanos(now)); err != nil {
			return err
		}
		if err := setKeyState(ctx, tx, primary, KeyPrimary, now); err != nil {
			return err
		}
		for _, id := range draining {
			if err := setKeyState(ctx, tx, id, KeyDraining, now); err != nil {
				return err
			}
		}
		return nil
	})
}

func setKeyState(ctx context.Context, tx *sql.Tx, id, state string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO master_keys (key_id, state, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`, id, state, nanos(now))
	return err
}

// PromoteKey makes newID the primary key and the old primary draining, in one transaction
// that first checks, under a lock on the key ring, that every replica seen since liveSince
// holds newID. If some do not, it changes nothing and returns them. A rotation that has
// not finished (a draining key) is refused with CodeRotationRefused.
func (s *Store) PromoteKey(ctx context.Context, newID string, liveSince, now time.Time) (stranded []Replica, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var primary string
		if err := tx.QueryRowContext(ctx, `SELECT primary_key FROM keyring_state WHERE id = 1`+s.lockRow("UPDATE")).Scan(&primary); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: no key ring recorded")
			}
			return err
		}
		if primary == newID {
			return sesame.Errorf(sesame.CodeConflict, "master key %s is already the primary", newID)
		}
		var draining string
		err := tx.QueryRowContext(ctx, `SELECT key_id FROM master_keys WHERE state = $1 LIMIT 1`, KeyDraining).Scan(&draining)
		if err == nil {
			return &sesame.Error{Code: sesame.CodeRotationRefused,
				Message: fmt.Sprintf("an earlier rotation away from master key %s has not finished; run the rotation again on a replica that holds it", draining)}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		live, err := listReplicas(ctx, tx, liveSince)
		if err != nil {
			return err
		}
		for _, r := range live {
			if !r.Holds(newID) {
				stranded = append(stranded, r)
			}
		}
		if len(stranded) > 0 {
			return nil
		}
		if err := setKeyState(ctx, tx, primary, KeyDraining, now); err != nil {
			return err
		}
		if err := setKeyState(ctx, tx, newID, KeyPrimary, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE keyring_state SET primary_key = $1, version = version + 1, updated_at = $2 WHERE id = 1`, newID, nanos(now))
		return err
	})
	return stranded, err
}

// RetireDraining marks the draining keys retired. It refuses (CodeRotationRefused) while
// any blob is still sealed under one of them; once a pass of RewrapSealed changed nothing,
// every blob is under the primary, and checkSealed keeps it so.
func (s *Store) RetireDraining(ctx context.Context, now time.Time) ([]string, error) {
	var out []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		counts, err := countSealedByKey(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT key_id FROM master_keys WHERE state = $1`, KeyDraining)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			out = append(out, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range out {
			if n := counts[id]; n > 0 {
				return &sesame.Error{Code: sesame.CodeRotationRefused,
					Message: fmt.Sprintf("master key %s still seals %d values; it stays draining: run the rotation again", id, n)}
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE master_keys SET state = $1, updated_at = $2 WHERE state = $3`, KeyRetired, nanos(now), KeyDraining)
		return err
	})
	return out, err
}

// Heartbeat records that replica r is running and holds r.KeyIDs.
func (s *Store) Heartbeat(ctx context.Context, r Replica) error {
	ids := append([]string(nil), r.KeyIDs...)
	sort.Strings(ids)
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO replicas (replica_id, key_ids, holds_primary, started_at, seen_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (replica_id) DO UPDATE SET key_ids = excluded.key_ids, holds_primary = excluded.holds_primary,
			started_at = excluded.started_at, seen_at = excluded.seen_at`,
			r.ID, strings.Join(ids, ","), r.HoldsPrimary, nanos(r.StartedAt), nanos(r.SeenAt))
		return err
	})
}

// DeleteReplica removes a replica's heartbeat (it is shutting down).
func (s *Store) DeleteReplica(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE replica_id = $1`, id)
		return err
	})
}

// ListReplicas returns the replicas seen since since (all with the zero time), by ID.
func (s *Store) ListReplicas(ctx context.Context, since time.Time) ([]Replica, error) {
	var out []Replica
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = listReplicas(ctx, tx, since)
		return err
	})
	return out, err
}

func listReplicas(ctx context.Context, tx *sql.Tx, since time.Time) ([]Replica, error) {
	var sinceN int64
	if !since.IsZero() {
		sinceN = nanos(since)
	}
	rows, err := tx.QueryContext(ctx, `SELECT replica_id, key_ids, holds_primary, started_at, seen_at FROM replicas
		WHERE seen_at >= $1 ORDER BY replica_id`, sinceN)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		var ids string
		var started, seen int64
		if err := rows.Scan(&r.ID, &ids, &r.HoldsPrimary, &started, &seen); err != nil {
			return nil, err
		}
		if ids != "" {
			r.KeyIDs = strings.Split(ids, ",")
		}
		r.StartedAt, r.SeenAt = fromNanos(started), fromNanos(seen)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ErrPrimaryChanged is in the chain of the error a write returns when one of its blobs is
// not sealed under the store's primary master key (a rotation changed it): the caller
// reloads the key ring and seals again. Its client form is a 503 master_key_unavailable.
var ErrPrimaryChanged = errors.New("store: the primary master key changed")

// checkSealed refuses, inside the write's transaction, blobs not sealed under the primary
// master key. On PostgreSQL the shared lock on the key ring makes a concurrent change of
// primary wait for this write to commit (so the rotation's re-wrap sees it), or makes this
// write wait for the change and then see the new primary. With no key ring recorded yet
// (first start) any key is accepted.
func (s *Store) checkSealed(ctx context.Context, tx *sql.Tx, blobs ...[]byte) error {
	sealed := false
	for _, b := range blobs {
		sealed = sealed || b != nil
	}
	if !sealed {
		return nil
	}
	var primary string
	err := tx.QueryRowContext(ctx, `SELECT primary_key FROM keyring_state WHERE id = 1`+s.lockRow("SHARE")).Scan(&primary)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if b == nil {
			continue
		}
		id, err := crypt.KeyIDOf(b)
		if err != nil {
			return err
		}
		if id.String() != primary {
			return fmt.Errorf("%w: %w", ErrPrimaryChanged, &sesame.Error{Code: sesame.CodeMasterKeyUnavailable,
				Message:    fmt.Sprintf("the primary master key changed to %s while this value was sealed under %s; retry", primary, id),
				RetryAfter: time.Second, Details: map[string]string{"key_id": primary}})
		}
	}
	return nil
}
