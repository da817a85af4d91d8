package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
)

var accessCases = []storeCase{
	{"Grants/DeletedWorkspaceTakesItsGrants", testAccDeletedWorkspaceTakesItsGrants},
	{"Users/CreateGetList", testAccUsersCreateGetList},
	{"Users/SetDisabled", testAccUsersSetDisabled},
	{"Users/DeleteCascades", testAccUsersDeleteCascades},
	{"Users/CreateWithKeyAndGrantsIsAllOrNothing", testAccUsersCreateWithKeyGrants},
	{"APIKeys/CreateListGetRevoke", testAccAPIKeys},
	{"APIKeys/RevocationFollowsWhatAKeyMinted", testAccAPIKeyLineage},
	{"Groups/CreateGetList", testAccGroupsCreateGetList},
	{"Groups/UnknownMemberLeavesNothing", testAccGroupsUnknownMember},
	{"Groups/SetMembersReplaces", testAccGroupsSetMembers},
	{"Groups/DeleteRemovesGrants", testAccGroupsDelete},
	{"Roles/BuiltIn", testAccRolesBuiltIn},
	{"Roles/PutCreatesThenUpdates", testAccRolesPut},
	{"Roles/BuiltInProtected", testAccRolesProtected},
	{"Roles/NotFound", testAccRolesNotFound},
	{"Grants/CreateListDelete", testAccGrants},
	{"Grants/DeletedRoleTakesItsGrants", testAccGrantsRoleDeleted},
	{"Privileges/UserDirectAndThroughGroups", testAccPrivilegesUser},
	{"Privileges/AppsByIDAndPattern", testAccPrivilegesApp},
	{"NotifyListen", testAccNotifyListen},
}

// TestAccessStore runs the inbound access-control storage cases (users, API keys, groups,
// roles, grants, effective privileges, change notifications) against SQLite and
// PostgreSQL, each on a fresh database.
func TestAccessStore(t *testing.T) {
	runCases(t, accessCases, nil)
}

// --- fixtures ---

func accGrant(id, role, kind, subject, ws string, created time.Time) sesame.Grant {
	return sesame.Grant{ID: id, Role: role, SubjectKind: kind, Subject: subject, Workspace: ws, CreatedAt: created}
}

func accGroup(id, name string, members ...string) sesame.Group {
	return sesame.Group{ID: id, Name: name, Members: members, CreatedAt: t0}
}

func accCreateUsers(t *testing.T, e *env, ids ...string) {
	t.Helper()
	for _, id := range ids {
		must(t, e.s.CreateUser(e.ctx, user(id, "name-"+id)))
	}
}

func accUserIDs(us []sesame.User) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.ID)
	}
	return out
}

