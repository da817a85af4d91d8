package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/testpg"
)

// startServerTrusting is startServer with outbound TLS trusting roots (test-only, see
// testroots.go).
func startServerTrusting(t *testing.T, roots *x509.CertPool, env map[string]string, args ...string) *testServer {
	t.Helper()
	s := startServerIn(t, context.WithValue(context.Background(), testRootsKey{}, roots), env, args...)
	if s.stopped {
		t.Fatalf("server exited with %d: %s", s.code, s.Stderr.String())
	}
	return s
}

// graphUpstream is an httptest TLS server playing MS Graph and a help desk API.
type graphUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func (g *graphUpstream) record(r *http.Request) seenRequest {
	body, _ := io.ReadAll(r.Body)
	s := seenRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), RawQ: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)}
	g.mu.Lock()
	g.seen = append(g.seen, s)
	g.mu.Unlock()
	return s
}

func (g *graphUpstream) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

func (g *graphUpstream) requests(path string) []seenRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []seenRequest
	for _, s := range g.seen {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

func newGraphUpstream(t *testing.T, evilURL *string) *graphUpstream {
	g := &graphUpstream{}
	g.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := g.record(r)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(s.Path, "/v1.0/users/") && strings.HasSuffix(s.Path, "/events"):
			// The subject of the second event reflects the Authorization header: the
			// caller must never read the token.
			fmt.Fprintf(w, `{"value":[{"id":"e1","subject":"Standup","start":{"dateTime":"2026-11-30T09:00:00"}},
				{"id":"e2","subject":%q,"start":{"dateTime":"2026-11-30T10:00:00"}}]}`, s.Header.Get("Authorization"))
		case s.Path == "/v1.0/me/sendMail":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{}`)
		case s.Path == "/v1.0/users":
			skip, _ := strconv.Atoi(s.Query.Get("$skiptoken"))
			next := ""
			switch {
			case s.Query.Get("evil") == "1":
				next = fmt.Sprintf(`,"@odata.nextLink":%q`, *evilURL+"/v1.0/users?$skiptoken=2")
			case skip < 4:
				next = fmt.Sprintf(`,"@odata.nextLink":%q`, fmt.Sprintf("https://%s/v1.0/users?$top=2&$skiptoken=%d", r.Host, skip+2))
			}
			fmt.Fprintf(w, `{"value":[{"id":"u%d","displayName":"User %d"},{"id":"u%d","displayName":"User %d"}]%s}`, skip+1, skip+1, skip+2, skip+2, next)
		case s.Path == "/v1.0/tickets":
			page, _ := strconv.Atoi(s.Query.Get("page"))
			if page == 0 {
				page = 1
			}
			more := page < 3 || s.Query.Get("status") == "endless"
			fmt.Fprintf(w, `{"page":%d,"hasMore":%t,"tickets":[{"n":%d}]}`, page, more, page)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"not found"}`)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

// copyFixtures copies testdata/jigx/functions to a temp folder with the upstream's
// origin in place of https://UPSTREAM, and returns the folder.
func copyFixtures(t *testing.T, origin string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "functions")
	src := filepath.Join("testdata", "jigx", "functions")
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), bytes.ReplaceAll(b, []byte("https://UPSTREAM"), []byte(origin)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

const (
	deskPassword = "desk-password-CANARY-7f1e"
	deskAPIKey   = "desk-apikey-CANARY-2b9c"
	deskSecret   = "desk-tenant-secret-CANARY-c04d"
)

// TestJigxFunctionsRunUnchanged loads Jigx function files (sesame fn import) and runs
// them through the real server against an httptest TLS upstream, on SQLite and on
// PostgreSQL: an injected OAuth2 token, path and query parameters with defaults, a
// JSONata body, JSONata output and records, three pages of continuation, the page cap,
// Jigx's credential semantics, and refusals.
func TestJigxFunctionsRunUnchanged(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testJigx(t) })
	t.Run("postgres", func(t *testing.T) { testJigx(t, "--postgres", testpg.URL(t)) })
}

