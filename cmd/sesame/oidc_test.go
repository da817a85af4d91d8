package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

func oidcAccounts(aliceGroups ...string) map[string]map[string]any {
	if aliceGroups == nil {
		aliceGroups = []string{}
	}
	return map[string]map[string]any{
		"alice":  {"email": "alice@example.com", "email_verified": true, "groups": aliceGroups},
		"mallet": {"email": "mallet@example.com", "email_verified": false},
		"nobody": {"email": "nobody@example.com", "email_verified": true},
		"dora":   {"email": "dora@example.com", "email_verified": true},
	}
}

// auditWith waits until the trail holds an event of action whose JSON contains every one
// of want, and returns the trail's events of that action.
func auditWith(t *testing.T, s *testServer, action string, want ...string) string {
	t.Helper()
	var body string
	eventually(t, "audit event "+action+" with "+strings.Join(want, ", "), func() error {
		r := s.do("GET", "/v1/audit?limit=1000&action="+url.QueryEscape(action), "")
		var ev struct{ Items []json.RawMessage }
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			return err
		}
		body = string(r.Body)
		for _, it := range ev.Items {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(string(it), w)
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("not in %s", r.Body)
	})
	return body
}

// TestOIDCSignIn: a Sesame user signs in through the provider, lands in the console as
// that user (no API key), and the session ends when the user is disabled; a disabled user
// cannot sign in whatever the provider says.
func TestOIDCSignIn(t *testing.T) {
	s, op := startOIDC(t, nil)
	op.setAccounts(oidcAccounts())
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201))
	c, status, body := oidcSignIn(t, s, "alice")
	if status != 200 || !strings.Contains(body, "Signed in") || sessionCookie(c, s) == nil {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	status, body = get(t, c, s.URL+"/console/workspaces")
	if status != 200 || !strings.Contains(body, "alice@example.com") {
		t.Fatalf("console after sign-in: %d %s", status, body)
	}
	auditWith(t, s, "console.signin", u.ID, `"result":"ok"`, "oidc")

	mustStatus(t, s.do("PATCH", "/v1/users/"+u.ID, `{"disabled":true}`), 200)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if status, _ := get(t, c, s.URL+"/console/workspaces"); status != http.StatusSeeOther {
		t.Fatalf("session of a disabled user: %d", status)
	}
	c, status, body = oidcSignIn(t, s, "alice")
	if status != http.StatusForbidden || !strings.Contains(body, "oidc_user_refused") || sessionCookie(c, s) != nil {
		t.Fatalf("disabled user signed in: %d %s", status, body)
	}
	auditWith(t, s, "console.signin", u.ID, `"result":"denied"`, "oidc_user_refused", "disabled")
}

