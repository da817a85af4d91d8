package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
	"github.com/sesamehq/sesame/internal/vault"
)

const canary = "CANARY-4d1e-s3cr3t-value"

// leakForms are the ways a secret could sit in a file or dump: as is, hex or base64.
func leakForms(s string) []string {
	return []string{
		s,
		hex.EncodeToString([]byte(s)),
		base64.StdEncoding.EncodeToString([]byte(s)),
		base64.RawURLEncoding.EncodeToString([]byte(s)),
	}
}

func assertNoCanary(t *testing.T, where string, data []byte) {
	t.Helper()
	for _, form := range leakForms(canary) {
		if bytes.Contains(bytes.ToLower(data), bytes.ToLower([]byte(form))) {
			i := bytes.Index(bytes.ToLower(data), bytes.ToLower([]byte(form)))
			t.Errorf("the canary secret (%q form) appears in %s: …%s…", form[:8], where, data[max(0, i-120):i])
		}
	}
}

// credentialBodies holds a body for every credential type, every secret field the canary.
// jwt_bearer keys are checked on save, so those are real keys (jwt_test.go) that hold the
// canary: an HMAC secret of two canaries, a PEM key behind a line naming the canary, and
// a PKCS#12 file whose password is the canary.
var credentialBodies = map[string]string{
	"svc.apiKey":  `{"type":"api_key","fields":{"value":"` + canary + `","name":"X-Weather-Key"}}`,
	"svc.basic":   `{"type":"basic","fields":{"username":"bob","password":"` + canary + `"}}`,
	"svc.bearer":  `{"type":"bearer","fields":{"token":"` + canary + `"}}`,
	"svc.secret":  `{"type":"secret","fields":{"value":"` + canary + `"}}`,
	"svc.oauth":   `{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"cid","client_secret":"` + canary + `","token_url":"https://auth.example.com/token","scopes":"a b"}}`,
	"svc.jwt":     `{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"` + canary + canary + `","payload":{"iss":"me"}}}`,
	"svc.jwtPem":  canaryPEMBody(canary),
	"svc.pkcs12":  canaryPKCS12Body(canary),
	"svc.updated": `{"type":"basic","fields":{"username":"amy","password":"` + canary + `"}}`,
}