func accKeyIDs(ks []sesame.APIKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

func accGroupIDs(gs []sesame.Group) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func accGrantIDs(gs []sesame.Grant) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func accListGrantIDs(t *testing.T, e *env) []string {
	t.Helper()
	gs, err := e.s.ListGrants(e.ctx)
	must(t, err)
	return accGrantIDs(gs)
}

func accWantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func accMembers(t *testing.T, e *env, id string) []string {
	t.Helper()
	g, err := e.s.GetGroup(e.ctx, id)
	must(t, err)
	return g.Members
}

// accPrivs returns a subject's effective privileges as sorted, deduplicated sets per
// workspace: the store may list a privilege once per grant that gives it.
func accPrivs(t *testing.T, e *env, kind, subject string) map[string][]string {
	t.Helper()
	byWS, err := e.s.EffectivePrivileges(e.ctx, kind, subject)
	must(t, err)
	if byWS == nil {
		t.Fatalf("EffectivePrivileges(%s, %s) returned a nil map", kind, subject)
	}
	out := map[string][]string{}
	for ws, ps := range byWS {
		var names []string
		for _, p := range ps {
			names = append(names, string(p))
		}
		slices.Sort(names)
		out[ws] = slices.Compact(names)
	}
	return out
}

func accWantPrivs(t *testing.T, e *env, kind, subject string, want map[string][]string) {
	t.Helper()
	got := accPrivs(t, e, kind, subject)
	for ws, ps := range want {
		ps = slices.Clone(ps)
		slices.Sort(ps)
		want[ws] = ps
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("EffectivePrivileges(%s, %s) = %v, want %v", kind, subject, got, want)
	}
}

// --- users ---

func testAccUsersCreateGetList(t *testing.T, e *env) {
	u := sesame.User{ID: "u3", Name: "carol@example.com", Disabled: true, CreatedAt: at(3)}
	must(t, e.s.CreateUser(e.ctx, u))
	got, err := e.s.GetUser(e.ctx, "u3")
	must(t, err)
	if got.ID != "u3" || got.Name != "carol@example.com" || !got.Disabled || !got.CreatedAt.Equal(at(3)) {
		t.Fatalf("GetUser = %+v, want %+v", got, u)
	}

	wantIs(t, e.s.CreateUser(e.ctx, user("u9", "carol@example.com")), sesame.ErrAlreadyExists) // name taken
	wantIs(t, e.s.CreateUser(e.ctx, user("u3", "someone-else")), sesame.ErrAlreadyExists)      // ID taken
	_, err = e.s.GetUser(e.ctx, "u9")
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.GetUser(e.ctx, "ghost")
	wantIs(t, err, sesame.ErrNotFound)
	countUsers(t, e, 1)

	accCreateUsers(t, e, "u5", "u1", "u4", "u2")
	countUsers(t, e, 5)
	var pages [][]string
	after := ""
	for i := 0; i < 10; i++ {
		us, err := e.s.ListUsers(e.ctx, after, 2)
		must(t, err)
		if len(us) == 0 {
			break
		}
		pages = append(pages, accUserIDs(us))
		after = us[len(us)-1].ID
	}
	if want := [][]string{{"u1", "u2"}, {"u3", "u4"}, {"u5"}}; !reflect.DeepEqual(pages, want) {
		t.Fatalf("ListUsers pages = %v, want %v", pages, want)
	}
	all, err := e.s.ListUsers(e.ctx, "", 100)
	must(t, err)
	if len(all) != 5 || all[2].Name != "carol@example.com" || !all[2].Disabled || !all[2].CreatedAt.Equal(at(3)) || all[0].Name != "name-u1" {
		t.Fatalf("ListUsers = %+v", all)
	}
	rest, err := e.s.ListUsers(e.ctx, "u2", 100)
	must(t, err)
	accWantIDs(t, "ListUsers after u2", accUserIDs(rest), "u3", "u4", "u5")
}

func testAccUsersSetDisabled(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2")
	disabled := func(id string) bool {
		t.Helper()
		u, err := e.s.GetUser(e.ctx, id)
		must(t, err)
		return u.Disabled
	}
	must(t, e.s.SetUserDisabled(e.ctx, "u1", true))
	if !disabled("u1") || disabled("u2") {
		t.Fatalf("after disabling u1: u1 %v, u2 %v", disabled("u1"), disabled("u2"))
	}
	must(t, e.s.SetUserDisabled(e.ctx, "u1", true)) // no change is not "not found"
	if !disabled("u1") {
		t.Fatal("u1 enabled by disabling it again")
	}
	must(t, e.s.SetUserDisabled(e.ctx, "u1", false))
	if disabled("u1") {
		t.Fatal("u1 still disabled")
	}
	err := e.s.SetUserDisabled(e.ctx, "ghost", true)
	wantCode(t, err, sesame.CodeNotFound)
	wantIs(t, err, sesame.ErrNotFound)
	countUsers(t, e, 2)
}

func testAccUsersDeleteCascades(t *testing.T, e *env) {
	must(t, e.s.CreateUserWithKey(e.ctx, user("u1", "alice"), apiKey("k1", "u1", "h1")))
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k2", "u1", "h2")))
	must(t, e.s.CreateUserWithKey(e.ctx, user("u2", "bob"), apiKey("k3", "u2", "h3")))
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u1", "u2")))
	must(t, e.s.CreateGroup(e.ctx, accGroup("g2", "solo", "u1")))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr1", "caller", sesame.SubjectUser, "u1", "*", at(1))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr2", "developer", sesame.SubjectUser, "u1", "ws", at(2))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr3", "caller", sesame.SubjectUser, "u2", "*", at(3))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr4", "auditor", sesame.SubjectGroup, "g1", "*", at(4))))
	// An app and a group whose IDs equal the user's are other subjects.
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr5", "app", sesame.SubjectApp, "u1", "*", at(5))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr6", "app", sesame.SubjectGroup, "u1", "*", at(6))))

	must(t, e.s.DeleteUser(e.ctx, "u1", at(30).UnixNano()))

	_, err := e.s.GetUser(e.ctx, "u1")
	wantIs(t, err, sesame.ErrNotFound)
	keys, err := e.s.ListAPIKeys(e.ctx, "u1")
	must(t, err)
	accWantIDs(t, "ListAPIKeys(u1)", accKeyIDs(keys))
	_, err = e.s.GetAPIKey(e.ctx, "k2")
	wantIs(t, err, sesame.ErrNotFound)
	for _, h := range []string{"h1", "h2"} {
		_, _, err = e.s.APIKeyByHash(e.ctx, []byte(h))
		wantIs(t, err, sesame.ErrNotFound)
	}
	accWantIDs(t, "g1 members", accMembers(t, e, "g1"), "u2")
	accWantIDs(t, "g2 members", accMembers(t, e, "g2"))
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr3", "gr4", "gr5", "gr6")
	if n := e.count(t, `SELECT COUNT(*) FROM api_keys WHERE user_id = 'u1'`); n != 0 {
		t.Fatalf("%d api_keys rows left for a deleted user", n)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM group_members WHERE user_id = 'u1'`); n != 0 {
		t.Fatalf("%d group_members rows left for a deleted user", n)
	}
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{})

	// The other user is untouched.
	k, u, err := e.s.APIKeyByHash(e.ctx, []byte("h3"))
	must(t, err)
	if k.ID != "k3" || u.ID != "u2" {
		t.Fatalf("h3 -> key %s user %s", k.ID, u.ID)
	}
	countUsers(t, e, 1)

	wantCode(t, e.s.DeleteUser(e.ctx, "u1", at(30).UnixNano()), sesame.CodeNotFound)
	wantIs(t, e.s.DeleteUser(e.ctx, "ghost", at(30).UnixNano()), sesame.ErrNotFound)
}

// A grant that fails (its role is missing, or it is a duplicate) must undo the user and
// the key written before it.
func testAccUsersCreateWithKeyGrants(t *testing.T, e *env) {
	must(t, e.s.CreateUserWithKey(e.ctx, user("u1", "alice"), apiKey("k1", "u1", "h1"),
		accGrant("gr1", "admin", sesame.SubjectUser, "u1", "*", at(1)),
		accGrant("gr2", "developer", sesame.SubjectUser, "u1", "ws", at(2))))
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr1", "gr2")
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{
		"*":  {"admin"},
		"ws": {"use_api_key", "run_functions", "manage_credentials", "manage_connections"},
	})

	failures := []struct {
		name   string
		grants []sesame.Grant
	}{
		{"missing role", []sesame.Grant{
			accGrant("gr3", "caller", sesame.SubjectUser, "u2", "*", at(3)),
			accGrant("gr4", "no-such-role", sesame.SubjectUser, "u2", "*", at(4)),
		}},
		{"duplicate grant", []sesame.Grant{
			accGrant("gr3", "caller", sesame.SubjectUser, "u2", "*", at(3)),
			accGrant("gr4", "caller", sesame.SubjectUser, "u2", "*", at(4)),
		}},
		{"grant ID taken", []sesame.Grant{accGrant("gr1", "caller", sesame.SubjectUser, "u2", "*", at(3))}},
	}
	for _, f := range failures {
		err := e.s.CreateUserWithKey(e.ctx, user("u2", "bob"), apiKey("k2", "u2", "h2"), f.grants...)
		if err == nil {
			t.Fatalf("%s: CreateUserWithKey succeeded", f.name)
		}
		if f.name == "missing role" {
			wantIs(t, err, sesame.ErrNotFound)
		} else {
			wantIs(t, err, sesame.ErrAlreadyExists)
		}
		_, err = e.s.GetUser(e.ctx, "u2")
		wantIs(t, err, sesame.ErrNotFound)
		_, _, err = e.s.APIKeyByHash(e.ctx, []byte("h2"))
		wantIs(t, err, sesame.ErrNotFound)
		_, err = e.s.GetAPIKey(e.ctx, "k2")
		wantIs(t, err, sesame.ErrNotFound)
		countUsers(t, e, 1)
		accWantIDs(t, f.name+": grants", accListGrantIDs(t, e), "gr1", "gr2")
	}

	// Nothing was left behind: the same names and IDs are free.
	must(t, e.s.CreateUserWithKey(e.ctx, user("u2", "bob"), apiKey("k2", "u2", "h2"),
		accGrant("gr3", "caller", sesame.SubjectUser, "u2", "*", at(3))))
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr1", "gr2", "gr3")
	countUsers(t, e, 2)
}

// --- API keys ---

// testAccAPIKeyLineage: revoking a key revokes the keys it minted, and theirs, whoever they
// are for; a revoked key mints nothing; revoking a user's keys and deleting a user do the
// same for every key of the user.
func testAccAPIKeyLineage(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2", "u3")
	minted := func(id, user, by string) sesame.APIKey {
		k := apiKey(id, user, "h"+id)
		k.CreatedByKey = by
		return k
	}
	// a → b → c (u1's), a → x (u2's, minted by u1 as a manager), y (u2's, unrelated).
	for _, k := range []sesame.APIKey{minted("a", "u1", ""), minted("b", "u1", "a"), minted("c", "u1", "b"),
		minted("x", "u2", "a"), minted("y", "u2", ""), minted("z", "u3", "y"), minted("w", "u3", "")} {
		must(t, e.s.CreateAPIKey(e.ctx, k))
	}
	got, err := e.s.GetAPIKey(e.ctx, "c")
	must(t, err)
	if got.CreatedByKey != "b" {
		t.Fatalf("GetAPIKey(c).CreatedByKey = %q", got.CreatedByKey)
	}
	for _, c := range []struct {
		id     string
		byUser bool
		want   []string
	}{{"a", false, []string{"u1", "u2"}}, {"b", false, []string{"u1"}}, {"y", false, []string{"u2", "u3"}},
		{"u1", true, []string{"u1", "u2"}}, {"u3", true, []string{"u3"}}, {"ghost", false, nil}} {
		owners, err := e.s.MintedKeyOwners(e.ctx, c.id, c.byUser)
		must(t, err)
		if !slices.Equal(owners, c.want) {
			t.Errorf("MintedKeyOwners(%s, %v) = %v, want %v", c.id, c.byUser, owners, c.want)
		}
	}
	revoked := func(ids ...string) {
		t.Helper()
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		for _, id := range []string{"a", "b", "c", "x", "y", "z", "w"} {
			k, err := e.s.GetAPIKey(e.ctx, id)
			must(t, err)
			if (k.RevokedAt != nil) != want[id] {
				t.Errorf("key %s revoked at %v, want revoked %v", id, k.RevokedAt, want[id])
			}
		}
	}
	must(t, e.s.RevokeAPIKey(e.ctx, "b", at(5).UnixNano()))
	revoked("b", "c")
	wantCode(t, e.s.CreateAPIKey(e.ctx, minted("d", "u1", "b")), sesame.CodeUnauthenticated)
	wantCode(t, e.s.CreateAPIKey(e.ctx, minted("d", "u1", "ghost")), sesame.CodeUnauthenticated)
	must(t, e.s.RevokeAPIKey(e.ctx, "a", at(10).UnixNano()))
	revoked("a", "b", "c", "x")
	k, err := e.s.GetAPIKey(e.ctx, "c")
	must(t, err)
	if !k.RevokedAt.Equal(at(5)) {
		t.Errorf("c revoked again: at %v, want %v", k.RevokedAt, at(5))
	}

	n, err := e.s.RevokeUserAPIKeys(e.ctx, "u2", at(20).UnixNano())
	must(t, err)
	if n != 2 { // y and z (minted by y); x was revoked already
		t.Errorf("RevokeUserAPIKeys(u2) = %d, want 2", n)
	}
	revoked("a", "b", "c", "x", "y", "z")
	_, err = e.s.RevokeUserAPIKeys(e.ctx, "ghost", at(20).UnixNano())
	wantCode(t, err, sesame.CodeNotFound)

	// Deleting a user revokes the keys its keys minted for others.
	must(t, e.s.CreateAPIKey(e.ctx, minted("v", "u2", "w")))
	must(t, e.s.DeleteUser(e.ctx, "u3", at(30).UnixNano()))
	k, err = e.s.GetAPIKey(e.ctx, "v")
	must(t, err)
	if k.RevokedAt == nil {
		t.Error("a key minted by a deleted user's key still works")
	}
}

func testAccAPIKeys(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2")
	exp := at(60)
	k1 := apiKey("k1", "u1", "h1")
	k1.CreatedAt, k1.ExpiresAt = at(2), &exp
	k2 := apiKey("k2", "u1", "h2")
	k2.CreatedAt = at(1)
	k0 := apiKey("k0", "u1", "h0")
	k0.CreatedAt = at(2) // same time as k1: ordered by ID
	for _, k := range []sesame.APIKey{k1, k2, k0, apiKey("k9", "u2", "h9")} {
		must(t, e.s.CreateAPIKey(e.ctx, k))
	}
	wantIs(t, e.s.CreateAPIKey(e.ctx, apiKey("k1", "u2", "hx")), sesame.ErrAlreadyExists) // ID taken
	wantIs(t, e.s.CreateAPIKey(e.ctx, apiKey("kx", "u2", "h1")), sesame.ErrAlreadyExists) // hash taken

	keys, err := e.s.ListAPIKeys(e.ctx, "u1")
	must(t, err)
	accWantIDs(t, "ListAPIKeys(u1)", accKeyIDs(keys), "k2", "k0", "k1")
	for _, k := range keys {
		if k.UserID != "u1" || k.Name != "key "+k.ID || k.Hash != nil || k.RevokedAt != nil || k.LastUsedAt != nil {
			t.Errorf("listed key %+v", k)
		}
	}
	if keys[2].ExpiresAt == nil || !keys[2].ExpiresAt.Equal(exp) || keys[0].ExpiresAt != nil || !keys[2].CreatedAt.Equal(at(2)) {
		t.Errorf("listed k1 = %+v, k2 = %+v", keys[2], keys[0])
	}
	keys, err = e.s.ListAPIKeys(e.ctx, "ghost")
	must(t, err)
	accWantIDs(t, "ListAPIKeys(ghost)", accKeyIDs(keys))

	got, err := e.s.GetAPIKey(e.ctx, "k1")
	must(t, err)
	if got.ID != "k1" || got.UserID != "u1" || got.Name != "key k1" || !got.CreatedAt.Equal(at(2)) ||
		got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.RevokedAt != nil || got.LastUsedAt != nil {
		t.Fatalf("GetAPIKey(k1) = %+v", got)
	}
	_, err = e.s.GetAPIKey(e.ctx, "ghost")
	wantIs(t, err, sesame.ErrNotFound)

	// Revoking keeps the first time.
	must(t, e.s.RevokeAPIKey(e.ctx, "k1", at(10).UnixNano()))
	must(t, e.s.RevokeAPIKey(e.ctx, "k1", at(20).UnixNano()))
	got, err = e.s.GetAPIKey(e.ctx, "k1")
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at(10)) {
		t.Fatalf("k1 revoked at %v, want %v", got.RevokedAt, at(10))
	}
	k, _, err := e.s.APIKeyByHash(e.ctx, []byte("h1"))
	must(t, err)
	if k.RevokedAt == nil || !k.RevokedAt.Equal(at(10)) {
		t.Fatalf("APIKeyByHash(h1) revoked at %v, want %v", k.RevokedAt, at(10))
	}
	got, err = e.s.GetAPIKey(e.ctx, "k2")
	must(t, err)
	if got.RevokedAt != nil {
		t.Fatalf("k2 revoked at %v by revoking k1", got.RevokedAt)
	}
	err = e.s.RevokeAPIKey(e.ctx, "ghost", at(10).UnixNano())
	wantCode(t, err, sesame.CodeNotFound)

	// A deleted user's key no longer authenticates.
	must(t, e.s.DeleteUser(e.ctx, "u2", at(30).UnixNano()))
	_, _, err = e.s.APIKeyByHash(e.ctx, []byte("h9"))
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.GetAPIKey(e.ctx, "k9")
	wantIs(t, err, sesame.ErrNotFound)
}

// --- groups ---

func testAccGroupsCreateGetList(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2", "u3")
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "zeta", "u3", "u1", "u2")))
	must(t, e.s.CreateGroup(e.ctx, sesame.Group{ID: "g2", Name: "alpha", CreatedAt: at(7)}))

	g, err := e.s.GetGroup(e.ctx, "g1")
	must(t, err)
	if g.ID != "g1" || g.Name != "zeta" || !g.CreatedAt.Equal(t0) {
		t.Fatalf("GetGroup(g1) = %+v", g)
	}
	accWantIDs(t, "g1 members", g.Members, "u1", "u2", "u3")
	g, err = e.s.GetGroup(e.ctx, "g2")
	must(t, err)
	if g.Name != "alpha" || !g.CreatedAt.Equal(at(7)) || g.Members == nil || len(g.Members) != 0 {
		t.Fatalf("GetGroup(g2) = %+v (members nil: %v), want an empty, non-nil member list", g, g.Members == nil)
	}
	_, err = e.s.GetGroup(e.ctx, "ghost")
	wantIs(t, err, sesame.ErrNotFound)

	wantIs(t, e.s.CreateGroup(e.ctx, accGroup("g3", "zeta")), sesame.ErrAlreadyExists)  // name taken
	wantIs(t, e.s.CreateGroup(e.ctx, accGroup("g1", "other")), sesame.ErrAlreadyExists) // ID taken

	gs, err := e.s.ListGroups(e.ctx)
	must(t, err)
	accWantIDs(t, "ListGroups", accGroupIDs(gs), "g2", "g1") // by name
	if gs[0].Name != "alpha" || !gs[0].CreatedAt.Equal(at(7)) || gs[1].Name != "zeta" {
		t.Fatalf("ListGroups = %+v", gs)
	}
}

func testAccGroupsUnknownMember(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1")
	err := e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u1", "ghost"))
	if err == nil {
		t.Fatal("a group with an unknown member was created")
	}
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.GetGroup(e.ctx, "g1")
	wantIs(t, err, sesame.ErrNotFound)
	gs, err := e.s.ListGroups(e.ctx)
	must(t, err)
	accWantIDs(t, "ListGroups", accGroupIDs(gs))
	if n := e.count(t, `SELECT COUNT(*) FROM group_members`); n != 0 {
		t.Fatalf("%d group_members rows left by a failed create", n)
	}
	// The name and ID are still free.
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u1")))
	accWantIDs(t, "g1 members", accMembers(t, e, "g1"), "u1")
}

func testAccGroupsSetMembers(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2", "u3", "u4")
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u1", "u2")))
	must(t, e.s.CreateGroup(e.ctx, accGroup("g2", "other", "u1")))

	must(t, e.s.SetGroupMembers(e.ctx, "g1", []string{"u4", "u2", "u3"}))
	accWantIDs(t, "g1 members", accMembers(t, e, "g1"), "u2", "u3", "u4")
	accWantIDs(t, "g2 members", accMembers(t, e, "g2"), "u1")

	// An unknown member fails the whole replacement.
	err := e.s.SetGroupMembers(e.ctx, "g1", []string{"u1", "ghost"})
	if err == nil {
		t.Fatal("SetGroupMembers accepted an unknown member")
	}
	wantIs(t, err, sesame.ErrNotFound)
	accWantIDs(t, "g1 members after a failed replace", accMembers(t, e, "g1"), "u2", "u3", "u4")

	wantCode(t, e.s.SetGroupMembers(e.ctx, "ghost", []string{"u1"}), sesame.CodeNotFound)
	if n := e.count(t, `SELECT COUNT(*) FROM group_members WHERE group_id = 'ghost'`); n != 0 {
		t.Fatalf("%d members added to a missing group", n)
	}

	must(t, e.s.SetGroupMembers(e.ctx, "g1", nil))
	accWantIDs(t, "g1 members after clearing", accMembers(t, e, "g1"))
}

func testAccGroupsDelete(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2")
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u1")))
	must(t, e.s.CreateGroup(e.ctx, accGroup("g2", "other", "u1")))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr1", "developer", sesame.SubjectGroup, "g1", "ws", at(1))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr2", "admin", sesame.SubjectGroup, "g1", "*", at(2))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr3", "auditor", sesame.SubjectGroup, "g2", "*", at(3))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr4", "caller", sesame.SubjectUser, "g1", "*", at(4))))   // a user named like the group
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr5", "caller", sesame.SubjectUser, "u2", "ws2", at(5)))) // unrelated
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{
		"ws": {"use_api_key", "run_functions", "manage_credentials", "manage_connections"},
		"*":  {"admin", "use_api_key", "read_audit"},
	})

	must(t, e.s.DeleteGroup(e.ctx, "g1"))
	_, err := e.s.GetGroup(e.ctx, "g1")
	wantIs(t, err, sesame.ErrNotFound)
	gs, err := e.s.ListGroups(e.ctx)
	must(t, err)
	accWantIDs(t, "ListGroups", accGroupIDs(gs), "g2")
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr3", "gr4", "gr5")
	if n := e.count(t, `SELECT COUNT(*) FROM group_members WHERE group_id = 'g1'`); n != 0 {
		t.Fatalf("%d group_members rows left for a deleted group", n)
	}
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{"*": {"use_api_key", "read_audit"}})
	if _, err := e.s.GetUser(e.ctx, "u1"); err != nil {
		t.Fatalf("member deleted with its group: %v", err)
	}

	wantCode(t, e.s.DeleteGroup(e.ctx, "g1"), sesame.CodeNotFound)
}

// --- roles ---

var accBuiltinRoles = map[string][]sesame.Privilege{
	"admin":     {sesame.PrivAdmin},
	"developer": {sesame.PrivUseAPIKey, sesame.PrivRunFunctions, sesame.PrivManageCredentials, sesame.PrivManageConnections},
	"caller":    {sesame.PrivUseAPIKey, sesame.PrivRunFunctions},
	"auditor":   {sesame.PrivUseAPIKey, sesame.PrivReadAudit},
	"app":       {sesame.PrivRunFunctions},
}

func testAccRolesBuiltIn(t *testing.T, e *env) {
	rs, err := e.s.ListRoles(e.ctx)
	must(t, err)
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
		want, ok := accBuiltinRoles[r.Name]
		if !ok || !r.Builtin || !reflect.DeepEqual(r.Privileges, want) {
			t.Errorf("listed role %+v, want built in with %v", r, want)
		}
	}
	accWantIDs(t, "ListRoles", names, "admin", "app", "auditor", "caller", "developer")
	for name, want := range accBuiltinRoles {
		r, err := e.s.GetRole(e.ctx, name)
		must(t, err)
		if r.Name != name || !r.Builtin || !reflect.DeepEqual(r.Privileges, want) {
			t.Errorf("GetRole(%s) = %+v, want built in with %v", name, r, want)
		}
		for _, p := range r.Privileges {
			if !sesame.ValidPrivilege(p) {
				t.Errorf("built-in role %s has unknown privilege %q", name, p)
			}
		}
	}
}

func testAccRolesPut(t *testing.T, e *env) {
	r := sesame.Role{Name: "ops", Privileges: []sesame.Privilege{sesame.PrivManageUsers, sesame.PrivReadAudit}, CreatedAt: at(1)}
	created, err := e.s.PutRole(e.ctx, r)
	must(t, err)
	if !created {
		t.Fatal("PutRole of a new role: created = false")
	}
	got, err := e.s.GetRole(e.ctx, "ops")
	must(t, err)
	if got.Name != "ops" || got.Builtin || !got.CreatedAt.Equal(at(1)) || !reflect.DeepEqual(got.Privileges, r.Privileges) {
		t.Fatalf("GetRole(ops) = %+v, want %+v", got, r)
	}

	r2 := sesame.Role{Name: "ops", Privileges: []sesame.Privilege{sesame.PrivManageApps}, CreatedAt: at(9), Builtin: true}
	created, err = e.s.PutRole(e.ctx, r2)
	must(t, err)
	if created {
		t.Fatal("PutRole of an existing role: created = true")
	}
	got, err = e.s.GetRole(e.ctx, "ops")
	must(t, err)
	if got.Builtin || !got.CreatedAt.Equal(at(1)) || !reflect.DeepEqual(got.Privileges, r2.Privileges) {
		t.Fatalf("GetRole(ops) after update = %+v, want privileges %v, created %v, not built in", got, r2.Privileges, at(1))
	}

	// A grant of the role follows the update.
	accCreateUsers(t, e, "u1")
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr1", "ops", sesame.SubjectUser, "u1", "ws", at(2))))
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{"ws": {"manage_apps"}})
	_, err = e.s.PutRole(e.ctx, sesame.Role{Name: "ops", Privileges: []sesame.Privilege{sesame.PrivReadAudit}})
	must(t, err)
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{"ws": {"read_audit"}})

	rs, err := e.s.ListRoles(e.ctx)
	must(t, err)
	if len(rs) != len(accBuiltinRoles)+1 {
		t.Fatalf("ListRoles has %d roles, want %d", len(rs), len(accBuiltinRoles)+1)
	}
}

func testAccRolesProtected(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1")
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr1", "caller", sesame.SubjectUser, "u1", "*", at(1))))
	for name, want := range accBuiltinRoles {
		created, err := e.s.PutRole(e.ctx, sesame.Role{Name: name, Privileges: []sesame.Privilege{sesame.PrivAdmin}, CreatedAt: at(5)})
		wantCode(t, err, sesame.CodeProtected)
		if created {
			t.Errorf("PutRole(%s) refused but created = true", name)
		}
		wantCode(t, e.s.DeleteRole(e.ctx, name), sesame.CodeProtected)
		r, err := e.s.GetRole(e.ctx, name)
		must(t, err)
		if !r.Builtin || !reflect.DeepEqual(r.Privileges, want) || !r.CreatedAt.Equal(time.Unix(0, 0).UTC()) {
			t.Errorf("built-in role changed: %+v", r)
		}
	}
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr1")
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{"*": {"use_api_key", "run_functions"}})
}

func testAccRolesNotFound(t *testing.T, e *env) {
	_, err := e.s.GetRole(e.ctx, "ghost")
	wantIs(t, err, sesame.ErrNotFound)
	wantCode(t, e.s.DeleteRole(e.ctx, "ghost"), sesame.CodeNotFound)
}

// --- grants ---

func testAccGrants(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1")
	g1 := accGrant("gr1", "caller", sesame.SubjectUser, "u1", "ws", at(3))
	must(t, e.s.CreateGrant(e.ctx, g1))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr2", "caller", sesame.SubjectUser, "u1", "*", at(1))))     // other workspace
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr0", "developer", sesame.SubjectUser, "u1", "ws", at(3)))) // other role, same time
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr3", "caller", sesame.SubjectGroup, "u1", "ws", at(2))))   // other kind
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr4", "app", sesame.SubjectApp, "com.acme.*", "*", at(4))))

	wantIs(t, e.s.CreateGrant(e.ctx, accGrant("gr9", "caller", sesame.SubjectUser, "u1", "ws", at(9))), sesame.ErrAlreadyExists)
	wantIs(t, e.s.CreateGrant(e.ctx, accGrant("gr1", "admin", sesame.SubjectUser, "u1", "other", at(9))), sesame.ErrAlreadyExists)
	wantIs(t, e.s.CreateGrant(e.ctx, accGrant("gr9", "no-such-role", sesame.SubjectUser, "u1", "ws", at(9))), sesame.ErrNotFound)

	gs, err := e.s.ListGrants(e.ctx)
	must(t, err)
	accWantIDs(t, "ListGrants", accGrantIDs(gs), "gr2", "gr3", "gr0", "gr1", "gr4") // by time, then ID
	if g := gs[3]; g.ID != g1.ID || g.Role != g1.Role || g.SubjectKind != g1.SubjectKind || g.Subject != g1.Subject ||
		g.Workspace != g1.Workspace || !g.CreatedAt.Equal(g1.CreatedAt) {
		t.Fatalf("listed grant %+v, want %+v", g, g1)
	}

	must(t, e.s.DeleteGrant(e.ctx, "gr1"))
	accWantIDs(t, "ListGrants", accListGrantIDs(t, e), "gr2", "gr3", "gr0", "gr4")
	wantCode(t, e.s.DeleteGrant(e.ctx, "gr1"), sesame.CodeNotFound)
	// Once deleted, the same grant can be given again.
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr9", "caller", sesame.SubjectUser, "u1", "ws", at(9))))
	accWantIDs(t, "ListGrants", accListGrantIDs(t, e), "gr2", "gr3", "gr0", "gr4", "gr9")
}

func testAccGrantsRoleDeleted(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1")
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "team", "u1")))
	_, err := e.s.PutRole(e.ctx, sesame.Role{Name: "ops", Privileges: []sesame.Privilege{sesame.PrivManageUsers}, CreatedAt: t0})
	must(t, err)
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr1", "ops", sesame.SubjectUser, "u1", "*", at(1))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr2", "ops", sesame.SubjectGroup, "g1", "ws", at(2))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr3", "ops", sesame.SubjectApp, "com.acme.app", "*", at(3))))
	must(t, e.s.CreateGrant(e.ctx, accGrant("gr4", "caller", sesame.SubjectUser, "u1", "ws", at(4))))
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{
		"*": {"manage_users"}, "ws": {"manage_users", "use_api_key", "run_functions"},
	})

	must(t, e.s.DeleteRole(e.ctx, "ops"))
	_, err = e.s.GetRole(e.ctx, "ops")
	wantIs(t, err, sesame.ErrNotFound)
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr4")
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{"ws": {"use_api_key", "run_functions"}})
	accWantPrivs(t, e, sesame.SubjectApp, "com.acme.app", map[string][]string{})

	// A role made again under the same name does not bring the old grants back.
	_, err = e.s.PutRole(e.ctx, sesame.Role{Name: "ops", Privileges: []sesame.Privilege{sesame.PrivAdmin}, CreatedAt: t0})
	must(t, err)
	accWantIDs(t, "grants", accListGrantIDs(t, e), "gr4")
}

// --- effective privileges ---

func testAccPrivilegesUser(t *testing.T, e *env) {
	accCreateUsers(t, e, "u1", "u2", "u3")
	must(t, e.s.CreateGroup(e.ctx, accGroup("g1", "devs", "u1", "u2")))
	must(t, e.s.CreateGroup(e.ctx, accGroup("g2", "auditors", "u1")))
	must(t, e.s.CreateGroup(e.ctx, accGroup("g3", "empty")))
	for _, g := range []sesame.Grant{
		accGrant("gr1", "caller", sesame.SubjectUser, "u1", "prod", at(1)),
		accGrant("gr2", "developer", sesame.SubjectGroup, "g1", "dev", at(2)),
		accGrant("gr3", "auditor", sesame.SubjectGroup, "g2", "*", at(3)),
		accGrant("gr4", "admin", sesame.SubjectGroup, "g3", "*", at(4)),       // nobody in g3
		accGrant("gr5", "admin", sesame.SubjectUser, "u3", "*", at(5)),        // another user
		accGrant("gr6", "admin", sesame.SubjectApp, "u1", "*", at(6)),         // an app, not the user
		accGrant("gr7", "admin", sesame.SubjectUser, "g1", "*", at(7)),        // a user, not the group
		accGrant("gr8", "caller", sesame.SubjectGroup, "g1", "prod", at(8)),   // overlaps gr1
		accGrant("gr9", "developer", sesame.SubjectUser, "u2", "prod", at(9)), // u2 directly
	} {
		must(t, e.s.CreateGrant(e.ctx, g))
	}

	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{
		"prod": {"use_api_key", "run_functions"},
		"dev":  {"use_api_key", "run_functions", "manage_credentials", "manage_connections"},
		"*":    {"use_api_key", "read_audit"},
	})
	accWantPrivs(t, e, sesame.SubjectUser, "u2", map[string][]string{
		"prod": {"use_api_key", "run_functions", "manage_credentials", "manage_connections"},
		"dev":  {"use_api_key", "run_functions", "manage_credentials", "manage_connections"},
	})
	accWantPrivs(t, e, sesame.SubjectUser, "u3", map[string][]string{"*": {"admin"}})
	accWantPrivs(t, e, sesame.SubjectUser, "ghost", map[string][]string{})
	// Groups are not subjects one asks about; unknown kinds have no privileges.
	accWantPrivs(t, e, sesame.SubjectGroup, "g1", map[string][]string{})
	accWantPrivs(t, e, "robot", "u1", map[string][]string{})

	// Membership changes are seen at once.
	must(t, e.s.SetGroupMembers(e.ctx, "g1", []string{"u2"}))
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{
		"prod": {"use_api_key", "run_functions"},
		"*":    {"use_api_key", "read_audit"},
	})
	must(t, e.s.SetGroupMembers(e.ctx, "g3", []string{"u1"}))
	accWantPrivs(t, e, sesame.SubjectUser, "u1", map[string][]string{
		"prod": {"use_api_key", "run_functions"},
		"*":    {"use_api_key", "read_audit", "admin"},
	})
}

func testAccPrivilegesApp(t *testing.T, e *env) {
	accCreateUsers(t, e, "com.acme.app") // a user with an app's name is not that app
	for _, g := range []sesame.Grant{
		accGrant("gr1", "app", sesame.SubjectApp, "com.acme.*", "*", at(1)),
		accGrant("gr2", "developer", sesame.SubjectApp, "com.acme.app", "ws", at(2)),
		accGrant("gr3", "auditor", sesame.SubjectApp, "org.other.app", "*", at(3)),
		accGrant("gr4", "admin", sesame.SubjectUser, "com.acme.app", "*", at(4)),
		accGrant("gr5", "caller", sesame.SubjectApp, "com.acme.tools.*", "tools", at(5)),
	} {
		must(t, e.s.CreateGrant(e.ctx, g))
	}

	accWantPrivs(t, e, sesame.SubjectApp, "com.acme.app", map[string][]string{
		"*":  {"run_functions"},
		"ws": {"use_api_key", "run_functions", "manage_credentials", "manage_connections"},
	})
	accWantPrivs(t, e, sesame.SubjectApp, "com.acme.other", map[string][]string{"*": {"run_functions"}})
	accWantPrivs(t, e, sesame.SubjectApp, "com.acme.tools.cli", map[string][]string{
		"*": {"run_functions"}, "tools": {"use_api_key", "run_functions"},
	})
	accWantPrivs(t, e, sesame.SubjectApp, "com.acmex.app", map[string][]string{})
	accWantPrivs(t, e, sesame.SubjectApp, "com.acme", map[string][]string{})
	accWantPrivs(t, e, sesame.SubjectApp, "com.acme.", map[string][]string{})
	accWantPrivs(t, e, sesame.SubjectApp, "org.other.app", map[string][]string{"*": {"use_api_key", "read_audit"}})
	accWantPrivs(t, e, sesame.SubjectApp, "org.other.app2", map[string][]string{})
	accWantPrivs(t, e, sesame.SubjectUser, "com.acme.app", map[string][]string{"*": {"admin"}})
}

func testAccAppMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, app string
		want         bool
	}{
		{"com.acme.app", "com.acme.app", true},
		{"com.acme.app", "com.acme.app2", false},
		{"com.acme.app", "com.acme", false},
		{"com.acme.app", "", false},
		{"com.acme.*", "com.acme.app", true},
		{"com.acme.*", "com.acme.a.b", true},
		{"com.acme.*", "com.acme", false},
		{"com.acme.*", "com.acme.", false},
		{"com.acme.*", "com.acmex.app", false},
		{"com.acme.*", "org.com.acme.app", false},
		{"com.acme.*", "com.acme.*", true},
		{"com.acme.*", "", false},
		{"*", "com.acme.app", true},
		{"*", "", false},
		{"", "", true},
		{"", "com.acme.app", false},
		// Trial apps: only patterns that name com.example reach them.
		{"com.*", "com.example.app", false},
		{"*", "com.example.app", false},
		{"com.ex*", "com.example.app", false},
		{"com.example.*", "com.example.app", true},
		{"com.example*", "com.example.app", true},
		{"com.example.app", "com.example.app", true},
		{"com.example.app.*", "com.example.app.x", true},
		{"com.*", "com.examples.app", true},
	} {
		if got := store.AppMatches(c.pattern, c.app); got != c.want {
			t.Errorf("AppMatches(%q, %q) = %v, want %v", c.pattern, c.app, got, c.want)
		}
	}
}

// --- change notifications ---

func testAccNotifyListen(t *testing.T, e *env) {
	// Notifications are database-wide, not per schema: a channel of its own keeps this
	// test apart from any other running on the same server.
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	channel := "sesame_test_" + hex.EncodeToString(b)

	if e.s.Dialect() != "postgres" {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		called := false
		must(t, e.s.Listen(ctx, channel, func(string) { called = true }))
		if d := time.Since(start); d > 2*time.Second || called {
			t.Fatalf("Listen on %s took %v and called fn: %v; want an immediate return", e.s.Dialect(), d, called)
		}
		must(t, e.s.Notify(e.ctx, channel, "changed"))
		return
	}

	other := e.reopen(t) // a second replica on the same schema
	got := make(chan string, 64)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		done <- e.s.Listen(ctx, channel, func(p string) {
			select {
			case got <- p:
			default:
			}
		})
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen returned %v after its context ended", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Listen did not return after its context ended")
		}
	}
	defer func() {
		if ctx.Err() == nil {
			stop()
		}
	}()

	// The listener may not have run LISTEN yet, so notify until it hears.
	wait := func(payload string) {
		t.Helper()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		must(t, other.Notify(e.ctx, channel, payload))
		for {
			select {
			case p := <-got:
				switch p {
				case payload:
					return
				case "elsewhere":
					t.Fatal("listener got a notification of another channel")
				}
				// "" (reconnected) or a repeat of an earlier payload: keep waiting.
			case <-tick.C:
				must(t, other.Notify(e.ctx, channel, payload))
			case <-deadline:
				t.Fatalf("no notification %q within 10s", payload)
			}
		}
	}
	wait("payload-1")
	wait("payload-2") // keeps listening after the first one
	// Another channel does not reach the listener.
	must(t, other.Notify(e.ctx, channel+"_x", "elsewhere"))
	wait("payload-3")
	for len(got) > 0 {
		if p := <-got; p == "elsewhere" {
			t.Fatal("listener got a notification of another channel")
		}
	}

	// When its connection is lost the listener reports "" (anything may have changed) and
	// listens again.
	var killed int
	must(t, e.raw(t).QueryRowContext(e.ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query = $1`, `LISTEN "`+channel+`"`).Scan(&killed))
	if killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	lost := time.After(10 * time.Second)
	for reported := false; !reported; {
		select {
		case p := <-got:
			// Late repeats of payload-3 may still come first.
			if p != "" && p != "payload-3" {
				t.Fatalf("after losing its connection the listener got %q, want \"\"", p)
			}
			reported = p == ""
		case <-lost:
			t.Fatal("listener did not report its lost connection within 10s")
		}
	}
	wait("payload-4")

	stop()
	if err := e.s.Notify(e.ctx, channel, "after"); err != nil {
		t.Fatalf("Notify after the listener stopped: %v", err)
	}
}

func testAccDeletedWorkspaceTakesItsGrants(t *testing.T, e *env) {
	must(t, e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: "gone", CreatedAt: t0}))
	u := user("usr_g", "grace")
	must(t, e.s.CreateUser(e.ctx, u))
	must(t, e.s.CreateGrant(e.ctx, accGrant("grt_g", "caller", sesame.SubjectUser, u.ID, "gone", t0)))
	must(t, e.s.DeleteWorkspace(e.ctx, "gone", true))
	must(t, e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: "gone", CreatedAt: t0}))
	privs, err := e.s.EffectivePrivileges(e.ctx, sesame.SubjectUser, u.ID)
	must(t, err)
	if len(privs["gone"]) != 0 {
		t.Fatalf("a workspace created again under a deleted one's name inherited its grants: %v", privs)
	}
}
