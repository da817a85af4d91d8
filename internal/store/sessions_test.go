package store_test

import (
	"testing"

	"github.com/sesamehq/sesame"
)

var sessionCases = []storeCase{
	{"Sessions/CreateReadDelete", testSessionsCreateReadDelete},
	{"Sessions/SeeKeyAndUserState", testSessionsSeeKeyAndUserState},
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
