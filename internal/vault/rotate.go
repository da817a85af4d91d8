package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
)

// KeySaver persists the master keys, primary first, so that a restart finds them; it is nil
// when the keys come from the environment and cannot be written.
type KeySaver func(keys []*crypt.MasterKey) error

// ErrKeyInUse means the new master key is already the primary.
var ErrKeyInUse = errors.New("vault: the new master key is already in use")

// RotateResult reports a master-key rotation.
type RotateResult struct {
	KeyID          string   `json:"key_id"`
	PreviousKeyIDs []string `json:"previous_key_ids"`
	Rewrapped      int      `json:"rewrapped"`
	Persisted      bool     `json:"persisted"`
}

// RotateMasterKey makes newKey the primary master key of the store and re-wraps every
// stored data key under it while every replica keeps serving. newKey may already be on
// this replica's keyring (added to its key file), which is how a rotation with several
// replicas goes: every replica must hold the new key first, or the rotation is refused
// with CodeRotationRefused naming the replicas that lack it, and nothing changes.
//
// The change of primary is one store transaction under a lock that every sealing write
// also takes, so from then on no replica can store a blob under the old key; the re-wrap
// then walks the store until a pass changes nothing, and the old keys are recorded as
// retired. Only data keys are re-wrapped; no secret is decrypted and sealed again. With
// save set, the key file holds the new and old keys during the walk and only the new key
// afterwards, so a crash at any point leaves a file that opens the store.
func (v *Vault) RotateMasterKey(ctx context.Context, newKey *crypt.MasterKey, save KeySaver) (RotateResult, error) {
	v.rotateMu.Lock()
	defer v.rotateMu.Unlock()

	res := RotateResult{KeyID: newKey.ID().String(), Persisted: save != nil}
	if _, err := v.finishPending(ctx, save); err != nil {
		return res, err
	}
	if err := v.SyncKeys(ctx); err != nil {
		return res, err
	}
	if v.keyring.Primary() == newKey.ID() {
		return res, ErrKeyInUse
	}
	if id, missing := v.keyring.Missing(); missing {
		return res, &crypt.KeyUnavailableError{ID: id, Primary: true}
	}
	added := !v.keyring.Has(newKey.ID())
	v.keyring.Add(newKey)
	var old []*crypt.MasterKey
	for _, k := range v.keyring.Keys() {
		if k.ID() != newKey.ID() {
			old = append(old, k)
			res.PreviousKeyIDs = append(res.PreviousKeyIDs, k.ID().String())
		}
	}
	undo := func() {
		if !added {
			return
		}
		v.keyring.Remove(newKey.ID())
		if save != nil {
			if err := save(v.keyring.Keys()); err != nil {
				v.log.Warn("restore the key file after a refused rotation", "err", err)
			}
		}
		v.heartbeat(ctx)
	}
	if save != nil {
		if err := save(append([]*crypt.MasterKey{newKey}, old...)); err != nil {
			return res, fmt.Errorf("vault: save key file before rotation: %w", err)
		}
	}
	// Announce the new key first, so this replica does not strand itself.
	v.heartbeat(ctx)

	now := v.now()
	v.keyMu.Lock()
	stranded, err := v.store.PromoteKey(ctx, newKey.ID().String(), v.liveSince(now), now)
	if err == nil && len(stranded) == 0 {
		v.keyring.SetPrimary(newKey.ID())
	}
	v.keyMu.Unlock()
	if err != nil {
		undo()
		return res, err
	}
	if len(stranded) > 0 {
		undo()
		names := make([]string, len(stranded))
		for i, r := range stranded {
			names[i] = fmt.Sprintf("%s (holds %s)", r.ID, strings.Join(r.KeyIDs, ","))
		}
		return res, &sesame.Error{Code: sesame.CodeRotationRefused,
			Message: fmt.Sprintf("rotation to master key %s refused: it would strand %d live replica(s) that do not hold it: %s; add the key to their key files first (see `sesame keys status`)",
				newKey.ID(), len(stranded), strings.Join(names, "; ")),
			Details: map[string]string{"key_id": newKey.ID().String(), "replicas": strings.Join(replicaIDs(stranded), ",")}}
	}
	v.log.Info("master key rotation started", "key_id", newKey.ID().String(), "previous_key_ids", res.PreviousKeyIDs)
	if err := v.store.Notify(ctx, KeysChannel, newKey.ID().String()); err != nil {
		v.log.Warn("announce master key change", "err", err)
	}
	v.heartbeat(ctx)
	n, err := v.finishRotation(ctx, save, newKey.ID())
	res.Rewrapped = n
	return res, err
}

func replicaIDs(rs []store.Replica) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// FinishRotation completes a rotation that a crash interrupted: when the store records
// draining keys it re-wraps everything under the primary and retires them. A replica that
// lacks the primary or a draining key leaves it to another (it logs why).
func (v *Vault) FinishRotation(ctx context.Context, save KeySaver) (int, error) {
	v.rotateMu.Lock()
	defer v.rotateMu.Unlock()
	return v.finishPending(ctx, save)
}

func (v *Vault) finishPending(ctx context.Context, save KeySaver) (int, error) {
	ring, err := v.store.GetKeyRing(ctx)
	if err != nil {
		return 0, err
	}
	draining := ring.Draining()
	if len(draining) == 0 {
		return 0, nil
	}
	target, err := parseKeyID(ring.Primary)
	if err != nil {
		return 0, err
	}
	for _, s := range append([]string{ring.Primary}, draining...) {
		id, err := parseKeyID(s)
		if err != nil {
			return 0, err
		}
		if !v.keyring.Has(id) {
			return 0, &sesame.Error{Code: sesame.CodeRotationRefused,
				Message: fmt.Sprintf("the rotation to master key %s has not finished, and this replica lacks master key %s to finish it; run it on a replica that holds both", ring.Primary, id)}
		}
	}
	v.keyMu.Lock()
	v.keyring.SetPrimary(target)
	v.keyMu.Unlock()
	return v.finishRotation(ctx, save, target)
}

func (v *Vault) finishRotation(ctx context.Context, save KeySaver, target crypt.KeyID) (int, error) {
	total := 0
	// A blob sealed before the change of primary committed is in the store by now (the
	// write held the key-ring lock); one sealed after is under the new key. So a pass that
	// changes nothing means every blob is under target.
	for {
		n, err := v.store.RewrapSealed(ctx, v.keyring.RewrapTo(target))
		total += n
		if err != nil {
			return total, fmt.Errorf("vault: re-wrap (the old key stays valid; run the rotation again): %w", err)
		}
		if n == 0 {
			break
		}
	}
	retired, err := v.store.RetireDraining(ctx, v.now())
	if err != nil {
		return total, fmt.Errorf("vault: record the old master keys as retired: %w", err)
	}
	if save != nil {
		if err := save(v.keyring.Keys()[:1]); err != nil {
			return total, fmt.Errorf("vault: save key file after rotation: %w", err)
		}
	}
	v.keyring.Retire()
	v.records.Clear()
	v.heartbeat(ctx)
	// A replica that started between the check and the change of primary without the new
	// key is refusing (503) now: say which, so that its key file gets the key.
	if rs, err := v.store.ListReplicas(ctx, v.liveSince(v.now())); err == nil {
		for _, r := range rs {
			if !r.Holds(target.String()) {
				v.log.Warn("a live replica does not hold the new primary master key; add it to its key file", "replica", r.ID, "key_id", target.String())
			}
		}
	}
	v.log.Info("master key rotation complete", "key_id", target.String(), "retired_key_ids", retired, "rewrapped", total)
	return total, nil
}
