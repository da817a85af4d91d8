package store_test

import (
	"testing"

	"github.com/sesamehq/sesame"
)

var sessionCases = []storeCase{
	{"Sessions/CreateReadDelete", testSessionsCreateReadDelete},
	{"Sessions/SeeKeyAndUserState", testSessionsSeeKeyAndUserState},
	{"Sessions/KeylessFollowUser", testSessionsKeylessFollowUser},
	{"OIDC/StateTakenOnce", testOIDCStateTakenOnce},
	{"OIDC/HandoffTakenOnce", testOIDCHandoffTakenOnce},
	{"OIDC/UserByNameAndGroupMember", testOIDCUserByNameAndGroupMember},
}

// TestSessionStore runs the console-session storage cases against SQLite and PostgreSQL.
func TestSessionStore(t *testing.T) { runCases(t, sessionCases, nil) }

func testSessionsCreateReadDelete(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1")
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k1", "u1", "h1")))
	s1 := sesame.Session{IDHash: []byte("s1"), KeyID: "k1", CreatedAt: at(1), ExpiresAt: at(100)}
	old := sesame.Session{IDHash: []byte("old"), KeyID: "k1", CreatedAt: at(1), ExpiresAt: at(5)}
	must(t, e.s.CreateSession(e.ctx, old, at(2)))
	must(t, e.s.CreateSession(e.ctx, s1, at(10))) // sweeps sessions ended by then
	wantIs(t, e.s.CreateSession(e.ctx, s1, at(10)), sesame.ErrAlreadyExists)
	got, k, u, err := e.s.SessionByHash(e.ctx, []byte("s1"))
	must(t, err)
	if got.KeyID != "k1" || !got.ExpiresAt.Equal(at(100)) || !got.CreatedAt.Equal(at(1)) || k.ID != "k1" || u.ID != "u1" || k.RevokedAt != nil || u.Disabled {
		t.Fatalf("session %+v key %+v user %+v", got, k, u)
	}
	_, _, _, err = e.s.SessionByHash(e.ctx, []byte("old"))
	wantIs(t, err, sesame.ErrNotFound)
	must(t, e.s.DeleteSession(e.ctx, []byte("s1")))
	must(t, e.s.DeleteSession(e.ctx, []byte("s1"))) // again: no error
	_, _, _, err = e.s.SessionByHash(e.ctx, []byte("s1"))
	wantIs(t, err, sesame.ErrNotFound)
}

// A session is read with its key and user, so revocation and disabling are seen at once,
// and a deleted user's sessions are gone.
func testSessionsSeeKeyAndUserState(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2")
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k1", "u1", "h1")))
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k2", "u2", "h2")))
	must(t, e.s.CreateSession(e.ctx, sesame.Session{IDHash: []byte("a"), KeyID: "k1", CreatedAt: at(1), ExpiresAt: at(100)}, at(1)))
	must(t, e.s.CreateSession(e.ctx, sesame.Session{IDHash: []byte("b"), KeyID: "k2", CreatedAt: at(1), ExpiresAt: at(100)}, at(1)))
	must(t, e.s.RevokeAPIKey(e.ctx, "k1", at(3).UnixNano()))
	_, k, _, err := e.s.SessionByHash(e.ctx, []byte("a"))
	must(t, err)
	if k.RevokedAt == nil {
		t.Fatal("the session's key shows as not revoked")
	}
	must(t, e.s.SetUserDisabled(e.ctx, "u2", true))
	_, _, u, err := e.s.SessionByHash(e.ctx, []byte("b"))
	must(t, err)
	if !u.Disabled {
		t.Fatal("the session's user shows as enabled")
	}
	must(t, e.s.DeleteUser(e.ctx, "u2", at(4).UnixNano()))
	_, _, _, err = e.s.SessionByHash(e.ctx, []byte("b"))
	wantIs(t, err, sesame.ErrNotFound)
}

