package main

import (
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

// TestValidKeyIsNeverRefusedByTheFailureLimiter: many callers share one address behind a
// NAT or a load balancer. One of them sending bad keys gets 429 once over the limit, but a
// valid key from the same address keeps working.
func TestValidKeyIsNeverRefusedByTheFailureLimiter(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--auth-failures-per-minute", "20")
	_, key := newCaller(t, s, "natted", "default")
	bad := withKey("sesame_0000000000000000000000000000000000000000")
	for range 25 {
		s.doWith("GET", "/v1/me", "", bad)
	}
	r := s.doWith("GET", "/v1/me", "", bad)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("bad key after 25 failures: %d %v", r.Status, r.Header)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 200)
	mustStatus(t, s.do("GET", "/v1/me", ""), 200)
	// App manifests: a refused one counts, a good one from the same address still gets a token.
	tokenFrom(t, s.appAuth(manifestJSON("com.example.natted", "N", "1.0.0")))
	if r := s.appAuth(manifestJSON("com.acme.unsigned", "N", "1.0.0")); r.Status != 429 {
		t.Fatalf("refused manifest from a blocked source: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(s.Stderr.String(), `msg="auth blocked"`) {
		t.Fatal("no auth blocked event")
	}
}

// TestDeletedWorkspaceTakesItsGrantsFromTheCache: a developer of a deleted workspace keeps
// nothing in a new workspace of the same name, although its decisions were cached.
func TestDeletedWorkspaceTakesItsGrantsFromTheCache(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
	dev := newDeveloper(t, s, "olddev", "acme")
	mustStatus(t, s.doWith("GET", "/v1/workspaces/acme/credentials", "", withKey(dev)), 200) // cached
	mustStatus(t, s.do("DELETE", "/v1/workspaces/acme?force=true", ""), 204)
	mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
	wantError(t, s.doWith("GET", "/v1/workspaces/acme/credentials", "", withKey(dev)), 403, "missing_privilege")
	wantError(t, s.doWith("GET", "/v1/workspaces/acme", "", withKey(dev)), 403, "missing_privilege")
}

// TestDeletedWorkspaceAcrossReplicasPostgres: the same on two replicas of one PostgreSQL
// database: deleted on A, created again on B, the old developer has nothing on either. The
// wait is far below the cache's maximum age (30 s), so only the notification can pass it.
func TestDeletedWorkspaceAcrossReplicasPostgres(t *testing.T) {
	pg := testpg.URL(t)
	k, _ := crypt.GenerateMasterKey()
	env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
	a := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
	b := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
	b.AdminKey = a.AdminKey
	mustStatus(t, a.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
	dev := newDeveloper(t, a, "olddev", "acme")
	for _, s := range []*testServer{a, b} {
		mustStatus(t, s.doWith("GET", "/v1/workspaces/acme/credentials", "", withKey(dev)), 200) // cached on both
	}
	mustStatus(t, a.do("DELETE", "/v1/workspaces/acme?force=true", ""), 204)
	mustStatus(t, b.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
	refused := func(s *testServer, key string) {
		t.Helper()
		start := time.Now()
		for {
			r := s.doWith("GET", "/v1/workspaces/acme/credentials", "", withKey(key))
			if r.Status == 403 {
				return
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("the old developer still has rights in the new workspace: %d %s", r.Status, r.Body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	refused(a, dev)
	refused(b, dev)

	// Both changes on A: only A's notification can clear B's cache.
	dev2 := newDeveloper(t, a, "olddev2", "acme")
	for start := time.Now(); b.doWith("GET", "/v1/workspaces/acme/credentials", "", withKey(dev2)).Status != 200; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			t.Fatal("the grant made on A does not reach B")
		}
	}
	mustStatus(t, a.do("DELETE", "/v1/workspaces/acme?force=true", ""), 204)
	mustStatus(t, a.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
	refused(b, dev2)
}

// anonymousCall calls a function with no credential at all.
func anonymousCall(t *testing.T, s *testServer, name, body string) response {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/default/functions/"+name+"/call", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestAnonymousCallerCannotChooseTheEndUser: the end user of a call lands as "sub" in a
// signed JWT (and picks an OAuth2 grant). An anonymous caller may not name one unless the
// function says it takes the end user from its caller (allowAnonymousEndUser).
func TestAnonymousCallerCannotChooseTheEndUser(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	secret := "an-hmac-secret-of-at-least-32-bytes!!"
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/svc.jwt", jwtCredential(t, map[string]any{
		"alg": "HS256", "secret": secret, "payload": map[string]any{"iss": "svc", "sub": "{{user}}"},
	})), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/api?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"svc.jwt","allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "pub", "connection: api\nmethod: GET\npath: /me\nallowAnonymous: true\n"), 201)

	n := up.count()
	wantError(t, anonymousCall(t, s, "pub", `{"user":"victim@example.com"}`), 403, "end_user_not_allowed")
	if up.count() != n {
		t.Fatal("the refused call reached the upstream")
	}
	sub := func() any {
		t.Helper()
		tok := strings.TrimPrefix(up.last(t).Header.Get("Authorization"), "Bearer ")
		claims, _ := verifyJWT(t, tok, []byte(secret), "HS256")
		return claims["sub"]
	}
	mustStatus(t, putYAML(s, "default", "pub-user", "connection: api\nmethod: GET\npath: /me\nallowAnonymous: true\nallowAnonymousEndUser: true\n"), 201)
	wantError(t, putYAML(s, "default", "bad", "connection: api\nmethod: GET\nallowAnonymousEndUser: true\n"), 400, "invalid_field")
	// The function that opts in takes the end user from its anonymous caller.
	mustStatus(t, anonymousCall(t, s, "pub-user", `{"user":"self@example.com"}`), 200)
	if got := sub(); got != "self@example.com" {
		t.Fatalf("sub = %v", got)
	}
	// An authenticated caller names end users as before.
	mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/pub/call", `{"user":"bob"}`), 200)
	if got := sub(); got != "bob" {
		t.Fatalf("sub = %v", got)
	}
}

// TestTrialAppsNeedGrantsThatNameThem: a grant or allowedApps pattern meant for signed apps
// ("com.*") does not reach unsigned trial apps (com.example.*); one that names com.example
// does. A trial manifest with a signature that does not verify is refused.
func TestTrialAppsNeedGrantsThatNameThem(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "items", "connection: up\nmethod: GET\npath: /items\n"), 201)
	mustStatus(t, putYAML(s, "default", "com-only", "connection: up\nmethod: GET\npath: /items\nallowedApps: [com.*]\n"), 201)
	mustStatus(t, s.do("POST", "/v1/roles", `{"name":"app-caller","privileges":["run_functions"]}`), 201)
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"app-caller","app":"com.*","workspace":"default"}`), 201)

	trial := tokenFrom(t, s.appAuth(manifestJSON("com.example.trial", "Trial", "1.0.0")))
	wantError(t, s.withToken("POST", "/v1/workspaces/default/functions/items/call", "", trial), 403, "missing_privilege")
	// A signed app under com.* has the grant.
	signed, _ := signedManifest(t, s, t.TempDir(), "com.acme.*", "com.acme.app", "Acme", "1.0")
	acme := tokenFrom(t, s.appAuth(signed))
	mustStatus(t, s.withToken("POST", "/v1/workspaces/default/functions/items/call", "", acme), 200)
	mustStatus(t, s.withToken("POST", "/v1/workspaces/default/functions/com-only/call", "", acme), 200)

	// A grant that names com.example reaches it; allowedApps [com.*] still does not.
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"app-caller","app":"com.example.*","workspace":"default"}`), 201)
	mustStatus(t, s.withToken("POST", "/v1/workspaces/default/functions/items/call", "", trial), 200)
	wantError(t, s.withToken("POST", "/v1/workspaces/default/functions/com-only/call", "", trial), 403, "forbidden")

	// Trial manifests whose signature does not verify are refused, as the Actyx node does.
	wantError(t, s.appAuth(resign(t, signed, map[string]string{"appId": "com.example.copied"})), 401, "ERR_APP_UNAUTHORIZED")
	wantError(t, s.appAuth(resign(t, signed, map[string]string{"appId": "com.example.copied", "signature": "not base64!"})), 400, "ERR_MANIFEST_INVALID")
	// One signed under a certificate for com.example.* is a signed app.
	good, _ := signedManifest(t, s, t.TempDir(), "com.example.*", "com.example.real", "Real", "1.0")
	tok := tokenFrom(t, s.appAuth(good))
	if me := mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 200).json(t); me["app_id"] != "com.example.real" {
		t.Fatalf("/v1/me: %v", me)
	}
}

