package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/testpg"
)

// browser is a minimal cookie-keeping client for the console that never follows redirects,
// so each test sees every status and Set-Cookie.
type browser struct {
	t      *testing.T
	s      *testServer
	cookie *http.Cookie
}

func (b *browser) send(method, path string, form url.Values, h http.Header) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.s.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	// What a browser sends on a same-origin form post.
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if method == http.MethodPost {
		req.Header.Set("Origin", b.s.URL)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// signIn signs in with key and keeps the session cookie.
func (b *browser) signIn(key string) *http.Cookie {
	b.t.Helper()
	resp, body := b.send("POST", "/console/signin", url.Values{"api_key": {key}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "sesame_session") {
			b.cookie = c
			return c
		}
	}
	b.t.Fatalf("sign in set no session cookie: %v", resp.Header)
	return nil
}

func TestConsoleSessionCookieHeadersAndSignOut(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	b := &browser{t: t, s: s}

	// No session: pages redirect to sign-in, state changes are refused and change nothing.
	resp, _ := b.send("GET", "/", nil, nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET /: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.send("GET", "/console/workspaces", nil, nil)
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Fatalf("no session GET: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.send("POST", "/console/workspaces", url.Values{"name": {"nosession"}}, nil)
	if resp.StatusCode != 401 {
		t.Fatalf("no session POST: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/nosession", ""), 404)
	// A made-up session ID is no session.
	b.cookie = &http.Cookie{Name: "sesame_session", Value: strings.Repeat("A", 43)}
	resp, _ = b.send("GET", "/console/workspaces", nil, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("forged session: %d", resp.StatusCode)
	}
	b.cookie = nil

	// The sign-in page: labelled field, hardening headers.
	resp, body := b.send("GET", "/console/signin", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<label for="api_key">API key</label>`) {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers: %v", resp.Header)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("sign-in page has inline script/style or loads from another origin: %s", body)
	}

	// A wrong key: refused, no cookie.
	resp, body = b.send("POST", "/console/signin", url.Values{"api_key": {"sesame_wrong"}}, nil)
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 || !strings.Contains(body, "not valid") {
		t.Fatalf("bad key: %d %v %s", resp.StatusCode, resp.Cookies(), body)
	}

	first := b.signIn(s.AdminKey)
	if first.Name != "sesame_session" || !first.HttpOnly || first.SameSite != http.SameSiteStrictMode || first.Secure || first.Path != "/" || first.MaxAge <= 0 {
		t.Fatalf("cookie attributes: %+v", first)
	}
	if strings.Contains(first.Value, s.AdminKey) || len(first.Value) != 43 {
		t.Fatalf("session ID %q", first.Value)
	}
	resp, body = b.send("GET", "/console/workspaces", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "default") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("workspaces: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, s.AdminKey) {
		t.Fatal("the page shows the API key")
	}

	// Signing in again (with the old cookie) gives a new ID and ends the old session.
	second := b.signIn(s.AdminKey)
	if second.Value == first.Value {
		t.Fatal("session ID not rotated at sign-in")
	}
	b.cookie = first
	if resp, _ := b.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("old session still works after a new sign-in: %d", resp.StatusCode)
	}
	// Sign-out ends the session in the store, not only in the browser.
	b.cookie = second
	if resp, _ := b.send("POST", "/console/signout", url.Values{}, nil); resp.StatusCode != 303 {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := b.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("session still works after sign-out: %d", resp.StatusCode)
	}

	// Sign-ins and sign-outs are in the audit trail; a refused key only as an HMAC.
	want := map[string]bool{"console.signin ok": false, "console.signin denied": false, "console.signout ok": false}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.do("GET", "/v1/audit?action=console.signin&limit=100", "")
		r2 := s.do("GET", "/v1/audit?action=console.signout&limit=100", "")
		if strings.Contains(string(r.Body)+string(r2.Body), "sesame_wrong") {
			t.Fatal("a presented key is in the audit trail")
		}
		for _, body := range [][]byte{r.Body, r2.Body} {
			ev := decode[struct {
				Items []struct{ Action, Result, Detail string }
			}](t, response{Body: body})
			for _, e := range ev.Items {
				want[e.Action+" "+e.Result] = true
			}
		}
		if want["console.signin ok"] && want["console.signin denied"] && want["console.signout ok"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console events in the trail: %v", want)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The API is unchanged next to the console: unknown paths are its JSON 404.
	r := s.do("GET", "/nope", "")
	if r.Status != 404 || !strings.Contains(string(r.Body), "route_not_found") {
		t.Fatalf("API 404: %d %s", r.Status, r.Body)
	}
}

// TestConsoleSignInLimitsAndRedirects: failed sign-ins count against the API's failure
// limiter, and the page a sign-in returns to is never another site.
func TestConsoleSignInLimitsAndRedirects(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--auth-failures-per-minute", "3")
	b := &browser{t: t, s: s}
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "/v1/workspaces", "javascript:alert(1)"} {
		resp, _ := b.send("POST", "/console/signin", url.Values{"api_key": {s.AdminKey}, "next": {next}}, nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/console/" {
			t.Fatalf("next=%q: %d %q", next, resp.StatusCode, loc)
		}
	}
	resp, _ := b.send("POST", "/console/signin", url.Values{"api_key": {s.AdminKey}, "next": {"/console/audit?x=1"}}, nil)
	if loc := resp.Header.Get("Location"); loc != "/console/audit?x=1" {
		t.Fatalf("console next: %q", loc)
	}
	for i := 0; i < 3; i++ {
		if resp, _ := b.send("POST", "/console/signin", url.Values{"api_key": {"sesame_wrong"}}, nil); resp.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ = b.send("POST", "/console/signin", url.Values{"api_key": {"sesame_wrong"}}, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d", resp.StatusCode)
	}
	// The same limiter as the API's: a bad key there is refused with 429 too.
	r := s.doWith("GET", "/v1/me", "", withKey("sesame_wrong"))
	if r.Status != 429 {
		t.Fatalf("API after console failures: %d", r.Status)
	}
	// As for the API, a valid key is never refused by the limiter.
	b.signIn(s.AdminKey)
}

func TestConsoleSecureCookieBehindHTTPS(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--console-secure-cookie")
	b := &browser{t: t, s: s}
	c := b.signIn(s.AdminKey)
	if c.Name != "__Host-sesame_session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie: %+v", c)
	}
}

// TestConsoleCrossSitePostRefused: a form on another site posting to the console with the
// victim's session (as a browser would send it, were the cookie not SameSite) changes nothing.
func TestConsoleCrossSitePostRefused(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	b := &browser{t: t, s: s}
	b.signIn(s.AdminKey)
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}},
		{"Sec-Fetch-Site": {"same-site"}, "Origin": {"http://sub.127.0.0.1.nip.io"}},
		{"Sec-Fetch-Site": {""}, "Origin": {"https://evil.example"}}, // an older browser: Origin alone
	} {
		resp, body := b.send("POST", "/console/workspaces", url.Values{"name": {"csrf"}}, h)
		if resp.StatusCode != 403 {
			t.Fatalf("cross-site post %v: %d %s", h, resp.StatusCode, body)
		}
		resp, _ = b.send("POST", "/console/signout", url.Values{}, h)
		if resp.StatusCode != 403 {
			t.Fatalf("cross-site sign-out %v: %d", h, resp.StatusCode)
		}
	}
	// Login CSRF: another site cannot sign the browser in to an attacker's account.
	resp, _ := b.send("POST", "/console/signin", url.Values{"api_key": {s.AdminKey}}, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
	if resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site sign-in: %d", resp.StatusCode)
	}
	// OAuth "Connect" is a GET (a form could not be redirected to the provider under the
	// CSP); started from another site it is refused before any state is made.
	resp, _ = b.send("GET", "/console/w/default/credentials/gh/connect", nil, http.Header{"Sec-Fetch-Site": {"cross-site"}})
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site connect: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/csrf", ""), 404)
	// The same post from the console's own page works.
	resp, body := b.send("POST", "/console/workspaces", url.Values{"name": {"csrf"}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("same-origin post: %d %s", resp.StatusCode, body)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/csrf", ""), 200)
}

// TestConsoleActsAsKeyWithItsPrivileges: a console session has exactly its key's rights,
// and its changes are audited as that key's.
func TestConsoleActsAsKeyWithItsPrivileges(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	_, key := newCaller(t, s, "carol", "default")
	b := &browser{t: t, s: s}
	b.signIn(key)
	resp, body := b.send("GET", "/console/workspaces", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("workspaces: %d", resp.StatusCode)
	}
	for _, hidden := range []string{"nav-access", "nav-audit", "Create workspace", "/credentials", "Delete…"} {
		if strings.Contains(body, hidden) {
			t.Errorf("a caller sees %q", hidden)
		}
	}
	// Going to the URLs anyway: the API refuses, nothing changes.
	for _, path := range []string{"/console/w/default/credentials", "/console/access", "/console/audit"} {
		if resp, _ := b.send("GET", path, nil, nil); resp.StatusCode != 403 {
			t.Errorf("caller GET %s: %d", path, resp.StatusCode)
		}
	}
	resp, _ = b.send("POST", "/console/workspaces", url.Values{"name": {"carols"}}, nil)
	if resp.StatusCode != 403 {
		t.Fatalf("caller creating a workspace: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/carols", ""), 404)
	resp, _ = b.send("POST", "/console/w/default/credentials/new", url.Values{"type": {"basic"}, "key": {"x.y"}, "username": {"u"}, "password": {"p"}}, nil)
	if resp.StatusCode != 403 {
		t.Fatalf("caller creating a credential: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/credentials/x.y", ""), 404)

	// The admin's console change is audited as the API's, naming the admin's key.
	admin := &browser{t: t, s: s}
	admin.signIn(s.AdminKey)
	resp, _ = admin.send("POST", "/console/workspaces", url.Values{"name": {"audited"}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("admin create: %d", resp.StatusCode)
	}
	me := decode[struct {
		KeyID string `json:"key_id"`
	}](t, s.do("GET", "/v1/me", ""))
	ev := decode[struct {
		Items []struct {
			Action, Target, Result, Workspace string
			KeyID                             string `json:"key_id"`
		}
	}](t, s.do("GET", "/v1/audit?order=desc&action=workspace.create", ""))
	found := false
	for _, e := range ev.Items {
		if e.Result == "ok" {
			found = e.KeyID == me.KeyID
		}
	}
	if !found {
		t.Fatalf("no workspace.create event for the console change by %s: %+v", me.KeyID, ev.Items)
	}
}

// TestConsoleSecretsNeverRendered: a secret typed into a form is never written back into
// any page: not after saving, not into an edit form, not into a form that failed.
func TestConsoleSecretsNeverRendered(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	b := &browser{t: t, s: s}
	b.signIn(s.AdminKey)
	const pw = "hunter2-very-secret-pw"
	resp, body := b.send("POST", "/console/w/default/credentials/new", url.Values{"type": {"basic"}, "key": {"weather.basic"}, "username": {"bob"}, "password": {pw}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	// A failing save (bad username) with a new secret typed: the form comes back without it.
	resp, body = b.send("POST", "/console/w/default/credentials/weather.basic/edit", url.Values{"username": {"a:b"}, "password": {pw + "-new"}}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, `id="e-username"`) || strings.Contains(body, pw) {
		t.Fatalf("failed edit: %d %s", resp.StatusCode, body)
	}
	// Edit without typing the secret keeps it.
	resp, body = b.send("POST", "/console/w/default/credentials/weather.basic/edit", url.Values{"username": {"bob2"}, "password": {""}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("edit keeping the secret: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/console/w/default/credentials", "/console/w/default/credentials/weather.basic/edit", "/console/audit"} {
		resp, body := b.send("GET", path, nil, nil)
		if resp.StatusCode != 200 || strings.Contains(body, pw) {
			t.Fatalf("%s: %d, secret shown: %v", path, resp.StatusCode, strings.Contains(body, pw))
		}
	}
	_, body = b.send("GET", "/console/w/default/credentials", nil, nil)
	if !strings.Contains(body, "bob2") || !strings.Contains(body, "set, changed") {
		t.Fatalf("list: %s", body)
	}
	// The stored password is still the first one: the upstream receives it.
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"weather.basic","allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/up/x", ""), 200)
	got := (&http.Request{Header: up.last(t).Header}).Header.Get("Authorization")
	req := &http.Request{Header: http.Header{"Authorization": {got}}}
	if u, p, ok := req.BasicAuth(); !ok || u != "bob2" || p != pw {
		t.Fatalf("upstream got %q %q %v", u, p, ok)
	}
}

// TestConsoleSessionEndsOnRevocationOnEveryReplica: two servers on one PostgreSQL schema;
// a session started on one ends when its key is revoked, or its user disabled, on the other.
func TestConsoleSessionEndsOnRevocationOnEveryReplica(t *testing.T) {
	pg := testpg.URL(t)
	k, _ := crypt.GenerateMasterKey()
	env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
	a := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
	b := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
	b.AdminKey = a.AdminKey
	userID, key := newCaller(t, a, "erin", "default")
	onB := &browser{t: t, s: b}
	cookie := onB.signIn(key)
	// The session made on b is valid on a too (it lives in the store).
	onA := &browser{t: t, s: a, cookie: cookie}
	if resp, _ := onA.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("session on the other replica: %d", resp.StatusCode)
	}
	keys := decode[struct{ Items []struct{ ID string } }](t, a.do("GET", "/v1/users/"+userID+"/keys", ""))
	mustStatus(t, a.do("DELETE", "/v1/keys/"+keys.Items[0].ID, ""), 204)
	for _, br := range []*browser{onA, onB} {
		if resp, _ := br.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
			t.Fatalf("session on %s after revocation: %d", br.s.URL, resp.StatusCode)
		}
	}
	// Disabling the user ends the sessions of its other keys.
	k2 := decode[struct{ Key string }](t, mustStatus(t, a.do("POST", "/v1/users/"+userID+"/keys", `{}`), 201))
	onB.signIn(k2.Key)
	if resp, _ := onB.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("second session: %d", resp.StatusCode)
	}
	mustStatus(t, a.do("PATCH", "/v1/users/"+userID, `{"disabled":true}`), 200)
	if resp, _ := onB.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("session after disabling the user: %d", resp.StatusCode)
	}
}

// TestConsoleAccessAppsAndCopy: the access and apps screens change what the API changes:
// a grant removed, a user disabled (its console session ends), an app token revoked, a
// workspace copied with its credentials marked as needing their secrets.
func TestConsoleAccessAppsAndCopy(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	admin := &browser{t: t, s: s}
	admin.signIn(s.AdminKey)
	userID, key := newCaller(t, s, "dana", "default")
	dana := &browser{t: t, s: s}
	dana.signIn(key)

	grants := decode[struct {
		Items []struct{ ID, Subject string }
	}](t, s.do("GET", "/v1/grants", ""))
	var grantID string
	for _, g := range grants.Items {
		if g.Subject == userID {
			grantID = g.ID
		}
	}
	if resp, body := admin.send("POST", "/console/access/grants/"+grantID+"/delete", url.Values{}, nil); resp.StatusCode != 303 {
		t.Fatalf("remove grant: %d %s", resp.StatusCode, body)
	}
	mustStatus(t, s.do("DELETE", "/v1/grants/"+grantID, ""), 404)
	if resp, _ := admin.send("POST", "/console/access/users/"+userID+"/disabled", url.Values{"disabled": {"true"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	if resp, _ := dana.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("a disabled user's session: %d", resp.StatusCode)
	}

	// A role through its form; a bad privilege is the API's error, shown on the page.
	if resp, body := admin.send("POST", "/console/access/roles", url.Values{"name": {"reviewer"}, "privileges": {"read_audit", "use_api_key"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("create role: %d %s", resp.StatusCode, body)
	}
	role := decode[struct{ Privileges []string }](t, mustStatus(t, s.do("GET", "/v1/roles/reviewer", ""), 200))
	if strings.Join(role.Privileges, ",") != "read_audit,use_api_key" && strings.Join(role.Privileges, ",") != "use_api_key,read_audit" {
		t.Fatalf("role privileges %v", role.Privileges)
	}
	resp, body := admin.send("POST", "/console/access/roles", url.Values{"name": {"bad"}, "privileges": {"fly"}}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, `id="page-error"`) {
		t.Fatalf("bad role: %d", resp.StatusCode)
	}

	tok := decode[struct{ Token string }](t, mustStatus(t, s.appAuth(manifestJSON("com.example.app", "x", "1")), 200))
	resp, body = admin.send("GET", "/console/apps", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Revoke every token of app") || strings.Contains(body, tok.Token) {
		t.Fatalf("apps page: %d", resp.StatusCode)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", http.Header{"Authorization": {"Bearer " + tok.Token}}), 200)
	if resp, _ := admin.send("POST", "/console/apps/tokens/revoke", url.Values{"app": {"com.example.app"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("revoke tokens: %d", resp.StatusCode)
	}
	r := s.doWith("GET", "/v1/me", "", http.Header{"Authorization": {"Bearer " + tok.Token}})
	if r.Status != 401 {
		t.Fatalf("revoked app token still works: %d", r.Status)
	}

	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/w.key", `{"type":"api_key","fields":{"value":"copy-me-not"}}`), 201)
	if resp, _ := admin.send("POST", "/console/workspaces/default/copy", url.Values{"name": {"staging"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("copy: %d", resp.StatusCode)
	}
	_, body = admin.send("GET", "/console/w/staging/credentials", nil, nil)
	if !strings.Contains(body, "w.key") || !strings.Contains(body, "needs secret") || strings.Contains(body, "copy-me-not") {
		t.Fatalf("copied credentials: %s", body)
	}
	// Delete with confirmation: the GET only asks.
	if resp, body := admin.send("GET", "/console/workspaces/staging/delete", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "cannot be undone") {
		t.Fatalf("confirm page: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/staging", ""), 200)
	if resp, _ := admin.send("POST", "/console/workspaces/staging/delete", url.Values{}, nil); resp.StatusCode != 303 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/staging", ""), 404)
}

// TestConsoleSignedJWTKeyImport: a PEM pasted with literal \n sequences (as web forms and
// JSON escapes leave it) and a PKCS#12 file upload both import through the form; a bad key
// is reported next to its field; no key material or password is ever on a page.
func TestConsoleSignedJWTKeyImport(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	b := &browser{t: t, s: s}
	b.signIn(s.AdminKey)
	const canary = "pfx-Password-CANARY-4242"
	var pemBody struct {
		Fields struct {
			PrivateKey string `json:"private_key"`
		}
	}
	if err := json.Unmarshal([]byte(canaryPEMBody("bag-attr")), &pemBody); err != nil {
		t.Fatal(err)
	}
	flat := strings.ReplaceAll(pemBody.Fields.PrivateKey, "\n", `\n`)
	resp, body := b.send("POST", "/console/w/default/credentials/new", url.Values{"type": {"jwt_bearer"}, "key": {"svc.pem"}, "alg": {"ES256"}, "private_key": {flat}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("PEM with literal \\n: %d %s", resp.StatusCode, body)
	}
	resp, body = b.send("POST", "/console/w/default/credentials/new", url.Values{"type": {"jwt_bearer"}, "key": {"svc.bad"}, "alg": {"ES256"}, "private_key": {"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"}}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, `id="e-private_key"`) {
		t.Fatalf("bad PEM: %d %s", resp.StatusCode, body)
	}

	var p12Body struct {
		Fields struct {
			PKCS12 string `json:"pkcs12"`
		}
	}
	if err := json.Unmarshal([]byte(canaryPKCS12Body(canary)), &p12Body); err != nil {
		t.Fatal(err)
	}
	pfx, err := base64.StdEncoding.DecodeString(p12Body.Fields.PKCS12)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"type": "jwt_bearer", "key": "svc.p12", "alg": "ES256", "pkcs12_password": canary} {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("pkcs12", "key.p12")
	_, _ = fw.Write(pfx)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", s.URL+"/console/w/default/credentials/new", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.AddCookie(b.cookie)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 303 {
		t.Fatalf("PKCS#12 upload: %d %s", res.StatusCode, out)
	}
	stored := decode[struct{ Fields map[string]any }](t, s.do("GET", "/v1/workspaces/default/credentials/svc.p12", ""))
	if st, _ := stored.Fields["pkcs12"].(map[string]any); st["set"] != true {
		t.Fatalf("pkcs12 not stored: %v", stored.Fields)
	}
	keyLine := strings.Split(strings.TrimSpace(pemBody.Fields.PrivateKey), "\n")[2]
	for _, path := range []string{"/console/w/default/credentials", "/console/w/default/credentials/svc.p12/edit", "/console/w/default/credentials/svc.pem/edit"} {
		_, html := b.send("GET", path, nil, nil)
		if strings.Contains(html, canary) || strings.Contains(html, keyLine) || strings.Contains(html, p12Body.Fields.PKCS12[:40]) {
			t.Fatalf("%s shows key material", path)
		}
	}
}

// TestConsoleAuditPage: filter, live tail, export as JSON lines, verify; a person without
// read_audit gets none of it.
func TestConsoleAuditPage(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	admin := &browser{t: t, s: s}
	admin.signIn(s.AdminKey)
	mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"trail"}`), 201)
	resp, body := admin.send("GET", "/console/audit?workspace=trail&tail=1", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<meta http-equiv="refresh" content="5">`) || !strings.Contains(body, "Stop live tail") {
		t.Fatalf("live tail: %d %s", resp.StatusCode, body)
	}
	resp, body = admin.send("GET", "/console/audit/export?action=workspace.create", nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	for _, line := range lines {
		var e struct{ Action string }
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Action != "workspace.create" {
			t.Fatalf("export line %q", line)
		}
	}
	resp, body = admin.send("POST", "/console/audit/verify", url.Values{}, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Chain verified") {
		t.Fatalf("verify: %d", resp.StatusCode)
	}
	_, key := newCaller(t, s, "eve", "default")
	eve := &browser{t: t, s: s}
	eve.signIn(key)
	for _, path := range []string{"/console/audit", "/console/audit/export"} {
		if resp, body := eve.send("GET", path, nil, nil); resp.StatusCode != 403 || resp.Header.Get("Content-Disposition") != "" || !strings.Contains(body, "read_audit") {
			t.Fatalf("caller %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	if resp, _ := eve.send("POST", "/console/audit/verify", url.Values{}, nil); resp.StatusCode != 403 {
		t.Fatalf("caller verify: %d", resp.StatusCode)
	}
}

// TestOAuthCallbackLandsBrowsersOnAPage: a browser that comes back from the provider after
// an authorization started without a return URL lands on the console's page, not on JSON;
// so does one with a bad state. Clients that do not ask for HTML still get JSON.
func TestOAuthCallbackLandsBrowsersOnAPage(t *testing.T) {
	o := newOAuthSetup(t, oauthtest.Options{}, nil)
	o.createCredentialAndConnection(t, "authorization_code", "")
	start := decode[struct {
		URL string `json:"authorize_url"`
	}](t, o.do(t, "GET", "/v1/oauth/authorize?credential=gh&redirect=false", "", 200))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(start.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	req, _ := http.NewRequest("GET", cb, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "/console/oauth/done?") || !strings.Contains(loc, "status=authorized") || !strings.Contains(loc, "credential=gh") {
		t.Fatalf("callback for a browser: %d %q", resp.StatusCode, loc)
	}
	resp, err = client.Get(o.s.URL + loc)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "holds a grant for <strong>gh</strong>") {
		t.Fatalf("landing page: %d %s", resp.StatusCode, page)
	}
	// A replayed (spent) state: a page that says so, for a browser; JSON otherwise.
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.Contains(loc, "status=error") {
		t.Fatalf("replayed callback for a browser: %d %q", resp.StatusCode, loc)
	}
	resp, err = client.Get(cb)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || !strings.Contains(string(body), `"code"`) {
		t.Fatalf("replayed callback for a program: %d %s", resp.StatusCode, body)
	}
}

// TestConsoleKeepsThePrivilegeCeiling: a user manager who is not an admin cannot, through
// the console, make a role or grant with privileges they do not hold.
func TestConsoleKeepsThePrivilegeCeiling(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	mustStatus(t, s.do("POST", "/v1/roles", `{"name":"usermgr","privileges":["use_api_key","manage_users"]}`), 201)
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"mallory"}`), 201))
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"usermgr","user":"`+u.ID+`","workspace":"*"}`), 201)
	k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{}`), 201))
	m := &browser{t: t, s: s}
	m.signIn(k.Key)
	resp, body := m.send("POST", "/console/access/roles", url.Values{"name": {"root"}, "privileges": {"admin"}}, nil)
	if resp.StatusCode != 403 || !strings.Contains(body, "page-error") {
		t.Fatalf("role with admin: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/roles/root", ""), 404)
	resp, _ = m.send("POST", "/console/access/grants", url.Values{"role": {"admin"}, "user": {u.ID}, "workspace": {"*"}}, nil)
	if resp.StatusCode != 403 {
		t.Fatalf("grant admin to self: %d", resp.StatusCode)
	}
	if ok := decode[struct {
		Privileges map[string][]string `json:"privileges"`
	}](t, s.doWith("GET", "/v1/me", "", withKey(k.Key))); strings.Contains(fmt.Sprint(ok.Privileges), "admin") {
		t.Fatalf("mallory got admin: %v", ok.Privileges)
	}
}

