package main

import (
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
	"sync"
	"sync/atomic"
	"testing"
)

// seenRequest is what an upstream received.
type seenRequest struct {
	Method string
	Path   string // escaped
	Query  url.Values
	RawQ   string
	Header http.Header
	Body   string
	Host   string
}

// upstream is a real HTTP server that records every request it gets.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
	// handle, if set, answers; otherwise 200 with {"ok":true,"items":[1,2,3]}.
	handle func(w http.ResponseWriter, r *http.Request)
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), RawQ: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: string(body), Host: r.Host})
		h := u.handle
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-RateLimit-Remaining", "41")
		fmt.Fprint(w, `{"ok":true,"items":[1,2,3]}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last(t *testing.T) seenRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

func (u *upstream) setHandler(h func(w http.ResponseWriter, r *http.Request)) {
	u.mu.Lock()
	u.handle = h
	u.mu.Unlock()
}

func mustStatus(t *testing.T, r response, want int) response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	return r
}

func putYAML(s *testServer, ws, name, src string) response {
	h := http.Header{"Content-Type": {"application/yaml"}}
	return s.doWith("PUT", "/v1/workspaces/"+ws+"/functions/"+name, src, h)
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestInjectionThroughProxyAndFunctions(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	creds := map[string]string{
		"w.basic":  `{"type":"basic","fields":{"username":"bob","password":"pw-basic"}}`,
		"w.bearer": `{"type":"bearer","fields":{"token":"tok-bearer","scheme":"Token"}}`,
		"w.keyHdr": `{"type":"api_key","fields":{"value":"key-header","name":"X-Weather-Key"}}`,
		"w.keyQry": `{"type":"api_key","fields":{"value":"key-query","name":"appid","in":"query"}}`,
		"w.secret": `{"type":"secret","fields":{"value":"s3cr3t/with space"}}`,
	}
	for k, b := range creds {
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/"+k, b), 201)
	}
	conn := func(name, cred, extra string) {
		t.Helper()
		body := fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true%s}`, up.URL+"/base", cred, extra)
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/"+name+"?test=false", body), 201)
	}
	conn("basic", "w.basic", "")
	conn("bearer", "w.bearer", "")
	conn("keyhdr", "w.keyHdr", "")
	conn("keyqry", "w.keyQry", "")
	conn("secret", "w.secret", `,"auth":{"in":"header","name":"X-Secret"}`)
	conn("plain", "", `,"headers":{"Accept":"application/json"}`)

	t.Run("proxy", func(t *testing.T) {
		cases := []struct {
			conn  string
			check func(r seenRequest) string
		}{
			{"basic", func(r seenRequest) string {
				return r.Header.Get("Authorization") + "|" + basicHeader("bob", "pw-basic")
			}},
			{"bearer", func(r seenRequest) string { return r.Header.Get("Authorization") + "|Token tok-bearer" }},
			{"keyhdr", func(r seenRequest) string { return r.Header.Get("X-Weather-Key") + "|key-header" }},
			{"keyqry", func(r seenRequest) string { return r.Query.Get("appid") + "|key-query" }},
			{"secret", func(r seenRequest) string { return r.Header.Get("X-Secret") + "|s3cr3t/with space" }},
		}
		for _, c := range cases {
			h := http.Header{"Cookie": {"session=caller"}, "X-Api-Key": {s.AdminKey}, "X-Custom": {"kept"},
				"Connection": {"X-Drop-Me"}, "X-Drop-Me": {"1"}, "Content-Type": {"text/plain"}}
			r := s.doWith("POST", "/v1/workspaces/default/proxy/"+c.conn+"/items/a%20b?x=1&y=two", "payload", h)
			mustStatus(t, r, 200)
			got := up.last(t)
			if pair := strings.SplitN(c.check(got), "|", 2); pair[0] != pair[1] {
				t.Errorf("%s: credential arrived as %q, want %q", c.conn, pair[0], pair[1])
			}
			if got.Method != "POST" || got.Path != "/base/items/a%20b" || got.Query.Get("x") != "1" || got.Query.Get("y") != "two" || got.Body != "payload" {
				t.Errorf("%s: upstream got %s %s ?%s body %q", c.conn, got.Method, got.Path, got.RawQ, got.Body)
			}
			if got.Header.Get("Cookie") != "" || got.Header.Get("X-Drop-Me") != "" || got.Header.Get("X-Custom") != "kept" {
				t.Errorf("%s: caller headers not filtered: %v", c.conn, got.Header)
			}
			if c.conn != "basic" && c.conn != "bearer" && got.Header.Get("Authorization") != "" {
				t.Errorf("%s: the caller's Authorization reached the upstream", c.conn)
			}
			if strings.Contains(fmt.Sprint(got.Header), s.AdminKey) {
				t.Errorf("%s: the caller's Sesame key reached the upstream", c.conn)
			}
			if r.Header.Get("X-Ratelimit-Remaining") != "41" || !strings.Contains(string(r.Body), `"items"`) {
				t.Errorf("%s: response not passed through: %v %s", c.conn, r.Header, r.Body)
			}
		}
		// No credential: default headers only; the caller's Authorization is never forwarded.
		mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/plain", "", nil), 200)
		if got := up.last(t); got.Header.Get("Authorization") != "" || got.Header.Get("Accept") != "application/json" || got.Path != "/base" {
			t.Errorf("plain connection: %v %s", got.Header, got.Path)
		}
	})

	t.Run("functions", func(t *testing.T) {
		mustStatus(t, putYAML(s, "default", "weather", `
connection: plain
method: POST
path: /forecast/{city}/{token}
parameters:
  basicAuth: {location: header, required: true, value: w.basic}
  city:   {location: path, required: true, type: string}
  token:  {location: path, type: api_key, value: w.keyHdr}
  appid:  {location: query, type: api_key, value: w.keyQry}
  units:  {location: query, type: string, value: metric}
  X-Trace: {location: header, type: string}
  apiSecret: {location: body, type: secret, value: w.secret}
  days:   {location: body, type: integer}
outputTransform: .items | map(. * 10)
`), 201)
		r := mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/weather/call",
			`{"parameters":{"city":"São Paulo/x","X-Trace":"t-1","days":3}}`), 200)
		got := up.last(t)
		if got.Header.Get("Authorization") != basicHeader("bob", "pw-basic") {
			t.Errorf("basicAuth: %q", got.Header.Get("Authorization"))
		}
		if got.Path != "/base/forecast/S%C3%A3o%20Paulo%2Fx/key-header" {
			t.Errorf("path: %s", got.Path)
		}
		if got.Query.Get("appid") != "key-query" || got.Query.Get("units") != "metric" || got.Header.Get("X-Trace") != "t-1" {
			t.Errorf("query/header: %s %v", got.RawQ, got.Header)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(got.Body), &body); err != nil || body["apiSecret"] != "s3cr3t/with space" || body["days"] != float64(3) {
			t.Errorf("body: %s", got.Body)
		}
		var res struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    []int             `json:"body"`
		}
		if err := json.Unmarshal(r.Body, &res); err != nil || res.Status != 200 || fmt.Sprint(res.Body) != "[10 20 30]" || res.Headers["X-Ratelimit-Remaining"] != "41" {
			t.Errorf("call result: %s", r.Body)
		}
		for _, secret := range []string{"pw-basic", "key-header", "key-query", "s3cr3t"} {
			if strings.Contains(string(r.Body), secret) {
				t.Errorf("a secret (%s) is in the call result", secret)
			}
		}

		// A path parameter cannot climb out of the base path.
		n := up.count()
		for _, city := range []string{"..", "../admin", "a/../../b"} {
			r := s.do("POST", "/v1/workspaces/default/functions/weather/call", fmt.Sprintf(`{"parameters":{"city":%q}}`, city))
			if r.Status != 400 || up.count() != n {
				t.Errorf("path parameter %q: %d %s", city, r.Status, r.Body)
			}
		}

		// accessToken → bearer; a caller may not pass a credential parameter.
		mustStatus(t, putYAML(s, "default", "tok", "connection: plain\nmethod: GET\npath: /me\nparameters:\n  accessToken: {location: header, value: w.bearer}\n"), 201)
		mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/tok/call", `{}`), 200)
		if got := up.last(t); got.Header.Get("Authorization") != "Token tok-bearer" {
			t.Errorf("accessToken: %q", got.Header.Get("Authorization"))
		}
		n = up.count()
		r = mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/tok/call", `{"parameters":{"accessToken":"mine"}}`), 400)
		if up.count() != n || !strings.Contains(string(r.Body), "accessToken") {
			t.Errorf("caller-supplied credential: %s", r.Body)
		}
		// Through the CLI.
		code, out, errOut := s.cli("", "fn", "call", "weather", "city=Oslo", "days:=2")
		if code != 0 || !strings.Contains(out, `"status": 200`) {
			t.Errorf("fn call: %d %s %s", code, out, errOut)
		}
	})

	t.Run("credential in use", func(t *testing.T) {
		r := mustStatus(t, s.do("DELETE", "/v1/workspaces/default/credentials/w.basic", ""), 409)
		if !strings.Contains(string(r.Body), "in_use") || !strings.Contains(string(r.Body), "connection basic") || !strings.Contains(string(r.Body), "function weather") {
			t.Errorf("in use: %s", r.Body)
		}
	})

	// Every call was recorded, without secrets.
	logs := s.Stderr.String()
	if !strings.Contains(logs, `msg="outbound call"`) || !strings.Contains(logs, "target=weather") || !strings.Contains(logs, "kind=proxy") {
		t.Errorf("calls not recorded: %s", logs)
	}
	for _, secret := range []string{"pw-basic", "tok-bearer", "key-header", "key-query", "s3cr3t"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret (%s) reached the log", secret)
		}
	}
}

