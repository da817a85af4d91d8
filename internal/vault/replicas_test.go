package vault_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
	"github.com/sesamehq/sesame/internal/vault"
)

// TestWritesDuringRotationOnAnotherReplica: replica B keeps writing secrets while replica A
// rotates the master key on the same store. Every write B acknowledged must open with the
// new key alone once the rotation is done: none may be sealed under the retired key.
func TestWritesDuringRotationOnAnotherReplica(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st, other := openPair(t, b)
			oldKey, newK := newKey(t), newKey(t)
			a := newVault(t, st, oldKey, newK) // both replicas already hold the new key
			bv := newVault(t, other, oldKey, newK)
			for i := range 300 { // more than one re-wrap batch: the rotation takes a while
				putSecret(t, a, fmt.Sprintf("pre%03d", i), "v")
			}

			stop := make(chan struct{})
			var mu sync.Mutex
			acked := map[string]string{}
			var writeErr error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key, val := fmt.Sprintf("b%04d", i), fmt.Sprintf("value-%d", i)
					body := fmt.Sprintf(`{"type":"secret","fields":{"value":%q}}`, val)
					if _, _, err := bv.PutCredential(ctx, "default", key, []byte(body), vault.Actor{Admin: true}); err != nil {
						mu.Lock()
						writeErr = err
						mu.Unlock()
						return
					}
					mu.Lock()
					acked[key] = val
					mu.Unlock()
				}
			}()
			if _, err := a.RotateMasterKey(ctx, newK, nil); err != nil {
				t.Fatal(err)
			}
			close(stop)
			wg.Wait()
			if writeErr != nil {
				t.Fatalf("a write on B failed during the rotation (B holds the new key): %v", writeErr)
			}
			// A few more writes after the rotation, before B has synced by any other means.
			for i := range 5 {
				key := fmt.Sprintf("after%d", i)
				body := fmt.Sprintf(`{"type":"secret","fields":{"value":%q}}`, key)
				if _, _, err := bv.PutCredential(ctx, "default", key, []byte(body), vault.Actor{Admin: true}); err != nil {
					t.Fatalf("write on B after the rotation: %v", err)
				}
				acked[key] = key
			}
			only := newVault(t, st, newK)
			for key, val := range acked {
				r, err := only.Resolve(ctx, "default", key)
				if err != nil || string(r.Secrets["value"].Reveal()) != val {
					t.Fatalf("%s acknowledged by B does not open with the new key alone: %v", key, err)
				}
			}
			t.Logf("%d writes on B during and after the rotation", len(acked))
		})
	}
}

// TestReplicaWithoutPrimaryKeyRefuses: a replica whose keyring lacks the store's primary
// key refuses writes and reads of values it cannot open with a 503 master_key_unavailable,
// and is not ready; it never seals under the old key.
func TestReplicaWithoutPrimaryKeyRefuses(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st, other := openPair(t, b)
			oldKey, newK := newKey(t), newKey(t)
			a := newVault(t, st, oldKey)
			stale := newVault(t, other, oldKey)
			putSecret(t, a, "c", "v")
			if _, err := a.RotateMasterKey(ctx, newK, nil); err != nil {
				t.Fatal(err)
			}
			_, _, err := stale.PutCredential(ctx, "default", "d", []byte(`{"type":"secret","fields":{"value":"x"}}`), vault.Actor{Admin: true})
			wantUnavailable(t, "write", err)
			if _, err := st.GetCredential(ctx, "default", "d"); !errors.Is(err, sesame.ErrNotFound) {
				t.Fatalf("the refused write left a record: %v", err)
			}
			_, err = stale.Resolve(ctx, "default", "c")
			wantUnavailable(t, "read", err)
			wantUnavailable(t, "ready", stale.Ready())
			// Sealed writes straight to the store under the old key are refused too.
			blob, err := crypt.NewKeyring(oldKey).Seal([]byte("x"), "credential", "default", "e", "value")
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.PutCredential(ctx, sesame.CredentialRecord{Workspace: "default", Key: "e", Type: "secret",
				Secrets: []sesame.SealedField{{Name: "value", Blob: blob}}}, 0)
			if !errors.Is(err, store.ErrPrimaryChanged) {
				t.Fatalf("a blob under the retired key was stored: %v", err)
			}
		})
	}
}

// openPair opens the backend's database twice, as two replicas would: on PostgreSQL two
// pools on the same schema; SQLite serves one process, so one store for both.
func openPair(t *testing.T, b backend) (*store.Store, *store.Store) {
	t.Helper()
	if b.name != "postgres" {
		st := b.open(t)
		return st, st
	}
	url := testpg.URL(t)
	var out [2]*store.Store
	for i := range out {
		st, err := store.OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out[i] = st
	}
	return out[0], out[1]
}

func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var se *sesame.Error
	if !errors.As(err, &se) || se.Code != sesame.CodeMasterKeyUnavailable || se.RetryAfter == 0 {
		t.Fatalf("%s: %v, want a retryable master_key_unavailable", what, err)
	}
}
