package store_test

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
)

var appCases = []storeCase{
	{"Certs/CreateGetList", testAppCertsCreateGetList},
	{"Certs/RevokeRevokesItsTokens", testAppCertRevoke},
	{"Tokens/ListByAppAndExpiry", testAppTokensList},
	{"Tokens/RevokeOne", testAppTokenRevokeOne},
	{"Tokens/RevokePerApp", testAppTokensRevokePerApp},
	{"Revocations/FollowedByCursor", testAppRevocationsCursor},
	{"Revocations/ConcurrentRevokersNeverSkipped", testAppRevocationsConcurrent},
	{"Tokens/Prune", testAppTokensPrune},
	{"Tokens/BatchIsAllOrNothing", testAppTokensBatch},
}

// TestAppStore runs the app-token storage cases against SQLite and PostgreSQL, each on a
// fresh database.
func TestAppStore(t *testing.T) {
	runCases(t, appCases, nil)
}

func appCert(id string, issued time.Time) sesame.AppCert {
	return sesame.AppCert{ID: id, DevPubkey: "pk-" + id, Domains: []string{"com.acme.*", "org.acme.app"},
		IssuedAt: issued, Body: []byte(`{"id":"` + id + `"}`)}
}

func appToken(id, app, cert string, issued time.Time, ttl time.Duration) sesame.AppToken {
	mode := sesame.AppModeTrial
	if cert != "" {
		mode = sesame.AppModeSigned
	}
	return sesame.AppToken{ID: id, AppID: app, Version: "1.0", Mode: mode, CertID: cert, Source: "192.0.2.1",
		IssuedAt: issued, ExpiresAt: issued.Add(ttl)}
}

func tokenIDs(ts []sesame.AppToken) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func revokedIDs(rs []sesame.AppTokenRevocation) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.TokenID
	}
	return out
}

func testAppCertsCreateGetList(t *testing.T, e *env) {
	exp := at(600)
	c1 := appCert("cert_1", at(0))
	c1.ExpiresAt = &exp
	must(t, e.s.CreateAppCert(e.ctx, c1))
	must(t, e.s.CreateAppCert(e.ctx, appCert("cert_2", at(1))))
	must(t, e.s.CreateAppCert(e.ctx, appCert("cert_3", at(2))))
	wantIs(t, e.s.CreateAppCert(e.ctx, appCert("cert_2", at(3))), sesame.ErrAlreadyExists)

	got, err := e.s.GetAppCert(e.ctx, "cert_1")
	must(t, err)
	if !reflect.DeepEqual(got, c1) {
		t.Fatalf("got %+v\nwant %+v", got, c1)
	}
	_, err = e.s.GetAppCert(e.ctx, "cert_9")
	wantIs(t, err, sesame.ErrNotFound)

	page, err := e.s.ListAppCerts(e.ctx, "", 2)
	must(t, err)
	if len(page) != 2 || page[0].ID != "cert_1" || page[1].ID != "cert_2" {
		t.Fatalf("first page: %+v", page)
	}
	page, err = e.s.ListAppCerts(e.ctx, "cert_2", 2)
	must(t, err)
	if len(page) != 1 || page[0].ID != "cert_3" || page[0].ExpiresAt != nil || page[0].RevokedAt != nil {
		t.Fatalf("second page: %+v", page)
	}
}