// TestOIDCSignInRefusesForgedAnswers: what an attacker can bring to the callback is refused
// and creates no session, on SQLite and on PostgreSQL (the state is taken in the store).
func TestOIDCSignInRefusesForgedAnswers(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			var args []string
			env := map[string]string{}
			if db == "postgres" {
				k, _ := crypt.GenerateMasterKey()
				env["SESAME_MASTER_KEY"] = k.Encode()
				args = []string{"--postgres", testpg.URL(t)}
			}
			s, op := startOIDC(t, env, args...)
			op.setAccounts(oidcAccounts())
			mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)
			mustStatus(t, s.do("POST", "/v1/users", `{"name":"mallet@example.com"}`), 201)
			cbURL := s.URL + sesameOIDCCallbak

			refused := func(t *testing.T, c *http.Client, status int, body, code string) {
				t.Helper()
				if status == 200 || !strings.Contains(body, code) || sessionCookie(c, s) != nil {
					t.Fatalf("want refusal %s: %d %s", code, status, body)
				}
				auditWith(t, s, "console.signin", `"result":"denied"`, code)
			}
			// withToken runs a real sign-in in which the token endpoint's answer is changed.
			withToken := func(t *testing.T, fn func(tok map[string]any)) (*http.Client, int, string) {
				op.setRewrite(fn)
				defer op.setRewrite(nil)
				return oidcSignIn(t, s, "alice")
			}

			t.Run("tampered ID token", func(t *testing.T) {
				c, status, body := withToken(t, func(tok map[string]any) {
					parts := strings.Split(tok["id_token"].(string), ".")
					payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
					payload = []byte(strings.Replace(string(payload), "alice@example.com", "admin@example.com", 1))
					parts[1] = base64.RawURLEncoding.EncodeToString(payload)
					tok["id_token"] = strings.Join(parts, ".")
				})
				refused(t, c, status, body, "oidc_token_invalid")
				auditWith(t, s, "console.signin", "bad signature")
			})
			t.Run("ID token for another client", func(t *testing.T) {
				other := providerIDToken(t, op, opOtherClient, opOtherSecret, opOtherRedirect, "alice", "n-"+randomString())
				c, status, body := withToken(t, func(tok map[string]any) { tok["id_token"] = other })
				refused(t, c, status, body, "oidc_token_invalid")
				auditWith(t, s, "console.signin", "wrong audience")
				if strings.Contains(auditWith(t, s, "console.signin"), other) {
					t.Fatal("an ID token is in the audit trail")
				}
			})
			t.Run("ID token without nonce", func(t *testing.T) {
				tok := providerIDToken(t, op, "sesame", opClientSecret, cbURL, "alice", "")
				c, status, body := withToken(t, func(m map[string]any) { m["id_token"] = tok })
				refused(t, c, status, body, "oidc_token_invalid")
				auditWith(t, s, "console.signin", "nonce")
			})
			t.Run("ID token of another sign-in", func(t *testing.T) {
				tok := providerIDToken(t, op, "sesame", opClientSecret, cbURL, "alice", "n-"+randomString())
				c, status, body := withToken(t, func(m map[string]any) { m["id_token"] = tok })
				refused(t, c, status, body, "oidc_token_invalid")
			})
			t.Run("no ID token", func(t *testing.T) {
				c, status, body := withToken(t, func(m map[string]any) { delete(m, "id_token") })
				refused(t, c, status, body, "oidc_token_invalid")
			})
			t.Run("replayed state", func(t *testing.T) {
				c := webClient(t, isCallback)
				cb := providerLogin(t, c, s.URL+"/console/oidc/start", "alice")
				u, _ := url.Parse(s.URL)
				var state *http.Cookie
				for _, ck := range c.Jar.Cookies(u) {
					if ck.Name == "sesame_oidc" {
						state = ck
					}
				}
				if state == nil {
					t.Fatal("no state cookie")
				}
				if status, body := get(t, c, cb.String()); status != 200 {
					t.Fatalf("first use: %d %s", status, body)
				}
				// The same callback again, with the state cookie put back: refused.
				replay := webClient(t, nil)
				replay.Jar.SetCookies(u, []*http.Cookie{state})
				status, body := get(t, replay, cb.String())
				refused(t, replay, status, body, "oidc_state_invalid")
			})
			t.Run("callback in another browser", func(t *testing.T) {
				// Login CSRF: the attacker's own callback sent to a victim's browser.
				c := webClient(t, isCallback)
				cb := providerLogin(t, c, s.URL+"/console/oidc/start", "alice")
				victim := webClient(t, nil)
				status, body := get(t, victim, cb.String())
				refused(t, victim, status, body, "oidc_state_invalid")
				// The state was not used up by the victim's refusal... but it is bound to the
				// attacker's browser only; a forged state is refused as well.
				forged := *cb
				q := forged.Query()
				q.Set("state", randomString())
				forged.RawQuery = q.Encode()
				status, body = get(t, c, forged.String())
				refused(t, c, status, body, "oidc_state_invalid")
			})
			t.Run("mix-up: iss of another issuer", func(t *testing.T) {
				c := webClient(t, isCallback)
				cb := providerLogin(t, c, s.URL+"/console/oidc/start", "alice")
				q := cb.Query()
				if q.Get("iss") != op.Issuer {
					t.Fatalf("the provider sends iss %q", q.Get("iss"))
				}
				q.Set("iss", "http://127.0.0.1:1")
				cb.RawQuery = q.Encode()
				status, body := get(t, c, cb.String())
				refused(t, c, status, body, "oidc_token_invalid")
				auditWith(t, s, "console.signin", "iss parameter")
			})
			t.Run("unverified email", func(t *testing.T) {
				c, status, body := oidcSignIn(t, s, "mallet")
				refused(t, c, status, body, "oidc_token_invalid")
			})
			t.Run("unknown user", func(t *testing.T) {
				c, status, body := oidcSignIn(t, s, "nobody")
				refused(t, c, status, body, "oidc_user_refused")
				if r := s.do("GET", "/v1/users?limit=100", ""); strings.Contains(string(r.Body), "nobody@example.com") {
					t.Fatal("an unknown user was created without --oidc-create-users")
				}
			})
			// And the honest sign-in still works after all that.
			if _, status, body := oidcSignIn(t, s, "alice"); status != 200 {
				t.Fatalf("honest sign-in: %d %s", status, body)
			}
			// No token, code or client secret in the log or the audit trail ("eyJ" starts
			// every JWT).
			trail := string(mustStatus(t, s.do("GET", "/v1/audit?format=jsonl&limit=1000", ""), 200).Body)
			for _, where := range []string{s.Stderr.String(), s.Stdout.String(), trail} {
				if strings.Contains(where, opClientSecret) || strings.Contains(where, "eyJ") || strings.Contains(where, "?code=") || strings.Contains(where, "&code=") {
					t.Fatalf("a secret in the log or trail:\n%s", where)
				}
			}
		})
	}
}

