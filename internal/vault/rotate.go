package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/sesamehq/sesame/internal/crypt"
)

// KeySaver persists the master keys, primary first, so that a restart finds them; it is nil
// when the keys come from the environment and cannot be written.
type KeySaver func(keys []*crypt.MasterKey) error

// ErrKeyInUse means the new master key is already on the keyring.
var ErrKeyInUse = errors.New("vault: the new master key is already in use")

// RotateResult reports a master-key rotation.
type RotateResult struct {
	KeyID          string   `json:"key_id"`
	PreviousKeyIDs []string `json:"previous_key_ids"`
	Rewrapped      int      `json:"rewrapped"`
	Persisted      bool     `json:"persisted"`
}

// RotateMasterKey makes newKey the primary master key and re-wraps every stored data key
// under it while the vault keeps serving: until the walk is done the old keys still open
// blobs; then they are dropped. Only data keys are re-wrapped; no secret is decrypted and
// sealed again. With save set, the key file holds the new and old keys during the walk and
// only the new key afterwards, so a crash at any point leaves a file that opens the store.
func (v *Vault) RotateMasterKey(ctx context.Context, newKey *crypt.MasterKey, save KeySaver) (RotateResult, error) {
	v.rotateMu.Lock()
	defer v.rotateMu.Unlock()

	res := RotateResult{KeyID: newKey.ID().String(), Persisted: save != nil}
	old := v.keyring.Keys()
	for _, k := range old {
		if k.ID() == newKey.ID() {
			return res, ErrKeyInUse
		}
		res.PreviousKeyIDs = append(res.PreviousKeyIDs, k.ID().String())
	}
	if save != nil {
		if err := save(append([]*crypt.MasterKey{newKey}, old...)); err != nil {
			return res, fmt.Errorf("vault: save key file before rotation: %w", err)
		}
	}
	v.keyring.Promote(newKey)
	n, err := v.finishRotation(ctx, save)
	res.Rewrapped = n
	return res, err
}

// FinishRotation completes a rotation that a crash interrupted: when the keyring holds
// more than one key it re-wraps everything under the primary and drops the others.
func (v *Vault) FinishRotation(ctx context.Context, save KeySaver) (int, error) {
	v.rotateMu.Lock()
	defer v.rotateMu.Unlock()
	if len(v.keyring.Keys()) == 1 {
		return 0, nil
	}
	return v.finishRotation(ctx, save)
}

func (v *Vault) finishRotation(ctx context.Context, save KeySaver) (int, error) {
	total := 0
	// A second pass finds nothing unless a write raced the first with an old key; loop
	// until a pass changes nothing.
	for {
		n, err := v.store.RewrapSealed(ctx, v.keyring.Rewrap)
		total += n
		if err != nil {
			return total, fmt.Errorf("vault: re-wrap (the old key stays valid; run the rotation again): %w", err)
		}
		if n == 0 {
			break
		}
	}
	if save != nil {
		if err := save(v.keyring.Keys()[:1]); err != nil {
			return total, fmt.Errorf("vault: save key file after rotation: %w", err)
		}
	}
	v.keyring.Retire()
	v.records.Clear()
	v.log.Info("master key rotation complete", "key_id", v.keyring.Primary().String(), "rewrapped", total)
	return total, nil
}
