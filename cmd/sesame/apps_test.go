package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/testpg"
)

// appAuth posts body to /api/v2/auth as an app would: no API key, JSON.
func (s *testServer) appAuth(body string) response {
	s.t.Helper()
	return s.doWith("POST", "/api/v2/auth", body, http.Header{"Content-Type": {"application/json"}, "Authorization": {"none"}})
}

// withToken sends a request authenticated by an app token.
func (s *testServer) withToken(method, path, body, token string) response {
	s.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return s.doWith(method, path, body, h)
}

// tokenFrom checks a 200 {"token": …} answer and returns the token.
func tokenFrom(t *testing.T, r response) string {
	t.Helper()
	mustStatus(t, r, 200)
	tok, _ := r.json(t)["token"].(string)
	if !strings.HasPrefix(tok, "v4.public.") {
		t.Fatalf("no v4.public token in %s", r.Body)
	}
	return tok
}

// wantError checks an error answer's status and code.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d (%s): %s", r.Status, status, code, r.Body)
	}
	if got, _ := r.json(t)["code"].(string); got != code {
		t.Fatalf("code %q, want %q: %s", got, code, r.Body)
	}
}

func manifestJSON(appID, name, version string) string {
	return fmt.Sprintf(`{"appId":%q,"displayName":%q,"version":%q}`, appID, name, version)
}

