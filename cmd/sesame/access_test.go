package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return v
}

// newCaller creates a user with the caller role in ws and returns its ID and a fresh key.
func newCaller(t *testing.T, s *testServer, name, ws string) (string, string) {
	t.Helper()
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"`+name+`"}`), 201))
	mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"caller","user":%q,"workspace":%q}`, u.ID, ws)), 201)
	k := decode[struct{ ID, Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{"name":"ci"}`), 201))
	return u.ID, k.Key
}

func withKey(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func TestKeyLifecycleAndRoles(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL)), 201)

	userID, key := newCaller(t, s, "carol", "default")
	// The caller role runs functions and the proxy, but cannot read credentials.
	mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/up/x", "", withKey(key)), 200)
	r := s.doWith("GET", "/v1/workspaces/default/credentials", "", withKey(key))
	if r.Status != 403 || !strings.Contains(string(r.Body), "manage_credentials") {
		t.Fatalf("caller reading credentials: %d %s", r.Status, r.Body)
	}
	// Accepted in all three places.
	for _, h := range []http.Header{{"Authorization": {key}}, {"X-Api-Key": {key}}, withKey(key)} {
		mustStatus(t, s.doWith("GET", "/v1/me", "", h), 200)
	}
	// The CLI, as the user itself, lists and creates its own keys.
	code, out, errOut := run2(s, key, "key", "list", userID)
	if code != 0 || !strings.Contains(out, "ci") {
		t.Fatalf("key list: %d %s %s", code, out, errOut)
	}
	code, out, _ = run2(s, key, "key", "create", userID, "--name", "laptop")
	second := strings.TrimSpace(strings.TrimPrefix(lineWith(out, "key: "), "key: "))
	if code != 0 || !strings.HasPrefix(second, "sesame_") {
		t.Fatalf("key create: %d %s", code, out)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(second)), 200)

	// Revoke: refused at once.
	keys := decode[struct{ Items []struct{ ID, Name string } }](t, s.do("GET", "/v1/users/"+userID+"/keys", ""))
	for _, k := range keys.Items {
		if k.Name == "laptop" {
			mustStatus(t, s.do("DELETE", "/v1/keys/"+k.ID, ""), 204)
		}
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(second)), 401)
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 200)
	// Disable the user: every key of it stops working; enable: back.
	code, _, errOut = s.cli("", "user", "disable", userID)
	if code != 0 {
		t.Fatal(errOut)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 401)
	s.cli("", "user", "enable", userID)
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 200)
	// An expiry in the past is refused; a mistyped key is refused before any lookup.
	r = s.do("POST", "/v1/users/"+userID+"/keys", `{"expires_at":"2020-01-01T00:00:00Z"}`)
	if r.Status != 400 {
		t.Fatalf("expired on creation: %d", r.Status)
	}
	mistyped := key[:len(key)-1] + string("ab"[strings.IndexByte("ab", key[len(key)-1])+1&1])
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(mistyped)), 401)

	// Groups: a role granted to a group reaches its members.
	gid := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/groups", `{"name":"writers","members":["`+userID+`"]}`), 201)).ID
	mustStatus(t, s.do("PUT", "/v1/roles/cred-writer", `{"privileges":["manage_credentials"]}`), 201)
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"cred-writer","group":"`+gid+`","workspace":"default"}`), 201)
	mustStatus(t, s.doWith("GET", "/v1/workspaces/default/credentials", "", withKey(key)), 200)

	s.Stop()
	// The key is stored only as an HMAC: its text is nowhere in the data folder.
	files, _ := filepath.Glob(filepath.Join(data, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(key)) || bytes.Contains(b, []byte(second)) {
			t.Fatalf("an API key is stored in plaintext in %s", filepath.Base(f))
		}
	}
	// Last use was recorded (flushed on shutdown).
	adminKey := s.AdminKey
	s = startServer(t, nil, "--data", data)
	s.AdminKey = adminKey
	if !strings.Contains(string(s.do("GET", "/v1/users/"+userID+"/keys", "").Body), "last_used_at") {
		t.Fatal("last use not recorded")
	}
}

func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// run2 runs a CLI command with another key.
func run2(s *testServer, key string, args ...string) (int, string, string) {
	saved := s.AdminKey
	s.AdminKey = key
	defer func() { s.AdminKey = saved }()
	return s.cli("", args...)
}

func TestFailedAuthenticationsAreLimitedPerSource(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--auth-failures-per-minute", "5")
	bad := withKey("sesame_0000000000000000000000000000000000000000")
	for i := range 5 {
		if r := s.doWith("GET", "/v1/me", "", bad); r.Status != 401 {
			t.Fatalf("attempt %d: %d", i, r.Status)
		}
	}
	r := s.doWith("GET", "/v1/me", "", bad)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 5 failures: %d %v", r.Status, r.Header)
	}
	// Only failing attempts are refused: the right key from the same source works.
	mustStatus(t, s.do("GET", "/v1/me", ""), 200)
	if !strings.Contains(s.Stderr.String(), `msg="auth failed"`) || !strings.Contains(s.Stderr.String(), `msg="auth blocked"`) || !strings.Contains(s.Stderr.String(), "remote=127.0.0.1") {
		t.Fatalf("no structured auth events: %s", s.Stderr.String())
	}
}

