package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

// The destination rule (PRODUCT.md §4.7): where a secret may be sent is fixed when it is
// entered, and changes only with the secret re-entered or by an admin. These tests play a
// workspace developer (manage_credentials, manage_connections, run_functions; not admin)
// who never saw the secrets and runs its own server ("evil"): every way to make Sesame
// send an existing secret there must fail, with a clear error and nothing changed.

// destinationServer starts a server on SQLite or on PostgreSQL.
func destinationServer(t *testing.T, store string) *testServer {
	t.Helper()
	env := map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}
	args := []string{"--data", t.TempDir()}
	if store == "postgres" {
		k, _ := crypt.GenerateMasterKey()
		env["SESAME_MASTER_KEY"] = k.Encode()
		args = append(args, "--postgres", testpg.URL(t))
	}
	s := startServer(t, env, args...)
	if s.stopped || s.AdminKey == "" {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	return s
}

// newDeveloper creates a user with the built-in developer role in the workspaces and
// returns its key.
func newDeveloper(t *testing.T, s *testServer, name string, workspaces ...string) string {
	t.Helper()
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"`+name+`"}`), 201))
	for _, ws := range workspaces {
		mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"developer","user":%q,"workspace":%q}`, u.ID, ws)), 201)
	}
	k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{"name":"dev"}`), 201))
	return k.Key
}

// as sends a request with key; YAML bodies (functions) are sent as YAML.
func (s *testServer) as(key, method, path, body string) response {
	s.t.Helper()
	h := withKey(key)
	switch {
	case strings.Contains(path, "/functions/") && method == "PUT":
		h.Set("Content-Type", "application/yaml")
	case body != "":
		h.Set("Content-Type", "application/json")
	}
	return s.doWith(method, path, body, h)
}

func wantRefused(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.Status != status || !strings.Contains(string(r.Body), `"code":"`+code+`"`) {
		t.Errorf("%s: got %d %s, want %d %s", what, r.Status, r.Body, status, code)
	}
}

var destinationCanaries = []string{"canary-plain", "canary-bearer", "canary-apikey", "canary-jwt-hmac-0123456789abcdef0123", "canary-client-secret", "canary-access-token", "canary-rot"}

func TestDestinationRule(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { destinationAttacks(t, destinationServer(t, store)) })
	}
}

func destinationAttacks(t *testing.T, s *testServer) {
	good, evil := newUpstream(t), newUpstream(t)
	good.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/token" {
			fmt.Fprint(w, `{"access_token":"canary-access-token","token_type":"Bearer","expires_in":3600}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	const ws = "/v1/workspaces/default"
	admin := func(method, path, body string, want int) response {
		t.Helper()
		if strings.Contains(path, "/functions/") && method == "PUT" {
			return mustStatus(t, putYAML(s, "default", strings.TrimPrefix(path, ws+"/functions/"), body), want)
		}
		return mustStatus(t, s.do(method, path, body), want)
	}

	// What the admin set up: secrets entered for the legitimate upstream only.
	admin("PUT", ws+"/credentials/api.token", fmt.Sprintf(`{"type":"bearer","fields":{"token":"canary-bearer","hosts":[%q]}}`, good.URL), 201)
	admin("PUT", ws+"/credentials/api.key", `{"type":"api_key","fields":{"value":"canary-apikey","name":"X-Key"}}`, 201)
	admin("PUT", ws+"/credentials/svc.jwt", fmt.Sprintf(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"canary-jwt-hmac-0123456789abcdef0123","token_url":%q}}`, good.URL+"/token"), 201)
	admin("PUT", ws+"/credentials/svc.oauth", fmt.Sprintf(`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"cid","client_secret":"canary-client-secret","token_url":%q}}`, good.URL+"/token"), 201)
	admin("PUT", ws+"/credentials/plain.secret", `{"type":"secret","fields":{"value":"canary-plain"}}`, 201) // not bound yet
	conn := func(name, base, cred string) {
		t.Helper()
		c := ""
		if cred != "" {
			c = fmt.Sprintf(`,"credential":%q`, cred)
		}
		admin("PUT", ws+"/connections/"+name+"?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true%s}`, base, c), 201)
	}
	conn("legit", good.URL, "api.key") // binds api.key, saved without hosts, to the good origin
	conn("tokconn", good.URL, "api.token")
	conn("jwtconn", good.URL, "svc.jwt")
	conn("oauthconn", good.URL, "svc.oauth")
	// A connection to the attacker's server that an admin allowed, carrying no credential:
	// the attacker's server stands in for any public host the admin never bound a secret to.
	conn("evilconn", evil.URL, "")

	dev := newDeveloper(t, s, "mallory", "default")
	for _, c := range []string{"legit", "tokconn", "jwtconn", "oauthconn"} {
		mustStatus(t, s.as(dev, "GET", ws+"/proxy/"+c+"/x", ""), 200) // this also stores svc.oauth's grant
	}
	if got := good.last(t).Header.Get("Authorization"); got != "Bearer canary-access-token" {
		t.Fatalf("the legitimate upstream got %q", got)
	}

	t.Run("read view shows the bound hosts", func(t *testing.T) {
		v := decode[struct{ Fields map[string]any }](t, mustStatus(t, s.as(dev, "GET", ws+"/credentials/api.key", ""), 200))
		if fmt.Sprint(v.Fields["hosts"]) != fmt.Sprint([]any{good.URL}) {
			t.Errorf("api.key hosts %v, want [%s]", v.Fields["hosts"], good.URL)
		}
	})

	watched := []string{
		ws + "/credentials/api.token", ws + "/credentials/api.key", ws + "/credentials/svc.jwt", ws + "/credentials/svc.oauth", ws + "/credentials/plain.secret",
		ws + "/connections", ws + "/functions", "/v1/workspaces",
	}
	snapshot := func() string {
		var b strings.Builder
		for _, p := range watched {
			b.Write(mustStatus(t, s.do("GET", p, ""), 200).Body)
		}
		return b.String()
	}
	oauthFields := func(extra string) string {
		return `{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"cid","client_secret":{"keep":true}` + extra + `}}`
	}
	tokenURL := fmt.Sprintf(`,"token_url":%q`, good.URL+"/token")

	attacks := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"keep the token, move its hosts", "PUT", ws + "/credentials/api.token",
			fmt.Sprintf(`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[%q]}}`, evil.URL), 403, "destination_locked"},
		{"keep the token, add a host", "PUT", ws + "/credentials/api.token",
			fmt.Sprintf(`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[%q,%q]}}`, good.URL, evil.URL), 403, "destination_locked"},
		{"keep the token, add a wildcard", "PUT", ws + "/credentials/api.token",
			fmt.Sprintf(`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[%q,"http://*.nip.io:1"]}}`, good.URL), 403, "destination_locked"},
		{"keep the token, clear its hosts", "PUT", ws + "/credentials/api.token",
			`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[]}}`, 403, "destination_locked"},
		{"keep a first-use binding, move it", "PUT", ws + "/credentials/api.key",
			fmt.Sprintf(`{"type":"api_key","fields":{"value":{"keep":true},"name":"X-Key","hosts":[%q]}}`, evil.URL), 403, "destination_locked"},
		{"keep the value, switch the type", "PUT", ws + "/credentials/api.key",
			`{"type":"secret","fields":{"value":{"keep":true}}}`, 403, "destination_locked"},
		{"keep across types with other fields", "PUT", ws + "/credentials/api.token",
			`{"type":"api_key","fields":{"value":{"keep":true}}}`, 403, "destination_locked"},
		{"keep the JWT key, move token_url", "PUT", ws + "/credentials/svc.jwt",
			fmt.Sprintf(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":{"keep":true},"token_url":%q}}`, evil.URL+"/token"), 403, "destination_locked"},
		{"keep the JWT key, drop token_url", "PUT", ws + "/credentials/svc.jwt",
			`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":{"keep":true}}}`, 403, "destination_locked"},
		{"keep the client secret, move token_url", "PUT", ws + "/credentials/svc.oauth",
			oauthFields(fmt.Sprintf(`,"token_url":%q`, evil.URL+"/token")), 403, "destination_locked"},
		{"keep the client secret, add auth_url", "PUT", ws + "/credentials/svc.oauth",
			oauthFields(tokenURL + fmt.Sprintf(`,"auth_url":%q`, evil.URL+"/auth")), 403, "destination_locked"},
		{"keep the client secret, add revocation_url", "PUT", ws + "/credentials/svc.oauth",
			oauthFields(tokenURL + fmt.Sprintf(`,"revocation_url":%q`, evil.URL+"/revoke")), 403, "destination_locked"},
		{"keep the client secret, switch to a provider template", "PUT", ws + "/credentials/svc.oauth",
			oauthFields(`,"provider":"github"`), 403, "destination_locked"},
		{"re-enter the client secret, but the stored grant would follow", "PUT", ws + "/credentials/svc.oauth",
			fmt.Sprintf(`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"cid","client_secret":"mine","token_url":%q}}`, evil.URL+"/token"), 403, "destination_locked"},
		{"attach a bound credential to the attacker's connection", "PUT", ws + "/connections/evilconn?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.token","allow_private_networks":true}`, evil.URL), 403, "destination_locked"},
		{"attach the oauth2 credential to the attacker's connection", "PUT", ws + "/connections/evilconn?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"svc.oauth","allow_private_networks":true}`, evil.URL), 403, "destination_locked"},
		{"point a connection's base_uri at the attacker", "PUT", ws + "/connections/legit?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.key"}`, evil.URL), 403, "destination_locked"},
		{"same origin, other scheme", "PUT", ws + "/connections/legit?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.key"}`, strings.Replace(good.URL, "http://", "https://", 1)), 403, "destination_locked"},
		{"carry private networks to the attacker", "PUT", ws + "/connections/legit?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.key","allow_private_networks":true}`, evil.URL), 403, "missing_privilege"},
		{"turn on private networks", "PUT", ws + "/connections/fresh?test=false",
			fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, good.URL), 403, "missing_privilege"},
		{"a new connection for a bound credential", "PUT", ws + "/connections/steal?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.token"}`, evil.URL), 403, "destination_locked"},
		{"a function with an absolute url", "PUT", ws + "/functions/steal",
			fmt.Sprintf("url: %s/x\nmethod: GET\nparameters:\n  accessToken: {location: header, value: api.token}\n", evil.URL), 403, "destination_locked"},
		{"a function on the attacker's connection", "PUT", ws + "/functions/steal",
			"connection: evilconn\nmethod: GET\nparameters:\n  accessToken: {location: header, value: api.token}\n", 403, "destination_locked"},
		{"a function naming an api_key as a parameter value", "PUT", ws + "/functions/steal",
			"connection: evilconn\nmethod: GET\nparameters:\n  k: {location: query, type: string, value: api.key}\n", 403, "destination_locked"},
		{"a save refused for another reason binds nothing", "PUT", ws + "/connections/steal?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"plain.secret"}`, evil.URL), 400, "missing_field"},
		{"copy the workspace", "POST", ws + "/copy", `{"name":"mine"}`, 403, "missing_privilege"},
	}
	for _, a := range attacks {
		before := snapshot()
		wantRefused(t, a.name, s.as(dev, a.method, a.path, a.body), a.status, a.code)
		if after := snapshot(); after != before {
			t.Errorf("%s: the refused request changed something", a.name)
		}
	}
	mustStatus(t, s.do("GET", ws+"/connections/fresh", ""), 404)
	mustStatus(t, s.do("GET", ws+"/connections/steal", ""), 404)
	mustStatus(t, s.do("GET", ws+"/functions/steal", ""), 404)

	t.Run("what a developer may still do", func(t *testing.T) {
		// Save a connection that already allows private networks, unchanged.
		mustStatus(t, s.as(dev, "PUT", ws+"/connections/legit?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.key","allow_private_networks":true,"timeout_ms":5000}`, good.URL)), 200)
		// Keep a secret while changing what does not move it.
		mustStatus(t, s.as(dev, "PUT", ws+"/credentials/api.key", `{"type":"api_key","fields":{"value":{"keep":true},"name":"X-Other-Key"}}`), 200)
		v := decode[struct{ Fields map[string]any }](t, mustStatus(t, s.do("GET", ws+"/credentials/api.key", ""), 200))
		if fmt.Sprint(v.Fields["hosts"]) != fmt.Sprint([]any{good.URL}) {
			t.Errorf("an update without hosts lost the binding: %v", v.Fields["hosts"])
		}
		// Narrow the hosts while keeping the secret.
		mustStatus(t, s.do("PUT", ws+"/credentials/narrow", fmt.Sprintf(`{"type":"bearer","fields":{"token":"canary-bearer","hosts":[%q,"api.example.com"]}}`, good.URL)), 201)
		mustStatus(t, s.as(dev, "PUT", ws+"/credentials/narrow", fmt.Sprintf(`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[%q]}}`, good.URL)), 200)
		mustStatus(t, s.as(dev, "GET", ws+"/proxy/legit/y", ""), 200)
	})

	t.Run("send time", func(t *testing.T) {
		// Saved while allowed; then whoever owns the secret re-enters it for the good host
		// only. Every path that would still send it to the attacker is refused before sending.
		admin("PUT", ws+"/credentials/api.rot", fmt.Sprintf(`{"type":"bearer","fields":{"token":"canary-rot","hosts":[%q,%q]}}`, good.URL, evil.URL), 201)
		conn("evilrot", evil.URL, "api.rot")
		admin("PUT", ws+"/functions/fnrot", "connection: evilrot\nmethod: GET\npath: /x\n", 201)
		admin("PUT", ws+"/functions/fnrot2", "connection: evilconn\nmethod: GET\nparameters:\n  accessToken: {location: header, value: api.rot}\n", 201)
		admin("PUT", ws+"/credentials/api.rotkey", fmt.Sprintf(`{"type":"api_key","fields":{"value":"canary-rot-key","hosts":[%q,%q]}}`, good.URL, evil.URL), 201)
		admin("PUT", ws+"/functions/fnrot3", "connection: evilconn\nmethod: GET\nparameters:\n  k: {location: query, type: api_key, value: api.rotkey}\n", 201)
		mustStatus(t, s.as(dev, "PUT", ws+"/credentials/api.rot", fmt.Sprintf(`{"type":"bearer","fields":{"token":"canary-rot-2","hosts":[%q]}}`, good.URL)), 200)
		mustStatus(t, s.as(dev, "PUT", ws+"/credentials/api.rotkey", fmt.Sprintf(`{"type":"api_key","fields":{"value":"canary-rot-key-2","hosts":[%q]}}`, good.URL)), 200)
		wantRefused(t, "function parameter naming an api_key", s.as(dev, "POST", ws+"/functions/fnrot3/call", `{}`), 403, "destination_locked")
		wantRefused(t, "proxy", s.as(dev, "GET", ws+"/proxy/evilrot/x", ""), 403, "destination_locked")
		wantRefused(t, "function on the connection", s.as(dev, "POST", ws+"/functions/fnrot/call", `{}`), 403, "destination_locked")
		wantRefused(t, "function parameter", s.as(dev, "POST", ws+"/functions/fnrot2/call", `{}`), 403, "destination_locked")
		r := mustStatus(t, s.as(dev, "POST", ws+"/connections/evilrot/test", ""), 200)
		if res := r.json(t); res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), "may not be sent") {
			t.Errorf("connection test: %s", r.Body)
		}
		// A developer who enters the secret again decides where it goes.
		mustStatus(t, s.as(dev, "PUT", ws+"/credentials/api.rot", fmt.Sprintf(`{"type":"bearer","fields":{"token":"dev-own-token","hosts":[%q,"api.example.com"]}}`, good.URL)), 200)
	})

	t.Run("copied workspace", func(t *testing.T) {
		admin("POST", ws+"/copy", `{"name":"staging"}`, 201)
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"developer","user":"`+userIDOf(t, s, "mallory")+`","workspace":"staging"}`), 201)
		st := "/v1/workspaces/staging"
		v := decode[struct {
			Fields       map[string]any
			NeedsSecrets []string `json:"needs_secrets"`
		}](t, mustStatus(t, s.as(dev, "GET", st+"/credentials/api.token", ""), 200))
		if fmt.Sprint(v.Fields["hosts"]) != fmt.Sprint([]any{good.URL}) || len(v.NeedsSecrets) != 1 {
			t.Errorf("copied credential: %+v", v)
		}
		wantRefused(t, "keep a secret the copy does not have", s.as(dev, "PUT", st+"/credentials/api.token",
			`{"type":"bearer","fields":{"token":{"keep":true}}}`), 400, "secret_required")
		wantRefused(t, "keep it and move it", s.as(dev, "PUT", st+"/credentials/api.token",
			fmt.Sprintf(`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[%q]}}`, evil.URL)), 403, "destination_locked")
		wantRefused(t, "call through the copy", s.as(dev, "GET", st+"/proxy/tokconn/x", ""), 400, "secret_required")
	})

	t.Run("an admin can widen hosts with keep", func(t *testing.T) {
		mustStatus(t, s.do("PUT", ws+"/credentials/api.token", fmt.Sprintf(`{"type":"bearer","fields":{"token":{"keep":true},"hosts":[%q,%q]}}`, good.URL, evil.URL)), 200)
		mustStatus(t, s.do("PUT", ws+"/credentials/svc.oauth", oauthFields(tokenURL+`,"scopes":["read"]`+fmt.Sprintf(`,"revocation_url":%q`, good.URL+"/revoke"))), 200)
		// Only now may a developer attach it to that host.
		mustStatus(t, s.as(dev, "PUT", ws+"/connections/evilconn?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"api.token","allow_private_networks":true}`, evil.URL)), 200)
	})

	if n := evil.count(); n != 0 {
		t.Errorf("the attacker's server received %d requests", n)
	}
	for _, c := range destinationCanaries {
		if strings.Contains(s.Stderr.String(), c) || strings.Contains(s.Stdout.String(), c) {
			t.Errorf("secret %q reached the log", c)
		}
	}
}

// userIDOf returns the ID of the user called name.
func userIDOf(t *testing.T, s *testServer, name string) string {
	t.Helper()
	page := decode[struct{ Items []struct{ ID, Name string } }](t, mustStatus(t, s.do("GET", "/v1/users", ""), 200))
	for _, u := range page.Items {
		if u.Name == name {
			return u.ID
		}
	}
	t.Fatalf("no user %q", name)
	return ""
}

// TestJWTKeepDoesNotDescribeTheStoredSecret: changing how a kept HMAC secret is read
// (alg, secret_encoding) gets the same answer whatever the stored secret is, so the
// answers tell nothing about its length or encoding.
func TestJWTKeepDoesNotDescribeTheStoredSecret(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	dev := newDeveloper(t, s, "mallory", "default")
	const ws = "/v1/workspaces/default/credentials/"
	secrets := map[string]string{
		"short": "a-32-byte-hmac-secret-0123456789",                                 // 32 bytes: fits HS256 only
		"long":  "a-64-byte-hmac-secret-that-is-also-valid-base64-0123456789abcdef", // fits HS512, decodes as base64
	}
	for name, sec := range secrets {
		mustStatus(t, s.do("PUT", ws+name, fmt.Sprintf(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":%q}}`, sec)), 201)
	}
	for _, change := range []string{`"alg":"HS512"`, `"alg":"HS384"`, `"alg":"HS256","secret_encoding":"base64"`} {
		answers := map[string]string{}
		for name := range secrets {
			r := s.as(dev, "PUT", ws+name, `{"type":"jwt_bearer","fields":{`+change+`,"secret":{"keep":true}}}`)
			answers[name] = fmt.Sprint(r.Status, " ", strings.ReplaceAll(string(decode[struct{ Code, Message string }](t, r).Message), name, "KEY"),
				" ", decode[struct{ Code string }](t, r).Code)
			if r.Status != 400 {
				t.Errorf("%s with %s: %d %s", name, change, r.Status, r.Body)
			}
			for _, word := range []string{"byte", "long", "short", "length", "decode", "invalid base64"} {
				if strings.Contains(strings.ToLower(decode[struct{ Message string }](t, r).Message), word) {
					t.Errorf("%s with %s: the error describes the stored secret: %s", name, change, r.Body)
				}
			}
		}
		if answers["short"] != answers["long"] {
			t.Errorf("%s: the answers differ by stored secret:\n%s\n%s", change, answers["short"], answers["long"])
		}
	}
	// Changing what does not read the key still works with keep.
	mustStatus(t, s.as(dev, "PUT", ws+"short", `{"type":"jwt_bearer","fields":{"alg":"HS256","secret":{"keep":true},"lifetime_seconds":60}}`), 200)
}