func testJigx(t *testing.T, args ...string) {
	var evilURL string
	up := newGraphUpstream(t, &evilURL)
	evil := newGraphUpstream(t, nil)
	evilURL = evil.URL
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	roots.AddCert(evil.Certificate())

	p := oauthtest.New(t, oauthtest.Options{})
	env := map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}
	s := startServerTrusting(t, roots, env, append([]string{"--data", t.TempDir(), "--function-max-pages", "5"}, args...)...)
	p.AddClient("sesame-app", oauthClientSecret, s.URL+"/")
	var seen bytes.Buffer // every response the caller got
	do := func(method, path, body string, want int) response {
		t.Helper()
		r := s.do(method, path, body)
		fmt.Fprintf(&seen, "%v\n%s\n", r.Header, r.Body)
		return mustStatus(t, r, want)
	}

	do("PUT", "/v1/workspaces/default/credentials/graph.oauth", fmt.Sprintf(
		`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"sesame-app","client_secret":%q,"token_url":%q,"scopes":["read"]}}`,
		oauthClientSecret, p.TokenURL()), 201)
	do("PUT", "/v1/workspaces/default/credentials/desk.basic", fmt.Sprintf(`{"type":"basic","fields":{"username":"agent","password":%q}}`, deskPassword), 201)
	do("PUT", "/v1/workspaces/default/credentials/desk.key", fmt.Sprintf(`{"type":"api_key","fields":{"value":%q}}`, deskAPIKey), 201)
	do("PUT", "/v1/workspaces/default/credentials/desk.secret", fmt.Sprintf(`{"type":"secret","fields":{"value":%q}}`, deskSecret), 201)

	dir := copyFixtures(t, up.URL)
	t.Run("no connection for the url's origin: refused on save, naming it", func(t *testing.T) {
		code, out, errOut := s.cli("", "fn", "import", dir)
		if code == 0 || !strings.Contains(out, "failed  list-events") || !strings.Contains(out+errOut, "no connection in workspace \"default\" has the origin "+up.URL) {
			t.Fatalf("import without a connection: code %d\n%s\n%s", code, out, errOut)
		}
		do("GET", "/v1/workspaces/default/functions/list-events", "", 404)
	})

	do("PUT", "/v1/workspaces/default/connections/graph?test=false", fmt.Sprintf(
		`{"base_uri":%q,"credential":"graph.oauth","allow_private_networks":true,"rate_limit":{"requests":100,"per_seconds":1}}`, up.URL+"/v1.0"), 201)
	code, out, errOut := s.cli("", "fn", "import", dir)
	if code != 0 {
		t.Fatalf("fn import: %d\n%s\n%s", code, out, errOut)
	}
	for _, name := range []string{"list-events", "send-mail", "list-users", "list-tickets"} {
		if !strings.Contains(out, "ok      "+name+"  (") {
			t.Fatalf("fn import did not report %s:\n%s", name, out)
		}
	}

	t.Run("OAuth token, path and query parameters with defaults, JSONata output", func(t *testing.T) {
		r := do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{"userId":"adele@contoso.example"}}`, 200)
		got := up.requests("/v1.0/users/adele@contoso.example/events")
		if len(got) != 1 {
			t.Fatalf("upstream got %d event requests", len(got))
		}
		req := got[0]
		auth := req.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "Bearer ") || p.ClientCredentials() != 1 {
			t.Fatalf("Authorization %q, token requests %d", auth, p.ClientCredentials())
		}
		if req.Query.Get("$top") != "10" || req.Query.Get("$select") != "subject,start" || req.Query.Has("$filter") || req.Header.Get("accessToken") != "" {
			t.Fatalf("query %q, accessToken header %q", req.RawQ, req.Header.Get("accessToken"))
		}
		var res struct {
			Status int `json:"status"`
			Body   []map[string]any
		}
		if err := json.Unmarshal(r.Body, &res); err != nil || res.Status != 200 || len(res.Body) != 2 ||
			res.Body[0]["title"] != "Standup" || res.Body[0]["start"] != "2026-11-30T09:00:00" {
			t.Fatalf("result %s", r.Body)
		}
		if bytes.Contains(r.Body, []byte(strings.TrimPrefix(auth, "Bearer "))) {
			t.Fatal("the reflected OAuth token reached the caller")
		}
		// Caller's values override defaults; a caller cannot supply the token.
		do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{"userId":"u2","$top":3}}`, 200)
		if q := up.requests("/v1.0/users/u2/events")[0].Query; q.Get("$top") != "3" {
			t.Fatalf("$top = %q", q.Get("$top"))
		}
		do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{"userId":"u3","accessToken":"Bearer mine"}}`, 400)
		do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{}}`, 400)
		// useLocalCall: a local client reads the current token from the connection's token route.
		tok := s.do("GET", "/v1/workspaces/default/connections/graph/token", "")
		if tok.Status != 200 || !bytes.Contains(tok.Body, []byte(strings.TrimPrefix(auth, "Bearer "))) {
			t.Fatalf("token route: %d", tok.Status)
		}
	})

	t.Run("JSONata inputTransform builds the body", func(t *testing.T) {
		r := do("POST", "/v1/workspaces/default/functions/send-mail/call", `{"parameters":{"to":"megan@contoso.example","subject":"Hi"}}`, 200)
		if !strings.Contains(string(r.Body), `"sent":true`) {
			t.Fatalf("result %s", r.Body)
		}
		got := up.requests("/v1.0/me/sendMail")[0]
		var body map[string]any
		if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
			t.Fatalf("body %q: %v", got.Body, err)
		}
		want := `{"message":{"body":{"content":"(no text)","contentType":"Text"},"importance":"high","subject":"Hi","toRecipients":[{"emailAddress":{"address":"megan@contoso.example"}}]},"saveToSentItems":true}`
		if b, _ := json.Marshal(body); string(b) != want || got.Method != "POST" || got.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("upstream got %s %s (%s)", got.Method, b, got.Header.Get("Content-Type"))
		}
	})

	t.Run("records over three pages of continuation (nextLink)", func(t *testing.T) {
		r := do("POST", "/v1/workspaces/default/functions/list-users/call", `{}`, 200)
		var res struct {
			Pages int              `json:"pages"`
			Trunc bool             `json:"truncated"`
			Body  []map[string]any `json:"body"`
		}
		if err := json.Unmarshal(r.Body, &res); err != nil || res.Pages != 3 || res.Trunc || len(res.Body) != 6 ||
			res.Body[0]["id"] != "u1" || res.Body[5]["name"] != "User 6" {
			t.Fatalf("result %s", r.Body)
		}
		pages := up.requests("/v1.0/users")
		for i, pg := range pages {
			if !strings.HasPrefix(pg.Header.Get("Authorization"), "Bearer ") {
				t.Fatalf("page %d carried no token", i+1)
			}
		}
		if len(pages) != 3 || pages[2].Query.Get("$skiptoken") != "4" {
			t.Fatalf("upstream got %d pages", len(pages))
		}
	})

	t.Run("a nextLink to another origin is refused and reaches nothing", func(t *testing.T) {
		// The upstream answers with a nextLink to another origin when asked with evil=1.
		src, _ := os.ReadFile(filepath.Join(dir, "directory", "list-users.jigx"))
		src = bytes.Replace(src, []byte("parameters:\n"), []byte("parameters:\n  evil:\n    location: query\n    type: string\n    value: \"1\"\n"), 1)
		mustStatus(t, putYAML(s, "default", "list-users-evil", string(src)), 201)
		r := s.do("POST", "/v1/workspaces/default/functions/list-users-evil/call", `{}`)
		fmt.Fprintf(&seen, "%s\n", r.Body)
		if r.Status != 502 || !strings.Contains(string(r.Body), "not on the function's origin") || evil.count() != 0 {
			t.Fatalf("evil nextLink: %d %s; evil upstream got %d requests", r.Status, r.Body, evil.count())
		}
	})

	t.Run("Basic auth, API key and secret in their places; page numbers by parameters; the page cap", func(t *testing.T) {
		r := do("POST", "/v1/workspaces/default/functions/list-tickets/call", `{}`, 200)
		var res struct {
			Pages int   `json:"pages"`
			Body  []any `json:"body"`
		}
		if err := json.Unmarshal(r.Body, &res); err != nil || res.Pages != 3 || len(res.Body) != 3 {
			t.Fatalf("result %s", r.Body)
		}
		pages := up.requests("/v1.0/tickets")
		if len(pages) != 3 || pages[1].Query.Get("page") != "2" || pages[2].Query.Get("page") != "3" || pages[2].Query.Get("status") != "open" {
			t.Fatalf("pages %d", len(pages))
		}
		for _, pg := range pages {
			if pg.Header.Get("Authorization") != basicHeader("agent", deskPassword) || pg.Header.Get("X-Api-Key") != deskAPIKey ||
				pg.Header.Get("tenantSecret") != deskSecret || pg.Header.Get("basicAuth") != "" {
				t.Fatalf("upstream got headers %v", pg.Header)
			}
		}
		do("POST", "/v1/workspaces/default/functions/list-tickets/call", `{"parameters":{"X-Api-Key":"mine"}}`, 400)
		r = do("POST", "/v1/workspaces/default/functions/list-tickets/call", `{"parameters":{"status":"endless"}}`, 200)
		if err := json.Unmarshal(r.Body, &res); err != nil || res.Pages != 5 || !strings.Contains(string(r.Body), `"truncated":true`) {
			t.Fatalf("endless pages: %s", r.Body)
		}
	})

	t.Run("the destination rule applies: a credential bound elsewhere is refused on save", func(t *testing.T) {
		do("PUT", "/v1/workspaces/default/credentials/other.key", `{"type":"api_key","fields":{"value":"other-key-CANARY-77aa","hosts":["https://api.other.example"]}}`, 201)
		src := "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + up.URL + "/v1.0/tickets\nparameters:\n  X-Key: {location: header, type: string, value: other.key}\n"
		r := putYAML(s, "default", "steal", src)
		fmt.Fprintf(&seen, "%s\n", r.Body)
		if r.Status != 403 || !strings.Contains(string(r.Body), "parameters.X-Key.value") {
			t.Fatalf("save with a credential bound to another host: %d %s", r.Status, r.Body)
		}
	})

	t.Run("the connection's rate limit applies", func(t *testing.T) {
		do("PUT", "/v1/workspaces/default/connections/graph?test=false", fmt.Sprintf(
			`{"base_uri":%q,"credential":"graph.oauth","allow_private_networks":true,"rate_limit":{"requests":1,"per_seconds":3600,"burst":1}}`, up.URL+"/v1.0"), 200)
		do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{"userId":"r1"}}`, 200)
		r := s.do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{"userId":"r2"}}`)
		if r.Status != 429 || r.Header.Get("Retry-After") == "" || len(up.requests("/v1.0/users/r2/events")) != 0 {
			t.Fatalf("second call within the connection's limit of 1 per hour: %d %s", r.Status, r.Body)
		}
	})

	t.Run("the connection's private-network setting applies", func(t *testing.T) {
		do("PUT", "/v1/workspaces/default/connections/graph?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"graph.oauth"}`, up.URL+"/v1.0"), 200)
		before := len(up.requests("/v1.0/users/u9/events"))
		r := s.do("POST", "/v1/workspaces/default/functions/list-events/call", `{"parameters":{"userId":"u9"}}`)
		if r.Status != 403 || len(up.requests("/v1.0/users/u9/events")) != before {
			t.Fatalf("loopback without allow_private_networks: %d %s", r.Status, r.Body)
		}
	})

	t.Run("clear errors", func(t *testing.T) {
		origin := up.URL
		cases := []struct{ name, src, want string }{
			{"unknown provider", "provider: DATA_PROVIDER_SQL\nmethod: GET\nurl: " + origin + "/v1.0/x\n",
				`line 1: provider: provider \"DATA_PROVIDER_SQL\" is not supported: Sesame runs only DATA_PROVIDER_REST functions`},
			{"no connection for the origin", "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://api.nowhere.example/v1/x\n",
				`url: no connection in workspace \"default\" has the origin https://api.nowhere.example`},
			{"JSONata syntax error", "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + origin + "/v1.0/x\noutputTransform: '$.value.{\"id\": '\n",
				`line 4: outputTransform: is not a valid JSONata expression`},
			{"JSONata recursion", "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + origin + "/v1.0/x\noutputTransform: '($f := function($n){ $f($n) }; $f(1))'\n",
				`line 4: outputTransform: a function may only be written as the argument of a built-in function`},
			{"unknown field", "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + origin + "/v1.0/x\nconnection: graph\n",
				`line 4: connection: unknown field of a Jigx function`},
			{"bad location", "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + origin + "/v1.0/x\nparameters:\n  a:\n    location: cookie\n",
				`line 6: parameters.a.location: must be one of path, query, header, body, credential, secret`},
			{"continuation without when", "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + origin + "/v1.0/x\ncontinuation:\n  url: =$.next\n",
				`line 4: continuation.when: is required`},
		}
		for _, c := range cases {
			r := putYAML(s, "default", "bad", c.src)
			if r.Status != 400 || !strings.Contains(string(r.Body), c.want) {
				t.Errorf("%s: %d %s\nwant %s", c.name, r.Status, r.Body, c.want)
			}
		}
		do("GET", "/v1/workspaces/default/functions/bad", "", 404)
	})

	// Nothing any caller read holds a credential.
	do("GET", "/v1/audit?limit=1000", "", 200)
	secrets := []string{oauthClientSecret, deskPassword, deskAPIKey, deskSecret}
	for _, item := range p.Issued() {
		_, v, _ := strings.Cut(item, ":")
		secrets = append(secrets, v)
	}
	for _, secret := range secrets {
		if secret != "" && bytes.Contains(seen.Bytes(), []byte(secret)) {
			t.Fatalf("a response held a secret")
		}
	}
	if len(p.Issued()) == 0 {
		t.Fatal("the provider issued no token: the leak check proves nothing")
	}
}

