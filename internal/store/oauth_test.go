package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
)

// The OAuth2 storage cases run, like storeCases, against SQLite and PostgreSQL.
var oauthCases = []storeCase{
	{"Grant/CreateAndGet", testGrantCreateAndGet},
	{"Grant/CreateDuplicate", testGrantCreateDuplicate},
	{"Grant/CreateNeedsCredential", testGrantCreateNeedsCredential},
	{"Grant/UpdateIsCompareAndSwap", testGrantUpdateCAS},
	{"Grant/ConcurrentUpdatesOneWins", testGrantConcurrentUpdates},
	{"Grant/ListFiltersAndPaginates", testGrantList},
	{"Grant/Delete", testGrantDelete},
	{"Grant/CredentialDeleteCascades", testGrantCascade},
	{"Lease/OneOwnerAtATime", testLeaseOneOwner},
	{"Lease/ConcurrentClaimsOneWins", testLeaseConcurrent},
	{"Lease/StaleVersionCannotClaim", testLeaseStaleVersion},
	{"Lease/ExpiredLeaseCanBeTaken", testLeaseExpired},
	{"Lease/WriteReleases", testLeaseWriteReleases},
	{"State/TakeIsSingleUse", testStateSingleUse},
	{"State/ConcurrentTakesOneWins", testStateConcurrentTakes},
	{"State/ExpiredIsGone", testStateExpired},
	{"State/NeedsCredential", testStateNeedsCredential},
	{"Sealed/OAuthBlobsAreCountedAndRewrapped", testOAuthRewrap},
}

func TestOAuthStore(t *testing.T) {
	runCases(t, oauthCases, func(t *testing.T, e *env) {
		createWorkspace(t, e, "w")
		put(t, e, record("w", "gh"), 0)
		put(t, e, record("w", "slack"), 0)
	})
}

func grant(cred, user string) sesame.OAuthGrant {
	exp := at(60)
	return sesame.OAuthGrant{Workspace: "w", Credential: cred, EndUser: user,
		Access: []byte("sealed-access-" + user), Refresh: []byte("sealed-refresh-" + user), TokenType: "Bearer", Scope: "read",
		ExpiresAt: &exp, Status: sesame.GrantValid, CreatedAt: t0, UpdatedAt: t0}
}

func getGrant(t *testing.T, e *env, cred, user string) sesame.OAuthGrant {
	t.Helper()
	g, err := e.s.GetOAuthGrant(e.ctx, "w", cred, user)
	if err != nil {
		t.Fatalf("GetOAuthGrant(%s, %q): %v", cred, user, err)
	}
	return g
}

func testGrantCreateAndGet(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "bob")))
	g := getGrant(t, e, "gh", "bob")
	want := grant("gh", "bob")
	want.Version = 1
	if !bytes.Equal(g.Access, want.Access) || !bytes.Equal(g.Refresh, want.Refresh) || g.TokenType != "Bearer" || g.Scope != "read" ||
		!g.ExpiresAt.Equal(*want.ExpiresAt) || g.Status != sesame.GrantValid || g.Version != 1 || !g.CreatedAt.Equal(t0) || g.RefreshedAt != nil {
		t.Fatalf("GetOAuthGrant = %+v", g)
	}
	// A grant without tokens yet (client credentials before the first fetch).
	empty := sesame.OAuthGrant{Workspace: "w", Credential: "slack", Status: sesame.GrantValid, CreatedAt: t0, UpdatedAt: t0}
	must(t, e.s.CreateOAuthGrant(e.ctx, empty))
	if g := getGrant(t, e, "slack", ""); g.Access != nil || g.Refresh != nil || g.ExpiresAt != nil {
		t.Fatalf("empty grant = %+v", g)
	}
	_, err := e.s.GetOAuthGrant(e.ctx, "w", "gh", "carol")
	wantIs(t, err, sesame.ErrNotFound)
}

func testGrantCreateDuplicate(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "bob")))
	wantIs(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "bob")), sesame.ErrAlreadyExists)
}

func testGrantCreateNeedsCredential(t *testing.T, e *env) {
	wantIs(t, e.s.CreateOAuthGrant(e.ctx, grant("nope", "")), sesame.ErrNotFound)
}

func testGrantUpdateCAS(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	g := grant("gh", "")
	g.Access, g.UpdatedAt = []byte("sealed-access-2"), at(1)
	refreshed := at(1)
	g.RefreshedAt = &refreshed
	v, err := e.s.UpdateOAuthGrant(e.ctx, g, 1)
	must(t, err)
	if v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	got := getGrant(t, e, "gh", "")
	if string(got.Access) != "sealed-access-2" || got.Version != 2 || !got.RefreshedAt.Equal(refreshed) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("after update: %+v", got)
	}
	// A writer that read version 1 must not overwrite version 2.
	stale := grant("gh", "")
	stale.Access = []byte("stale")
	_, err = e.s.UpdateOAuthGrant(e.ctx, stale, 1)
	wantIs(t, err, sesame.ErrConflict)
	if got := getGrant(t, e, "gh", ""); string(got.Access) != "sealed-access-2" {
		t.Fatal("a stale write changed the grant")
	}
	// Marking for re-authorization drops the tokens.
	g.Access, g.Refresh, g.ExpiresAt, g.Status, g.Reason = nil, nil, nil, sesame.GrantReauthorize, "invalid_grant"
	_, err = e.s.UpdateOAuthGrant(e.ctx, g, 2)
	must(t, err)
	if got := getGrant(t, e, "gh", ""); got.Access != nil || got.Refresh != nil || got.Status != sesame.GrantReauthorize || got.Reason != "invalid_grant" {
		t.Fatalf("after marking: %+v", got)
	}
	_, err = e.s.UpdateOAuthGrant(e.ctx, grant("gh", "nobody"), 1)
	wantIs(t, err, sesame.ErrNotFound)
}

