package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/testpg"
)

const oauthClientSecret = "oauth-client-secret-CANARY-93c1"

// oauthSetup is a Sesame server, a real OAuth2 authorization server (go-oauth2) and a
// connection "api" to the provider's resource endpoint with credential "gh".
type oauthSetup struct {
	s    *testServer
	p    *oauthtest.Provider
	seen *bytes.Buffer // every response the tests got, but the local-call token's
	mu   sync.Mutex
}

func newOAuthSetup(t *testing.T, o oauthtest.Options, env map[string]string, args ...string) *oauthSetup {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	env["SESAME_ALLOW_PRIVATE_TOKEN_URLS"] = "true"
	p := oauthtest.New(t, o)
	args = append([]string{"--data", t.TempDir(), "--log-level", "debug", "--oauth-return-urls", "https://app.example/done"}, args...)
	s := startServer(t, env, args...)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	p.AddClient("sesame-app", oauthClientSecret, s.URL+"/")
	return &oauthSetup{s: s, p: p, seen: &bytes.Buffer{}}
}

func (o *oauthSetup) record(r response) response {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.seen, "%v\n%s\n", r.Header, r.Body)
	return r
}

func (o *oauthSetup) do(t *testing.T, method, path, body string, want int) response {
	t.Helper()
	return mustStatus(t, o.record(o.s.do(method, path, body)), want)
}

// createCredentialAndConnection stores credential gh (grant) and connection api.
func (o *oauthSetup) createCredentialAndConnection(t *testing.T, grant, authFailure string) {
	t.Helper()
	cred := fmt.Sprintf(`{"type":"oauth2","fields":{"grant":%q,"client_id":"sesame-app","client_secret":%q,
		"auth_url":%q,"token_url":%q,"revocation_url":%q,"scopes":["read"]}}`,
		grant, oauthClientSecret, o.p.AuthURL(), o.p.TokenURL(), o.p.RevocationURL())
	o.do(t, "PUT", "/v1/workspaces/default/credentials/gh", cred, 201)
	conn := fmt.Sprintf(`{"base_uri":%q,"credential":"gh","allow_private_networks":true%s}`, o.p.ResourceURL(), authFailure)
	o.do(t, "PUT", "/v1/workspaces/default/connections/api?test=false", conn, 201)
}

// authorize runs the browser's part: Sesame's authorize redirect, the provider's
// consent, and the anonymous callback. It returns the callback's response.
func (o *oauthSetup) authorize(t *testing.T, user, returnURL string) response {
	t.Helper()
	q := url.Values{"credential": {"gh"}, "user": {user}, "return_url": {returnURL}}
	r := o.do(t, "GET", "/v1/oauth/authorize?"+q.Encode(), "", http.StatusFound)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, o.p.AuthURL()+"?") {
		t.Fatalf("authorize redirected to %q", loc)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(cb, o.s.URL+"/v1/oauth/callback?") {
		t.Fatalf("the provider answered %d, Location %q", resp.StatusCode, cb)
	}
	// The browser carries no Sesame key: the callback is anonymous.
	resp, err = browser.Get(cb)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return o.record(response{Status: resp.StatusCode, Header: resp.Header, Body: body})
}

// proxyMany sends n concurrent proxy calls to api/me for end user user and returns how
// many got 200.
func (o *oauthSetup) proxyMany(s *testServer, n int, user string, start <-chan struct{}) (ok int, errs []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if start != nil {
				<-start
			}
			req, _ := http.NewRequest("GET", s.URL+"/v1/workspaces/default/proxy/api/me", nil)
			req.Header.Set("Authorization", "Bearer "+s.AdminKey)
			req.Header.Set("X-Sesame-User", user)
			resp, err := http.DefaultClient.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			o.record(response{Status: resp.StatusCode, Header: resp.Header, Body: body})
			if resp.StatusCode == 200 {
				ok++
			} else if len(errs) < 3 {
				errs = append(errs, fmt.Sprintf("%d %s", resp.StatusCode, body))
			}
		}()
	}
	wg.Wait()
	return ok, errs
}

