// Package vault is the credential vault (PRODUCT.md C1): it checks credential bodies
// against their type, seals secret fields above the store, shows only public fields and
// secret metadata on reads, resolves plaintext for injection, and rotates the master key.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/ttlcache"
)

// Store is the storage the vault needs.
type Store interface {
	GetMeta(ctx context.Context, name string) ([]byte, error)
	PutMeta(ctx context.Context, name string, value []byte, sealed bool) error
	CountSealed(ctx context.Context) (int, error)
	RewrapSealed(ctx context.Context, fn store.Rewrapper) (int, error)
	CountSealedByKey(ctx context.Context) (map[string]int, error)

	GetKeyRing(ctx context.Context) (store.KeyRing, error)
	InitKeyRing(ctx context.Context, primary string, draining []string, now time.Time) error
	PromoteKey(ctx context.Context, newID string, liveSince, now time.Time) ([]store.Replica, error)
	RetireDraining(ctx context.Context, now time.Time) ([]string, error)
	Heartbeat(ctx context.Context, r store.Replica) error
	ListReplicas(ctx context.Context, since time.Time) ([]store.Replica, error)
	DeleteReplica(ctx context.Context, id string) error
	Notify(ctx context.Context, channel, payload string) error

	CreateWorkspace(ctx context.Context, ws sesame.Workspace) error
	GetWorkspace(ctx context.Context, name string) (sesame.Workspace, error)
	ListWorkspaces(ctx context.Context, after string, limit int) ([]sesame.Workspace, error)
	DeleteWorkspace(ctx context.Context, name string, force bool) error
	CopyWorkspace(ctx context.Context, from, to string, now time.Time) error

	GetCredential(ctx context.Context, ws, key string) (sesame.CredentialRecord, error)
	ListCredentials(ctx context.Context, ws, after string, limit int) ([]sesame.CredentialRecord, error)
	PutCredential(ctx context.Context, rec sesame.CredentialRecord, expectVersion int64) (int64, error)
	DeleteCredential(ctx context.Context, ws, key string, force bool) error

	ListOAuthGrants(ctx context.Context, ws, cred, afterCred, afterUser string, limit int) ([]sesame.OAuthGrant, error)
}

// Vault is the credential vault service.
type Vault struct {
	store   Store
	keyring *crypt.Keyring
	now     sesame.Clock
	log     *slog.Logger

	rotateMu sync.Mutex
	// keyMu orders changes of the keyring's primary (a sync from the store, a rotation).
	keyMu         sync.Mutex
	missingLogged crypt.KeyID
	replica       Replica
	started       time.Time
	// records caches sealed credential records for Resolve, the per-call path. This
	// process's writes drop entries at once; another replica's show within the TTL.
	records *ttlcache.Cache[string, sesame.CredentialRecord]
	// onWorkspaceChange runs after a workspace is created, copied or deleted: deleting one
	// deletes its grants, so cached access decisions must go (see OnWorkspaceChange).
	onWorkspaceChange []func(ctx context.Context)
	// auditor records the vault's own changes (see SetAuditor); nil records nothing.
	auditor Auditor
}

// OnWorkspaceChange registers fn to run after a workspace is created, copied or deleted
// (whether or not the store reported an error: the change may have committed). Access
// control uses it to drop cached decisions on every replica. Register before serving.
func (v *Vault) OnWorkspaceChange(fn func(ctx context.Context)) {
	v.onWorkspaceChange = append(v.onWorkspaceChange, fn)
}

func (v *Vault) workspaceChanged(ctx context.Context) {
	for _, fn := range v.onWorkspaceChange {
		fn(ctx)
	}
}

// cacheTTL bounds how long a change made on another replica can take to be seen.
const cacheTTL = time.Second

// New returns a vault over st, sealing with kr. Call Unlock before use.
func New(st Store, kr *crypt.Keyring, now sesame.Clock, log *slog.Logger) *Vault {
	if now == nil {
		now = time.Now
	}
	return &Vault{store: st, keyring: kr, now: now, log: log, records: ttlcache.New[string, sesame.CredentialRecord](cacheTTL, 10_000, nil)}
}