func TestConsoleCanBeTurnedOff(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--console=false")
	for _, path := range []string{"/", "/console/signin"} {
		r := s.do("GET", path, "")
		if r.Status != 404 || !strings.Contains(string(r.Body), "route_not_found") {
			t.Fatalf("%s with the console off: %d %s", path, r.Status, r.Body)
		}
	}
	if bad := startServer(t, nil, "--data", t.TempDir(), "--console-session-lifetime", "0s"); !bad.stopped {
		t.Fatal("a zero session lifetime was accepted")
	}
}

// TestConsoleSessionLifetimeIsEnforcedByTheServer: a cookie kept past its lifetime (as a
// stolen one would be) no longer works.
func TestConsoleSessionLifetimeIsEnforcedByTheServer(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--console-session-lifetime", "1s")
	b := &browser{t: t, s: s}
	c := b.signIn(s.AdminKey)
	if c.MaxAge != 1 {
		t.Fatalf("Max-Age %d", c.MaxAge)
	}
	if resp, _ := b.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, _ := b.send("GET", "/console/workspaces", nil, nil)
		if resp.StatusCode == 303 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its lifetime")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsoleDeletesAskFirst: connections and functions are deleted only by the POST of a
// confirmation page; a credential in use is not deleted, and the page says by what.
func TestConsoleDeletesAskFirst(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	b := &browser{t: t, s: s}
	b.signIn(s.AdminKey)
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/k", `{"type":"api_key","fields":{"value":"v"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"k","allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "f", "connection: up\nmethod: GET\npath: /x\n"), 201)
	resp, body := b.send("POST", "/console/w/default/credentials/k/delete", url.Values{}, nil)
	if resp.StatusCode != 409 || !strings.Contains(body, "up") {
		t.Fatalf("deleting a credential in use: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct{ page, api string }{
		{"/console/w/default/functions/f/delete", "/v1/workspaces/default/functions/f"},
		{"/console/w/default/connections/up/delete", "/v1/workspaces/default/connections/up"},
	} {
		if resp, body := b.send("GET", c.page, nil, nil); resp.StatusCode != 200 || !strings.Contains(body, `id="confirm"`) {
			t.Fatalf("confirm %s: %d", c.page, resp.StatusCode)
		}
		mustStatus(t, s.do("GET", c.api, ""), 200)
		if resp, _ := b.send("POST", c.page, url.Values{}, nil); resp.StatusCode != 303 {
			t.Fatalf("delete %s: %d", c.page, resp.StatusCode)
		}
		mustStatus(t, s.do("GET", c.api, ""), 404)
	}
}

// TestConsoleSignInNeedsUseAPIKey: a valid key of a user without use_api_key gets no session.
func TestConsoleSignInNeedsUseAPIKey(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"nokeys"}`), 201))
	k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{}`), 201))
	b := &browser{t: t, s: s}
	resp, body := b.send("POST", "/console/signin", url.Values{"api_key": {k.Key}}, nil)
	if resp.StatusCode != 403 || len(resp.Cookies()) != 0 || !strings.Contains(body, "use_api_key") {
		t.Fatalf("sign-in without use_api_key: %d %v", resp.StatusCode, resp.Cookies())
	}
}
