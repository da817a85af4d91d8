package vault_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
	"github.com/sesamehq/sesame/internal/vault"
)

type backend struct {
	name string
	open func(t *testing.T) *store.Store
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) *store.Store {
			st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "v.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"postgres", func(t *testing.T) *store.Store {
			st, err := store.OpenPostgres(context.Background(), testpg.URL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
	}
}

func newKey(t *testing.T) *crypt.MasterKey {
	t.Helper()
	k, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newVault(t *testing.T, st *store.Store, keys ...*crypt.MasterKey) *vault.Vault {
	t.Helper()
	v := vault.New(st, crypt.NewKeyring(keys[0], keys[1:]...), time.Now, slog.New(slog.DiscardHandler))
	if err := v.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	return v
}

func putSecret(t *testing.T, v *vault.Vault, key, value string) {
	t.Helper()
	body := fmt.Sprintf(`{"type":"secret","fields":{"value":%q}}`, value)
	if _, _, err := v.PutCredential(context.Background(), "default", key, []byte(body), vault.Actor{Admin: true}); err != nil {
		t.Fatal(err)
	}
}

func TestRotateUnderConcurrentReads(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.open(t)
			oldKey := newKey(t)
			v := newVault(t, st, oldKey)
			const n = 300 // more than one rewrap batch
			for i := range n {
				putSecret(t, v, fmt.Sprintf("c%03d", i), fmt.Sprintf("value-%d", i))
			}

			var saved [][]*crypt.MasterKey
			save := func(keys []*crypt.MasterKey) error {
				saved = append(saved, append([]*crypt.MasterKey(nil), keys...))
				return nil
			}

			stop := make(chan struct{})
			var reads, failures atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; ; i = (i + 7) % n {
						select {
						case <-stop:
							return
						default:
						}
						key := fmt.Sprintf("c%03d", i)
						r, err := v.Resolve(ctx, "default", key)
						reads.Add(1)
						if err != nil || string(r.Secrets["value"].Reveal()) != fmt.Sprintf("value-%d", i) {
							failures.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", key, err))
						}
					}
				}()
			}
			newK := newKey(t)
			res, err := v.RotateMasterKey(ctx, newK, save)
			// Keep reading a little after the rotation finished, with the old key retired.
			for i := range n {
				if _, err := v.Resolve(ctx, "default", fmt.Sprintf("c%03d", i)); err != nil {
					t.Errorf("read after rotation: %v", err)
				}
			}
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if failures.Load() > 0 {
				t.Fatalf("%d of %d concurrent reads failed, first: %v", failures.Load(), reads.Load(), firstErr.Load())
			}
			// n credentials + the key check + nothing else sealed in this test.
			if res.Rewrapped != n+1 || res.KeyID != newK.ID().String() {
				t.Fatalf("rotation result %+v, want %d rewrapped under %s", res, n+1, newK.ID())
			}
			if len(saved) != 2 || len(saved[0]) != 2 || saved[0][0] != newK || len(saved[1]) != 1 || saved[1][0] != newK {
				t.Fatalf("key file writes = %v, want [new old] then [new]", saved)
			}

			// The old key is no longer needed: a vault holding only the new key opens all.
			only := newVault(t, st, newK)
			for i := range n {
				r, err := only.Resolve(ctx, "default", fmt.Sprintf("c%03d", i))
				if err != nil || string(r.Secrets["value"].Reveal()) != fmt.Sprintf("value-%d", i) {
					t.Fatalf("with the new key only: %v", err)
				}
			}
			// And the old key alone is refused.
			stale := vault.New(st, crypt.NewKeyring(oldKey), time.Now, slog.New(slog.DiscardHandler))
			if err := stale.Unlock(ctx); !errors.Is(err, vault.ErrWrongMasterKey) {
				t.Fatalf("unlock with the retired key: %v, want ErrWrongMasterKey", err)
			}
		})
	}
}