func TestAnonymousFunctions(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/pub.key", `{"type":"api_key","fields":{"value":"anon-secret"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"pub.key","allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "public", "connection: up\nmethod: GET\npath: /open\nallowAnonymous: true\n"), 201)
	mustStatus(t, putYAML(s, "default", "private", "connection: up\nmethod: GET\npath: /closed\n"), 201)
	none := http.Header{"Authorization": {""}}
	call := func(name string) response {
		req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/default/functions/"+name+"/call", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return response{Status: resp.StatusCode, Body: b.Bytes()}
	}
	_ = none
	r := call("public")
	if r.Status != 200 || up.last(t).Header.Get("X-API-Key") != "anon-secret" {
		t.Fatalf("anonymous call of an anonymous function: %d %s", r.Status, r.Body)
	}
	n := up.count()
	for _, name := range []string{"private", "does-not-exist"} {
		if r := call(name); r.Status != 401 || up.count() != n {
			t.Fatalf("anonymous call of %s: %d %s", name, r.Status, r.Body)
		}
	}
	if strings.Contains(s.Stderr.String(), "anon-secret") {
		t.Fatal("secret in log")
	}
	if !strings.Contains(s.Stderr.String(), "target=public") {
		t.Fatal("the anonymous call was not recorded")
	}
}

// TestRevocationReachesOtherReplica runs two servers on one PostgreSQL: a key revoked or a
// user disabled on one is refused by the other. Nothing but the database's notification
// clears the other's cache (it has no TTL), so passing shows the notification works; the
// time it took is logged.
func TestRevocationReachesOtherReplica(t *testing.T) {
	pg := testpg.URL(t)
	k, _ := crypt.GenerateMasterKey()
	env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
	a := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
	b := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
	if a.AdminKey == "" || b.stopped {
		t.Fatalf("replicas: a key %q, b stopped %v: %s", a.AdminKey, b.stopped, b.Stderr.String())
	}
	b.AdminKey = a.AdminKey
	userID, key := newCaller(t, a, "dave", "default")
	k2 := decode[struct{ ID, Key string }](t, mustStatus(t, a.do("POST", "/v1/users/"+userID+"/keys", `{}`), 201))

	waitRefused := func(what, key string) {
		t.Helper()
		mustStatus(t, b.doWith("GET", "/v1/me", "", withKey(key)), 200) // warm b's cache
		start := time.Now()
		switch what {
		case "revoke":
			mustStatus(t, a.do("DELETE", "/v1/keys/"+k2.ID, ""), 204)
		case "disable":
			mustStatus(t, a.do("PATCH", "/v1/users/"+userID, `{"disabled":true}`), 200)
		}
		for {
			r := b.doWith("GET", "/v1/me", "", withKey(key))
			if r.Status == 401 {
				t.Logf("%s seen by the other replica after %v", what, time.Since(start))
				return
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s not seen by the other replica", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitRefused("revoke", k2.Key)
	mustStatus(t, b.doWith("GET", "/v1/me", "", withKey(key)), 200)
	waitRefused("disable", key)

	// Concurrent use on both replicas keeps working for everyone else.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { b.do("GET", "/v1/me", "") })
	}
	wg.Wait()
}

// TestRequestsAreAudited: every change and call is an event with its principal, and a
// change is in the trail by the time the client has its answer.
func TestRequestsAreAudited(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	r := mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/aud.key", `{"type":"api_key","fields":{"value":"audit-canary"}}`), 201)
	reqID := r.Header.Get("X-Request-Id")
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"aud.key","allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "pub", "connection: up\nmethod: GET\nallowAnonymous: true\n"), 201)
	req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/default/functions/pub/call", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("anonymous call: %v %v", err, resp)
	}
	resp.Body.Close()
	s.doWith("GET", "/v1/me", "", withKey("sesame_0000000000000000000000000000000000000000"))

	events := func(query string) []map[string]any {
		t.Helper()
		var p struct{ Items []map[string]any }
		// The trail is written in the background for reads and calls: wait for it.
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
			p = decode[struct{ Items []map[string]any }](t, mustStatus(t, s.do("GET", "/v1/audit?"+query, ""), 200))
			if len(p.Items) > 0 {
				break
			}
		}
		return p.Items
	}
	put := events("action=credential.put")
	if len(put) != 1 || put[0]["request_id"] != reqID || put[0]["principal"] != "user" || put[0]["status"] != float64(201) || put[0]["target"] != "aud.key" {
		t.Fatalf("credential.put event: %+v", put)
	}
	if calls := events("principal=anonymous"); len(calls) == 0 {
		t.Fatal("the anonymous call is not in the trail")
	}
	if failed := events("action=auth.failed"); len(failed) == 0 || failed[0]["result"] != "denied" {
		t.Fatalf("failed authentication not recorded: %+v", failed)
	}
	if calls := events("action=function.call"); len(calls) == 0 || calls[0]["upstream_status"] != float64(200) {
		t.Fatalf("the outbound call is not in the trail: %+v", calls)
	}
	all := mustStatus(t, s.do("GET", "/v1/audit?format=jsonl&limit=1000", ""), 200)
	if bytes.Contains(all.Body, []byte("audit-canary")) {
		t.Fatal("a secret is in the audit trail")
	}
	if v := s.auditVerify(t); !v.OK {
		t.Fatalf("chain does not verify: %+v", v.FirstBroken)
	}
}