// cliOK runs a CLI command that must succeed and returns its standard output.
func (s *testServer) cliOK(args ...string) string {
	s.t.Helper()
	code, out, errOut := s.cli("", args...)
	if code != 0 {
		s.t.Fatalf("sesame %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// signedManifest makes a developer key and a certificate for domains on s, and signs a
// manifest for appID with them, all through the CLI. It returns the signed manifest and
// the certificate ID.
func signedManifest(t *testing.T, s *testServer, dir, domains, appID, name, version string) (string, string) {
	t.Helper()
	key := filepath.Join(dir, "dev.key")
	pub := strings.TrimSpace(s.cliOK("app", "keygen", "--out", key))
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	certFile := filepath.Join(dir, "cert.json")
	s.cliOK("app", "cert", "--dev-pubkey", pub, "--domains", domains, "--out", certFile)
	var cert struct {
		ID string `json:"id"`
	}
	b, _ := os.ReadFile(certFile)
	if err := json.Unmarshal(b, &cert); err != nil || cert.ID == "" {
		t.Fatalf("cert.json: %v %s", err, b)
	}
	mf := filepath.Join(dir, "manifest.json")
	// Extra properties stay where they are.
	if err := os.WriteFile(mf, []byte(`{"appId":"`+appID+`","icon":"icon.png","displayName":"`+name+`","version":"`+version+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cliOK("app", "sign", "--cert", certFile, "--key", key, mf)
	signed, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(signed), `"icon": "icon.png"`) || !strings.Contains(string(signed), `"signature": "`) {
		t.Fatalf("signed manifest: %s", signed)
	}
	return string(signed), cert.ID
}

// resign returns manifest with its appId, displayName and version replaced, keeping the
// signature: what an attacker copying a signature would send.
func resign(t *testing.T, manifest string, set map[string]string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestAppTokensEndToEnd walks C7 through the real server and CLI: trial and signed
// manifests, the refusals, token use on a function call, listing and revocation.
func TestAppTokensEndToEnd(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	var tokens []string // every token issued, to check none leaks

	// --- trial: manifest → token → function call ---
	trial := tokenFrom(t, s.appAuth(manifestJSON("com.example.app", "Example", "1.0.0")))
	tokens = append(tokens, trial)
	me := mustStatus(t, s.withToken("GET", "/v1/me", "", trial), 200).json(t)
	if me["kind"] != "app" || me["app_id"] != "com.example.app" || me["app_version"] != "1.0.0" || !strings.HasPrefix(me["token_id"].(string), "tok_") {
		t.Fatalf("/v1/me with the app token: %v", me)
	}

	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "items", "connection: up\nmethod: GET\npath: /items\noutputTransform: .items\n"), 201)
	mustStatus(t, putYAML(s, "default", "acme-only", "connection: up\nmethod: GET\npath: /items\nallowedApps: [com.acme.*]\n"), 201)
	// Without a grant the app may not run functions.
	r := s.withToken("POST", "/v1/workspaces/default/functions/items/call", "", trial)
	if r.Status != 403 {
		t.Fatalf("call without a grant: %d %s", r.Status, r.Body)
	}
	mustStatus(t, s.do("POST", "/v1/roles", `{"name":"app-caller","privileges":["run_functions"]}`), 201)
	mustStatus(t, s.do("POST", "/v1/grants", `{"role":"app-caller","app":"com.example.*","workspace":"default"}`), 201)
	r = mustStatus(t, s.withToken("POST", "/v1/workspaces/default/functions/items/call", "", trial), 200)
	if !strings.Contains(string(r.Body), "[1,2,3]") || up.count() != 1 {
		t.Fatalf("function call with the app token: %s (upstream saw %d)", r.Body, up.count())
	}
	if got := up.last(t).Header.Get("Authorization"); got != "" {
		t.Fatalf("the app token was forwarded upstream: %q", got)
	}
	// A function limited to other apps refuses it.
	if r := s.withToken("POST", "/v1/workspaces/default/functions/acme-only/call", "", trial); r.Status != 403 {
		t.Fatalf("allowedApps: %d %s", r.Status, r.Body)
	}

	// --- signed: certificate for com.acme.*, manifest for com.acme.app ---
	signed, certID := signedManifest(t, s, t.TempDir(), "com.acme.*", "com.acme.app", "Acme App", "2.1")
	acme := tokenFrom(t, s.appAuth(signed))
	tokens = append(tokens, acme)
	if me := mustStatus(t, s.withToken("GET", "/v1/me", "", acme), 200).json(t); me["app_id"] != "com.acme.app" || me["app_version"] != "2.1" {
		t.Fatalf("/v1/me: %v", me)
	}

	// --- refusals ---
	other := startServer(t, nil, "--data", t.TempDir())
	foreign, _ := signedManifest(t, other, t.TempDir(), "com.acme.*", "com.acme.app", "Acme App", "2.1")
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"same signature on com.other.app", resign(t, signed, map[string]string{"appId": "com.other.app"}), 401, "ERR_APP_UNAUTHORIZED"},
		{"tampered display name", resign(t, signed, map[string]string{"displayName": "Acme App Pro"}), 401, "ERR_APP_UNAUTHORIZED"},
		{"tampered version", resign(t, signed, map[string]string{"version": "2.2"}), 401, "ERR_APP_UNAUTHORIZED"},
		{"certificate from another server's root", foreign, 401, "ERR_APP_UNAUTHORIZED"},
		{"unsigned outside com.example", manifestJSON("com.acme.app", "Acme App", "2.1"), 401, "ERR_APP_UNAUTHORIZED"},
		{"garbage signature", resign(t, signed, map[string]string{"signature": "not base64!"}), 400, "ERR_MANIFEST_INVALID"},
		{"uppercase app ID", manifestJSON("com.Example.app", "x", "1"), 400, "ERR_MANIFEST_INVALID"},
		{"missing version", `{"appId":"com.example.app","displayName":"x"}`, 400, "ERR_MANIFEST_INVALID"},
		{"not an object", `["com.example.app"]`, 400, "ERR_BAD_REQUEST"},
		{"not JSON", `appId=com.example.app`, 400, "ERR_BAD_REQUEST"},
		{"too large", `{"appId":"com.example.app","displayName":"x","version":"1","pad":"` + strings.Repeat("x", 20<<10) + `"}`, 413, "ERR_PAYLOAD_TOO_LARGE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantError(t, s.appAuth(c.body), c.status, c.code) })
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		h := http.Header{"Authorization": {"none"}}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		wantError(t, s.doWith("POST", "/api/v2/auth", manifestJSON("com.example.app", "x", "1"), h), 415, "ERR_UNSUPPORTED_MEDIA_TYPE")
	}
	r = s.doWith("GET", "/api/v2/auth", "", http.Header{})
	if r.Status != 405 {
		t.Fatalf("GET /api/v2/auth: %d", r.Status)
	}

	// --- listing shows claims, never tokens ---
	// Trial tokens have no record (anybody can ask for them): only signed ones are listed.
	out := s.cliOK("app", "tokens")
	if strings.Contains(out, "com.example.app") || !strings.Contains(out, "com.acme.app") || !strings.Contains(out, "signed") || strings.Contains(out, "trial") {
		t.Fatalf("sesame app tokens:\n%s", out)
	}
	var listed []struct {
		ID, AppID, Mode, CertID string
	}
	if err := json.Unmarshal([]byte(s.cliOK("app", "tokens", "--app", "com.acme.app", "--json")), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("tokens --app --json: %v %v", listed, err)
	}
	if !strings.Contains(s.cliOK("app", "certs"), certID) {
		t.Fatal("sesame app certs does not list the certificate")
	}

	// --- token use: revoked, tampered, wrong key, wrong scheme, missing header ---
	acmeID := mustStatus(t, s.withToken("GET", "/v1/me", "", acme), 200).json(t)["token_id"].(string)
	s.cliOK("app", "revoke-token", acmeID)
	wantError(t, s.withToken("GET", "/v1/me", "", acme), 401, "ERR_TOKEN_UNAUTHORIZED")

	tampered := []byte(trial)
	tampered[20] ^= 1
	wantError(t, s.withToken("GET", "/v1/me", "", string(tampered)), 400, "ERR_TOKEN_INVALID")
	otherToken := tokenFrom(t, other.appAuth(manifestJSON("com.example.app", "Example", "1.0.0")))
	tokens = append(tokens, otherToken)
	wantError(t, s.withToken("GET", "/v1/me", "", otherToken), 400, "ERR_TOKEN_INVALID")
	for _, h := range []string{"Basic " + trial, "Token " + trial, ""} {
		r := s.doWith("GET", "/v1/me", "", http.Header{"Authorization": {h}, "X-Api-Key": {""}})
		if h == "" {
			r = s.doWith("GET", "/v1/me", "", http.Header{"Authorization": {" "}})
		}
		if r.Status != 401 {
			t.Fatalf("Authorization %.12q: %d %s", h, r.Status, r.Body)
		}
		if h != "" && !strings.Contains(string(r.Body), "ERR_UNSUPPORTED_AUTH_TYPE") {
			t.Fatalf("Authorization %.12q: %s, want ERR_UNSUPPORTED_AUTH_TYPE", h, r.Body)
		}
	}
	// The trial token itself still works: nothing above touched it.
	mustStatus(t, s.withToken("GET", "/v1/me", "", trial), 200)

	// --- revoking a certificate refuses its manifests and its tokens ---
	acme2 := tokenFrom(t, s.appAuth(signed))
	tokens = append(tokens, acme2)
	if out := s.cliOK("app", "revoke-cert", certID); !strings.Contains(out, "1 token") {
		t.Fatalf("revoke-cert: %s", out)
	}
	wantError(t, s.appAuth(signed), 401, "ERR_APP_UNAUTHORIZED")
	wantError(t, s.withToken("GET", "/v1/me", "", acme2), 401, "ERR_TOKEN_UNAUTHORIZED")

	// --- per app ---
	trial2 := tokenFrom(t, s.appAuth(manifestJSON("com.example.app", "Example", "1.0.1")))
	tokens = append(tokens, trial2)
	if out := s.cliOK("app", "revoke-token", "--app", "com.example.app"); !strings.Contains(out, "revoked every token of com.example.app") {
		t.Fatalf("revoke-token --app: %s", out)
	}
	for _, tok := range []string{trial, trial2} {
		wantError(t, s.withToken("POST", "/v1/workspaces/default/functions/items/call", "", tok), 401, "ERR_TOKEN_UNAUTHORIZED")
	}

	// --- the audit trail has the app events: changes at once, issues soon after ---
	events := func() string {
		r := mustStatus(t, s.do("GET", "/v1/audit?action=app.*&limit=1000", ""), 200)
		return string(r.Body)
	}
	got := events()
	for _, want := range []string{
		`"action":"app.cert.issue"`, `"action":"app.cert.revoke","target":"` + certID + `","result":"ok"`,
		`"action":"app.token.revoke","target":"` + acmeID + `","result":"ok"`,
		`"action":"app.tokens.revoke","target":"com.example.app","result":"ok"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in the audit trail:\n%s", want, got)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(got, `"action":"app.token.issue","target":"com.other.app","result":"denied","code":"ERR_APP_UNAUTHORIZED"`); got = events() {
		if time.Now().After(deadline) {
			t.Fatalf("the refused manifest for com.other.app is not in the audit trail:\n%s", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	export := string(mustStatus(t, s.do("GET", "/v1/audit?format=jsonl", ""), 200).Body)

	// The tokens appeared in the /api/v2/auth answers and nowhere else: not in any log
	// line, audit event, CLI output or other response.
	s.Stop()
	other.Stop()
	logs := s.Stdout.String() + s.Stderr.String() + other.Stdout.String() + other.Stderr.String() + out + export
	for _, tok := range tokens {
		if strings.Contains(logs, tok[10:50]) {
			t.Fatal("an app token reached the log")
		}
	}
}

func TestAppServeFlags(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--no-trial-apps", "--app-token-ttl", "1h")
	wantError(t, s.appAuth(manifestJSON("com.example.app", "x", "1")), 401, "ERR_APP_UNAUTHORIZED")
	signed, _ := signedManifest(t, s, t.TempDir(), "com.example.*", "com.example.app", "x", "1")
	tok := tokenFrom(t, s.appAuth(signed))
	var listed []struct {
		IssuedAt  time.Time `json:"issued_at"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(s.cliOK("app", "tokens", "--json")), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("%v %v", listed, err)
	}
	if d := listed[0].ExpiresAt.Sub(listed[0].IssuedAt); d != time.Hour {
		t.Fatalf("token valid for %s, want 1h", d)
	}
	mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 200)

	bad := startServer(t, nil, "--data", t.TempDir(), "--app-token-ttl", "10ms")
	if !bad.stopped || bad.code == 0 || !strings.Contains(bad.Stderr.String(), "app-token-ttl") {
		t.Fatalf("a 10ms token validity was accepted: %s", bad.Stderr.String())
	}
}

// Two replicas on one PostgreSQL database: a token issued by one works on the other, and a
// revocation on either is refused by the other. The second replica learns of it by
// LISTEN/NOTIFY at once, and in any case within a second (the view's freshness bound,
// tested deterministically in internal/apps); the loop below only waits for that.
func TestAppTokenRevocationAcrossReplicasPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	dataA := t.TempDir()
	a := startServer(t, nil, "--data", dataA, "--postgres", pgURL)
	b := startServer(t, nil, "--data", t.TempDir(), "--postgres", pgURL, "--master-key-file", filepath.Join(dataA, "master.key"))
	if a.stopped || b.stopped {
		t.Fatalf("replicas did not start: %s %s", a.Stderr.String(), b.Stderr.String())
	}
	b.AdminKey = a.AdminKey
	// A signed token: only those have a record to revoke by ID (trial tokens are revoked
	// per app; see TestTrialTokensAddNoRowsPostgres). Its certificate, issued on a, signs a
	// manifest accepted by b: one root.
	signed, _ := signedManifest(t, a, t.TempDir(), "com.acme.*", "com.acme.app", "x", "1")
	tok := tokenFrom(t, a.appAuth(signed))
	id := mustStatus(t, b.withToken("GET", "/v1/me", "", tok), 200).json(t)["token_id"].(string)
	mustStatus(t, a.do("DELETE", "/v1/apps/tokens/"+id, ""), 204)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.withToken("GET", "/v1/me", "", tok)
		if r.Status == 401 {
			wantError(t, r, 401, "ERR_TOKEN_UNAUTHORIZED")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b still accepts a token revoked on a: %d %s", r.Status, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tokenFrom(t, b.appAuth(signed))
}

// The trust root and the token key are sealed server secrets: a master-key rotation
// re-wraps them, and after a restart the same keys come back, so issued certificates and
// tokens stay valid.
func TestAppKeysSurviveRotationAndRestart(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	signed, _ := signedManifest(t, s, t.TempDir(), "com.acme.*", "com.acme.app", "x", "1")
	tok := tokenFrom(t, s.appAuth(signed))
	s.cliOK("keys", "rotate")
	mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 200)
	admin := s.AdminKey
	s.Stop()

	s = startServer(t, nil, "--data", data)
	if s.stopped {
		t.Fatalf("restart: %s", s.Stderr.String())
	}
	s.AdminKey = admin
	mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 200)
	tokenFrom(t, s.appAuth(signed))
}