// assertNoLeaks checks that no access or refresh token, code, verifier or the client
// secret appears in any recorded response or in the server's log.
func (o *oauthSetup) assertNoLeaks(t *testing.T, servers ...*testServer) {
	t.Helper()
	// The audit trail too, as the API shows it.
	for _, s := range append(servers, o.s) {
		o.record(s.do("GET", "/v1/audit?limit=1000", ""))
	}
	o.mu.Lock()
	seen := o.seen.String()
	o.mu.Unlock()
	issued := append(o.p.Issued(), "client_secret:"+oauthClientSecret)
	if len(issued) < 4 {
		t.Fatalf("the provider issued only %d secrets; the leak check would prove nothing", len(issued))
	}
	for _, s := range append(servers, o.s) {
		for _, item := range issued {
			kind, v, _ := strings.Cut(item, ":")
			for where, text := range map[string]string{"a response": seen, "the log": s.Stderr.String()} {
				if strings.Contains(text, v) || strings.Contains(text, url.QueryEscape(v)) {
					t.Errorf("%s holds a %s", where, kind)
				}
			}
		}
	}
}

func TestOAuthAuthorizationCodeEndToEnd(t *testing.T) {
	// Tokens from the code exchange have already expired; refreshed ones last an hour.
	o := newOAuthSetup(t, oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}, nil)
	o.createCredentialAndConnection(t, "authorization_code", "")

	// Before any authorization, a call says where to authorize.
	r := o.do(t, "GET", "/v1/workspaces/default/connections/api/token?user=bob", "", http.StatusConflict)
	var e struct {
		Code    string            `json:"code"`
		Details map[string]string `json:"details"`
	}
	json.Unmarshal(r.Body, &e)
	if e.Code != "reauthorization_required" || e.Details["authorize_url"] != o.s.URL+"/v1/oauth/authorize?credential=gh&user=bob&workspace=default" {
		t.Fatalf("before authorization: %s", r.Body)
	}

	// A return URL that is not allowed is refused before anything is stored.
	o.do(t, "GET", "/v1/oauth/authorize?credential=gh&return_url="+url.QueryEscape("https://evil.example/"), "", http.StatusBadRequest)
	// With redirect=false the URL comes as JSON.
	r = o.do(t, "GET", "/v1/oauth/authorize?credential=gh&redirect=false", "", http.StatusOK)
	if !strings.Contains(string(r.Body), `"authorize_url":"`+o.p.AuthURL()) {
		t.Fatalf("authorize JSON: %s", r.Body)
	}

	cb := o.authorize(t, "bob", "https://app.example/done")
	if cb.Status != http.StatusFound || cb.Header.Get("Location") != "https://app.example/done?status=authorized" ||
		cb.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("callback: %d Location %q", cb.Status, cb.Header.Get("Location"))
	}

	t.Run("200 concurrent calls on an expired token refresh once", func(t *testing.T) {
		ok, errs := o.proxyMany(o.s, 200, "bob", nil)
		if ok != 200 || o.p.Refreshes() != 1 {
			t.Fatalf("%d of 200 calls succeeded (%v), %d refreshes at the provider; want 200 and 1", ok, errs, o.p.Refreshes())
		}
	})
	t.Run("another end user has no grant", func(t *testing.T) {
		req := http.Header{"X-Sesame-User": {"carol"}}
		r := o.record(o.s.doWith("GET", "/v1/workspaces/default/proxy/api/me", "", req))
		mustStatus(t, r, http.StatusConflict)
	})
	t.Run("functions select the grant with user", func(t *testing.T) {
		mustStatus(t, putYAML(o.s, "default", "me", "connection: api\nmethod: GET\npath: /me\n"), 201)
		r := o.do(t, "POST", "/v1/workspaces/default/functions/me/call", `{"user":"bob"}`, 200)
		if !strings.Contains(string(r.Body), `"client":"sesame-app"`) {
			t.Fatalf("function call: %s", r.Body)
		}
		o.do(t, "POST", "/v1/workspaces/default/functions/me/call", `{"user":"bad user!"}`, http.StatusBadRequest)
	})
	t.Run("local call token", func(t *testing.T) {
		r := mustStatus(t, o.s.do("GET", "/v1/workspaces/default/connections/api/token?user=bob", ""), 200)
		var tok map[string]any
		json.Unmarshal(r.Body, &tok)
		if tok["access_token"] == "" || tok["token_type"] != "Bearer" || tok["expires_at"] == nil || len(tok) != 4 {
			t.Fatalf("token response has %v", keys(tok))
		}
		req, _ := http.NewRequest("GET", o.p.ResourceURL()+"/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the local-call token does not work at the provider: %v", err)
		}
		resp.Body.Close()
		// Neither refresh token nor client secret is in it.
		for _, item := range o.p.Issued() {
			if kind, v, _ := strings.Cut(item, ":"); kind == "refresh" && strings.Contains(string(r.Body), v) {
				t.Fatal("the token response holds a refresh token")
			}
		}
		if strings.Contains(string(r.Body), oauthClientSecret) {
			t.Fatal("the token response holds the client secret")
		}
	})
	t.Run("a rejected token is refreshed once and the call retried once", func(t *testing.T) {
		o.p.RevokeAccessTokens()
		refreshes, calls := o.p.Refreshes(), o.p.ResourceCalls()
		r := o.record(o.s.doWith("GET", "/v1/workspaces/default/proxy/api/me", "", http.Header{"X-Sesame-User": {"bob"}}))
		mustStatus(t, r, 200)
		if o.p.Refreshes() != refreshes+1 || o.p.ResourceCalls() != calls+2 {
			t.Fatalf("refreshes +%d, upstream calls +%d; want +1 and +2", o.p.Refreshes()-refreshes, o.p.ResourceCalls()-calls)
		}
	})
	t.Run("grants list", func(t *testing.T) {
		r := o.do(t, "GET", "/v1/workspaces/default/oauth/grants", "", 200)
		var page struct {
			Items []map[string]any `json:"items"`
		}
		json.Unmarshal(r.Body, &page)
		if len(page.Items) != 1 || page.Items[0]["user"] != "bob" || page.Items[0]["status"] != "valid" ||
			page.Items[0]["valid_until"] == nil || page.Items[0]["last_refresh_at"] == nil || page.Items[0]["has_refresh_token"] != true {
			t.Fatalf("grants: %s", r.Body)
		}
	})
	t.Run("privileges", func(t *testing.T) {
		mustStatus(t, o.s.do("POST", "/v1/workspaces", `{"name":"acme"}`), 201)
		_, key := newCaller(t, o.s, "carol", "default") // run_functions in default only
		as := func(method, path string, want int) {
			t.Helper()
			mustStatus(t, o.record(o.s.doWith(method, path, "", withKey(key))), want)
		}
		as("GET", "/v1/oauth/authorize?credential=gh&user=carol&redirect=false", 200)
		as("GET", "/v1/oauth/authorize?workspace=acme&credential=gh&redirect=false", 403)
		as("GET", "/v1/workspaces/default/connections/api/token?user=carol", 409)
		as("GET", "/v1/workspaces/default/oauth/grants", 403)
		as("DELETE", "/v1/workspaces/default/oauth/grants/gh?user=bob", 403)
		// The callback needs no key at all, but a state.
		resp, err := http.Get(o.s.URL + "/v1/oauth/callback")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("callback without state: %d", resp.StatusCode)
		}
	})
	t.Run("cli", func(t *testing.T) {
		cli := func(args ...string) string {
			t.Helper()
			code, out, errOut := o.s.cli("", args...)
			if code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errOut)
			}
			if args[1] != "token" {
				o.record(response{Body: []byte(out + errOut)})
			}
			return out
		}
		if out := cli("oauth", "grants"); !strings.Contains(out, "gh") || !strings.Contains(out, "bob") || !strings.Contains(out, "valid") {
			t.Fatalf("oauth grants:\n%s", out)
		}
		if out := cli("oauth", "authorize", "gh", "--user", "bob"); !strings.HasPrefix(out, o.p.AuthURL()+"?") {
			t.Fatalf("oauth authorize: %s", out)
		}
		if out := strings.TrimSpace(cli("oauth", "token", "api", "--user", "bob")); len(out) < 16 || strings.Contains(out, " ") {
			t.Fatalf("oauth token printed %d bytes", len(out))
		}
		if out := cli("oauth", "providers"); !strings.Contains(out, "xero") || !strings.Contains(out, "https://accounts.google.com/") {
			t.Fatalf("oauth providers:\n%s", out)
		}
	})
	t.Run("invalid_grant needs re-authorization, never a 500", func(t *testing.T) {
		o.p.RevokeRefreshTokens()
		o.p.RevokeAccessTokens()
		r := o.record(o.s.doWith("GET", "/v1/workspaces/default/proxy/api/me", "", http.Header{"X-Sesame-User": {"bob"}}))
		mustStatus(t, r, http.StatusConflict)
		json.Unmarshal(r.Body, &e)
		if e.Code != "reauthorization_required" || e.Details["reason"] != "invalid_grant" || !strings.HasPrefix(e.Details["authorize_url"], o.s.URL+"/v1/oauth/authorize?") {
			t.Fatalf("after invalid_grant: %s", r.Body)
		}
		// Re-authorizing at that URL restores the grant.
		o.authorize(t, "bob", "")
		mustStatus(t, o.record(o.s.doWith("GET", "/v1/workspaces/default/proxy/api/me", "", http.Header{"X-Sesame-User": {"bob"}})), 200)
	})
	t.Run("delete revokes at the provider", func(t *testing.T) {
		code, out, errOut := o.s.cli("", "oauth", "revoke", "gh", "--user", "bob")
		o.record(response{Body: []byte(out + errOut)})
		if code != 0 || !strings.Contains(out, "revoked at the provider: true") || o.p.Revocations() != 1 {
			t.Fatalf("oauth revoke: %d %s %s", code, out, errOut)
		}
		o.do(t, "DELETE", "/v1/workspaces/default/oauth/grants/gh?user=bob", "", 404)
	})
	t.Run("callback state is single use", func(t *testing.T) {
		q := url.Values{"credential": {"gh"}, "redirect": {"false"}}
		r := o.do(t, "GET", "/v1/oauth/authorize?"+q.Encode(), "", 200)
		var a struct {
			URL string `json:"authorize_url"`
		}
		json.Unmarshal(r.Body, &a)
		browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := browser.Get(a.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cb := resp.Header.Get("Location")
		for i, want := range []int{200, 400} {
			resp, err := browser.Get(cb)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			o.record(response{Status: resp.StatusCode, Header: resp.Header, Body: body})
			if resp.StatusCode != want {
				t.Fatalf("callback %d: %d %s", i+1, resp.StatusCode, body)
			}
		}
		resp, err = browser.Get(o.s.URL + "/v1/oauth/callback?state=forged&code=x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("forged state: %d", resp.StatusCode)
		}
	})
	o.assertNoLeaks(t)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestOAuthAuthFailureSignals: a connection declares how its upstream says the token is
// dead (here, 200 with {"ok":false,"error":"token_expired"}, as Slack does); a match
// forces one refresh and one retry, and no more.
func TestOAuthAuthFailureSignals(t *testing.T) {
	o := newOAuthSetup(t, oauthtest.Options{}, nil)
	up := newUpstream(t)
	cred := fmt.Sprintf(`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"sesame-app","client_secret":%q,"token_url":%q}}`,
		oauthClientSecret, o.p.TokenURL())
	o.do(t, "PUT", "/v1/workspaces/default/credentials/svc", cred, 201)
	conn := fmt.Sprintf(`{"base_uri":%q,"credential":"svc","allow_private_networks":true,
		"auth_failure":{"statuses":[401,403],"json_path":"error","values":["token_expired","invalid_auth"]}}`, up.URL)
	o.do(t, "PUT", "/v1/workspaces/default/connections/slackish?test=false", conn, 201)

	var calls atomic.Int32
	up.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) == 1 {
			fmt.Fprint(w, `{"ok":false,"error":"token_expired"}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	r := o.do(t, "GET", "/v1/workspaces/default/proxy/slackish/chat", "", 200)
	if string(r.Body) != `{"ok":true}` || up.count() != 2 || o.p.ClientCredentials() != 2 {
		t.Fatalf("body %s, upstream calls %d, token requests %d; want the retry's body, 2 and 2", r.Body, up.count(), o.p.ClientCredentials())
	}
	up.mu.Lock()
	first, second := up.seen[0].Header.Get("Authorization"), up.seen[1].Header.Get("Authorization")
	up.mu.Unlock()
	if first == second || !strings.HasPrefix(second, "Bearer ") {
		t.Fatal("the retry did not carry a new token")
	}

	t.Run("an upstream that always refuses gets one retry", func(t *testing.T) {
		up.setHandler(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
		before, tokens := up.count(), o.p.ClientCredentials()
		o.do(t, "GET", "/v1/workspaces/default/proxy/slackish/chat", "", http.StatusForbidden)
		if up.count() != before+2 || o.p.ClientCredentials() != tokens+1 {
			t.Fatalf("upstream calls +%d, token requests +%d; want +2 and +1", up.count()-before, o.p.ClientCredentials()-tokens)
		}
	})
	t.Run("a streamed body is not sent twice", func(t *testing.T) {
		before := up.count()
		h := http.Header{"Content-Type": {"text/plain"}}
		mustStatus(t, o.record(o.s.doWith("POST", "/v1/workspaces/default/proxy/slackish/chat", "payload", h)), http.StatusForbidden)
		if up.count() != before+1 {
			t.Fatalf("a streamed request body was sent %d times", up.count()-before)
		}
	})
	t.Run("a matching body that is not JSON is passed through", func(t *testing.T) {
		up.setHandler(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"ok":false,"error":"token_expired"}`) })
		w := http.Header{}
		w.Set("Content-Type", "text/plain")
		before := up.count()
		mustStatus(t, o.record(o.s.doWith("GET", "/v1/workspaces/default/proxy/slackish/x", "", w)), 200)
		if up.count() != before+1 {
			t.Fatal("a text/plain answer was treated as an auth failure")
		}
	})
	t.Run("bad auth_failure blocks are refused", func(t *testing.T) {
		for _, bad := range []string{`{"statuses":[99]}`, `{"json_path":"error"}`, `{"values":["x"]}`, `{"json_path":"a..b","values":["x"]}`} {
			body := fmt.Sprintf(`{"base_uri":%q,"auth_failure":%s}`, up.URL, bad)
			o.do(t, "PUT", "/v1/workspaces/default/connections/bad?test=false", body, 400)
		}
	})
	o.assertNoLeaks(t)
}