// TestOIDCGroupMappingFollowsTheDirectory: at each sign-in the user's membership of the
// mapped Sesame groups is set to what the groups claim says, so privileges granted to a
// group come and go with the directory; a group the mapping does not list (here one holding
// admin) is never touched whatever the token claims; new users are created with nothing.
func TestOIDCGroupMappingFollowsTheDirectory(t *testing.T) {
	s, op := startOIDC(t, nil, "--oidc-groups-claim", "groups", "--oidc-group-map", "eng=writers, sec=auditors", "--oidc-create-users")
	op.setAccounts(oidcAccounts("eng", "admins"))
	mustStatus(t, s.do("PUT", "/v1/roles/cred-writer", `{"privileges":["manage_credentials"]}`), 201)
	group := func(name string) string {
		id := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/groups", `{"name":"`+name+`","members":[]}`), 201)).ID
		return id
	}
	writers, auditors, admins, other := group("writers"), group("auditors"), group("admins"), group("other")
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"cred-writer","group":"`+writers+`","workspace":"default"}`), 201)
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"admin","group":"`+admins+`","workspace":"*"}`), 201)
	members := func(id string) string {
		return string(mustStatus(t, s.do("GET", "/v1/groups/"+id, ""), 200).Body)
	}
	alice := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)).ID
	// Memberships made by hand: in a mapped group (the directory decides: removed) and in an
	// unmapped one (kept).
	mustStatus(t, s.do("PUT", "/v1/groups/"+auditors, `{"members":["`+alice+`"]}`), 200)
	mustStatus(t, s.do("PUT", "/v1/groups/"+other, `{"members":["`+alice+`"]}`), 200)

	noFollow := func(c *http.Client) *http.Client {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c
	}
	c, status, body := oidcSignIn(t, s, "alice")
	if status != 200 {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	if !strings.Contains(members(writers), alice) || strings.Contains(members(auditors), alice) ||
		strings.Contains(members(admins), alice) || !strings.Contains(members(other), alice) {
		t.Fatalf("after the first sign-in: writers %s auditors %s admins %s other %s", members(writers), members(auditors), members(admins), members(other))
	}
	if status, body := get(t, noFollow(c), s.URL+"/console/w/default/credentials"); status != 200 {
		t.Fatalf("credentials page with the group's privilege: %d %s", status, body)
	}
	auditWith(t, s, "oidc.groups", "added to group writers")
	auditWith(t, s, "oidc.groups", "removed from group auditors")

	// The directory moves alice from eng to sec: at the next sign-in the privilege is gone.
	op.setAccounts(oidcAccounts("sec"))
	c2, status, body := oidcSignIn(t, s, "alice")
	if status != 200 {
		t.Fatalf("second sign-in: %d %s", status, body)
	}
	if strings.Contains(members(writers), alice) || !strings.Contains(members(auditors), alice) || !strings.Contains(members(other), alice) {
		t.Fatalf("after the second sign-in: writers %s auditors %s other %s", members(writers), members(auditors), members(other))
	}
	if status, _ := get(t, noFollow(c2), s.URL+"/console/w/default/credentials"); status == 200 {
		t.Fatal("the credentials page still opens after the directory removed the group")
	}
	auditWith(t, s, "oidc.groups", "removed from group writers")

	// Signing in again with the same groups changes nothing and records no group event.
	before := strings.Count(auditWith(t, s, "oidc.groups"), `"action":"oidc.groups"`)
	signins := strings.Count(auditWith(t, s, "console.signin"), `"action":"console.signin"`)
	if before < 3 || signins < 2 {
		t.Fatalf("counted %d group and %d sign-in events", before, signins)
	}
	if _, status, _ := oidcSignIn(t, s, "alice"); status != 200 {
		t.Fatalf("third sign-in: %d", status)
	}
	eventually(t, "the third sign-in's event", func() error {
		if n := strings.Count(auditWith(t, s, "console.signin"), `"action":"console.signin"`); n <= signins {
			return fmt.Errorf("%d sign-in events", n)
		}
		return nil
	})
	if after := strings.Count(auditWith(t, s, "oidc.groups"), `"action":"oidc.groups"`); after != before {
		t.Fatalf("group events %d -> %d without a change", before, after)
	}

	// --oidc-create-users: a first sign-in creates the user, with no privileges.
	if _, status, body := oidcSignIn(t, s, "dora"); status != 200 {
		t.Fatalf("first sign-in of a new user: %d %s", status, body)
	}
	users := string(mustStatus(t, s.do("GET", "/v1/users?limit=100", ""), 200).Body)
	if !strings.Contains(users, "dora@example.com") {
		t.Fatalf("user not created: %s", users)
	}
	auditWith(t, s, "oidc.user_created", "dora@example.com")
}