const metaKeyCheck = "keycheck"

var keyCheckPlaintext = []byte("sesame master key check v1")

// ErrWrongMasterKey means the master key cannot open what the store holds.
var ErrWrongMasterKey = errors.New("the master key does not match this store")

// CheckKey reports whether kr opens keyCheck, a store's sealed key check (as a backup
// carries it): ErrWrongMasterKey if not.
func CheckKey(kr *crypt.Keyring, keyCheck []byte) error {
	if _, err := kr.Open(keyCheck, metaKeyCheck); err != nil {
		id, _ := crypt.KeyIDOf(keyCheck)
		return fmt.Errorf("%w: it is sealed under master key %s, and the key given (%s) cannot open it", ErrWrongMasterKey, id, kr.Primary())
	}
	return nil
}

// Unlock checks that the keyring opens the store. On a store that has never held a
// sealed value it records a key check sealed under the primary key; on one that has, a key
// that cannot open the check is refused with ErrWrongMasterKey and nothing is written.
// It also makes sure the default workspace exists.
func (v *Vault) Unlock(ctx context.Context) error {
	blob, err := v.store.GetMeta(ctx, metaKeyCheck)
	switch {
	case errors.Is(err, sesame.ErrNotFound):
		n, err := v.store.CountSealed(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: the store holds %d sealed values but no key check", ErrWrongMasterKey, n)
		}
		sealed, err := v.keyring.Seal(keyCheckPlaintext, metaKeyCheck)
		if err != nil {
			return err
		}
		if err := v.store.PutMeta(ctx, metaKeyCheck, sealed, true); err != nil && !errors.Is(err, sesame.ErrAlreadyExists) {
			return err
		} else if err != nil {
			return v.Unlock(ctx) // another replica initialised the store first: check against its key
		}
	case err != nil:
		return err
	default:
		if _, err := v.keyring.Open(blob, metaKeyCheck); err != nil {
			id, _ := crypt.KeyIDOf(blob)
			return fmt.Errorf("%w: the store is sealed under master key %s, and the key given (%s) cannot open it",
				ErrWrongMasterKey, id, v.keyring.Primary())
		}
	}
	if err := v.initKeyRing(ctx); err != nil {
		return err
	}
	err = v.store.CreateWorkspace(ctx, sesame.Workspace{Name: sesame.DefaultWorkspace, CreatedAt: v.now()})
	if err != nil && !errors.Is(err, sesame.ErrAlreadyExists) {
		return err
	}
	return nil
}

// ServerSecret returns the server-wide random secret called name, creating it (sealed, 32
// bytes) on first use. Every replica gets the same value.
func (v *Vault) ServerSecret(ctx context.Context, name string) (sesame.Secret, error) {
	meta := "secret." + name
	for range 2 {
		blob, err := v.store.GetMeta(ctx, meta)
		if err == nil {
			pt, err := v.keyring.Open(blob, meta)
			if err != nil {
				return sesame.Secret{}, fmt.Errorf("vault: open server secret %s: %w", name, err)
			}
			return sesame.NewSecret(pt), nil
		}
		if !errors.Is(err, sesame.ErrNotFound) {
			return sesame.Secret{}, err
		}
		raw, err := crypt.GenerateMasterKey() // 32 random bytes; only the bytes are used
		if err != nil {
			return sesame.Secret{}, err
		}
		sealed, err := v.keyring.Seal([]byte(raw.Encode()), meta)
		raw.Wipe()
		if err != nil {
			return sesame.Secret{}, err
		}
		if err := v.store.PutMeta(ctx, meta, sealed, true); err != nil && !errors.Is(err, sesame.ErrAlreadyExists) {
			return sesame.Secret{}, err
		}
	}
	return sesame.Secret{}, fmt.Errorf("vault: server secret %s could not be created", name)
}

func recordKey(ws, key string) string { return ws + "\x00" + key }

func secretIdentity(ws, key, field string) []string {
	return []string{"credential", ws, key, field}
}

// Types returns the credential types the vault accepts.
func Types() []string { return credential.Types() }
