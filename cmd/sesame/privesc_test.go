package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

// onEachStore runs test against a fresh server on SQLite and on PostgreSQL.
func onEachStore(t *testing.T, test func(t *testing.T, s *testServer)) {
	t.Run("sqlite", func(t *testing.T) { test(t, startServer(t, nil, "--data", t.TempDir())) })
	t.Run("postgres", func(t *testing.T) {
		pg := testpg.URL(t)
		k, _ := crypt.GenerateMasterKey()
		s := startServer(t, map[string]string{"SESAME_MASTER_KEY": k.Encode()}, "--data", t.TempDir(), "--postgres", pg)
		if s.stopped {
			t.Fatalf("server did not start: %s", s.Stderr.String())
		}
		test(t, s)
	})
}

// whoami returns the user and key ID of a key.
func whoami(t *testing.T, s *testServer, key string) (userID, keyID string) {
	t.Helper()
	me := decode[struct {
		UserID string `json:"user_id"`
		KeyID  string `json:"key_id"`
	}](t, mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 200))
	return me.UserID, me.KeyID
}

// newUserWith creates a user (as admin), grants it roles ("role@workspace") and returns its
// ID and a key minted by the admin.
func newUserWith(t *testing.T, s *testServer, name string, grants ...string) (string, string) {
	t.Helper()
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"`+name+`"}`), 201))
	for _, g := range grants {
		role, ws, _ := strings.Cut(g, "@")
		mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":%q,"user":%q,"workspace":%q}`, role, u.ID, ws)), 201)
	}
	k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{}`), 201))
	return u.ID, k.Key
}

// accessState is everything that says who may do what: users (and whether disabled),
// their keys (and whether revoked), groups with members, roles, grants and certificates.
func accessState(t *testing.T, s *testServer) string {
	t.Helper()
	var b strings.Builder
	users := decode[struct {
		Items []struct {
			ID       string
			Disabled bool
		}
	}](t, mustStatus(t, s.do("GET", "/v1/users?limit=100", ""), 200))
	for _, u := range users.Items {
		fmt.Fprintf(&b, "user %s disabled=%v\n", u.ID, u.Disabled)
		keys := decode[struct {
			Items []struct {
				ID        string
				RevokedAt *time.Time `json:"revoked_at"`
			}
		}](t, mustStatus(t, s.do("GET", "/v1/users/"+u.ID+"/keys", ""), 200))
		for _, k := range keys.Items {
			fmt.Fprintf(&b, "  key %s revoked=%v\n", k.ID, k.RevokedAt != nil)
		}
	}
	groups := decode[struct{ Items []struct{ ID string } }](t, mustStatus(t, s.do("GET", "/v1/groups", ""), 200))
	for _, g := range groups.Items {
		b.Write(mustStatus(t, s.do("GET", "/v1/groups/"+g.ID, ""), 200).Body)
	}
	for _, path := range []string{"/v1/roles", "/v1/grants", "/v1/apps/certs?limit=100"} {
		b.Write(mustStatus(t, s.do("GET", path, ""), 200).Body)
	}
	return b.String()
}

// grantID returns the ID of the grant of role to subject in ws.
func grantID(t *testing.T, s *testServer, role, subject, ws string) string {
	t.Helper()
	grants := decode[struct {
		Items []struct{ ID, Role, Subject, Workspace string }
	}](t, mustStatus(t, s.do("GET", "/v1/grants", ""), 200))
	for _, g := range grants.Items {
		if g.Role == role && g.Subject == subject && g.Workspace == ws {
			return g.ID
		}
	}
	t.Fatalf("no grant of %s to %s in %s", role, subject, ws)
	return ""
}

func devPubkey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pub)
}

// TestPrivilegeCeiling is the attack suite of PRODUCT.md §4.6 through the real server: a
// user manager (manage_users, manage_apps, run_functions on all workspaces, developer in
// default) tries every way to give itself or others more than it holds, or to act on an
// admin, and each is refused with 403 privilege_ceiling and changes nothing; what it does
// hold, it may give; the admin may do every one of them.
func TestPrivilegeCeiling(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *testServer) {
		adminID, adminKeyID := whoami(t, s, s.AdminKey)
		mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
		mustStatus(t, s.do("POST", "/v1/roles", `{"name":"usermgr","privileges":["use_api_key","run_functions","manage_users","manage_apps"]}`), 201)
		mgrID, mgr := newUserWith(t, s, "mgr", "usermgr@*", "developer@default")
		// Another admin, a role only the admin's side holds, a group that gives admin, and
		// an app grant: the targets.
		admin2ID, admin2Key := newUserWith(t, s, "admin2", "admin@*")
		_, admin2KeyID := whoami(t, s, admin2Key)
		mustStatus(t, s.do("POST", "/v1/roles", `{"name":"helper","privileges":["use_api_key"]}`), 201)
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"helper","user":"`+mgrID+`","workspace":"*"}`), 201)
		mustStatus(t, s.do("POST", "/v1/roles", `{"name":"reader","privileges":["read_audit"]}`), 201)
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"reader","user":"`+admin2ID+`","workspace":"*"}`), 201)
		ops := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/groups", `{"name":"ops","members":[]}`), 201)).ID
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"admin","group":"`+ops+`","workspace":"*"}`), 201)
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"developer","app":"com.corp.pay.*","workspace":"acme"}`), 201)
		corpGrant := grantID(t, s, "developer", "com.corp.pay.*", "acme")
		adminGrant := grantID(t, s, "admin", adminID, "*")
		pub := devPubkey(t)

		before := accessState(t, s)
		attacks := []struct{ name, method, path, body string }{
			{"grant admin to itself on all workspaces", "POST", "/v1/grants", `{"role":"admin","user":"` + mgrID + `","workspace":"*"}`},
			{"grant admin to itself in one workspace", "POST", "/v1/grants", `{"role":"admin","user":"` + mgrID + `","workspace":"default"}`},
			{"grant a role it holds in default on all workspaces", "POST", "/v1/grants", `{"role":"developer","user":"` + mgrID + `","workspace":"*"}`},
			{"grant a role it holds in default in another workspace", "POST", "/v1/grants", `{"role":"developer","user":"` + mgrID + `","workspace":"acme"}`},
			{"grant admin through a group", "POST", "/v1/grants", `{"role":"admin","group":"` + ops + `","workspace":"default"}`},
			{"join a group that holds admin", "PUT", "/v1/groups/" + ops, `{"members":["` + mgrID + `"]}`},
			{"delete a group that holds admin", "DELETE", "/v1/groups/" + ops, ""},
			{"add admin to a role granted to itself", "PUT", "/v1/roles/helper", `{"privileges":["use_api_key","admin"]}`},
			{"create a role holding admin", "POST", "/v1/roles", `{"name":"sneaky","privileges":["admin"]}`},
			{"create a role holding a privilege it has in one workspace only", "PUT", "/v1/roles/sneaky", `{"privileges":["manage_credentials"]}`},
			{"take a privilege from a role an admin holds", "PUT", "/v1/roles/reader", `{"privileges":["use_api_key"]}`},
			{"delete a role an admin holds", "DELETE", "/v1/roles/reader", ""},
			{"mint a key for the admin", "POST", "/v1/users/" + adminID + "/keys", `{"name":"mine"}`},
			{"mint a key for another admin", "POST", "/v1/users/" + admin2ID + "/keys", `{}`},
			{"revoke the admin's key", "DELETE", "/v1/keys/" + adminKeyID, ""},
			{"revoke another admin's key", "DELETE", "/v1/keys/" + admin2KeyID, ""},
			{"revoke every key of the admin", "DELETE", "/v1/users/" + adminID + "/keys", ""},
			{"disable the admin", "PATCH", "/v1/users/" + adminID, `{"disabled":true}`},
			{"delete another admin", "DELETE", "/v1/users/" + admin2ID, ""},
			{"remove the admin's grant", "DELETE", "/v1/grants/" + adminGrant, ""},
			{"grant admin to apps", "POST", "/v1/grants", `{"role":"admin","app":"com.acme.*","workspace":"*"}`},
			{"remove an app grant it does not hold", "DELETE", "/v1/grants/" + corpGrant, ""},
			{"issue a certificate for apps granted more than it holds", "POST", "/v1/apps/certs", `{"dev_pubkey":"` + pub + `","domains":["com.corp.pay.*"]}`},
			{"issue a certificate for one such app", "POST", "/v1/apps/certs", `{"dev_pubkey":"` + pub + `","domains":["com.other.app","com.corp.pay.billing"]}`},
			{"issue a certificate for a wider pattern", "POST", "/v1/apps/certs", `{"dev_pubkey":"` + pub + `","domains":["com.corp.*"]}`},
		}
		for _, a := range attacks {
			r := s.doWith(a.method, a.path, a.body, withKey(mgr))
			if r.Status != 403 {
				t.Errorf("%s: %d %s, want 403", a.name, r.Status, r.Body)
				continue
			}
			e := decode[struct {
				Code    string
				Message string
				Details map[string]string
			}](t, r)
			if e.Code != "privilege_ceiling" || !strings.Contains(e.Message, e.Details["privilege"]) || e.Details["privilege"] == "" || e.Details["workspace"] == "" {
				t.Errorf("%s: %s, want privilege_ceiling naming what is lacking", a.name, r.Body)
			}
		}
		// Bad input is still bad input, answered before the ceiling.
		wantError(t, s.doWith("POST", "/v1/apps/certs", `{"dev_pubkey":"`+pub+`","domains":["com.*"]}`, withKey(mgr)), 400, "invalid_field")
		wantError(t, s.doWith("POST", "/v1/grants", `{"role":"admin","user":"`+mgrID+`","workspace":"nowhere"}`, withKey(mgr)), 400, "invalid_field")
		if after := accessState(t, s); after != before {
			t.Fatalf("refused attacks changed access:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		// The admin's and admin2's keys still work; mgr is no more than it was.
		mustStatus(t, s.do("GET", "/v1/me", ""), 200)
		mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(admin2Key)), 200)
		mustStatus(t, s.doWith("GET", "/v1/workspaces/default/credentials", "", withKey(mgr)), 200)
		mustStatus(t, s.doWith("GET", "/v1/workspaces/acme/credentials", "", withKey(mgr)), 403)

		// What the manager holds, it may give and take away, and it acts on lesser users.
		bobID, bobKey := newUserWith(t, s, "bob")
		mustStatus(t, s.doWith("POST", "/v1/grants", `{"role":"caller","user":"`+bobID+`","workspace":"*"}`, withKey(mgr)), 201)
		mustStatus(t, s.doWith("POST", "/v1/grants", `{"role":"developer","user":"`+bobID+`","workspace":"default"}`, withKey(mgr)), 201)
		mustStatus(t, s.doWith("DELETE", "/v1/grants/"+grantID(t, s, "developer", bobID, "default"), "", withKey(mgr)), 204)
		mine := decode[struct{ ID string }](t, mustStatus(t, s.doWith("POST", "/v1/groups", `{"name":"callers","members":[]}`, withKey(mgr)), 201)).ID
		mustStatus(t, s.doWith("POST", "/v1/grants", `{"role":"caller","group":"`+mine+`","workspace":"default"}`, withKey(mgr)), 201)
		mustStatus(t, s.doWith("PUT", "/v1/groups/"+mine, `{"members":["`+bobID+`"]}`, withKey(mgr)), 200)
		mustStatus(t, s.doWith("PUT", "/v1/roles/tiny", `{"privileges":["use_api_key","run_functions"]}`, withKey(mgr)), 201)
		k := decode[struct{ ID, Key string }](t, mustStatus(t, s.doWith("POST", "/v1/users/"+bobID+"/keys", `{}`, withKey(mgr)), 201))
		mustStatus(t, s.doWith("DELETE", "/v1/keys/"+k.ID, "", withKey(mgr)), 204)
		mustStatus(t, s.doWith("PATCH", "/v1/users/"+bobID, `{"disabled":true}`, withKey(mgr)), 200)
		mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(bobKey)), 401)
		mustStatus(t, s.doWith("POST", "/v1/apps/certs", `{"dev_pubkey":"`+pub+`","domains":["com.other.*"]}`, withKey(mgr)), 201)
		mustStatus(t, s.doWith("DELETE", "/v1/users/"+bobID, "", withKey(mgr)), 204)

		// The admin may do every one of the refused things.
		for _, a := range []struct {
			method, path, body string
			status             int
		}{
			{"PUT", "/v1/groups/" + ops, `{"members":["` + mgrID + `"]}`, 200},
			{"PUT", "/v1/groups/" + ops, `{"members":[]}`, 200},
			{"PUT", "/v1/roles/helper", `{"privileges":["use_api_key","admin"]}`, 200},
			{"PUT", "/v1/roles/helper", `{"privileges":["use_api_key"]}`, 200},
			{"POST", "/v1/grants", `{"role":"admin","app":"com.acme.*","workspace":"*"}`, 201},
			{"POST", "/v1/apps/certs", `{"dev_pubkey":"` + pub + `","domains":["com.corp.*"]}`, 201},
			{"DELETE", "/v1/grants/" + corpGrant, "", 204},
			{"DELETE", "/v1/roles/reader", "", 204},
			{"POST", "/v1/users/" + admin2ID + "/keys", `{}`, 201},
			{"DELETE", "/v1/keys/" + admin2KeyID, "", 204},
			{"PATCH", "/v1/users/" + admin2ID, `{"disabled":true}`, 200},
			{"DELETE", "/v1/users/" + admin2ID, "", 204},
			{"DELETE", "/v1/groups/" + ops, "", 204},
			{"POST", "/v1/grants", `{"role":"admin","user":"` + mgrID + `","workspace":"*"}`, 201},
		} {
			mustStatus(t, s.do(a.method, a.path, a.body), a.status)
		}
		// Now an admin, the manager may do what it could not.
		mustStatus(t, s.doWith("POST", "/v1/users/"+adminID+"/keys", `{}`, withKey(mgr)), 201)
	})
}

// TestRevokingAKeyActsOnWhoeverItMintedFor: revoking a key, every key of a user, or
// deleting the user revokes the keys they minted, so it acts on those keys' owners too:
// a manager cannot reach an admin's key through a lesser user's key that minted it.
func TestRevokingAKeyActsOnWhoeverItMintedFor(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *testServer) {
		mustStatus(t, s.do("POST", "/v1/roles", `{"name":"usermgr","privileges":["use_api_key","run_functions","manage_users"]}`), 201)
		_, mgr := newUserWith(t, s, "mgr", "usermgr@*", "developer@*")
		lesserID, lesser := newUserWith(t, s, "lesser", "usermgr@*")
		_, lesserKeyID := whoami(t, s, lesser)
		promotedID, _ := newCaller(t, s, "promoted", "default")
		minted := decode[struct{ Key string }](t, mustStatus(t, s.doWith("POST", "/v1/users/"+promotedID+"/keys", `{}`, withKey(lesser)), 201)).Key
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"admin","user":"`+promotedID+`","workspace":"*"}`), 201)

		before := accessState(t, s)
		for _, a := range []struct{ method, path string }{
			{"DELETE", "/v1/keys/" + lesserKeyID},
			{"DELETE", "/v1/users/" + lesserID + "/keys"},
			{"DELETE", "/v1/users/" + lesserID},
		} {
			r := s.doWith(a.method, a.path, "", withKey(mgr))
			wantError(t, r, 403, "privilege_ceiling")
			if !strings.Contains(string(r.Body), promotedID) {
				t.Errorf("%s %s: the refusal does not name the admin it would act on: %s", a.method, a.path, r.Body)
			}
		}
		if after := accessState(t, s); after != before {
			t.Fatalf("refused revocations changed access:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(minted)), 200)
		// Its own key, a user may always revoke, with what it minted.
		mustStatus(t, s.doWith("DELETE", "/v1/keys/"+lesserKeyID, "", withKey(lesser)), 204)
		mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(minted)), 401)
	})
}