// TestOAuthTwoServersOnPostgresRefreshOnce runs two Sesame servers on one PostgreSQL
// schema; 100 concurrent calls to each on an expired token make one refresh.
func TestOAuthTwoServersOnPostgresRefreshOnce(t *testing.T) {
	pg := testpg.URL(t)
	k, _ := crypt.GenerateMasterKey()
	env := func() map[string]string { return map[string]string{"SESAME_MASTER_KEY": k.Encode()} }
	o := newOAuthSetup(t, oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}, env(), "--postgres", pg)
	b := startServer(t, map[string]string{"SESAME_MASTER_KEY": k.Encode(), "SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"},
		"--data", t.TempDir(), "--postgres", pg, "--public-url", o.s.URL)
	if b.stopped {
		t.Fatalf("second server: %s", b.Stderr.String())
	}
	b.AdminKey = o.s.AdminKey
	o.createCredentialAndConnection(t, "authorization_code", "")
	if cb := o.authorize(t, "bob", ""); cb.Status != 200 {
		t.Fatalf("callback: %d %s", cb.Status, cb.Body)
	}
	start := make(chan struct{})
	var okA, okB int
	var errsA, errsB []string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); okA, errsA = o.proxyMany(o.s, 100, "bob", start) }()
	go func() { defer wg.Done(); okB, errsB = o.proxyMany(b, 100, "bob", start) }()
	close(start)
	wg.Wait()
	if okA != 100 || okB != 100 || o.p.Refreshes() != 1 {
		t.Fatalf("successes %d and %d (%v %v), refreshes %d; want 100, 100 and 1", okA, okB, errsA, errsB, o.p.Refreshes())
	}
	o.assertNoLeaks(t, b)
}