// An OIDC session has no key: it is read with its user, and ends with it.
func testSessionsKeylessFollowUser(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1")
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k1", "u1", "h1")))
	must(t, e.s.CreateSession(e.ctx, sesame.Session{IDHash: []byte("o"), UserID: "u1", CreatedAt: at(1), ExpiresAt: at(100)}, at(1)))
	got, k, u, err := e.s.SessionByHash(e.ctx, []byte("o"))
	must(t, err)
	if got.KeyID != "" || k.ID != "" || got.UserID != "u1" || u.ID != "u1" || u.Name != "name-u1" {
		t.Fatalf("session %+v key %+v user %+v", got, k, u)
	}
	// A key session of the same user still follows its key.
	must(t, e.s.CreateSession(e.ctx, sesame.Session{IDHash: []byte("k"), KeyID: "k1", CreatedAt: at(1), ExpiresAt: at(100)}, at(1)))
	if got, k, _, err := e.s.SessionByHash(e.ctx, []byte("k")); err != nil || got.KeyID != "k1" || k.ID != "k1" {
		t.Fatalf("key session %+v %+v %v", got, k, err)
	}
	must(t, e.s.SetUserDisabled(e.ctx, "u1", true))
	if _, _, u, err := e.s.SessionByHash(e.ctx, []byte("o")); err != nil || !u.Disabled {
		t.Fatalf("disabled user: %+v %v", u, err)
	}
	must(t, e.s.DeleteUser(e.ctx, "u1", at(4).UnixNano()))
	_, _, _, err = e.s.SessionByHash(e.ctx, []byte("o"))
	wantIs(t, err, sesame.ErrNotFound)
}

func testOIDCStateTakenOnce(t *testing.T, e *env) {
	st := sesame.OIDCState{StateHash: []byte("s"), Nonce: "n", Verifier: "v", Next: "/console/x", CLIReturn: "http://127.0.0.1:9/cb", CLIChallenge: "c", ExpiresAt: at(100)}
	must(t, e.s.CreateOIDCState(e.ctx, sesame.OIDCState{StateHash: []byte("old"), ExpiresAt: at(5)}, at(1)))
	must(t, e.s.CreateOIDCState(e.ctx, st, at(10))) // sweeps the ended one
	got, err := e.s.TakeOIDCState(e.ctx, []byte("s"))
	must(t, err)
	if got.Nonce != "n" || got.Verifier != "v" || got.Next != "/console/x" || got.CLIReturn != st.CLIReturn || got.CLIChallenge != "c" || !got.ExpiresAt.Equal(at(100)) {
		t.Fatalf("state %+v", got)
	}
	_, err = e.s.TakeOIDCState(e.ctx, []byte("s"))
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.TakeOIDCState(e.ctx, []byte("old"))
	wantIs(t, err, sesame.ErrNotFound)
}

func testOIDCHandoffTakenOnce(t *testing.T, e *env) {
	must(t, e.s.CreateOIDCHandoff(e.ctx, sesame.OIDCHandoff{CodeHash: []byte("c"), UserID: "u1", Challenge: "ch", ExpiresAt: at(100)}, at(1)))
	got, err := e.s.TakeOIDCHandoff(e.ctx, []byte("c"))
	must(t, err)
	if got.UserID != "u1" || got.Challenge != "ch" || !got.ExpiresAt.Equal(at(100)) {
		t.Fatalf("handoff %+v", got)
	}
	_, err = e.s.TakeOIDCHandoff(e.ctx, []byte("c"))
	wantIs(t, err, sesame.ErrNotFound)
}

func testOIDCUserByNameAndGroupMember(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2")
	u, err := e.s.UserByName(e.ctx, "name-u1")
	must(t, err)
	if u.ID != "u1" {
		t.Fatalf("user %+v", u)
	}
	_, err = e.s.UserByName(e.ctx, "nobody")
	wantIs(t, err, sesame.ErrNotFound)
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u2")))
	for _, step := range []struct {
		member, changed bool
	}{{true, true}, {true, false}, {false, true}, {false, false}} {
		changed, err := e.s.SetGroupMember(e.ctx, "g1", "u1", step.member)
		must(t, err)
		if changed != step.changed {
			t.Fatalf("member=%v: changed %v", step.member, changed)
		}
	}
	g, err := e.s.GetGroup(e.ctx, "g1")
	must(t, err)
	if len(g.Members) != 1 || g.Members[0] != "u2" {
		t.Fatalf("the other member was touched: %v", g.Members)
	}
}