func testGrantConcurrentUpdates(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := grant("gh", "")
			g.Access = []byte(fmt.Sprintf("writer-%d", i))
			_, err := e.s.UpdateOAuthGrant(e.ctx, g, 1)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, sesame.ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 9 {
		t.Fatalf("%d writers won and %d conflicted; want 1 and 9", wins.Load(), conflicts.Load())
	}
}

func testGrantList(t *testing.T, e *env) {
	for _, k := range [][2]string{{"gh", ""}, {"gh", "bob"}, {"gh", "amy"}, {"slack", ""}, {"slack", "zed"}} {
		must(t, e.s.CreateOAuthGrant(e.ctx, grant(k[0], k[1])))
	}
	var got []string
	afterCred, afterUser := "", ""
	for {
		page, err := e.s.ListOAuthGrants(e.ctx, "w", "", afterCred, afterUser, 2)
		must(t, err)
		for _, g := range page {
			got = append(got, g.Credential+"/"+g.EndUser)
		}
		if len(page) < 2 {
			break
		}
		afterCred, afterUser = page[len(page)-1].Credential, page[len(page)-1].EndUser
	}
	if want := "[gh/ gh/amy gh/bob slack/ slack/zed]"; fmt.Sprint(got) != want {
		t.Fatalf("paged list = %v, want %s", got, want)
	}
	only, err := e.s.ListOAuthGrants(e.ctx, "w", "slack", "", "", 10)
	must(t, err)
	if len(only) != 2 || only[0].Credential != "slack" || only[1].EndUser != "zed" || only[1].Version != 1 {
		t.Fatalf("filtered list = %+v", only)
	}
}

func testGrantDelete(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "bob")))
	must(t, e.s.DeleteOAuthGrant(e.ctx, "w", "gh", "bob"))
	wantIs(t, e.s.DeleteOAuthGrant(e.ctx, "w", "gh", "bob"), sesame.ErrNotFound)
	_, err := e.s.GetOAuthGrant(e.ctx, "w", "gh", "bob")
	wantIs(t, err, sesame.ErrNotFound)
}

func testGrantCascade(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "bob")))
	must(t, e.s.CreateOAuthState(e.ctx, state("s1", "gh", at(10))))
	must(t, e.s.DeleteCredential(e.ctx, "w", "gh", true))
	if n := e.count(t, `SELECT COUNT(*) FROM oauth_grants`) + e.count(t, `SELECT COUNT(*) FROM oauth_states`); n != 0 {
		t.Fatalf("%d grant and state rows outlived their credential", n)
	}
}

func claim(t *testing.T, e *env, owner string, version int64, now time.Time) bool {
	t.Helper()
	ok, err := e.s.ClaimOAuthLease(e.ctx, "w", "gh", "", owner, version, now, now.Add(time.Minute))
	must(t, err)
	return ok
}

func testLeaseOneOwner(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	if !claim(t, e, "a", 1, t0) {
		t.Fatal("the first claim failed")
	}
	if claim(t, e, "b", 1, at(0)) {
		t.Fatal("a second owner took a held lease")
	}
	if claim(t, e, "a", 1, at(0)) {
		t.Fatal("a held lease was claimed again")
	}
	must(t, e.s.ReleaseOAuthLease(e.ctx, "w", "gh", "", "b")) // not b's: no effect
	if claim(t, e, "b", 1, at(0)) {
		t.Fatal("another owner released a's lease")
	}
	must(t, e.s.ReleaseOAuthLease(e.ctx, "w", "gh", "", "a"))
	if !claim(t, e, "b", 1, at(0)) {
		t.Fatal("a released lease could not be claimed")
	}
}

func testLeaseConcurrent(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := e.s.ClaimOAuthLease(e.ctx, "w", "gh", "", fmt.Sprintf("owner-%d", i), 1, t0, at(1))
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent claims won, want 1", wins.Load())
	}
}

func testLeaseStaleVersion(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	_, err := e.s.UpdateOAuthGrant(e.ctx, grant("gh", ""), 1)
	must(t, err)
	if claim(t, e, "a", 1, t0) {
		t.Fatal("a process that read version 1 claimed a grant at version 2")
	}
	if !claim(t, e, "a", 2, t0) {
		t.Fatal("the current version could not be claimed")
	}
}

