package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
)

// KeysChannel is the notification channel on which a rotation announces a new primary
// master key to the other replicas (PostgreSQL LISTEN/NOTIFY).
const KeysChannel = "sesame_master_keys"

// Replica identifies this process among the replicas sharing a store, for the heartbeat
// that tells a rotation which master keys every live replica holds.
type Replica struct {
	ID string
	// Live is how long after its last heartbeat a replica still counts as live.
	Live time.Duration
}

// SetReplica names this replica. Without it the vault sends no heartbeat, and a rotation
// checks only the replicas that do.
func (v *Vault) SetReplica(r Replica) {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	v.replica = r
	v.started = v.now()
}

func (v *Vault) liveSince(now time.Time) time.Time {
	live := v.replica.Live
	if live <= 0 {
		live = 15 * time.Second
	}
	return now.Add(-live)
}

func parseKeyID(s string) (crypt.KeyID, error) {
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("vault: bad master key ID %q in the store", s)
	}
	return crypt.KeyID(n), nil
}

// initKeyRing records the key ring on a store that has none (the first start, or a store
// from before key rings were recorded). The primary is the key the store's key check is
// sealed under (the first key of the file on a new store); other keys that still seal
// values (a rotation interrupted before key rings were recorded) are draining, and
// FinishRotation moves their values to the primary. Then it applies what the store records.
func (v *Vault) initKeyRing(ctx context.Context) error {
	_, err := v.store.GetKeyRing(ctx)
	if errors.Is(err, sesame.ErrNotFound) {
		check, err := v.store.GetMeta(ctx, metaKeyCheck)
		if err != nil {
			return err
		}
		primary, err := crypt.KeyIDOf(check)
		if err != nil {
			return fmt.Errorf("vault: key check: %w", err)
		}
		counts, err := v.store.CountSealedByKey(ctx)
		if err != nil {
			return err
		}
		var draining []string
		for id, n := range counts {
			if id != primary.String() && id != "malformed" && n > 0 {
				draining = append(draining, id)
			}
		}
		if err := v.store.InitKeyRing(ctx, primary.String(), draining, v.now()); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return v.SyncKeys(ctx)
}

// SyncKeys makes the store's primary master key this keyring's primary. When this replica
// does not hold it, sealing is refused (503 master_key_unavailable) and it says so in the
// log, naming the key, until the key is added to its keyring.
func (v *Vault) SyncKeys(ctx context.Context) error {
	ring, err := v.store.GetKeyRing(ctx)
	if err != nil {
		return fmt.Errorf("vault: read the master key ring: %w", err)
	}
	id, err := parseKeyID(ring.Primary)
	if err != nil {
		return err
	}
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	held := v.keyring.SetPrimary(id)
	switch {
	case !held && v.missingLogged != id:
		v.missingLogged = id
		v.log.Error("master key unavailable: the store's primary master key is not in this replica's key file; writes of secrets and reads of values sealed under it answer 503 master_key_unavailable until it is added",
			"key_id", id.String())
	case held && v.missingLogged != 0:
		v.missingLogged = 0
		v.log.Info("master key available again", "key_id", id.String())
	}
	return nil
}

// Ready reports whether this replica holds the primary master key.
func (v *Vault) Ready() error {
	if id, missing := v.keyring.Missing(); missing {
		return &crypt.KeyUnavailableError{ID: id, Primary: true}
	}
	return nil
}

// Heartbeat records in the store that this replica runs and which master keys it holds.
func (v *Vault) Heartbeat(ctx context.Context) error {
	v.keyMu.Lock()
	r, started := v.replica, v.started
	v.keyMu.Unlock()
	if r.ID == "" {
		return nil
	}
	var ids []string
	for _, id := range v.keyring.IDs() {
		ids = append(ids, id.String())
	}
	_, missing := v.keyring.Missing()
	return v.store.Heartbeat(ctx, store.Replica{ID: r.ID, KeyIDs: ids, HoldsPrimary: !missing, StartedAt: started, SeenAt: v.now()})
}

func (v *Vault) heartbeat(ctx context.Context) {
	if err := v.Heartbeat(ctx); err != nil {
		v.log.Warn("replica heartbeat", "err", err)
	}
}

// Leave removes this replica's heartbeat (it is shutting down).
func (v *Vault) Leave(ctx context.Context) error {
	if v.replica.ID == "" {
		return nil
	}
	return v.store.DeleteReplica(ctx, v.replica.ID)
}

// KeyStatus is the master-key ring as the store records it and as the replicas hold it.
type KeyStatus struct {
	Primary  string                 `json:"primary"`
	Version  int64                  `json:"version"`
	Keys     []store.MasterKeyState `json:"keys"`
	Replicas []ReplicaStatus        `json:"replicas"`
	// This is the replica that answered.
	This string `json:"this_replica"`
}

// ReplicaStatus is one replica's heartbeat, and whether it is live.
type ReplicaStatus struct {
	store.Replica
	Live bool `json:"live"`
}

// KeyStatus reports the key ring and every replica's heartbeat. It never shows key
// material, only key IDs.
func (v *Vault) KeyStatus(ctx context.Context) (KeyStatus, error) {
	v.heartbeat(ctx)
	ring, err := v.store.GetKeyRing(ctx)
	if err != nil {
		return KeyStatus{}, err
	}
	rs, err := v.store.ListReplicas(ctx, time.Time{})
	if err != nil {
		return KeyStatus{}, err
	}
	since := v.liveSince(v.now())
	st := KeyStatus{Primary: ring.Primary, Version: ring.Version, Keys: ring.Keys, This: v.replica.ID, Replicas: []ReplicaStatus{}}
	for _, r := range rs {
		st.Replicas = append(st.Replicas, ReplicaStatus{Replica: r, Live: !r.SeenAt.Before(since)})
	}
	return st, nil
}

// ReloadKeys makes keys (a re-read key file) the keys this replica holds. It is skipped
// while a rotation runs here: the rotation writes the key file itself.
func (v *Vault) ReloadKeys(keys []*crypt.MasterKey) {
	if !v.rotateMu.TryLock() {
		for _, k := range keys {
			k.Wipe()
		}
		return
	}
	defer v.rotateMu.Unlock()
	before := v.keyring.IDs()
	v.keyring.Replace(keys)
	if after := v.keyring.IDs(); !sameIDs(before, after) {
		v.log.Info("master keys reloaded", "key_ids", idStrings(after))
	}
}

func sameIDs(a, b []crypt.KeyID) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[crypt.KeyID]bool, len(a))
	for _, id := range a {
		seen[id] = true
	}
	for _, id := range b {
		if !seen[id] {
			return false
		}
	}
	return true
}

func idStrings(ids []crypt.KeyID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