func testAppCertRevoke(t *testing.T, e *env) {
	now := at(100)
	must(t, e.s.CreateAppCert(e.ctx, appCert("cert_a", at(0))))
	must(t, e.s.CreateAppCert(e.ctx, appCert("cert_b", at(0))))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_1", "com.acme.one", "cert_a", at(90), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_2", "com.acme.two", "cert_a", at(95), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_3", "com.acme.old", "cert_a", at(0), time.Minute)})) // expired
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_4", "com.acme.one", "cert_b", at(90), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_5", "com.example.x", "", at(90), time.Hour)}))

	n, err := e.s.RevokeAppCert(e.ctx, "cert_a", now)
	must(t, err)
	if n != 2 {
		t.Fatalf("revoked %d tokens, want 2", n)
	}
	c, err := e.s.GetAppCert(e.ctx, "cert_a")
	must(t, err)
	if c.RevokedAt == nil || !c.RevokedAt.Equal(now) {
		t.Fatalf("revoked_at %v, want %v", c.RevokedAt, now)
	}
	revs, err := e.s.AppTokenRevocations(e.ctx, 0, "", now, 100)
	must(t, err)
	if got := revokedIDs(revs); !reflect.DeepEqual(got, []string{"tok_1", "tok_2"}) {
		t.Fatalf("revocations %v", got)
	}

	// Again: nothing changes, not an error; the first revocation time stays.
	n, err = e.s.RevokeAppCert(e.ctx, "cert_a", at(200))
	must(t, err)
	c, _ = e.s.GetAppCert(e.ctx, "cert_a")
	if n != 0 || !c.RevokedAt.Equal(now) {
		t.Fatalf("second revoke: n=%d revoked_at=%v", n, c.RevokedAt)
	}
	_, err = e.s.RevokeAppCert(e.ctx, "cert_missing", now)
	wantIs(t, err, sesame.ErrNotFound)
	if b, _ := e.s.GetAppCert(e.ctx, "cert_b"); b.RevokedAt != nil {
		t.Fatal("the other certificate was revoked")
	}
}

func testAppTokensList(t *testing.T, e *env) {
	now := at(100)
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_1", "com.acme.a", "", at(90), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_2", "com.acme.b", "", at(91), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_3", "com.acme.a", "", at(92), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_4", "com.acme.a", "", at(0), time.Minute)})) // expired
	wantIs(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_1", "com.acme.z", "", at(90), time.Hour)}), sesame.ErrAlreadyExists)

	all, err := e.s.ListAppTokens(e.ctx, "", "", 10, now)
	must(t, err)
	if got := tokenIDs(all); !reflect.DeepEqual(got, []string{"tok_1", "tok_2", "tok_3"}) {
		t.Fatalf("all: %v", got)
	}
	want := appToken("tok_1", "com.acme.a", "", at(90), time.Hour)
	if !reflect.DeepEqual(all[0], want) {
		t.Fatalf("got %+v\nwant %+v", all[0], want)
	}
	a, err := e.s.ListAppTokens(e.ctx, "com.acme.a", "", 1, now)
	must(t, err)
	if got := tokenIDs(a); !reflect.DeepEqual(got, []string{"tok_1"}) {
		t.Fatalf("app page 1: %v", got)
	}
	a, err = e.s.ListAppTokens(e.ctx, "com.acme.a", "tok_1", 10, now)
	must(t, err)
	if got := tokenIDs(a); !reflect.DeepEqual(got, []string{"tok_3"}) {
		t.Fatalf("app page 2: %v", got)
	}
	none, err := e.s.ListAppTokens(e.ctx, "com.acme.none", "", 10, now)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("unknown app: %v", tokenIDs(none))
	}
}

func testAppTokenRevokeOne(t *testing.T, e *env) {
	now := at(100)
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_1", "com.acme.a", "", at(90), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_2", "com.acme.a", "", at(90), time.Hour)}))
	must(t, e.s.RevokeAppToken(e.ctx, "tok_1", now))
	wantIs(t, e.s.RevokeAppToken(e.ctx, "tok_missing", now), sesame.ErrNotFound)
	must(t, e.s.RevokeAppToken(e.ctx, "tok_1", at(101))) // again: no change

	ts, err := e.s.ListAppTokens(e.ctx, "", "", 10, now)
	must(t, err)
	if ts[0].RevokedAt == nil || !ts[0].RevokedAt.Equal(now) || ts[1].RevokedAt != nil {
		t.Fatalf("revoked_at: %v, %v", ts[0].RevokedAt, ts[1].RevokedAt)
	}
	revs, err := e.s.AppTokenRevocations(e.ctx, 0, "", now, 10)
	must(t, err)
	if len(revs) != 1 || revs[0].TokenID != "tok_1" || !revs[0].ExpiresAt.Equal(at(90).Add(time.Hour)) {
		t.Fatalf("revocations: %+v", revs)
	}
}