// trickle opens a raw connection, sends the headers of an anonymous POST /api/v2/auth
// announcing a body of 10,000 bytes, and then sends one byte every 50 ms until the server
// closes the connection or stop is closed. It returns a channel closed when the connection
// is gone from the server's side.
func trickle(t *testing.T, s *testServer, stop <-chan struct{}) <-chan struct{} {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/v2/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, conn) // until the server closes it (or the test does)
	}()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				return
			case <-stop:
				conn.Close()
				return
			case <-tick.C:
				_, _ = conn.Write([]byte(" "))
			}
		}
	}()
	return closed
}

// TestSlowBodyIsCutOff: an unauthenticated client trickling a body cannot keep its
// connection (and a file descriptor and goroutine) beyond the body deadline by sending a
// byte now and then.
func TestSlowBodyIsCutOff(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--anonymous-body-timeout", "300ms")
	stop := make(chan struct{})
	defer close(stop)
	closed := trickle(t, s, stop)
	select {
	case <-closed:
	case <-time.After(15 * time.Second): // generous: the deadline is 300 ms
		t.Fatal("a trickling anonymous client kept its connection")
	}
	// Authenticated callers still stream bodies at their own pace (the proxy's uploads):
	// a slow authenticated upload longer than the anonymous deadline goes through.
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL)), 201)
	pr, pw := io.Pipe()
	go func() {
		for range 10 {
			pw.Write([]byte("0123456789"))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/default/proxy/up/upload", pr)
	req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(up.last(t).Body) != 100 {
		t.Fatalf("slow authenticated upload: %d, upstream got %d bytes", resp.StatusCode, len(up.last(t).Body))
	}
	// The deadline is on the body only: an anonymous call whose body arrived in time is not
	// cut off while a slow upstream answers.
	mustStatus(t, putYAML(s, "default", "slow", "connection: up\nmethod: GET\npath: /slow\nallowAnonymous: true\nparameters:\n  q: {location: query, type: string}\n"), 201)
	up.setHandler(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		fmt.Fprint(w, `{"ok":true}`)
	})
	mustStatus(t, anonymousCall(t, s, "slow", `{"parameters":{"q":"x"}}`), 200)
	mustStatus(t, anonymousCall(t, s, "slow", ``), 200)
}