func testLeaseExpired(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	if !claim(t, e, "a", 1, t0) { // until t0+1m
		t.Fatal("claim failed")
	}
	if claim(t, e, "b", 1, t0.Add(59*time.Second)) {
		t.Fatal("an unexpired lease was taken")
	}
	if !claim(t, e, "b", 1, t0.Add(61*time.Second)) {
		t.Fatal("an expired lease could not be taken")
	}
}

func testLeaseWriteReleases(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "")))
	if !claim(t, e, "a", 1, t0) {
		t.Fatal("claim failed")
	}
	_, err := e.s.UpdateOAuthGrant(e.ctx, grant("gh", ""), 1)
	must(t, err)
	if !claim(t, e, "b", 2, t0) {
		t.Fatal("the token write did not release the lease")
	}
}

func state(id, cred string, expires time.Time) sesame.OAuthState {
	return sesame.OAuthState{ID: id, Workspace: "w", Credential: cred, EndUser: "bob", ReturnURL: "https://app.example/done",
		RedirectURI: "https://sesame.example/v1/oauth/callback", Verifier: []byte("sealed-verifier-" + id), CreatedAt: t0, ExpiresAt: expires}
}

func testStateSingleUse(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthState(e.ctx, state("s1", "gh", at(10))))
	wantIs(t, e.s.CreateOAuthState(e.ctx, state("s1", "gh", at(10))), sesame.ErrAlreadyExists)
	st, err := e.s.TakeOAuthState(e.ctx, "s1", at(1))
	must(t, err)
	want := state("s1", "gh", at(10))
	if st.Workspace != "w" || st.Credential != "gh" || st.EndUser != "bob" || st.ReturnURL != want.ReturnURL ||
		st.RedirectURI != want.RedirectURI || !bytes.Equal(st.Verifier, want.Verifier) || !st.ExpiresAt.Equal(at(10)) || !st.CreatedAt.Equal(t0) {
		t.Fatalf("TakeOAuthState = %+v", st)
	}
	_, err = e.s.TakeOAuthState(e.ctx, "s1", at(1))
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.TakeOAuthState(e.ctx, "never", at(1))
	wantIs(t, err, sesame.ErrNotFound)
}

func testStateConcurrentTakes(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthState(e.ctx, state("s1", "gh", at(10))))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.s.TakeOAuthState(e.ctx, "s1", at(1))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, sesame.ErrNotFound):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent takes of one state succeeded, want 1", wins.Load())
	}
}

func testStateExpired(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthState(e.ctx, state("old", "gh", at(10))))
	must(t, e.s.CreateOAuthState(e.ctx, state("older", "gh", at(5))))
	must(t, e.s.CreateOAuthState(e.ctx, state("new", "gh", at(30))))
	_, err := e.s.TakeOAuthState(e.ctx, "old", at(10))
	wantIs(t, err, sesame.ErrNotFound)
	n, err := e.s.DeleteExpiredOAuthStates(e.ctx, at(20))
	must(t, err)
	if n != 1 || e.count(t, `SELECT COUNT(*) FROM oauth_states`) != 1 {
		t.Fatalf("DeleteExpiredOAuthStates removed %d, %d rows left; want 1 and 1 (an expired take deletes its row)", n, e.count(t, `SELECT COUNT(*) FROM oauth_states`))
	}
}

func testStateNeedsCredential(t *testing.T, e *env) {
	wantIs(t, e.s.CreateOAuthState(e.ctx, state("s1", "nope", at(10))), sesame.ErrNotFound)
}

func testOAuthRewrap(t *testing.T, e *env) {
	must(t, e.s.CreateOAuthGrant(e.ctx, grant("gh", "bob")))
	noRefresh := grant("slack", "")
	noRefresh.Refresh = nil
	must(t, e.s.CreateOAuthGrant(e.ctx, noRefresh))
	must(t, e.s.CreateOAuthState(e.ctx, state("s1", "gh", at(10))))
	n, err := e.s.CountSealed(e.ctx)
	must(t, err)
	if n != 4 {
		t.Fatalf("CountSealed = %d, want 4 (two access tokens, one refresh token, one verifier)", n)
	}
	n, err = e.s.RewrapSealed(e.ctx, func(blob []byte) ([]byte, bool, error) { return append(bytes.Clone(blob), '+'), true, nil })
	must(t, err)
	if n != 4 {
		t.Fatalf("RewrapSealed = %d, want 4", n)
	}
	g := getGrant(t, e, "gh", "bob")
	st, err := e.s.TakeOAuthState(e.ctx, "s1", at(1))
	must(t, err)
	if string(g.Access) != "sealed-access-bob+" || string(g.Refresh) != "sealed-refresh-bob+" || string(st.Verifier) != "sealed-verifier-s1+" ||
		string(getGrant(t, e, "slack", "").Access) != "sealed-access-+" {
		t.Fatalf("after rewrap: access %q refresh %q verifier %q", g.Access, g.Refresh, st.Verifier)
	}
	if g.Version != 1 {
		t.Fatal("a rewrap moved the token version")
	}
}