// TestJigxFunctionsFolder: the server's --functions folder loads .jigx files; one whose
// url's origin has no connection stops the start, naming the file and the origin.
func TestJigxFunctionsFolder(t *testing.T) {
	up := newGraphUpstream(t, nil)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	dir := t.TempDir()
	src := "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: " + up.URL + "/v1.0/tickets\nparameters:\n  status: {location: query, type: string, value: open}\nrecords: $.tickets\n"
	if err := os.WriteFile(filepath.Join(dir, "tickets.jigx"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), testRootsKey{}, roots))
	defer cancel()
	var stdout, stderr syncBuffer
	// If the server starts (the .jigx file was not loaded), stop it: run returns 0.
	code := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--functions", dir}, envFunc(nil), strings.NewReader(""),
		&stdout, &stderr, func(string) { cancel() })
	if code == 0 || !strings.Contains(stderr.String(), "tickets.jigx") || !strings.Contains(stderr.String(), "has the origin "+up.URL) {
		t.Fatalf("start without a connection: code %d\n%s", code, stderr.String())
	}

	admin := strings.TrimSpace(lineAfter(stdout.String(), "admin key: "))
	s := startServerTrusting(t, roots, nil, "--data", data)
	if s.AdminKey == "" {
		s.AdminKey = admin
	}
	admin = s.AdminKey
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/desk?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL)), 201)
	s.Stop()
	s = startServerTrusting(t, roots, nil, "--data", data, "--functions", dir)
	s.AdminKey = admin
	r := mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/tickets/call", `{}`), 200)
	if !strings.Contains(string(r.Body), `"body":[{"n":1}]`) {
		t.Fatalf("result %s", r.Body)
	}
}

func lineAfter(out, prefix string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}