// TestAnonymousRequestsAreCapped: when --max-anonymous-requests unauthenticated requests
// are in progress, the next gets 503 with Retry-After; authenticated callers are not
// counted, and the slots come back.
func TestAnonymousRequestsAreCapped(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--max-anonymous-requests", "2", "--anonymous-body-timeout", "1m", "--trial-tokens-per-minute", "100000")
	stop := make(chan struct{})
	closedA, closedB := trickle(t, s, stop), trickle(t, s, stop)
	var r response
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		r = s.appAuth(manifestJSON("com.example.capped", "C", "1"))
		if r.Status == 503 || time.Since(start) > 30*time.Second {
			break
		}
	}
	wantError(t, r, 503, "unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	mustStatus(t, s.do("GET", "/v1/me", ""), 200)
	mustStatus(t, s.doWith("GET", "/healthz", "", http.Header{}), 200)
	close(stop)
	<-closedA
	<-closedB
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		r = s.appAuth(manifestJSON("com.example.capped", "C", "1"))
		if r.Status == 200 || time.Since(start) > 30*time.Second {
			break
		}
	}
	tokenFrom(t, r)
}

// TestTrialIssuanceIsRateLimitedPerSource: anonymous trial token requests are limited per
// source address; signed apps from the same address are not.
func TestTrialIssuanceIsRateLimitedPerSource(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--trial-tokens-per-minute", "5")
	for range 5 {
		tokenFrom(t, s.appAuth(manifestJSON("com.example.flood", "F", "1")))
	}
	r := s.appAuth(manifestJSON("com.example.other", "F", "1"))
	wantError(t, r, 429, "rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	signed, _ := signedManifest(t, s, t.TempDir(), "com.acme.*", "com.acme.app", "Acme", "1.0")
	tokenFrom(t, s.appAuth(signed))
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// exerciseStatelessTrialTokens: issuing trial tokens adds no row to the store; revoking the
// app refuses every token it was issued before (on every replica), and it can ask again.
func exerciseStatelessTrialTokens(t *testing.T, a, b *testServer, db *sql.DB) {
	before := countRows(t, db, "app_tokens")
	var tokens []string
	for range 50 {
		tokens = append(tokens, tokenFrom(t, a.appAuth(manifestJSON("com.example.stateless", "S", "1"))))
	}
	if n := countRows(t, db, "app_tokens"); n != before {
		t.Fatalf("50 trial tokens added %d rows", n-before)
	}
	for _, s := range []*testServer{a, b} {
		mustStatus(t, s.withToken("GET", "/v1/me", "", tokens[0]), 200)
	}
	// Signed tokens keep their record (listing, revocation by ID).
	signed, _ := signedManifest(t, a, t.TempDir(), "com.acme.*", "com.acme.app", "Acme", "1.0")
	tokenFrom(t, a.appAuth(signed))
	if n := countRows(t, db, "app_tokens"); n != before+1 {
		t.Fatalf("a signed token added %d rows", n-before)
	}

	mustStatus(t, a.do("DELETE", "/v1/apps/tokens?app=com.example.stateless", ""), 200)
	for _, s := range []*testServer{a, b} {
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			r := s.withToken("GET", "/v1/me", "", tokens[len(tokens)-1])
			if r.Status == 401 {
				wantError(t, r, 401, "ERR_TOKEN_UNAUTHORIZED")
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("a revoked trial token still works: %d %s", r.Status, r.Body)
			}
		}
	}
	fresh := tokenFrom(t, b.appAuth(manifestJSON("com.example.stateless", "S", "1")))
	for _, s := range []*testServer{a, b} {
		mustStatus(t, s.withToken("GET", "/v1/me", "", fresh), 200)
	}
	// Another app's tokens are untouched.
	other := tokenFrom(t, a.appAuth(manifestJSON("com.example.unrelated", "U", "1")))
	mustStatus(t, b.withToken("GET", "/v1/me", "", other), 200)
}

func TestTrialTokensAddNoRowsSQLite(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data, "--trial-tokens-per-minute", "1000")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "sesame.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exerciseStatelessTrialTokens(t, s, s, db)
}

func TestTrialTokensAddNoRowsPostgres(t *testing.T) {
	pg := testpg.URL(t)
	k, _ := crypt.GenerateMasterKey()
	env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
	a := startServer(t, env, "--data", t.TempDir(), "--postgres", pg, "--trial-tokens-per-minute", "1000")
	b := startServer(t, env, "--data", t.TempDir(), "--postgres", pg, "--trial-tokens-per-minute", "1000")
	b.AdminKey = a.AdminKey
	db, err := sql.Open("pgx", pg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exerciseStatelessTrialTokens(t, a, b, db)
}