func TestFinishInterruptedRotation(t *testing.T) {
	ctx := context.Background()
	st := backends()[0].open(t)
	oldKey, newK := newKey(t), newKey(t)
	v := newVault(t, st, oldKey)
	for i := range 10 {
		putSecret(t, v, fmt.Sprintf("c%d", i), "v")
	}
	// A key file with the new key first is not a rotation: the store decides the primary,
	// so a replica restarted with a key added to its file re-wraps nothing.
	added := newVault(t, st, newK, oldKey)
	if n, err := added.FinishRotation(ctx, nil); n != 0 || err != nil {
		t.Fatalf("FinishRotation with no rotation recorded = %d, %v; want a no-op", n, err)
	}
	// A crash right after the store recorded the new primary: the store is still entirely
	// under the old key. The next start loads both and finishes.
	if stranded, err := st.PromoteKey(ctx, newK.ID().String(), time.Now().Add(-time.Minute), time.Now()); err != nil || len(stranded) > 0 {
		t.Fatalf("PromoteKey = %v, %v", stranded, err)
	}
	resumed := newVault(t, st, newK, oldKey)
	var saved []*crypt.MasterKey
	n, err := resumed.FinishRotation(ctx, func(keys []*crypt.MasterKey) error { saved = keys; return nil })
	if err != nil || n != 11 {
		t.Fatalf("FinishRotation = %d, %v; want 11 rewrapped", n, err)
	}
	if len(saved) != 1 || saved[0] != newK {
		t.Fatalf("saved %v, want only the new key", saved)
	}
	only := newVault(t, st, newK)
	if _, err := only.Resolve(ctx, "default", "c3"); err != nil {
		t.Fatal(err)
	}
	if n, err := only.FinishRotation(ctx, nil); n != 0 || err != nil {
		t.Fatalf("FinishRotation with one key = %d, %v; want a no-op", n, err)
	}
}

func TestUnlockRefusesWrongKeyAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	st := backends()[0].open(t)
	v := newVault(t, st, newKey(t))
	putSecret(t, v, "c", "v")
	before, err := st.CountSealed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrong := vault.New(st, crypt.NewKeyring(newKey(t)), time.Now, slog.New(slog.DiscardHandler))
	if err := wrong.Unlock(ctx); !errors.Is(err, vault.ErrWrongMasterKey) {
		t.Fatalf("Unlock with a wrong key: %v", err)
	}
	after, _ := st.CountSealed(ctx)
	if before != after {
		t.Fatalf("sealed values %d -> %d after a refused unlock", before, after)
	}
}

func TestResolveNeedsSecretAfterCopy(t *testing.T) {
	ctx := context.Background()
	st := backends()[0].open(t)
	v := newVault(t, st, newKey(t))
	putSecret(t, v, "c", "v")
	if _, err := v.CopyWorkspace(ctx, "default", "staging"); err != nil {
		t.Fatal(err)
	}
	_, err := v.Resolve(ctx, "staging", "c")
	if sesame.ErrorCode(err) != sesame.CodeSecretRequired {
		t.Fatalf("Resolve of a copied credential = %v, want secret_required", err)
	}
	if _, _, err := v.PutCredential(ctx, "staging", "c", []byte(`{"type":"secret","fields":{"value":{"keep":true}}}`), vault.Actor{Admin: true}); sesame.ErrorCode(err) != sesame.CodeSecretRequired {
		t.Fatalf("keep of a missing secret = %v, want secret_required", err)
	}
	putSecret(t, v, "c2", "x")
	if _, _, err := v.PutCredential(ctx, "staging", "c", []byte(`{"type":"secret","fields":{"value":"new"}}`), vault.Actor{Admin: true}); err != nil {
		t.Fatal(err)
	}
	r, err := v.Resolve(ctx, "staging", "c")
	if err != nil || string(r.Secrets["value"].Reveal()) != "new" {
		t.Fatalf("Resolve after supplying the secret = %v", err)
	}
}

func TestServerSecretIsStable(t *testing.T) {
	ctx := context.Background()
	st := backends()[0].open(t)
	k := newKey(t)
	a, err := newVault(t, st, k).ServerSecret(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := newVault(t, st, k).ServerSecret(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) || len(a.Reveal()) == 0 {
		t.Fatal("server secret differs between vaults on one store")
	}
}