func testAppTokensRevokePerApp(t *testing.T, e *env) {
	now := at(100)
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_1", "com.acme.a", "", at(90), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_2", "com.acme.a", "", at(91), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_3", "com.acme.b", "", at(92), time.Hour)}))
	must(t, e.s.RevokeAppToken(e.ctx, "tok_2", at(95)))
	n, err := e.s.RevokeAppTokensOf(e.ctx, "com.acme.a", now)
	must(t, err)
	if n != 1 {
		t.Fatalf("revoked %d, want 1 (tok_2 was already revoked)", n)
	}
	revs, err := e.s.AppTokenRevocations(e.ctx, 0, "", now, 10)
	must(t, err)
	if got := revokedIDs(revs); !reflect.DeepEqual(got, []string{"tok_2", "tok_1"}) {
		t.Fatalf("revocations in order: %v", got)
	}
	if revs[0].Seq >= revs[1].Seq {
		t.Fatalf("sequence numbers not increasing: %+v", revs)
	}
	n, err = e.s.RevokeAppTokensOf(e.ctx, "com.acme.none", now)
	must(t, err)
	if n != 0 {
		t.Fatalf("unknown app: %d", n)
	}
	// Each per-app revocation is also kept for the app (tokens without a record: trial
	// tokens), one row per app, under the revocation's sequence number.
	apps, err := e.s.AppRevocations(e.ctx, 0)
	must(t, err)
	if len(apps) != 2 || apps[0].AppID != "com.acme.a" || apps[1].AppID != "com.acme.none" ||
		!apps[0].Before.Equal(now) || apps[0].Seq != revs[1].Seq || apps[1].Seq <= apps[0].Seq {
		t.Fatalf("app revocations: %+v", apps)
	}
	_, err = e.s.RevokeAppTokensOf(e.ctx, "com.acme.a", at(200))
	must(t, err)
	later, err := e.s.AppRevocations(e.ctx, apps[1].Seq)
	must(t, err)
	if len(later) != 1 || later[0].AppID != "com.acme.a" || !later[0].Before.Equal(at(200)) {
		t.Fatalf("a second revocation of the app: %+v", later)
	}
	if all, _ := e.s.AppRevocations(e.ctx, 0); len(all) != 2 {
		t.Fatalf("one row per app: %+v", all)
	}
}

func testAppRevocationsCursor(t *testing.T, e *env) {
	now := at(100)
	for i := range 5 {
		must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken(fmt.Sprintf("tok_%d", i), "com.acme.a", "", at(90), time.Hour)}))
	}
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_x", "com.acme.b", "", at(90), time.Hour)}))
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_old", "com.acme.b", "", at(0), 95*time.Minute)}))
	must(t, e.s.RevokeAppToken(e.ctx, "tok_x", at(91)))
	must(t, e.s.RevokeAppToken(e.ctx, "tok_old", at(92)))
	_, err := e.s.RevokeAppTokensOf(e.ctx, "com.acme.a", at(93)) // five under one number
	must(t, err)

	// Follow in pages of two, at a time when tok_old has expired.
	var seq int64
	var last string
	var seen []string
	for range 10 {
		page, err := e.s.AppTokenRevocations(e.ctx, seq, last, now, 2)
		must(t, err)
		if len(page) == 0 {
			break
		}
		seen = append(seen, revokedIDs(page)...)
		seq, last = page[len(page)-1].Seq, page[len(page)-1].TokenID
	}
	want := []string{"tok_x", "tok_0", "tok_1", "tok_2", "tok_3", "tok_4"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("followed %v, want %v", seen, want)
	}
	// A new revocation comes after the cursor.
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_y", "com.acme.c", "", at(99), time.Hour)}))
	must(t, e.s.RevokeAppToken(e.ctx, "tok_y", now))
	page, err := e.s.AppTokenRevocations(e.ctx, seq, last, now, 10)
	must(t, err)
	if got := revokedIDs(page); !reflect.DeepEqual(got, []string{"tok_y"}) {
		t.Fatalf("after the cursor: %v", got)
	}
}