// TestOIDCLoginCLI: `sesame login --no-browser` prints a URL; a browser that follows it and
// signs in at the provider comes back to the CLI's loopback listener, and the CLI stores a
// session token (0600) that client commands use without a key; `sesame logout` ends it on
// the server. The token ends with its user too.
func TestOIDCLoginCLI(t *testing.T) {
	s, op := startOIDC(t, nil)
	op.setAccounts(oidcAccounts())
	alice := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)).ID
	mustStatus(t, s.do("PUT", "/v1/roles/cred-writer", `{"privileges":["manage_credentials"]}`), 201)
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"cred-writer","user":"`+alice+`","workspace":"default"}`), 201)
	cfg := t.TempDir()
	env := map[string]string{"SESAME_SERVER": s.URL, "XDG_CONFIG_HOME": cfg}
	cli := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := run(context.Background(), args, envFunc(env), strings.NewReader(""), &out, &errOut, nil)
		return code, out.String(), errOut.String()
	}

	// login, driven by a browser without JavaScript.
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	var out strings.Builder
	go func() {
		done <- run(context.Background(), []string{"login", "--no-browser"}, envFunc(env), strings.NewReader(""), &out, stderr, nil)
	}()
	var start string
	eventually(t, "login prints its URL", func() error {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(line, s.URL+"/console/oidc/start?") {
				start = line
				return nil
			}
		}
		return fmt.Errorf("stderr: %s", stderr.String())
	})
	c := webClient(t, isCallback)
	cb := providerLogin(t, c, start, "alice")
	c.CheckRedirect = nil
	if status, body := get(t, c, cb.String()); status != 200 || !strings.Contains(body, "Signed in to Sesame") {
		t.Fatalf("back at the CLI: %d %s", status, body)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("login: exit %d: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("login did not finish")
	}
	file := filepath.Join(cfg, "sesame", "session")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v %v", fi, err)
	}
	saved := decode[struct{ Token, Server string }](t, response{Body: must(os.ReadFile(file))})
	if !strings.HasPrefix(saved.Token, "sesamecli_") || strings.Contains(stderr.String()+out.String(), saved.Token) {
		t.Fatalf("token %q (printed?)", saved.Token)
	}
	// The token is a bearer credential for the API, acting as alice.
	me := mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(saved.Token)), 200)
	if !strings.Contains(string(me.Body), alice) {
		t.Fatalf("/v1/me: %s", me.Body)
	}
	if code, _, errOut := cli("cred", "list"); code != 0 {
		t.Fatalf("cred list with the saved session: %d %s", code, errOut)
	}
	// It is not a console cookie, nor used for another server.
	if code, _, errOut := cli("cred", "list", "--server", "http://127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "no API key") {
		t.Fatalf("the session went to another server: %d %s", code, errOut)
	}
	br := &browser{t: t, s: s, cookie: &http.Cookie{Name: "sesame_session", Value: strings.TrimPrefix(saved.Token, "sesamecli_")}}
	if resp, _ := br.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("a CLI token as a console cookie: %d", resp.StatusCode)
	}
	auditWith(t, s, "cli.login", alice, `"result":"ok"`)

	// logout ends it on the server and deletes the file.
	if code, _, errOut := cli("logout"); code != 0 {
		t.Fatalf("logout: %d %s", code, errOut)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("session file after logout: %v", err)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(saved.Token)), 401)
}

// TestOIDCLoginHandoffAttacks: the server sends a CLI sign-in only to a loopback address;
// the one-time code needs the CLI's verifier and is redeemed once; a disabled user's token
// stops working.
func TestOIDCLoginHandoffAttacks(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) { testOIDCLoginHandoffAttacks(t, db) })
	}
}

func testOIDCLoginHandoffAttacks(t *testing.T, db string) {
	var args []string
	env := map[string]string{}
	if db == "postgres" {
		k, _ := crypt.GenerateMasterKey()
		env["SESAME_MASTER_KEY"] = k.Encode()
		args = []string{"--postgres", testpg.URL(t)}
	}
	s, op := startOIDC(t, env, args...)
	op.setAccounts(oidcAccounts())
	alice := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)).ID
	verifier := randomString() + randomString()
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])

	for _, ret := range []string{"http://evil.example/cb", "https://127.0.0.1:4000/cb", "http://127.0.0.1.evil.example:80/cb",
		"http://user@127.0.0.1:4000/cb", "http://127.0.0.1:4000/cb?x=1", "http://localhost.evil:4000/", "//127.0.0.1:4000/"} {
		r := mustStatus(t, s.do("GET", "/console/oidc/start?"+url.Values{"cli": {ret}, "cli_challenge": {challenge}}.Encode(), ""), 400)
		_ = r
	}
	mustStatus(t, s.do("GET", "/console/oidc/start?"+url.Values{"cli": {"http://127.0.0.1:4000/cb"}, "cli_challenge": {"short"}}.Encode(), ""), 400)

	const loop = "http://127.0.0.1:4000/cb"
	handoff := func() string {
		c := webClient(t, func(u *url.URL) bool { return isCallback(u) || strings.HasPrefix(u.String(), loop) })
		cb := providerLogin(t, c, s.URL+"/console/oidc/start?"+url.Values{"cli": {loop}, "cli_challenge": {challenge}}.Encode(), "alice")
		resp, err := c.Get(cb.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil || !strings.HasPrefix(loc.String(), loop+"?code=") {
			t.Fatalf("not sent back to the CLI: %d %v\n%s", resp.StatusCode, loc, s.Stderr.String())
		}
		if sessionCookie(c, s) != nil {
			t.Fatal("a CLI sign-in signed the browser in to the console")
		}
		return loc.Query().Get("code")
	}
	redeem := func(code, verifier string) response {
		req, _ := http.NewRequest("POST", s.URL+"/console/oidc/cli/token", strings.NewReader(url.Values{"code": {code}, "verifier": {verifier}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{Status: resp.StatusCode, Body: b}
	}
	// A code intercepted on the way (another local process on the port) is useless
	// without the verifier, and a failed try uses it up.
	code := handoff()
	if r := redeem(code, "wrong-"+verifier); r.Status != 400 || !strings.Contains(string(r.Body), "oidc_state_invalid") {
		t.Fatalf("wrong verifier: %d %s", r.Status, r.Body)
	}
	if r := redeem(code, verifier); r.Status != 400 {
		t.Fatalf("code used twice: %d %s", r.Status, r.Body)
	}
	code = handoff()
	r := mustStatus(t, redeem(code, verifier), 200)
	token := decode[struct{ Token string }](t, r).Token
	if r := redeem(code, verifier); r.Status != 400 {
		t.Fatalf("code redeemed twice: %d %s", r.Status, r.Body)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(token)), 200)
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(token+"x")), 401)
	mustStatus(t, s.do("PATCH", "/v1/users/"+alice, `{"disabled":true}`), 200)
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(token)), 401)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOIDCFlags: the OIDC settings are checked at start, and the client secret (from the
// environment or a file) is never printed.
func TestOIDCFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "x"}, "https"},
		{[]string{"--oidc-issuer", "https://idp.example.com"}, "--oidc-client-id"},
		{[]string{"--oidc-client-id", "x"}, "need --oidc-issuer"},
		{[]string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "x", "--oidc-groups-claim", "groups"}, "go together"},
		{[]string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "x", "--oidc-groups-claim", "groups", "--oidc-group-map", "eng"}, "provider=sesame"},
		{[]string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "x", "--console=false"}, "console"},
	} {
		_, err := parseServeFlags(tc.args, envFunc(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	const secret = "TOPSECRET-oidc-client-secret"
	var out, errOut strings.Builder
	run(context.Background(), []string{"serve", "--help"}, envFunc(map[string]string{"SESAME_OIDC_CLIENT_SECRET": secret}), strings.NewReader(""), &out, &errOut, nil)
	if !strings.Contains(out.String()+errOut.String(), "oidc-issuer") || strings.Contains(out.String()+errOut.String(), secret) {
		t.Fatalf("serve --help: %s %s", out.String(), errOut.String())
	}
	// A config file sets them too.
	file := filepath.Join(t.TempDir(), "sesame.yaml")
	if err := os.WriteFile(file, []byte("oidc-issuer: https://idp.example.com\noidc-client-id: sesame\noidc-groups-claim: groups\noidc-group-map: eng=writers\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseServeFlags([]string{"--config", file}, envFunc(nil), io.Discard, io.Discard)
	if err != nil || c.console.oidc.issuer != "https://idp.example.com" || c.console.oidc.groupMap != "eng=writers" {
		t.Fatalf("config file: %v %+v", err, c.console.oidc)
	}
}

// TestOIDCProviderDown: the server starts while the provider is down; a sign-in then gets
// 503 with Retry-After (a passing condition), and the API-key sign-in still works.
func TestOIDCProviderDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s := startServer(t, map[string]string{"SESAME_OIDC_CLIENT_SECRET": "x"}, "--data", t.TempDir(), "--oidc-issuer", dead.URL, "--oidc-client-id", "sesame")
	r := s.do("GET", "/console/oidc/start", "")
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("start with the provider down: %d %v %s", r.Status, r.Header, r.Body)
	}
	(&browser{t: t, s: s}).signIn(s.AdminKey)
}

// TestOIDCSessionOnEveryReplica: two servers on one PostgreSQL schema; a session signed in
// through the provider on one (a session with no API key) works on the other, and disabling
// the user ends it on both at once; so does deleting the user.
func TestOIDCSessionOnEveryReplica(t *testing.T) {
	pg := testpg.URL(t)
	k, _ := crypt.GenerateMasterKey()
	env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
	a, op := startOIDC(t, env, "--postgres", pg)
	b := startServer(t, map[string]string{"SESAME_MASTER_KEY": k.Encode(), "SESAME_OIDC_CLIENT_SECRET": opClientSecret},
		"--data", t.TempDir(), "--postgres", pg, "--oidc-issuer", op.Issuer, "--oidc-client-id", "sesame")
	b.AdminKey = a.AdminKey
	op.setAccounts(oidcAccounts())
	alice := decode[struct{ ID string }](t, mustStatus(t, a.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)).ID
	c, status, body := oidcSignIn(t, a, "alice")
	if status != 200 {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	cookie := sessionCookie(c, a)
	onA, onB := &browser{t: t, s: a, cookie: cookie}, &browser{t: t, s: b, cookie: cookie}
	for _, br := range []*browser{onA, onB} {
		if resp, body := br.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "alice@example.com") {
			t.Fatalf("session on %s: %d", br.s.URL, resp.StatusCode)
		}
	}
	mustStatus(t, b.do("PATCH", "/v1/users/"+alice, `{"disabled":true}`), 200)
	for _, br := range []*browser{onA, onB} {
		if resp, _ := br.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
			t.Fatalf("session on %s after disabling the user: %d", br.s.URL, resp.StatusCode)
		}
	}
	// Enabled again, the old session stays ended (it was deleted); deleting the user ends a new one.
	mustStatus(t, b.do("PATCH", "/v1/users/"+alice, `{"disabled":false}`), 200)
	if resp, _ := onB.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("ended session came back: %d", resp.StatusCode)
	}
	c, _, _ = oidcSignIn(t, a, "alice")
	onB.cookie = sessionCookie(c, a)
	if resp, _ := onB.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("new session on b: %d", resp.StatusCode)
	}
	mustStatus(t, a.do("DELETE", "/v1/users/"+alice, ""), 204)
	if resp, _ := onB.send("GET", "/console/workspaces", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("session of a deleted user on b: %d", resp.StatusCode)
	}
}

// TestOIDCCodeExchangeRefused: a callback with the right state but a code the provider
// does not know (forged, or spent) is refused as a provider error after the provider says
// invalid_grant; the provider's error body is not logged.
func TestOIDCCodeExchangeRefused(t *testing.T) {
	s, op := startOIDC(t, nil)
	op.setAccounts(oidcAccounts())
	mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)
	c := webClient(t, isCallback)
	cb := providerLogin(t, c, s.URL+"/console/oidc/start", "alice")
	q := cb.Query()
	q.Set("code", randomString()+randomString())
	cb.RawQuery = q.Encode()
	status, body := get(t, c, cb.String())
	if status == 200 || !strings.Contains(body, "oidc_provider_error") || sessionCookie(c, s) != nil {
		t.Fatalf("forged code: %d %s", status, body)
	}
	auditWith(t, s, "console.signin", `"result":"denied"`, "code exchange failed")
	if !strings.Contains(s.Stderr.String(), "invalid_grant") || strings.Contains(s.Stderr.String(), "error_description") {
		t.Fatalf("log: %s", s.Stderr.String())
	}
}