func TestAppCLIRefusals(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	dir := t.TempDir()
	key := filepath.Join(dir, "dev.key")
	pub := strings.TrimSpace(s.cliOK("app", "keygen", "--out", key))
	before, _ := os.ReadFile(key)
	if code, _, errOut := s.cli("", "app", "keygen", "--out", key); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("keygen over an existing key: %d %s", code, errOut)
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("keygen overwrote the key")
	}
	if strings.Contains(pub, "PRIVATE") || len(pub) != 44 {
		t.Fatalf("keygen printed %q", pub)
	}
	cert := filepath.Join(dir, "cert.json")
	s.cliOK("app", "cert", "--dev-pubkey", pub, "--domains", "com.acme.*", "--out", cert)

	mf := filepath.Join(dir, "m.json")
	write := func(body string) {
		if err := os.WriteFile(mf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	otherKey := filepath.Join(dir, "other.key")
	s.cliOK("app", "keygen", "--out", otherKey)
	cases := []struct {
		name, manifest, key, want string
	}{
		{"app outside the certificate", manifestJSON("com.other.app", "x", "1"), key, "do not cover"},
		{"another developer's key", manifestJSON("com.acme.app", "x", "1"), otherKey, "not the one the certificate was issued for"},
		{"invalid manifest", `{"appId":"com.acme.app"}`, key, "displayName"},
	}
	for _, c := range cases {
		write(c.manifest)
		code, _, errOut := s.cli("", "app", "sign", "--cert", cert, "--key", c.key, mf)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d: %s", c.name, code, errOut)
		}
		if got, _ := os.ReadFile(mf); string(got) != c.manifest {
			t.Errorf("%s: the manifest was changed", c.name)
		}
	}
	// Server-side refusals come back with their codes.
	if code, _, errOut := s.cli("", "app", "cert", "--dev-pubkey", pub, "--domains", "com.*"); code == 0 || !strings.Contains(errOut, "invalid_field") {
		t.Fatalf("cert for com.*: %d %s", code, errOut)
	}
	if code, _, errOut := s.cli("", "app", "revoke-token", "tok_nope"); code == 0 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("revoke unknown token: %d %s", code, errOut)
	}
	if code, _, _ := s.cli("", "app", "revoke-token"); code != 2 {
		t.Fatalf("revoke-token without an argument: exit %d, want 2", code)
	}
}