// Revocations made concurrently through two connections are each seen by a reader that
// follows the cursor while they happen: none commits behind a sequence number the reader
// has already passed.
func testAppRevocationsConcurrent(t *testing.T, e *env) {
	now := at(100)
	other := e.reopen(t)
	const writers, each = 4, 15
	var all []string
	for w := range writers {
		for i := range each {
			id := fmt.Sprintf("tok_%d_%02d", w, i)
			all = append(all, id)
			must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken(id, fmt.Sprintf("com.acme.w%d", w), "", at(90), time.Hour)}))
		}
	}
	sort.Strings(all)

	seen := map[string]bool{}
	var seq int64
	var last string
	follow := func() {
		page, err := e.s.AppTokenRevocations(e.ctx, seq, last, now, 1000)
		must(t, err)
		for _, r := range page {
			seen[r.TokenID] = true
		}
		if len(page) > 0 {
			seq, last = page[len(page)-1].Seq, page[len(page)-1].TokenID
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		st := e.s
		if w%2 == 1 {
			st = other
		}
		wg.Add(1)
		go func(st *store.Store) {
			defer wg.Done()
			for i := range each {
				if err := st.RevokeAppToken(e.ctx, fmt.Sprintf("tok_%d_%02d", w, i), now); err != nil {
					errs <- err
				}
			}
		}(st)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for following := true; following; {
		select {
		case <-done:
			following = false
		default:
		}
		follow()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	follow()
	var got []string
	for id := range seen {
		got = append(got, id)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, all) {
		t.Fatalf("the follower saw %d of %d revocations", len(got), len(all))
	}
}

func testAppTokensPrune(t *testing.T, e *env) {
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_1", "com.acme.a", "", at(0), time.Minute)})) // expires at(1)
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_2", "com.acme.a", "", at(0), time.Hour)}))   // expires at(60)
	must(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{appToken("tok_3", "com.acme.a", "", at(0), 2*time.Hour)})) // expires at(120)
	must(t, e.s.RevokeAppToken(e.ctx, "tok_1", at(0)))
	n, err := e.s.PruneAppTokens(e.ctx, at(61))
	must(t, err)
	if n != 2 {
		t.Fatalf("pruned %d, want 2", n)
	}
	left, err := e.s.ListAppTokens(e.ctx, "", "", 10, at(0))
	must(t, err)
	if got := tokenIDs(left); !reflect.DeepEqual(got, []string{"tok_3"}) {
		t.Fatalf("left %v", got)
	}
}

func testAppTokensBatch(t *testing.T, e *env) {
	now := at(100)
	batch := []sesame.AppToken{
		appToken("tok_1", "com.acme.a", "", at(90), time.Hour),
		appToken("tok_2", "com.acme.b", "cert_x", at(90), time.Hour),
		appToken("tok_3", "com.acme.c", "", at(90), time.Hour),
	}
	must(t, e.s.CreateAppTokens(e.ctx, batch))
	ts, err := e.s.ListAppTokens(e.ctx, "", "", 10, now)
	must(t, err)
	if !reflect.DeepEqual(ts, batch) {
		t.Fatalf("got %+v\nwant %+v", ts, batch)
	}
	// A batch with one bad record writes none of them.
	wantIs(t, e.s.CreateAppTokens(e.ctx, []sesame.AppToken{
		appToken("tok_4", "com.acme.d", "", at(90), time.Hour),
		appToken("tok_1", "com.acme.d", "", at(90), time.Hour),
	}), sesame.ErrAlreadyExists)
	if n := e.count(t, `SELECT COUNT(*) FROM app_tokens WHERE id = 'tok_4'`); n != 0 {
		t.Fatal("a failed batch left a record behind")
	}
}
