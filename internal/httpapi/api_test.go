package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"github.com/sesamehq/sesame/internal/testlog"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// canary is every secret value these tests store; no response or log line may hold it.
const canary = "CANARY-7f3a"

// tickClock advances one second on every reading, so that every write has its own time.
type tickClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *tickClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// syncBuffer collects output written from many goroutines.
type syncBuffer = testlog.Buffer

// env is the real API over a real SQLite store in a temp dir.
type env struct {
	path    string
	st      *store.Store
	v       *vault.Vault
	handler *httpapi.Server
	key     string
	logs    *syncBuffer
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "api.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	mk, err := crypt.GenerateMasterKey()
	if err != nil {
		tb.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := &tickClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := vault.New(st, crypt.NewKeyring(mk), clock.Now, logger)
	if err := v.Unlock(ctx); err != nil {
		tb.Fatal(err)
	}
	secret, err := v.ServerSecret(ctx, "api-key-hmac")
	if err != nil {
		tb.Fatal(err)
	}
	authn := auth.New(st, auth.NewHasher(secret), nil, logger)
	key, err := authn.Bootstrap(ctx, "")
	if err != nil {
		tb.Fatal(err)
	}
	h := httpapi.New(httpapi.Config{
		Vault:  v,
		Auth:   authn,
		Ready:  st.Ping,
		Logger: logger,
		Rotate: func(ctx context.Context, newKey string) (vault.RotateResult, error) {
			k, err := crypt.GenerateMasterKey()
			if err != nil {
				return vault.RotateResult{}, err
			}
			return v.RotateMasterKey(ctx, k, nil)
		},
	})
	e := &env{path: path, st: st, v: v, handler: h, key: string(key.Reveal()), logs: logs}
	tb.Cleanup(func() {
		if strings.Contains(logs.String(), canary) {
			tb.Errorf("a secret value reached the log:\n%s", logs.String())
		}
	})
	return e
}

// client is a test's view of the API through a real HTTP server.
type client struct {
	t    *testing.T
	env  *env
	url  string
	http *http.Client
}

func newClient(t *testing.T) *client {
	t.Helper()
	e := newEnv(t)
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	return &client{t: t, env: e, url: srv.URL, http: srv.Client()}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// noAuth as a header value removes the default Authorization header.
const noAuth = "\x00none"

// do sends a request with the admin key and, for a body, Content-Type: application/json;
// headers override both. Every response is checked for the canary.
func (c *client) do(method, path string, body []byte, headers map[string]string) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.env.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == noAuth {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if bytes.Contains(b, []byte(canary)) {
		c.t.Fatalf("%s %s: the response shows a secret value:\n%s", method, path, b)
	}
	for name, vs := range res.Header {
		for _, v := range vs {
			if strings.Contains(v, canary) {
				c.t.Fatalf("%s %s: header %s shows a secret value", method, path, name)
			}
		}
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (c *client) mustDo(method, path string, body []byte, want int) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body, nil)
	if r.status != want {
		c.t.Fatalf("%s %s = %d, want %d:\n%s", method, path, r.status, want, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	return r.json(c.t)
}

func secretBody(value string) []byte {
	return []byte(fmt.Sprintf(`{"type":"secret","fields":{"value":%q}}`, value))
}

// --- store snapshots ---

// snapshot is everything the store holds: through its API (workspaces, every credential
// with its version and sealed blobs) and, below that, every row of every table.
type snapshot struct {
	Workspaces  []sesame.Workspace
	Credentials []sesame.CredentialRecord
	Rows        map[string][]string
}

func (e *env) snapshot(t testing.TB) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	s.Workspaces, err = e.st.ListWorkspaces(ctx, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range s.Workspaces {
		recs, err := e.st.ListCredentials(ctx, ws.Name, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			full, err := e.st.GetCredential(ctx, ws.Name, r.Key)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(full, r) {
				t.Fatalf("ListCredentials and GetCredential disagree on %s/%s", ws.Name, r.Key)
			}
			s.Credentials = append(s.Credentials, full)
		}
	}
	s.Rows = e.dumpTables(t)
	return s
}

func (e *env) dumpTables(t testing.TB) map[string][]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	out := map[string][]string{}
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%q", vals))
		}
		rows.Close()
		sort.Strings(lines)
		out[table] = lines
	}
	return out
}

func (s snapshot) diff(o snapshot) string {
	if !reflect.DeepEqual(s.Workspaces, o.Workspaces) {
		return fmt.Sprintf("workspaces %v -> %v", s.Workspaces, o.Workspaces)
	}
	if len(s.Credentials) != len(o.Credentials) {
		return fmt.Sprintf("%d credentials -> %d", len(s.Credentials), len(o.Credentials))
	}
	for i := range s.Credentials {
		if !reflect.DeepEqual(s.Credentials[i], o.Credentials[i]) {
			return fmt.Sprintf("credential %+v -> %+v", s.Credentials[i], o.Credentials[i])
		}
	}
	for table, rows := range s.Rows {
		if !slices.Equal(rows, o.Rows[table]) {
			return fmt.Sprintf("table %s: %v -> %v", table, rows, o.Rows[table])
		}
	}
	if len(s.Rows) != len(o.Rows) {
		return "tables were added or dropped"
	}
	return ""
}

// --- bad input ---

// adminKeyPlaceholder in a bad-input case's header stands for that case's admin key.
const adminKeyPlaceholder = "{admin-key}"

// seedBadInputFixtures creates what the bad-input cases refer to.
func (c *client) seedBadInputFixtures() {
	c.t.Helper()
	c.mustDo("PUT", "/v1/workspaces/default/credentials/weather.key", secretBody(canary), http.StatusCreated)
	c.mustDo("PUT", "/v1/workspaces/default/credentials/google.oauth", []byte(`{"type":"oauth2","fields":{
		"grant":"authorization_code","client_id":"cid","client_secret":"`+canary+`","provider":"google"}}`), http.StatusCreated)
	c.mustDo("PUT", "/v1/workspaces/default/credentials/weather.basicAuth",
		[]byte(`{"type":"basic","fields":{"username":"alice","password":"`+canary+`"}}`), http.StatusCreated)
	c.mustDo("POST", "/v1/workspaces", []byte(`{"name":"empty"}`), http.StatusCreated)
	c.mustDo("POST", "/v1/workspaces/default/copy", []byte(`{"name":"staging"}`), http.StatusCreated)
}

func TestBadInputChangesNothing(t *testing.T) {
	// Each case runs on a fresh server and store of its own, so one failure cannot
	// cascade into the next.
	otherKey, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cred := "/v1/workspaces/default/credentials/new.cred"
	good := secretBody(canary)
	huge := []byte(`{"type":"secret","fields":{"value":"` + strings.Repeat("A", 1<<20) + `"}}`)

	tests := []struct {
		name    string
		method  string
		path    string
		body    []byte
		headers map[string]string
		status  int
		code    sesame.Code
		allow   string // for 405s
	}{
		// JSON syntax
		{"malformed JSON", "PUT", cred, []byte(`{"type":"secret","fields":{"value":"` + canary + `"}`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"empty body", "PUT", cred, []byte{}, nil, 400, sesame.CodeInvalidJSON, ""},
		{"not JSON", "PUT", cred, []byte(`value=` + canary), nil, 400, sesame.CodeInvalidJSON, ""},
		{"trailing garbage", "PUT", cred, append(bytes.Clone(good), []byte(` {"x":1}`)...), nil, 400, sesame.CodeInvalidJSON, ""},
		{"trailing close brace", "PUT", cred, append(bytes.Clone(good), '}'), nil, 400, sesame.CodeInvalidJSON, ""},
		{"trailing close bracket", "PUT", cred, append(bytes.Clone(good), ']'), nil, 400, sesame.CodeInvalidJSON, ""},
		{"workspace malformed JSON", "POST", "/v1/workspaces", []byte(`{"name":`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"workspace trailing garbage", "POST", "/v1/workspaces", []byte(`{"name":"ws1"} x`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"workspace trailing close brace", "POST", "/v1/workspaces", []byte(`{"name":"ws1"}}`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"copy trailing close bracket", "POST", "/v1/workspaces/default/copy", []byte(`{"name":"ws1"}]`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"rotate malformed JSON", "POST", "/v1/system/master-key/rotate", []byte(`{"new_key":`), nil, 400, sesame.CodeInvalidJSON, ""},

		// Schema
		{"unknown type", "PUT", cred, []byte(`{"type":"kerberos","fields":{"value":"` + canary + `"}}`), nil, 400, sesame.CodeUnknownType, ""},
		{"secret pasted as the type", "PUT", cred, []byte(`{"type":"` + canary + `","fields":{}}`), nil, 400, sesame.CodeUnknownType, ""},
		{"unknown top-level field", "PUT", cred, []byte(`{"type":"secret","fields":{"value":"` + canary + `"},"extra":1}`), nil, 400, sesame.CodeUnknownField, ""},
		{"unknown field in fields", "PUT", cred, []byte(`{"type":"secret","fields":{"value":"` + canary + `","valu":"` + canary + `"}}`), nil, 400, sesame.CodeUnknownField, ""},
		{"workspace unknown field", "POST", "/v1/workspaces", []byte(`{"name":"ws1","force":true}`), nil, 400, sesame.CodeUnknownField, ""},
		{"missing field", "PUT", cred, []byte(`{"type":"basic","fields":{"username":"bob"}}`), nil, 400, sesame.CodeMissingField, ""},
		{"missing type", "PUT", cred, []byte(`{"fields":{"value":"` + canary + `"}}`), nil, 400, sesame.CodeMissingField, ""},
		{"workspace missing name", "POST", "/v1/workspaces", []byte(`{}`), nil, 400, sesame.CodeMissingField, ""},
		{"copy missing name", "POST", "/v1/workspaces/default/copy", []byte(`{}`), nil, 400, sesame.CodeMissingField, ""},
		{"wrong JSON type for type", "PUT", cred, []byte(`{"type":5,"fields":{"value":"` + canary + `"}}`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"wrong JSON type for fields", "PUT", cred, []byte(`{"type":"secret","fields":"` + canary + `"}`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"wrong JSON type in fields", "PUT", cred, []byte(`{"type":"basic","fields":{"username":5,"password":"` + canary + `"}}`), nil, 400, sesame.CodeInvalidField, ""},
		{"wrong JSON type for secret", "PUT", cred, []byte(`{"type":"secret","fields":{"value":12345}}`), nil, 400, sesame.CodeInvalidField, ""},
		{"workspace wrong JSON type", "POST", "/v1/workspaces", []byte(`{"name":5}`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"workspace body is an array", "POST", "/v1/workspaces", []byte(`["ws1"]`), nil, 400, sesame.CodeInvalidJSON, ""},
		{"CRLF in a public field", "PUT", cred, []byte(`{"type":"api_key","fields":{"value":"` + canary + `","name":"X-Key\r\nX-Evil: 1"}}`), nil, 400, sesame.CodeInvalidField, ""},
		{"token_url with user info", "PUT", cred, []byte(`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"` + canary + `","token_url":"https://u:` + canary + `@a.example/t"}}`), nil, 400, sesame.CodeInvalidField, ""},
		{"oversized body", "PUT", cred, huge, nil, 413, sesame.CodePayloadTooLarge, ""},
		{"oversized update", "PUT", "/v1/workspaces/default/credentials/weather.key", huge, nil, 413, sesame.CodePayloadTooLarge, ""},
		{"oversized workspace body", "POST", "/v1/workspaces", []byte(`{"name":"` + strings.Repeat("a", 1<<20) + `"}`), nil, 413, sesame.CodePayloadTooLarge, ""},

		// Names
		{"uppercase workspace", "PUT", "/v1/workspaces/Default/credentials/x", good, nil, 400, sesame.CodeInvalidName, ""},
		{"uppercase workspace get", "GET", "/v1/workspaces/Default", nil, nil, 400, sesame.CodeInvalidName, ""},
		{"uppercase workspace delete", "DELETE", "/v1/workspaces/STAGING?force=true", nil, nil, 400, sesame.CodeInvalidName, ""},
		{"dot-dot workspace", "PUT", "/v1/workspaces/%2E%2E/credentials/x", good, nil, 400, sesame.CodeInvalidName, ""},
		{"dot-dot key", "PUT", "/v1/workspaces/default/credentials/%2E%2E", good, nil, 400, sesame.CodeInvalidName, ""},
		{"dot key", "PUT", "/v1/workspaces/default/credentials/.hidden", good, nil, 400, sesame.CodeInvalidName, ""},
		{"200-character key", "PUT", "/v1/workspaces/default/credentials/" + strings.Repeat("k", 200), good, nil, 400, sesame.CodeInvalidName, ""},
		{"key with a space", "PUT", "/v1/workspaces/default/credentials/weather%20key", good, nil, 400, sesame.CodeInvalidName, ""},
		{"key with a slash", "PUT", "/v1/workspaces/default/credentials/a%2Fb", good, nil, 400, sesame.CodeInvalidName, ""},
		{"key with a NUL", "PUT", "/v1/workspaces/default/credentials/a%00b", good, nil, 400, sesame.CodeInvalidName, ""},
		{"key with unicode", "PUT", "/v1/workspaces/default/credentials/caf%C3%A9", good, nil, 400, sesame.CodeInvalidName, ""},
		{"delete key with a space", "DELETE", "/v1/workspaces/default/credentials/weather%20key", nil, nil, 400, sesame.CodeInvalidName, ""},
		{"64-character workspace", "POST", "/v1/workspaces", []byte(`{"name":"` + strings.Repeat("w", 64) + `"}`), nil, 400, sesame.CodeInvalidName, ""},
		{"workspace with a dot", "POST", "/v1/workspaces", []byte(`{"name":"a.b"}`), nil, 400, sesame.CodeInvalidName, ""},
		{"copy to an uppercase name", "POST", "/v1/workspaces/default/copy", []byte(`{"name":"Prod"}`), nil, 400, sesame.CodeInvalidName, ""},
		{"copy to dot-dot", "POST", "/v1/workspaces/default/copy", []byte(`{"name":".."}`), nil, 400, sesame.CodeInvalidName, ""},

		// Media type
		{"text/plain credential", "PUT", cred, good, map[string]string{"Content-Type": "text/plain"}, 415, sesame.CodeUnsupportedMediaType, ""},
		{"form workspace", "POST", "/v1/workspaces", []byte(`name=ws1`), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, sesame.CodeUnsupportedMediaType, ""},
		{"garbage content type", "PUT", cred, good, map[string]string{"Content-Type": ";;;"}, 415, sesame.CodeUnsupportedMediaType, ""},

		// Paging
		{"limit zero", "GET", "/v1/workspaces?limit=0", nil, nil, 400, sesame.CodeInvalidArgument, ""},
		{"limit negative", "GET", "/v1/workspaces/default/credentials?limit=-1", nil, nil, 400, sesame.CodeInvalidArgument, ""},
		{"limit not a number", "GET", "/v1/workspaces?limit=ten", nil, nil, 400, sesame.CodeInvalidArgument, ""},
		{"limit too large", "GET", "/v1/workspaces/default/credentials?limit=1001", nil, nil, 400, sesame.CodeInvalidArgument, ""},
		{"cursor not base64url", "GET", "/v1/workspaces/default/credentials?cursor=%21%21%21", nil, nil, 400, sesame.CodeInvalidArgument, ""},
		{"cursor padded", "GET", "/v1/workspaces?cursor=YQ%3D%3D", nil, nil, 400, sesame.CodeInvalidArgument, ""},
		{"force not a bool", "DELETE", "/v1/workspaces/staging?force=yes", nil, nil, 400, sesame.CodeInvalidArgument, ""},

		// Routing
		{"unknown route", "GET", "/v1/nothing-here", nil, nil, 404, sesame.CodeRouteNotFound, ""},
		{"unknown version", "PUT", "/v2/workspaces/default/credentials/x", good, nil, 404, sesame.CodeRouteNotFound, ""},
		{"root", "GET", "/", nil, nil, 404, sesame.CodeRouteNotFound, ""},
		{"wrong method on a credential", "PATCH", "/v1/workspaces/default/credentials/weather.key", good, nil, 405, sesame.CodeMethodNotAllowed, "GET, PUT, DELETE"},
		{"wrong method on a workspace", "POST", "/v1/workspaces/staging", []byte(`{}`), nil, 405, sesame.CodeMethodNotAllowed, "GET, DELETE"},
		{"wrong method on workspaces", "DELETE", "/v1/workspaces", nil, nil, 405, sesame.CodeMethodNotAllowed, "GET, POST"},
		{"wrong method on copy", "GET", "/v1/workspaces/default/copy", nil, nil, 405, sesame.CodeMethodNotAllowed, "POST"},
		{"wrong method on rotate", "GET", "/v1/system/master-key/rotate", nil, nil, 405, sesame.CodeMethodNotAllowed, "POST"},

		// Authentication
		{"no key", "PUT", cred, good, map[string]string{"Authorization": noAuth}, 401, sesame.CodeUnauthenticated, ""},
		{"no key delete", "DELETE", "/v1/workspaces/staging?force=true", nil, map[string]string{"Authorization": noAuth}, 401, sesame.CodeUnauthenticated, ""},
		{"no key rotate", "POST", "/v1/system/master-key/rotate", nil, map[string]string{"Authorization": noAuth}, 401, sesame.CodeUnauthenticated, ""},
		{"wrong key", "PUT", cred, good, map[string]string{"Authorization": "Bearer " + string(otherKey.Reveal())}, 401, sesame.CodeUnauthenticated, ""},
		{"wrong key in X-API-Key", "DELETE", "/v1/workspaces/default/credentials/weather.key", nil, map[string]string{"Authorization": noAuth, "X-API-Key": string(otherKey.Reveal())}, 401, sesame.CodeUnauthenticated, ""},
		{"malformed key", "PUT", cred, good, map[string]string{"Authorization": "Bearer " + canary}, 401, sesame.CodeUnauthenticated, ""},
		{"basic auth", "PUT", cred, good, map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, sesame.CodeUnsupportedAuthType, ""},
		{"wrong key on a read", "GET", "/v1/workspaces/default/credentials/weather.key", nil, map[string]string{"Authorization": adminKeyPlaceholder + "x"}, 401, sesame.CodeUnauthenticated, ""},

		// Vault rules
		{"update without the stored secret", "PUT", "/v1/workspaces/default/credentials/google.oauth",
			[]byte(`{"type":"oauth2","fields":{"grant":"authorization_code","client_id":"cid2","provider":"google"}}`), nil, 400, sesame.CodeSecretRequired, ""},
		{"update without the stored required secret", "PUT", "/v1/workspaces/default/credentials/weather.basicAuth",
			[]byte(`{"type":"basic","fields":{"username":"bob"}}`), nil, 400, sesame.CodeSecretRequired, ""},
		{"update with null for the stored secret", "PUT", "/v1/workspaces/default/credentials/weather.key",
			[]byte(`{"type":"secret","fields":{"value":null}}`), nil, 400, sesame.CodeSecretRequired, ""},
		{"keep on create", "PUT", cred, []byte(`{"type":"secret","fields":{"value":{"keep":true}}}`), nil, 400, sesame.CodeSecretRequired, ""},
		{"keep of a copied secret", "PUT", "/v1/workspaces/staging/credentials/weather.key",
			[]byte(`{"type":"secret","fields":{"value":{"keep":true}}}`), nil, 400, sesame.CodeSecretRequired, ""},
		{"keep of a field never stored", "PUT", "/v1/workspaces/default/credentials/google.oauth",
			[]byte(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":{"keep":true}}}`), nil, 400, sesame.CodeSecretRequired, ""},
		{"put into a missing workspace", "PUT", "/v1/workspaces/nowhere/credentials/x", good, nil, 404, sesame.CodeNotFound, ""},
		{"delete a missing credential", "DELETE", "/v1/workspaces/default/credentials/nothing", nil, nil, 404, sesame.CodeNotFound, ""},
		{"delete in a missing workspace", "DELETE", "/v1/workspaces/nowhere/credentials/x", nil, nil, 404, sesame.CodeNotFound, ""},
		{"delete a missing workspace", "DELETE", "/v1/workspaces/nowhere?force=true", nil, nil, 404, sesame.CodeNotFound, ""},
		{"create an existing workspace", "POST", "/v1/workspaces", []byte(`{"name":"staging"}`), nil, 409, sesame.CodeAlreadyExists, ""},
		{"copy onto an existing workspace", "POST", "/v1/workspaces/staging/copy", []byte(`{"name":"empty"}`), nil, 409, sesame.CodeAlreadyExists, ""},
		{"copy a missing workspace", "POST", "/v1/workspaces/nowhere/copy", []byte(`{"name":"ws1"}`), nil, 404, sesame.CodeNotFound, ""},
		{"delete the default workspace", "DELETE", "/v1/workspaces/default", nil, nil, 409, sesame.CodeProtected, ""},
		{"force-delete the default workspace", "DELETE", "/v1/workspaces/default?force=true", nil, nil, 409, sesame.CodeProtected, ""},
		{"delete a non-empty workspace", "DELETE", "/v1/workspaces/staging", nil, nil, 409, sesame.CodeNotEmpty, ""},
		{"delete a non-empty workspace with force=false", "DELETE", "/v1/workspaces/staging?force=false", nil, nil, 409, sesame.CodeNotEmpty, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t)
			c.seedBadInputFixtures()
			for k, v := range tt.headers {
				tt.headers[k] = strings.ReplaceAll(v, adminKeyPlaceholder, c.env.key)
			}
			before := c.env.snapshot(t)
			r := c.do(tt.method, tt.path, tt.body, tt.headers)
			if r.status != tt.status {
				t.Errorf("status = %d, want %d\n%s", r.status, tt.status, r.body)
			}
			checkErrorResponse(t, r, tt.code)
			if tt.status == 405 && r.header.Get("Allow") != tt.allow {
				t.Errorf("Allow = %q, want %q", r.header.Get("Allow"), tt.allow)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", r.header.Get("WWW-Authenticate"))
			}
			if d := before.diff(c.env.snapshot(t)); d != "" {
				t.Errorf("the store changed: %s", d)
			}
		})
	}
}

// checkErrorResponse checks the shape every error has: JSON {"code","message","request_id"}
// with the given code, and X-Request-Id equal to request_id.
func checkErrorResponse(t *testing.T, r response, code sesame.Code) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, r.body)
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, []string{"code", "message", "request_id"}) {
		t.Errorf("error body has keys %v, want code, message, request_id: %s", keys, r.body)
	}
	if got, _ := body["code"].(string); got != string(code) {
		t.Errorf("code = %q, want %q (message %q)", got, code, body["message"])
	}
	if msg, _ := body["message"].(string); msg == "" {
		t.Error("empty message")
	}
	id, _ := body["request_id"].(string)
	if id == "" || r.header.Get("X-Request-Id") != id {
		t.Errorf("X-Request-Id = %q, body request_id = %q; want them equal and set", r.header.Get("X-Request-Id"), id)
	}
}

func TestRequestIDIsEchoedOrMade(t *testing.T) {
	c := newClient(t)
	r := c.do("GET", "/v1/workspaces/default", nil, map[string]string{"X-Request-Id": "trace-123.a_b"})
	if r.status != 200 || r.header.Get("X-Request-Id") != "trace-123.a_b" {
		t.Fatalf("status %d, X-Request-Id %q; want the caller's ID", r.status, r.header.Get("X-Request-Id"))
	}
	for _, bad := range []string{strings.Repeat("a", 65), "has space", "new\tline", "quote\"d", canary + "<script>"} {
		r := c.do("GET", "/v1/workspaces/nowhere", nil, map[string]string{"X-Request-Id": bad})
		id := r.header.Get("X-Request-Id")
		if id == "" || id == bad {
			t.Fatalf("X-Request-Id %q was echoed as %q; want a fresh ID", bad, id)
		}
		checkErrorResponse(t, r, sesame.CodeNotFound)
	}
	a := c.do("GET", "/healthz", nil, nil).header.Get("X-Request-Id")
	b := c.do("GET", "/healthz", nil, nil).header.Get("X-Request-Id")
	if a == "" || a == b {
		t.Fatalf("request IDs %q and %q; want distinct fresh IDs", a, b)
	}
}

func TestOpenAPIServedWithAuth(t *testing.T) {
	c := newClient(t)
	r := c.do("GET", "/v1/openapi.json", nil, map[string]string{"Authorization": noAuth})
	if r.status != 401 {
		t.Fatalf("without a key: %d, want 401", r.status)
	}
	checkErrorResponse(t, r, sesame.CodeUnauthenticated)

	r = c.do("GET", "/v1/openapi.json", nil, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("with a key: %d %q", r.status, r.header.Get("Content-Type"))
	}
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	// The same document, but for its servers (openapi_lint_test.go checks those).
	var got, file map[string]any
	if json.Unmarshal(r.body, &got) != nil || json.Unmarshal(want, &file) != nil {
		t.Fatal("not JSON")
	}
	delete(got, "servers")
	delete(file, "servers")
	if !reflect.DeepEqual(got, file) {
		t.Fatal("GET /v1/openapi.json does not return openapi.json")
	}
	if doc := r.json(t); doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v", doc["openapi"])
	}
}

func TestHealthAndReadiness(t *testing.T) {
	c := newClient(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		r := c.do("GET", path, nil, map[string]string{"Authorization": noAuth})
		if r.status != 200 {
			t.Fatalf("%s = %d:\n%s", path, r.status, r.body)
		}
	}
}

// --- happy path ---

// checkSecretStates checks that every secret field of a credential view is only a
// state: {"set": true, "updated_at": ...} or, after a copy, {"set": false, "needs_secret": true}.
func checkSecretStates(t *testing.T, view map[string]any) {
	t.Helper()
	typ, _ := view["type"].(string)
	kind, ok := credential.Lookup(typ)
	if !ok {
		t.Fatalf("view has type %q", typ)
	}
	fields, _ := view["fields"].(map[string]any)
	for _, name := range kind.SecretFields() {
		v, present := fields[name]
		if !present {
			continue
		}
		state, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("secret field %q is shown as %v", name, v)
		}
		switch {
		case state["set"] == true:
			if len(state) != 2 {
				t.Fatalf("secret field %q shown as %v; want only set and updated_at", name, state)
			}
			if ts, _ := state["updated_at"].(string); ts == "" {
				t.Fatalf("secret field %q has no updated_at: %v", name, state)
			} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
				t.Fatalf("secret field %q updated_at %q: %v", name, ts, err)
			}
		case state["set"] == false && state["needs_secret"] == true && len(state) == 2:
		default:
			t.Fatalf("secret field %q shown as %v", name, state)
		}
	}
}

func secretUpdatedAt(t *testing.T, view map[string]any, field string) string {
	t.Helper()
	fields, _ := view["fields"].(map[string]any)
	state, _ := fields[field].(map[string]any)
	ts, _ := state["updated_at"].(string)
	if ts == "" {
		t.Fatalf("field %q has no updated_at in %v", field, view)
	}
	return ts
}

func TestCredentialLifecycle(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	// Create five, of several types.
	bodies := map[string]string{
		"a.key":    `{"type":"api_key","fields":{"value":"` + canary + `"}}`,
		"b.basic":  `{"type":"basic","fields":{"username":"alice","password":"` + canary + `"}}`,
		"c.bearer": `{"type":"bearer","fields":{"token":"` + canary + `"}}`,
		"d.oauth":  `{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"cid","client_secret":"` + canary + `","token_url":"https://auth.example.com/token","scopes":"a b"}}`,
		"e.jwt":    `{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"` + strings.Repeat(canary, 3) + `","payload":{"iss":"me"}}}`, // HS256 needs 32 bytes
	}
	keys := slices.Sorted(maps.Keys(bodies))
	for _, k := range keys {
		view := c.mustDo("PUT", "/v1/workspaces/default/credentials/"+k, []byte(bodies[k]), http.StatusCreated)
		checkSecretStates(t, view)
		if view["key"] != k || view["workspace"] != "default" || view["version"] != float64(1) {
			t.Fatalf("created view = %v", view)
		}
	}
	apiKey := c.mustDo("GET", "/v1/workspaces/default/credentials/a.key", nil, http.StatusOK)
	checkSecretStates(t, apiKey)
	if f := apiKey["fields"].(map[string]any); f["name"] != "X-API-Key" || f["in"] != "header" {
		t.Fatalf("api_key defaults not shown: %v", f)
	}

	// List two at a time.
	var listed []string
	pages := 0
	path := "/v1/workspaces/default/credentials?limit=2"
	for {
		page := c.mustDo("GET", path, nil, http.StatusOK)
		pages++
		items, _ := page["items"].([]any)
		if len(items) == 0 || len(items) > 2 {
			t.Fatalf("page %d has %d items", pages, len(items))
		}
		for _, it := range items {
			view := it.(map[string]any)
			checkSecretStates(t, view)
			listed = append(listed, view["key"].(string))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		path = "/v1/workspaces/default/credentials?limit=2&cursor=" + next
	}
	if pages != 3 || !slices.Equal(listed, keys) {
		t.Fatalf("listed %v in %d pages, want %v in 3", listed, pages, keys)
	}
	all := c.mustDo("GET", "/v1/workspaces/default/credentials", nil, http.StatusOK)
	if items := all["items"].([]any); len(items) != 5 || all["next_cursor"] != nil {
		t.Fatalf("unpaged list = %d items, next_cursor %v", len(items), all["next_cursor"])
	}

	// Update with keep: public fields change, the secret and its time do not.
	before := c.mustDo("GET", "/v1/workspaces/default/credentials/b.basic", nil, http.StatusOK)
	updated := c.mustDo("PUT", "/v1/workspaces/default/credentials/b.basic",
		[]byte(`{"type":"basic","fields":{"username":"bob","password":{"keep":true}}}`), http.StatusOK)
	checkSecretStates(t, updated)
	if updated["version"] != float64(2) || updated["fields"].(map[string]any)["username"] != "bob" {
		t.Fatalf("after keep: %v", updated)
	}
	if secretUpdatedAt(t, updated, "password") != secretUpdatedAt(t, before, "password") {
		t.Fatal("keep changed the secret's updated_at")
	}
	if updated["created_at"] != before["created_at"] || updated["updated_at"] == before["updated_at"] {
		t.Fatalf("times after update: created %v -> %v, updated %v -> %v", before["created_at"], updated["created_at"], before["updated_at"], updated["updated_at"])
	}
	if r, err := c.env.v.Resolve(ctx, "default", "b.basic"); err != nil || string(r.Secrets["password"].Reveal()) != canary {
		t.Fatalf("after keep, the password is not the stored one (%v)", err)
	}

	// Update with a new secret: its updated_at moves.
	again := c.mustDo("PUT", "/v1/workspaces/default/credentials/b.basic",
		[]byte(`{"type":"basic","fields":{"username":"bob","password":"`+canary+`-2"}}`), http.StatusOK)
	checkSecretStates(t, again)
	if again["version"] != float64(3) {
		t.Fatalf("version after second update = %v", again["version"])
	}
	t1, _ := time.Parse(time.RFC3339Nano, secretUpdatedAt(t, updated, "password"))
	t2, _ := time.Parse(time.RFC3339Nano, secretUpdatedAt(t, again, "password"))
	if !t2.After(t1) {
		t.Fatalf("a new secret did not move updated_at: %v -> %v", t1, t2)
	}
	if r, err := c.env.v.Resolve(ctx, "default", "b.basic"); err != nil || string(r.Secrets["password"].Reveal()) != canary+"-2" {
		t.Fatalf("after update, the password is not the new one (%v)", err)
	}
	got := c.mustDo("GET", "/v1/workspaces/default/credentials/b.basic", nil, http.StatusOK)
	if secretUpdatedAt(t, got, "password") != secretUpdatedAt(t, again, "password") {
		t.Fatal("GET and PUT disagree on updated_at")
	}

	// Copy: same structure, secrets needed.
	ws := c.mustDo("POST", "/v1/workspaces/default/copy", []byte(`{"name":"staging"}`), http.StatusCreated)
	if ws["name"] != "staging" {
		t.Fatalf("copy returned %v", ws)
	}
	copied := c.mustDo("GET", "/v1/workspaces/staging/credentials/d.oauth", nil, http.StatusOK)
	checkSecretStates(t, copied)
	if ns, _ := copied["needs_secrets"].([]any); len(ns) != 1 || ns[0] != "client_secret" {
		t.Fatalf("copied credential needs_secrets = %v", copied["needs_secrets"])
	}
	if f := copied["fields"].(map[string]any); f["client_id"] != "cid" || f["token_url"] != "https://auth.example.com/token" {
		t.Fatalf("copied public fields = %v", f)
	}
	list := c.mustDo("GET", "/v1/workspaces/staging/credentials", nil, http.StatusOK)
	if items := list["items"].([]any); len(items) != 5 {
		t.Fatalf("copied workspace lists %d credentials", len(items))
	}
	for _, it := range list["items"].([]any) {
		view := it.(map[string]any)
		checkSecretStates(t, view)
		if ns, _ := view["needs_secrets"].([]any); len(ns) == 0 {
			t.Fatalf("copied %v has no needs_secrets", view["key"])
		}
	}
	// Supplying the secret clears needs_secrets.
	fixed := c.mustDo("PUT", "/v1/workspaces/staging/credentials/a.key", []byte(bodies["a.key"]), http.StatusOK)
	if _, ok := fixed["needs_secrets"]; ok {
		t.Fatalf("needs_secrets after supplying the secret: %v", fixed)
	}
	wsList := c.mustDo("GET", "/v1/workspaces", nil, http.StatusOK)
	if items := wsList["items"].([]any); len(items) != 2 {
		t.Fatalf("workspaces = %v", items)
	}

	// Delete a credential, then the copied workspace.
	if r := c.do("DELETE", "/v1/workspaces/default/credentials/c.bearer", nil, nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete = %d %s", r.status, r.body)
	}
	r := c.do("GET", "/v1/workspaces/default/credentials/c.bearer", nil, nil)
	if r.status != 404 {
		t.Fatalf("GET after delete = %d", r.status)
	}
	checkErrorResponse(t, r, sesame.CodeNotFound)
	if _, err := c.env.st.GetCredential(ctx, "default", "c.bearer"); sesame.ErrorCode(err) != sesame.CodeNotFound {
		t.Fatalf("store after delete: %v", err)
	}
	if r := c.do("DELETE", "/v1/workspaces/staging?force=true", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete workspace = %d %s", r.status, r.body)
	}
	r = c.do("GET", "/v1/workspaces/staging", nil, nil)
	checkErrorResponse(t, r, sesame.CodeNotFound)
	if recs, err := c.env.st.ListCredentials(ctx, "staging", "", 100); err != nil || len(recs) != 0 {
		t.Fatalf("credentials left in a deleted workspace: %d, %v", len(recs), err)
	}
	// An empty workspace goes without force.
	c.mustDo("POST", "/v1/workspaces", []byte(`{"name":"scratch"}`), http.StatusCreated)
	if r := c.do("DELETE", "/v1/workspaces/scratch", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete empty workspace = %d %s", r.status, r.body)
	}
}

func TestAuthenticationSchemes(t *testing.T) {
	c := newClient(t)
	for name, h := range map[string]map[string]string{
		"bearer":    {"Authorization": "Bearer " + c.env.key},
		"bare":      {"Authorization": c.env.key},
		"x-api-key": {"Authorization": noAuth, "X-API-Key": c.env.key},
	} {
		if r := c.do("GET", "/v1/workspaces", nil, h); r.status != 200 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

func TestRotateKeepsSecretsReadable(t *testing.T) {
	c := newClient(t)
	c.mustDo("PUT", "/v1/workspaces/default/credentials/k", secretBody(canary), http.StatusCreated)
	res := c.mustDo("POST", "/v1/system/master-key/rotate", nil, http.StatusOK)
	if res["rewrapped"].(float64) < 2 {
		t.Fatalf("rotation result %v", res)
	}
	r, err := c.env.v.Resolve(context.Background(), "default", "k")
	if err != nil || string(r.Secrets["value"].Reveal()) != canary {
		t.Fatalf("after rotation: %v", err)
	}
}

// --- benchmarks ---

func benchRequest(b *testing.B, e *env, method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func BenchmarkPutCredential(b *testing.B) {
	e := newEnv(b)
	body := []byte(`{"type":"basic","fields":{"username":"alice","password":"` + canary + `"}}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		rec := benchRequest(b, e, "PUT", fmt.Sprintf("/v1/workspaces/default/credentials/bench.%d", i), body)
		if rec.Code != http.StatusCreated {
			b.Fatalf("PUT = %d %s", rec.Code, rec.Body)
		}
	}
}

func BenchmarkGetCredential(b *testing.B) {
	e := newEnv(b)
	body := []byte(`{"type":"basic","fields":{"username":"alice","password":"` + canary + `"}}`)
	if rec := benchRequest(b, e, "PUT", "/v1/workspaces/default/credentials/bench", body); rec.Code != http.StatusCreated {
		b.Fatalf("PUT = %d %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := benchRequest(b, e, "GET", "/v1/workspaces/default/credentials/bench", nil)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET = %d %s", rec.Code, rec.Body)
		}
	}
}
