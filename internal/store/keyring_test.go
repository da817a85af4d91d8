package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
)

// The key-ring cases run, like storeCases, against SQLite and PostgreSQL.
var keyringCases = []storeCase{
	{"KeyRing/InitOnce", testKeyRingInitOnce},
	{"KeyRing/SealedWritesUseThePrimary", testSealedWritesUseThePrimary},
	{"KeyRing/PromoteRefusesToStrandLiveReplicas", testPromoteRefusesToStrand},
	{"KeyRing/RetireRefusedWhileValuesSealedUnderKey", testRetireRefusedWhileSealed},
}

func TestKeyRingStore(t *testing.T) { runCases(t, keyringCases, nil) }

func masterKey(t *testing.T) *crypt.MasterKey {
	t.Helper()
	k, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealUnder(t *testing.T, k *crypt.MasterKey, id ...string) []byte {
	t.Helper()
	b, err := crypt.NewKeyring(k).Seal([]byte("v"), id...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKeyRingInitOnce(t *testing.T, e *env) {
	if _, err := e.s.GetKeyRing(e.ctx); !errors.Is(err, sesame.ErrNotFound) {
		t.Fatalf("GetKeyRing on a new store: %v, want ErrNotFound", err)
	}
	must(t, e.s.InitKeyRing(e.ctx, "0000000a", []string{"0000000b"}, t0))
	must(t, e.s.InitKeyRing(e.ctx, "0000000c", nil, t0)) // a second replica: no change
	k, err := e.s.GetKeyRing(e.ctx)
	must(t, err)
	if k.Primary != "0000000a" || len(k.Draining()) != 1 || k.Draining()[0] != "0000000b" {
		t.Fatalf("key ring %+v", k)
	}
}

func testSealedWritesUseThePrimary(t *testing.T, e *env) {
	oldK, newK := masterKey(t), masterKey(t)
	createWorkspace(t, e, "w")
	must(t, e.s.InitKeyRing(e.ctx, oldK.ID().String(), nil, t0))
	put(t, e, record("w", "a", sesame.SealedField{Name: "value", Blob: sealUnder(t, oldK), UpdatedAt: t0}), 0)
	stranded, err := e.s.PromoteKey(e.ctx, newK.ID().String(), t0, t0)
	if err != nil || len(stranded) > 0 {
		t.Fatalf("PromoteKey = %v, %v", stranded, err)
	}
	// Every kind of sealed write under the old key is refused and changes nothing.
	rec := record("w", "b", sesame.SealedField{Name: "value", Blob: sealUnder(t, oldK), UpdatedAt: t0})
	_, err = e.s.PutCredential(e.ctx, rec, 0)
	wantIs(t, err, store.ErrPrimaryChanged)
	wantCode(t, err, sesame.CodeMasterKeyUnavailable)
	if _, err := e.s.GetCredential(e.ctx, "w", "b"); !errors.Is(err, sesame.ErrNotFound) {
		t.Fatalf("a refused write left a record: %v", err)
	}
	wantIs(t, e.s.PutMeta(e.ctx, "secret.x", sealUnder(t, oldK), true), store.ErrPrimaryChanged)
	must(t, e.s.PutMeta(e.ctx, "plain", []byte("not sealed"), false))
	wantIs(t, e.s.CreateOAuthGrant(e.ctx, sesame.OAuthGrant{Workspace: "w", Credential: "a", Access: sealUnder(t, oldK),
		Status: sesame.GrantValid, CreatedAt: t0, UpdatedAt: t0}), store.ErrPrimaryChanged)
	wantIs(t, e.s.CreateOAuthState(e.ctx, sesame.OAuthState{ID: "s", Workspace: "w", Credential: "a", Verifier: sealUnder(t, oldK),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}), store.ErrPrimaryChanged)
	// Under the new primary they go through.
	put(t, e, record("w", "b", sesame.SealedField{Name: "value", Blob: sealUnder(t, newK), UpdatedAt: t0}), 0)
	must(t, e.s.PutMeta(e.ctx, "secret.x", sealUnder(t, newK), true))
}

func testPromoteRefusesToStrand(t *testing.T, e *env) {
	x, y, z := "0000000a", "0000000b", "0000000c"
	must(t, e.s.InitKeyRing(e.ctx, x, nil, t0))
	now := at(10)
	must(t, e.s.Heartbeat(e.ctx, store.Replica{ID: "A", KeyIDs: []string{x, y}, HoldsPrimary: true, StartedAt: t0, SeenAt: now}))
	must(t, e.s.Heartbeat(e.ctx, store.Replica{ID: "C", KeyIDs: []string{x}, HoldsPrimary: true, StartedAt: t0, SeenAt: now}))
	must(t, e.s.Heartbeat(e.ctx, store.Replica{ID: "gone", KeyIDs: []string{x}, HoldsPrimary: true, StartedAt: t0, SeenAt: at(1)}))
	stranded, err := e.s.PromoteKey(e.ctx, y, at(9), now)
	must(t, err)
	if len(stranded) != 1 || stranded[0].ID != "C" {
		t.Fatalf("stranded %+v, want only C (the replica not seen since 9 is not live)", stranded)
	}
	if k, _ := e.s.GetKeyRing(e.ctx); k.Primary != x || k.Version != 1 || len(k.Keys) != 1 {
		t.Fatalf("a refused promotion changed the key ring: %+v", k)
	}
	must(t, e.s.Heartbeat(e.ctx, store.Replica{ID: "C", KeyIDs: []string{x, y}, HoldsPrimary: true, StartedAt: t0, SeenAt: now}))
	stranded, err = e.s.PromoteKey(e.ctx, y, at(9), now)
	if err != nil || len(stranded) > 0 {
		t.Fatalf("PromoteKey = %v, %v", stranded, err)
	}
	k, _ := e.s.GetKeyRing(e.ctx)
	if k.Primary != y || k.Version != 2 || len(k.Draining()) != 1 || k.Draining()[0] != x {
		t.Fatalf("after promotion: %+v", k)
	}
	// While x drains, no other rotation starts.
	_, err = e.s.PromoteKey(e.ctx, z, at(9), now)
	wantCode(t, err, sesame.CodeRotationRefused)
	retired, err := e.s.RetireDraining(e.ctx, now)
	if err != nil || len(retired) != 1 || retired[0] != x {
		t.Fatalf("RetireDraining = %v, %v", retired, err)
	}
	must(t, e.s.DeleteReplica(e.ctx, "gone"))
	rs, err := e.s.ListReplicas(e.ctx, time.Time{})
	if err != nil || len(rs) != 2 || !rs[1].Holds(y) {
		t.Fatalf("replicas %+v, %v", rs, err)
	}
}

func testRetireRefusedWhileSealed(t *testing.T, e *env) {
	oldK, newK := masterKey(t), masterKey(t)
	createWorkspace(t, e, "w")
	must(t, e.s.InitKeyRing(e.ctx, oldK.ID().String(), nil, t0))
	put(t, e, record("w", "a", sesame.SealedField{Name: "value", Blob: sealUnder(t, oldK, "credential", "w", "a", "value"), UpdatedAt: t0}), 0)
	if _, err := e.s.PromoteKey(e.ctx, newK.ID().String(), t0, t0); err != nil {
		t.Fatal(err)
	}
	_, err := e.s.RetireDraining(e.ctx, t0)
	wantCode(t, err, sesame.CodeRotationRefused)
	kr := crypt.NewKeyring(newK, oldK)
	if _, err := e.s.RewrapSealed(e.ctx, kr.RewrapTo(newK.ID())); err != nil {
		t.Fatal(err)
	}
	counts, err := e.s.CountSealedByKey(e.ctx)
	if err != nil || counts[oldK.ID().String()] != 0 || counts[newK.ID().String()] != 1 {
		t.Fatalf("counts %v, %v", counts, err)
	}
	if _, err := e.s.RetireDraining(e.ctx, t0); err != nil {
		t.Fatal(err)
	}
}