func TestOutboundAttacks(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up, evil := newUpstream(t), newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/k", `{"type":"api_key","fields":{"value":"attack-canary"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/api?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"k","allow_private_networks":true}`, up.URL+"/v1")), 201)

	evilHost := strings.TrimPrefix(evil.URL, "http://")
	t.Run("path escapes", func(t *testing.T) {
		for _, p := range []string{
			"..%2f..%2fadmin", "%2e%2e/admin", "%2E%2E%2Fadmin", "x/%2e%2e/%2e%2e/admin", "..%5c..%5cadmin",
			"/" + evilHost + "/x", "%2F%2F" + evilHost + "/x", "@" + evilHost + "/x", "http:%2F%2F" + evilHost,
		} {
			r := s.doWith("GET", "/v1/workspaces/default/proxy/api/"+p, "", nil)
			if r.Status == 200 {
				got := up.last(t)
				if !strings.HasPrefix(got.Path, "/v1/") {
					t.Errorf("%s: reached upstream path %s", p, got.Path)
				}
			}
		}
		if evil.count() != 0 {
			t.Fatalf("the other host received %d requests", evil.count())
		}
	})

	t.Run("redirect to another host keeps the credential", func(t *testing.T) {
		up.setHandler(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil.URL+"/steal", http.StatusFound)
		})
		defer up.setHandler(nil)
		r := s.doWith("GET", "/v1/workspaces/default/proxy/api/x", "", nil)
		if r.Status != http.StatusFound || evil.count() != 0 {
			t.Fatalf("redirect: status %d, other host got %d requests", r.Status, evil.count())
		}
		mustStatus(t, putYAML(s, "default", "redir", "connection: api\nmethod: GET\npath: /x\nparameters:\n  X-API-Key: {location: header, type: api_key, value: k}\n"), 201)
		s.do("POST", "/v1/workspaces/default/functions/redir/call", "{}")
		if evil.count() != 0 {
			t.Fatal("a function followed a redirect to another host")
		}
	})

	t.Run("ssrf", func(t *testing.T) {
		for name, base := range map[string]string{
			"loopback": up.URL, "localhost": strings.Replace(up.URL, "127.0.0.1", "localhost", 1),
			"metadata": "http://169.254.169.254/latest", "mapped": strings.Replace(up.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1),
		} {
			mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/ssrf-"+name+"?test=false", fmt.Sprintf(`{"base_uri":%q}`, base)), 201)
			n := up.count()
			r := s.doWith("GET", "/v1/workspaces/default/proxy/ssrf-"+name+"/x", "", nil)
			if r.Status != 403 || !strings.Contains(string(r.Body), "forbidden_address") || up.count() != n {
				t.Errorf("%s: %d %s (upstream requests %d -> %d)", name, r.Status, r.Body, n, up.count())
			}
		}
		// Saving with the test on reports the refusal and saves nothing.
		r := s.do("PUT", "/v1/workspaces/default/connections/ssrf-tested", fmt.Sprintf(`{"base_uri":%q,"test":{"path":"/x"}}`, up.URL))
		if r.Status != 422 || !strings.Contains(string(r.Body), "allow_private_networks") {
			t.Errorf("tested save: %d %s", r.Status, r.Body)
		}
		mustStatus(t, s.do("GET", "/v1/workspaces/default/connections/ssrf-tested", ""), 404)
	})

	t.Run("header injection", func(t *testing.T) {
		mustStatus(t, putYAML(s, "default", "hdr", "connection: api\nmethod: GET\nparameters:\n  X-Note: {location: header, type: string}\n"), 201)
		n := up.count()
		r := s.do("POST", "/v1/workspaces/default/functions/hdr/call", `{"parameters":{"X-Note":"a\r\nX-Evil: 1"}}`)
		if r.Status != 400 || up.count() != n {
			t.Errorf("CRLF header: %d %s", r.Status, r.Body)
		}
		r = s.do("PUT", "/v1/workspaces/default/connections/crlf?test=false", fmt.Sprintf(`{"base_uri":%q,"headers":{"X-A":"a\r\nb"}}`, up.URL))
		if r.Status != 400 {
			t.Errorf("CRLF default header saved: %d", r.Status)
		}
	})

	t.Run("credential bound to hosts", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/bound", `{"type":"bearer","fields":{"token":"bound-tok","hosts":["api.example.com"]}}`), 201)
		r := s.do("PUT", "/v1/workspaces/default/connections/stolen?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"bound","allow_private_networks":true}`, evil.URL))
		if r.Status != 403 || !strings.Contains(string(r.Body), "hosts") {
			t.Errorf("connection to a host outside the credential's hosts: %d %s", r.Status, r.Body)
		}
		r = putYAML(s, "default", "stolen", fmt.Sprintf("url: %s\nmethod: GET\nparameters:\n  accessToken: {location: header, value: bound}\n", evil.URL))
		if r.Status != 403 {
			t.Errorf("function to a host outside the credential's hosts: %d %s", r.Status, r.Body)
		}
		// Saved while allowed, then the credential is narrowed: the call is refused.
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/bound", fmt.Sprintf(`{"type":"bearer","fields":{"token":"bound-tok","hosts":[%q]}}`, evil.URL)), 200)
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/stolen?test=false", fmt.Sprintf(`{"base_uri":%q,"credential":"bound","allow_private_networks":true}`, evil.URL)), 201)
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/bound", `{"type":"bearer","fields":{"token":{"keep":true},"hosts":["api.example.com"]}}`), 200)
		n := evil.count()
		r = s.doWith("GET", "/v1/workspaces/default/proxy/stolen/x", "", nil)
		if r.Status != 403 || evil.count() != n {
			t.Errorf("call after narrowing hosts: %d %s", r.Status, r.Body)
		}
	})
	if evil.count() > 1 {
		t.Fatalf("the other host received %d requests", evil.count())
	}
	if strings.Contains(s.Stderr.String(), "attack-canary") {
		t.Fatal("the credential reached the log")
	}
}