// keyStates returns whether each key of a user is revoked, by key ID.
func keyStates(t *testing.T, s *testServer, userID string) map[string]bool {
	t.Helper()
	keys := decode[struct {
		Items []struct {
			ID        string
			RevokedAt *time.Time `json:"revoked_at"`
		}
	}](t, mustStatus(t, s.do("GET", "/v1/users/"+userID+"/keys", ""), 200))
	out := map[string]bool{}
	for _, k := range keys.Items {
		out[k.ID] = k.RevokedAt != nil
	}
	return out
}

// TestStolenKeyCannotOutliveItsRevocation: a stolen key A mints B, and B mints C, for its
// own user; revoking A revokes B and C with it, on this replica and (PostgreSQL) on
// another one. A key records which key minted it.
func TestStolenKeyCannotOutliveItsRevocation(t *testing.T) {
	mint := func(t *testing.T, s *testServer, userID, with string) (string, string) {
		t.Helper()
		k := decode[struct {
			ID           string
			Key          string
			CreatedByKey string `json:"created_by_key"`
		}](t, mustStatus(t, s.doWith("POST", "/v1/users/"+userID+"/keys", `{"name":"minted"}`, withKey(with)), 201))
		_, withID := whoami(t, s, with)
		if k.CreatedByKey != withID {
			t.Errorf("key %s created_by_key %q, want %q", k.ID, k.CreatedByKey, withID)
		}
		return k.ID, k.Key
	}
	onEachStore(t, func(t *testing.T, s *testServer) {
		userID, a := newCaller(t, s, "victim", "default")
		_, aID := whoami(t, s, a)
		_, b := mint(t, s, userID, a)
		_, c := mint(t, s, userID, b)
		other, otherKey := newCaller(t, s, "bystander", "default")
		for _, k := range []string{a, b, c, otherKey} {
			mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(k)), 200)
		}
		mustStatus(t, s.do("DELETE", "/v1/keys/"+aID, ""), 204)
		for i, k := range []string{a, b, c} {
			if r := s.doWith("GET", "/v1/me", "", withKey(k)); r.Status != 401 {
				t.Errorf("key %c still works after A was revoked: %d", 'A'+i, r.Status)
			}
		}
		for id, revoked := range keyStates(t, s, userID) {
			if !revoked {
				t.Errorf("key %s of the victim is not revoked", id)
			}
		}
		mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(otherKey)), 200)
		if revoked := keyStates(t, s, other); len(revoked) != 1 {
			t.Fatalf("bystander's keys: %v", revoked)
		}
	})

	t.Run("other replica", func(t *testing.T) {
		pg := testpg.URL(t)
		k, _ := crypt.GenerateMasterKey()
		env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
		s1 := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
		s2 := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
		if s1.AdminKey == "" || s2.stopped {
			t.Fatalf("replicas did not start: %s", s2.Stderr.String())
		}
		s2.AdminKey = s1.AdminKey
		userID, a := newCaller(t, s1, "victim", "default")
		_, aID := whoami(t, s1, a)
		_, b := mint(t, s2, userID, a)
		_, c := mint(t, s1, userID, b)
		for _, k := range []string{b, c} {
			mustStatus(t, s2.doWith("GET", "/v1/me", "", withKey(k)), 200) // warm s2's cache
		}
		start := time.Now()
		mustStatus(t, s1.do("DELETE", "/v1/keys/"+aID, ""), 204)
		for _, k := range []string{b, c} {
			for s2.doWith("GET", "/v1/me", "", withKey(k)).Status != 401 {
				if time.Since(start) > 10*time.Second {
					t.Fatal("a key minted by a revoked key still works on the other replica")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		t.Logf("revocation of minted keys seen by the other replica after %v", time.Since(start))
	})
}

// TestRevokeEveryKeyOfAUser: DELETE /v1/users/{id}/keys and `sesame key revoke-all` revoke
// every key of a user, and the keys those keys minted for others.
func TestRevokeEveryKeyOfAUser(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *testServer) {
		// carol manages users; her own key mints two more, and one for dave.
		mustStatus(t, s.do("POST", "/v1/roles", `{"name":"usermgr","privileges":["use_api_key","run_functions","manage_users"]}`), 201)
		carol, k1 := newUserWith(t, s, "carol", "usermgr@*")
		dave, daveKey := newCaller(t, s, "dave", "default")
		k2 := decode[struct{ Key string }](t, mustStatus(t, s.doWith("POST", "/v1/users/"+carol+"/keys", `{}`, withKey(k1)), 201)).Key
		k3 := decode[struct{ Key string }](t, mustStatus(t, s.doWith("POST", "/v1/users/"+carol+"/keys", `{}`, withKey(k2)), 201)).Key
		daveByCarol := decode[struct{ Key string }](t, mustStatus(t, s.doWith("POST", "/v1/users/"+dave+"/keys", `{}`, withKey(k3)), 201)).Key

		r := mustStatus(t, s.do("DELETE", "/v1/users/"+carol+"/keys", ""), 200)
		if got := decode[struct {
			User        string
			RevokedKeys int `json:"revoked_keys"`
		}](t, r); got.User != carol || got.RevokedKeys != 4 {
			t.Fatalf("revoke all of carol: %s, want 4 keys", r.Body)
		}
		for _, k := range []string{k1, k2, k3, daveByCarol} {
			mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(k)), 401)
		}
		mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(daveKey)), 200)
		mustStatus(t, s.do("DELETE", "/v1/users/usr_ghost/keys", ""), 404)

		// The CLI, for dave.
		second := decode[struct{ Key string }](t, mustStatus(t, s.doWith("POST", "/v1/users/"+dave+"/keys", `{}`, withKey(daveKey)), 201)).Key
		out := s.cliOK("key", "revoke-all", dave)
		if !strings.Contains(out, "revoked 2 keys of "+dave) {
			t.Fatalf("key revoke-all: %q", out)
		}
		for _, k := range []string{daveKey, second} {
			mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(k)), 401)
		}
		states := keyStates(t, s, dave)
		ids := make([]string, 0, len(states))
		for id, revoked := range states {
			if !revoked {
				t.Errorf("dave's key %s not revoked", id)
			}
			ids = append(ids, id)
		}
		sort.Strings(ids)
		code, out, _ := s.cli("", "key", "list", dave, "--json")
		var listed []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != len(ids) {
			t.Fatalf("key list: %d %s", code, out)
		}
	})
}