// exerciseAPI stores canary secrets through every path that takes one and reads them back
// every way there is, returning everything the server sent.
func exerciseAPI(t *testing.T, s *testServer) []byte {
	t.Helper()
	var seen bytes.Buffer
	record := func(r response) response {
		fmt.Fprintf(&seen, "%v\n%s\n", r.Header, r.Body)
		return r
	}
	for key, body := range credentialBodies {
		if r := record(s.do("PUT", "/v1/workspaces/default/credentials/"+key, body)); r.Status != 201 {
			t.Fatalf("PUT %s: %d %s", key, r.Status, r.Body)
		}
	}
	// Update with keep, and with the secret again.
	record(s.do("PUT", "/v1/workspaces/default/credentials/svc.updated", `{"type":"basic","fields":{"username":"amy2","password":{"keep":true}}}`))
	record(s.do("PUT", "/v1/workspaces/default/credentials/svc.updated", `{"type":"basic","fields":{"username":"amy3","password":"`+canary+`"}}`))
	// Bad inputs that carry the secret must not echo it.
	for _, bad := range []string{
		`{"type":"basic","fields":{"username":"a","password":"` + canary + `","extra":"` + canary + `"}}`,
		`{"type":"nope-` + canary + `","fields":{}}`,
		`{"type":"basic","fields":{"username":"` + canary + `:x","password":"` + canary + `"}}`,
		`{"type":"basic","fields":{"username":"a","password":"` + canary + `"`,
		`{"type":"api_key","fields":{"value":"` + canary + `","in":"` + canary + `"}}`,
		`{"type":"basic","fields":{"username":"a","password":["` + canary + `"]}}`,
	} {
		if r := record(s.do("PUT", "/v1/workspaces/default/credentials/bad", bad)); r.Status < 400 || r.Status >= 500 {
			t.Fatalf("bad body accepted: %d %s", r.Status, r.Body)
		}
	}
	record(s.do("GET", "/v1/workspaces/default/credentials", ""))
	for key := range credentialBodies {
		record(s.do("GET", "/v1/workspaces/default/credentials/"+key, ""))
	}
	record(s.do("POST", "/v1/workspaces/default/copy", `{"name":"staging"}`))
	record(s.do("GET", "/v1/workspaces/staging/credentials", ""))
	// The CLI's output too, with a secret read from stdin.
	code, out, errOut := s.cli(canary+"\n", "cred", "put", "cli.basic", "--type", "basic", "username=carol", "password=@-")
	if code != 0 {
		t.Fatalf("cli put: %d %s", code, errOut)
	}
	seen.WriteString(out + errOut)
	for _, args := range [][]string{{"cred", "list"}, {"cred", "get", "cli.basic"}, {"cred", "get", "cli.basic", "--json"}, {"cred", "list", "--json", "-w", "staging"}} {
		_, out, errOut := s.cli("", args...)
		seen.WriteString(out + errOut)
	}
	if r := record(s.do("POST", "/v1/system/master-key/rotate", "")); r.Status != 200 {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	return seen.Bytes()
}

// checkResolves opens the store with the key file and checks every canary is really
// stored, so that not finding it elsewhere means something.
func checkResolves(t *testing.T, st *store.Store, keyFile string) {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypt.ParseMasterKey(strings.TrimSpace(strings.SplitN(strings.TrimPrefix(string(b), "#"), "\n", 3)[1]))
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(st, crypt.NewKeyring(k), time.Now, slog.New(slog.DiscardHandler))
	if err := v.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	for key := range credentialBodies {
		r, err := v.Resolve(context.Background(), "default", key)
		if err != nil {
			t.Fatalf("resolve %s: %v", key, err)
		}
		found := false
		for _, s := range r.Secrets {
			found = found || strings.Contains(string(s.Reveal()), canary)
		}
		if !found {
			t.Fatalf("credential %s does not hold the canary", key)
		}
	}
}

func TestCanarySecretNeverLeaksSQLite(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data, "--log-level", "debug")
	if s.stopped || s.AdminKey == "" {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	seen := exerciseAPI(t, s)
	assertNoCanary(t, "an API response or CLI output", seen)

	// While the server runs, the WAL and SHM files hold the newest pages.
	files, _ := filepath.Glob(filepath.Join(data, "sesame.db*"))
	if len(files) < 2 {
		t.Fatalf("expected the database and its WAL, found %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		assertNoCanary(t, "the running server's "+filepath.Base(f), b)
	}
	if code := s.Stop(); code != 0 {
		t.Fatalf("graceful stop exit code %d", code)
	}
	assertNoCanary(t, "the server log", []byte(s.Stdout.String()+s.Stderr.String()))
	files, _ = filepath.Glob(filepath.Join(data, "*"))
	for _, f := range files {
		if filepath.Base(f) == "master.key" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		assertNoCanary(t, filepath.Base(f)+" after shutdown", b)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(data, "sesame.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkResolves(t, st, filepath.Join(data, "master.key"))
}

func TestCanarySecretNeverLeaksPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	data := t.TempDir()
	s := startServer(t, nil, "--data", data, "--postgres", pgURL, "--log-level", "debug", "--log-format", "json")
	if s.stopped || s.AdminKey == "" {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	seen := exerciseAPI(t, s)
	assertNoCanary(t, "an API response or CLI output", seen)
	s.Stop()
	assertNoCanary(t, "the server log", []byte(s.Stdout.String()+s.Stderr.String()))
	if files, _ := filepath.Glob(filepath.Join(data, "sesame.db*")); len(files) > 0 {
		t.Fatalf("with --postgres no SQLite file may be made, found %v", files)
	}

	// A dump of every table in the schema, as text (bytea shows as hex).
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	schema := testpg.Schema(pgURL)
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("found tables %v in schema %s", tables, schema)
	}
	var dump bytes.Buffer
	for _, table := range tables {
		rows, err := db.Query(fmt.Sprintf(`SELECT CAST(t AS text) FROM %s.%s t`, schema, table))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			rows.Scan(&line)
			dump.WriteString(line + "\n")
		}
		rows.Close()
	}
	if !strings.Contains(dump.String(), "svc.basic") {
		t.Fatalf("the dump misses the credentials: %s", dump.String())
	}
	assertNoCanary(t, "the PostgreSQL tables", dump.Bytes())

	st, err := store.OpenPostgres(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkResolves(t, st, filepath.Join(data, "master.key"))
}

func dirSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[filepath.Base(f)] = hex.EncodeToString(sum[:])
	}
	return out
}

func TestWrongOrMissingMasterKeyRefusesStart(t *testing.T) {
	data := t.TempDir()
	right, _ := crypt.GenerateMasterKey()
	env := map[string]string{"SESAME_MASTER_KEY": right.Encode()}
	s := startServer(t, env, "--data", data)
	if r := s.do("PUT", "/v1/workspaces/default/credentials/c", `{"type":"secret","fields":{"value":"x"}}`); r.Status != 201 {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	s.Stop()
	before := dirSnapshot(t, data)
	if _, ok := before["master.key"]; ok {
		t.Fatal("a master key file was written although SESAME_MASTER_KEY was given")
	}

	wrong, _ := crypt.GenerateMasterKey()
	keyFile := filepath.Join(t.TempDir(), "k")
	os.WriteFile(keyFile, []byte(wrong.Encode()+"\n"), 0o600)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"wrong key in the environment", map[string]string{"SESAME_MASTER_KEY": wrong.Encode()}, nil, "master key does not match this store"},
		{"wrong key file", nil, []string{"--master-key-file", keyFile}, "master key does not match this store"},
		{"no key at all", nil, nil, "no master key"},
		{"malformed key", map[string]string{"SESAME_MASTER_KEY": "not-base64!"}, nil, "SESAME_MASTER_KEY"},
		{"short key", map[string]string{"SESAME_MASTER_KEY": base64.StdEncoding.EncodeToString([]byte("short"))}, nil, "32 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, c.env, append([]string{"--data", data}, c.args...)...)
			if !s.stopped {
				t.Fatal("the server started")
			}
			if s.code == 0 {
				t.Fatal("exit code 0")
			}
			if !strings.Contains(s.Stderr.String(), c.want) {
				t.Fatalf("stderr %q does not say %q", s.Stderr.String(), c.want)
			}
			if s.AdminKey != "" {
				t.Fatal("an admin key was printed")
			}
			after := dirSnapshot(t, data)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Fatalf("data folder changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	// The right key still works.
	adminKey := s.AdminKey
	s = startServer(t, env, "--data", data)
	s.AdminKey = adminKey
	if r := s.do("GET", "/v1/workspaces/default/credentials/c", ""); r.Status != 200 {
		t.Fatalf("get with the right key: %d %s", r.Status, r.Body)
	}
}

func TestFirstStartCreatesMasterKeyFileAndAdmin(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	if s.AdminKey == "" || strings.Count(s.Stdout.String(), "admin key: ") != 1 {
		t.Fatalf("stdout %q: want one admin key line", s.Stdout.String())
	}
	if strings.Contains(s.Stderr.String(), s.AdminKey) {
		t.Fatal("the admin key reached the log")
	}
	if !strings.Contains(s.Stderr.String(), "NO MASTER KEY GIVEN") {
		t.Fatalf("no loud warning about the created master key: %s", s.Stderr.String())
	}
	fi, err := os.Stat(filepath.Join(data, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	for _, h := range [][2]string{{"Authorization", "Bearer " + s.AdminKey}, {"Authorization", s.AdminKey}, {"X-API-Key", s.AdminKey}} {
		code := getWith(t, s.URL+"/v1/workspaces", h[0], h[1])
		if code != 200 {
			t.Fatalf("%s: %d", h[0], code)
		}
	}
	s.Stop()
	// The second start reuses the key file and prints no key.
	s = startServer(t, nil, "--data", data)
	if s.stopped || s.AdminKey != "" {
		t.Fatalf("second start: stopped=%v stdout=%q", s.stopped, s.Stdout.String())
	}
}

func TestAdminKeyFromEnvironment(t *testing.T) {
	_, key, _ := runOK(t, "keys", "generate", "--api-key")
	key = strings.TrimSpace(key)
	s := startServer(t, map[string]string{"SESAME_ADMIN_KEY": key}, "--data", t.TempDir())
	if s.AdminKey != key {
		t.Fatalf("admin key printed %q, want the one from SESAME_ADMIN_KEY", s.AdminKey)
	}
	if r := s.do("GET", "/v1/workspaces", ""); r.Status != 200 {
		t.Fatalf("the given admin key does not work: %d", r.Status)
	}
	bad := startServer(t, map[string]string{"SESAME_ADMIN_KEY": "sesame_tooShort"}, "--data", t.TempDir())
	if !bad.stopped || bad.code == 0 || !strings.Contains(bad.Stderr.String(), "SESAME_ADMIN_KEY is not a well-formed key") {
		t.Fatalf("malformed SESAME_ADMIN_KEY: stopped=%v code=%d stderr=%s", bad.stopped, bad.code, bad.Stderr.String())
	}
}

func TestKeysRotateThroughCLI(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	for i := range 20 {
		if r := s.do("PUT", fmt.Sprintf("/v1/workspaces/default/credentials/c%d", i), `{"type":"secret","fields":{"value":"v"}}`); r.Status != 201 {
			t.Fatal(r.Status)
		}
	}
	oldFile, _ := os.ReadFile(filepath.Join(data, "master.key"))
	code, out, errOut := s.cli("", "keys", "rotate")
	// 20 credentials + the key check + the server secrets: API key HMAC, audit HMAC, app
	// trust root, app token key.
	if code != 0 || !strings.Contains(out, "25 sealed values re-wrapped") {
		t.Fatalf("keys rotate: %d %q %q", code, out, errOut)
	}
	newFile, _ := os.ReadFile(filepath.Join(data, "master.key"))
	if bytes.Equal(oldFile, newFile) || strings.Count(string(newFile), "=\n") != 1 {
		t.Fatalf("key file after rotation:\n%s", newFile)
	}
	s.Stop()

	// The old key alone no longer opens the store; the new file does.
	oldKeyFile := filepath.Join(t.TempDir(), "old.key")
	os.WriteFile(oldKeyFile, oldFile, 0o600)
	if s := startServer(t, nil, "--data", data, "--master-key-file", oldKeyFile); !s.stopped {
		t.Fatal("the retired key still opens the store")
	}
	s = startServer(t, nil, "--data", data)
	if s.stopped {
		t.Fatalf("restart after rotation failed: %s", s.Stderr.String())
	}
}

func TestKeysRotateWithEnvironmentKey(t *testing.T) {
	k, _ := crypt.GenerateMasterKey()
	s := startServer(t, map[string]string{"SESAME_MASTER_KEY": k.Encode()}, "--data", t.TempDir())
	code, _, errOut := s.cli("", "keys", "rotate")
	if code == 0 || !strings.Contains(errOut, "pass new_key") {
		t.Fatalf("rotate without a new key under SESAME_MASTER_KEY: %d %s", code, errOut)
	}
	newKey, _ := crypt.GenerateMasterKey()
	f := filepath.Join(t.TempDir(), "new.key")
	os.WriteFile(f, []byte(newKey.Encode()), 0o600)
	code, out, errOut := s.cli("", "keys", "rotate", "--new-key-file", f)
	if code != 0 || !strings.Contains(out, newKey.ID().String()) || !strings.Contains(out, "set SESAME_MASTER_KEY") {
		t.Fatalf("rotate with --new-key-file: %d %q %q", code, out, errOut)
	}
	assertNoCanary(t, "log", nil)
	if strings.Contains(s.Stderr.String(), newKey.Encode()) {
		t.Fatal("the new master key reached the log")
	}
}

func TestJSONLogs(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--log-format", "json")
	s.do("GET", "/v1/workspaces", "")
	s.Stop()
	lines := strings.Split(strings.TrimSpace(s.Stderr.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("too few log lines: %q", lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, `"level"`) {
			t.Fatalf("not a JSON log line: %s", l)
		}
	}
	if !strings.Contains(s.Stderr.String(), `"path":"/v1/workspaces"`) || !strings.Contains(s.Stderr.String(), `"request_id"`) {
		t.Fatalf("no access log line for the request: %s", s.Stderr.String())
	}
}