func TestConnectionTestRateLimitAndRetry(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	var fails atomic.Int32
	up.setHandler(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health-bad":
			w.WriteHeader(500)
			fmt.Fprint(w, "database is down")
		case r.URL.Path == "/flaky" && fails.Add(1) <= 2:
			w.WriteHeader(503)
		case r.URL.Path == "/limited":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(429)
		default:
			fmt.Fprint(w, "ok")
		}
	})
	// Save tests the connection; a failing test saves nothing.
	r := s.do("PUT", "/v1/workspaces/default/connections/bad", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true,"test":{"path":"/health-bad"}}`, up.URL))
	if r.Status != 422 || !strings.Contains(string(r.Body), "database is down") || !strings.Contains(string(r.Body), `"status":500`) {
		t.Fatalf("failing test on save: %d %s", r.Status, r.Body)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/connections/bad", ""), 404)
	r = mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/good", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true,"test":{"path":"/ok","expect_status":200},
		"retry":{"max_attempts":3,"base_delay_ms":1,"max_delay_ms":5},"rate_limit":{"requests":3,"per_seconds":3600,"burst":3}}`, up.URL)), 201)
	if !strings.Contains(string(r.Body), `"ok":true`) {
		t.Fatalf("test result missing: %s", r.Body)
	}
	code, out, _ := s.cli("", "conn", "test", "good")
	if code != 0 || !strings.Contains(out, "true") || !strings.Contains(out, "200") {
		t.Fatalf("conn test: %d %s", code, out)
	}

	// Retries: 503, 503, then 200 for a GET (this uses the 3rd token).
	n := up.count()
	mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/good/flaky", "", nil), 200)
	if up.count()-n != 3 {
		t.Fatalf("GET with two 503s: %d upstream attempts, want 3", up.count()-n)
	}
	// The bucket (3 per hour; the save test and conn test took two) is empty: 429 with Retry-After.
	r = s.doWith("GET", "/v1/workspaces/default/proxy/good/x", "", nil)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "rate_limited") {
		t.Fatalf("empty bucket: %d %v %s", r.Status, r.Header, r.Body)
	}

	// An upstream 429 with Retry-After holds the connection back.
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/lim?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true,"rate_limit":{"requests":100,"per_seconds":1}}`, up.URL)), 201)
	mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/lim/limited", "", nil), 429)
	n = up.count()
	r = s.doWith("GET", "/v1/workspaces/default/proxy/lim/x", "", nil)
	if r.Status != 429 || up.count() != n {
		t.Fatalf("after upstream Retry-After: %d, upstream requests %d -> %d", r.Status, n, up.count())
	}
}

func TestProxyStreams200MBWithFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200 MB")
	}
	const size = 200 << 20
	s := startServer(t, nil, "--data", t.TempDir())
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/big?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL)), 201)

	heapPeak := watchHeap()
	req, _ := http.NewRequest("GET", s.URL+"/v1/workspaces/default/proxy/big/file", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes, err %v", n, err)
	}
	// Upload 200 MB the other way.
	pr, pw := io.Pipe()
	go func() {
		for sent := 0; sent < size; sent += len(chunk) {
			pw.Write(chunk)
		}
		pw.Close()
	}()
	req, _ = http.NewRequest("PUT", s.URL+"/v1/workspaces/default/proxy/big/upload", pr)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	peak := heapPeak()
	if string(body) != fmt.Sprint(size) {
		t.Fatalf("upstream received %s bytes", body)
	}
	if p := peak; p > 64<<20 {
		t.Fatalf("heap in use peaked at %d MiB while streaming 200 MiB each way", p>>20)
	}
	t.Logf("heap in use peaked at %d MiB", peak>>20)
}

func TestFunctionsFolderAndValidation(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ping.yaml"), []byte("url: https://api.example.com\nmethod: GET\npath: /ping\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "acme"), 0o755)
	os.WriteFile(filepath.Join(dir, "acme", "hello.yml"), []byte("url: https://api.example.com\nmethod: GET\n"), 0o644)
	s := startServer(t, nil, "--data", t.TempDir(), "--functions", dir)
	if s.stopped {
		t.Fatalf("start with --functions: %s", s.Stderr.String())
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/functions/ping", ""), 200)
	mustStatus(t, s.do("GET", "/v1/workspaces/acme/functions/hello", ""), 200)

	for name, c := range map[string]struct {
		src, want string
	}{
		"bad yaml":      {"url: [unclosed\n", "line"},
		"unknown key":   {"url: https://a.example\nmethod: GET\nbogus: 1\n", "line 3"},
		"no connection": {"connection: nope\nmethod: GET\n", "connection"},
		"no credential": {"url: https://a.example\nmethod: GET\nparameters:\n  accessToken: {location: header, value: missing.cred}\n", "missing.cred"},
		"bad location":  {"url: https://a.example\nmethod: GET\nparameters:\n  p: {location: cookie}\n", "line 4"},
	} {
		r := putYAML(s, "default", "bad", c.src)
		if r.Status != 400 || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/functions/bad", ""), 404)

	bad := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(bad, []byte("method: GET\nurl: ftp://x\n"), 0o644)
	s2 := startServer(t, nil, "--data", t.TempDir(), "--functions", filepath.Dir(bad))
	if !s2.stopped || !strings.Contains(s2.Stderr.String(), "broken.yaml") {
		t.Fatalf("an invalid functions folder must stop the start naming the file: %s", s2.Stderr.String())
	}
}

func TestFunctionWithAbsoluteURL(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/u.key", `{"type":"api_key","fields":{"value":"url-key"}}`), 201)
	// No connection: the function names its URL; loopback is refused without a connection
	// that allows private networks, so this call must be refused and reach nothing.
	mustStatus(t, putYAML(s, "default", "direct", fmt.Sprintf("url: %s/data/2.5/forecast?lang=en\nmethod: GET\nparameters:\n  appid: {location: query, type: api_key, value: u.key}\n  q: {location: query, type: string}\n", up.URL)), 201)
	r := s.do("POST", "/v1/workspaces/default/functions/direct/call", `{"parameters":{"q":"Oslo"}}`)
	if r.Status != 403 || up.count() != 0 {
		t.Fatalf("url function to loopback: %d %s", r.Status, r.Body)
	}
	// Through a connection with the same base, the URL is joined once and keeps its query.
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/owm?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL+"/data/2.5")), 201)
	mustStatus(t, putYAML(s, "default", "viaconn", "connection: owm\nmethod: GET\npath: /forecast\nparameters:\n  appid: {location: query, type: api_key, value: u.key}\n  q: {location: query, type: string}\n"), 201)
	mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/viaconn/call", `{"parameters":{"q":"Oslo"}}`), 200)
	got := up.last(t)
	if got.Path != "/data/2.5/forecast" || got.Query.Get("appid") != "url-key" || got.Query.Get("q") != "Oslo" {
		t.Fatalf("upstream got %s ?%s", got.Path, got.RawQ)
	}
}