// A trial app token has no row: issuing one changes nothing, so its request is audited as
// a read is, in the background. While no audit event can be written, a trial token is still
// issued (a change is refused, as before), and once the store takes events again, the
// token's events are in the chain: none is lost.
func testTrialTokenAuditedInBackground(t *testing.T, s *testServer, db *auditDB) {
	restore := db.failAuditWrites(t, true)
	r := s.doWith("POST", "/api/v2/auth", manifestJSON("com.example.outage", "Outage", "1.0.0"),
		http.Header{"Content-Type": {"application/json"}, "Authorization": {"none"}, "X-Request-Id": {"trial-during-outage"}})
	change := s.do("PUT", "/v1/workspaces/default/credentials/outage.key", `{"type":"secret","fields":{"value":"v"}}`)
	restore()
	tokenFrom(t, r)
	if change.Status < 500 {
		t.Fatalf("a change whose event cannot be written was acknowledged: %d %s", change.Status, change.Body)
	}
	waitForRequestIDs(t, s, []string{"trial-during-outage"})
	for _, action := range []string{"app.auth", "app.token.issue"} {
		found := false
		for deadline := time.Now().Add(20 * time.Second); !found; {
			items := mustStatus(t, s.do("GET", "/v1/audit?limit=1000&action="+action, ""), 200).json(t)["items"].([]any)
			for _, it := range items {
				e := it.(map[string]any)
				found = found || e["request_id"] == "trial-during-outage" && e["result"] == "ok"
			}
			if !found && time.Now().After(deadline) {
				t.Fatalf("no %s event for the trial token issued during the outage: %v", action, items)
			}
			if !found {
				s.do("GET", "/v1/audit?wait=200ms&action=nothing", "")
			}
		}
	}
	if v := s.auditVerify(t); !v.OK {
		t.Fatalf("chain: %+v", v)
	}
}

func TestTrialTokenAuditedInBackgroundSQLite(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	testTrialTokenAuditedInBackground(t, s, openSQLiteDB(t, data))
}

func TestTrialTokenAuditedInBackgroundPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	s := startServer(t, nil, "--data", t.TempDir(), "--postgres", pgURL)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	testTrialTokenAuditedInBackground(t, s, openPostgresDB(t, pgURL))
}
