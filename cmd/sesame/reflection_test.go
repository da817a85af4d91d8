package main

import (
	"bytes"
	"compress/gzip"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/testpg"
)

// echo answers with everything it received, the way debug endpoints and error pages do:
// every request header back as X-Echo-* headers and in a Set-Cookie, the query in a
// cross-origin Location, and a body that quotes headers and query raw, URL-encoded,
// JSON-encoded (also with "/" escaped, as PHP does) and Basic-decoded. The body is written
// a byte at a time with a flush after each, so every value is split across chunks. The
// query parameter "mode" picks redirect, gzip, deflate-less "br", json or plain.
func echo(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	for k, vs := range r.Header {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	fmt.Fprintf(&b, "raw query: %s\n", r.URL.RawQuery)
	for k, vs := range r.URL.Query() {
		fmt.Fprintf(&b, "query %s = %s\n", k, strings.Join(vs, ", "))
	}
	if u, p, ok := r.BasicAuth(); ok {
		fmt.Fprintf(&b, "basic user %s password %s\n", u, p)
	}
	j, _ := json.Marshal(map[string]any{"headers": r.Header, "query": r.URL.Query()})
	b.Write(j)
	b.WriteString(strings.ReplaceAll(string(j), "/", `\/`))
	body := b.String()

	for k, vs := range r.Header {
		w.Header()["X-Echo-"+k] = vs
	}
	w.Header().Set("Set-Cookie", "echo="+url.QueryEscape(r.Header.Get("Authorization"))+"; Path=/")
	switch r.URL.Query().Get("mode") {
	case "redirect":
		w.Header().Set("Location", "https://elsewhere.example/cb?"+r.URL.RawQuery)
		w.WriteHeader(http.StatusFound)
		return
	case "gzip":
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write([]byte(body))
		zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", fmt.Sprint(zb.Len()))
		w.Write(zb.Bytes())
		return
	case "br":
		w.Header().Set("Content-Encoding", "br")
		w.Write([]byte(body))
		return
	case "json":
		// Every character \u-escaped: only a decoding reader sees the values.
		var e strings.Builder
		for _, c := range r.Header.Get("Authorization") + "|" + r.URL.Query().Get("appid") + "|" + r.Header.Get("X-Weather-Key") + "|" + r.Header.Get("X-Secret") {
			fmt.Fprintf(&e, `\u%04x`, c)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo":"%s"}`, e.String())
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	rc := http.NewResponseController(w)
	for i := range len(body) {
		w.Write([]byte{body[i]})
		rc.Flush()
	}
}

// reflectionSetup is a server with one connection per credential kind, all to an echo
// upstream, and a caller key that holds only run_functions (the caller role).
type reflectionSetup struct {
	s         *testServer
	up        *upstream
	callerKey string
	// secrets are the values a caller must never see, in any form.
	secrets []string
}

func newReflectionSetup(t *testing.T, args ...string) *reflectionSetup {
	t.Helper()
	p := oauthtest.New(t, oauthtest.Options{})
	s := startServer(t, map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}, append([]string{"--data", t.TempDir()}, args...)...)
	p.AddClient("cc-app", "cc-client-secret-CANARY", s.URL+"/")
	up := newUpstream(t)
	up.setHandler(echo)
	const hmacSecret = "hs256-secret-CANARY-0123456789abcdef"
	ecKey := jwttest.EC(t, elliptic.P256())
	te := newTokenEndpoint(t, ecKey.Public(), "ES256")
	jwtx, _ := json.Marshal(map[string]any{"type": "jwt_bearer", "fields": map[string]any{"alg": "ES256", "private_key": jwttest.PKCS8(t, ecKey),
		"token_url": te.URL + "/token", "payload": map[string]any{"iss": "svc@example.iam", "aud": te.URL + "/token"}}})
	creds := map[string]string{
		"w.basic":  `{"type":"basic","fields":{"username":"bob","password":"pw-basic/CANARY+&"}}`,
		"w.bearer": `{"type":"bearer","fields":{"token":"tok-bearer/CANARY"}}`,
		"w.keyHdr": `{"type":"api_key","fields":{"value":"key-header<CANARY>&\"x\"","name":"X-Weather-Key"}}`,
		"w.keyQry": `{"type":"api_key","fields":{"value":"key query/CANARY+&=","name":"appid","in":"query"}}`,
		"w.secret": `{"type":"secret","fields":{"value":"s3cr3t/with space CANARY"}}`,
		"w.oauth": fmt.Sprintf(`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"cc-app","client_secret":"cc-client-secret-CANARY","token_url":%q}}`,
			p.TokenURL()),
		"w.jwtx": string(jwtx),
		"w.jwt":  fmt.Sprintf(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":%q,"payload":{"iss":"me"}}}`, hmacSecret),
	}
	for k, b := range creds {
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/"+k, b), 201)
	}
	for name, cred := range map[string]string{"basic": "w.basic", "bearer": "w.bearer", "keyhdr": "w.keyHdr", "keyqry": "w.keyQry",
		"oauth": "w.oauth", "jwt": "w.jwt", "jwtx": "w.jwtx", "secret": "w.secret"} {
		extra := ""
		if name == "secret" {
			extra = `,"auth":{"in":"header","name":"X-Secret"}`
		}
		body := fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true%s}`, up.URL+"/base", cred, extra)
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/"+name+"?test=false", body), 201)
	}
	_, key := newCaller(t, s, "carol", "default")
	return &reflectionSetup{s: s, up: up, callerKey: key, secrets: []string{
		"pw-basic/CANARY+&", "bob:pw-basic/CANARY+&", "tok-bearer/CANARY", "key-header<CANARY>&\"x\"", "key query/CANARY+&=",
		"s3cr3t/with space CANARY", "cc-client-secret-CANARY", hmacSecret,
	}}
}

// injected returns what the upstream last received that came from a credential: the
// Authorization value and its token, and the api_key and secret values.
func injectedValues(r seenRequest) []string {
	var out []string
	for _, v := range []string{r.Header.Get("Authorization"), r.Header.Get("X-Weather-Key"), r.Header.Get("X-Secret"), r.Query.Get("appid")} {
		if v == "" {
			continue
		}
		out = append(out, v)
		if _, tok, ok := strings.Cut(v, " "); ok {
			out = append(out, tok)
		}
	}
	return out
}

// assertNothingReflected fails if any secret or injected value, in any form a response
// could carry it, appears in r's headers or body.
func (rs *reflectionSetup) assertNothingReflected(t *testing.T, what string, r response, injected []string) {
	t.Helper()
	var all strings.Builder
	for k, vs := range r.Header {
		fmt.Fprintf(&all, "%s: %s\n", k, strings.Join(vs, "\n"))
	}
	all.Write(r.Body)
	text := all.String()
	var found []string
	for _, v := range append(append([]string(nil), rs.secrets...), injected...) {
		j, _ := json.Marshal(v)
		forms := []string{v, url.QueryEscape(v), url.PathEscape(v), string(j[1 : len(j)-1]), strings.ReplaceAll(string(j[1:len(j)-1]), "/", `\/`),
			base64.StdEncoding.EncodeToString([]byte(v))}
		for _, f := range forms {
			if len(f) >= 6 && strings.Contains(text, f) && !slices.Contains(found, f) {
				found = append(found, f)
			}
		}
	}
	if len(found) > 0 {
		t.Errorf("%s: the caller received forms of injected values %q in:\n%.2000s", what, found, text)
	}
}

// TestNothingInjectedComesBack: for every credential kind, an upstream that echoes the
// request back (headers, body split across chunks, a cross-origin Location, gzip) returns
// nothing injected to a caller who holds only run_functions; TRACE and CONNECT are refused.
func TestNothingInjectedComesBack(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testNothingInjectedComesBack(t) })
	t.Run("postgres", func(t *testing.T) { testNothingInjectedComesBack(t, "--postgres", testpg.URL(t)) })
}

func testNothingInjectedComesBack(t *testing.T, args ...string) {
	rs := newReflectionSetup(t, args...)
	caller := withKey(rs.callerKey)
	for _, conn := range []string{"basic", "bearer", "keyhdr", "keyqry", "oauth", "jwt", "jwtx", "secret"} {
		t.Run(conn, func(t *testing.T) {
			for _, mode := range []string{"plain", "redirect", "gzip", "json"} {
				h := caller.Clone()
				h.Set("Accept-Encoding", "gzip") // asks for gzip: gets it scanned, or not at all
				h.Set("Range", "bytes=0-20")     // a range could cut a value into unrecognisable pieces
				r := rs.s.doWith("GET", "/v1/workspaces/default/proxy/"+conn+"/echo?mode="+mode+"&x=1", "", h)
				seen := rs.up.last(t)
				injected := injectedValues(seen)
				if len(injected) == 0 {
					t.Fatalf("%s: nothing was injected upstream: %v", mode, seen.Header)
				}
				if seen.Header.Get("Range") != "" {
					t.Errorf("%s: the Range reached the upstream", mode)
				}
				want := map[string]int{"plain": 200, "redirect": 302, "gzip": 200, "json": 200}[mode]
				if r.Status != want {
					t.Fatalf("%s: status %d, want %d: %s", mode, r.Status, want, r.Body)
				}
				if mode == "plain" && !bytes.Contains(r.Body, []byte("[redacted]")) {
					t.Errorf("%s: the echo shows no redaction: %s", mode, r.Body)
				}
				if mode == "gzip" && (r.Header.Get("Content-Encoding") != "" || !bytes.Contains(r.Body, []byte("raw query: "))) {
					t.Errorf("gzip: the body did not come back decoded (%v): %q", r.Header, r.Body)
				}
				rs.assertNothingReflected(t, "proxy "+mode, r, injected)
			}

			// An encoding that cannot be scanned is refused.
			h := caller.Clone()
			h.Set("Accept-Encoding", "br")
			r := rs.s.doWith("GET", "/v1/workspaces/default/proxy/"+conn+"/echo?mode=br", "", h)
			if r.Status != http.StatusBadGateway || r.json(t)["code"] != "upstream_encoding_unsupported" {
				t.Errorf("br: %d %s", r.Status, r.Body)
			}
			rs.assertNothingReflected(t, "proxy br", r, injectedValues(rs.up.last(t)))

			// A function on the same connection.
			mustStatus(t, putYAML(rs.s, "default", "echo-"+conn, "connection: "+conn+"\nmethod: GET\npath: /echo\nparameters:\n  mode: {location: query, type: string}\n"), 201)
			for _, mode := range []string{"plain", "redirect", "gzip", "json"} {
				r := rs.s.doWith("POST", "/v1/workspaces/default/functions/echo-"+conn+"/call", `{"parameters":{"mode":"`+mode+`"}}`, caller)
				mustStatus(t, r, 200)
				rs.assertNothingReflected(t, "function "+mode, r, injectedValues(rs.up.last(t)))
			}
		})
	}

	t.Run("function parameters", func(t *testing.T) {
		// api_key and secret credentials placed by the function itself, in the query and a header.
		mustStatus(t, putYAML(rs.s, "default", "echo-params", `
connection: basic
method: GET
path: /echo
parameters:
  appid: {location: query, type: api_key, value: w.keyQry}
  X-Secret: {location: header, type: secret, value: w.secret}
  mode: {location: query, type: string}
outputTransform: '.'
`), 201)
		for _, mode := range []string{"plain", "json", "gzip"} {
			r := mustStatus(t, rs.s.doWith("POST", "/v1/workspaces/default/functions/echo-params/call", `{"parameters":{"mode":"`+mode+`"}}`, caller), 200)
			seen := rs.up.last(t)
			if seen.Query.Get("appid") == "" || seen.Header.Get("X-Secret") == "" {
				t.Fatalf("not injected: %v %v", seen.Query, seen.Header)
			}
			rs.assertNothingReflected(t, "function params "+mode, r, injectedValues(seen))
		}
	})

	t.Run("connection test quoting the upstream's error", func(t *testing.T) {
		// A failed test request reports the upstream's answer; an echo must not carry the credential.
		for conn, cred := range map[string]string{"basic": "w.basic", "keyqry": "w.keyQry", "oauth": "w.oauth"} {
			body := fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true,"test":{"method":"GET","path":"/echo","expect_status":299}}`,
				rs.up.URL+"/base", cred)
			mustStatus(t, rs.s.do("PUT", "/v1/workspaces/default/connections/"+conn+"?test=false", body), 200)
			r := rs.s.do("POST", "/v1/workspaces/default/connections/"+conn+"/test", "")
			if !strings.Contains(string(r.Body), "[redacted]") {
				t.Errorf("%s: the test result shows no redaction: %s", conn, r.Body)
			}
			rs.assertNothingReflected(t, "connection test "+conn, r, injectedValues(rs.up.last(t)))
		}
	})

	t.Run("TRACE and CONNECT", func(t *testing.T) {
		before := rs.up.count()
		for _, m := range []string{"TRACE", "CONNECT"} {
			r := rs.s.doWith(m, "/v1/workspaces/default/proxy/bearer/echo", "", caller)
			if r.Status < 400 {
				t.Errorf("%s: status %d: %s", m, r.Status, r.Body)
			}
			rs.assertNothingReflected(t, m, r, nil)
		}
		if r := rs.s.doWith("TRACE", "/v1/workspaces/default/proxy/bearer/echo", "", caller); r.Status != http.StatusMethodNotAllowed || r.json(t)["code"] != "method_not_allowed" {
			t.Errorf("TRACE: %d %s", r.Status, r.Body)
		}
		if rs.up.count() != before {
			t.Errorf("the upstream received %d TRACE/CONNECT requests", rs.up.count()-before)
		}
	})
}

// TestProxyRefusesHiddenDotSegments: path segments that some server on the way reads as
// ".." are refused before anything is sent.
func TestProxyRefusesHiddenDotSegments(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/api?test=false",
		fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL+"/v1")), 201)
	for _, p := range []string{
		"..;/other", "x/..;/other", "..;x/other", ".;/other", "%2e%2e;/other", "%252e%252e/other", "x/%252e%252e/%252e%252e/other",
		"%25252e%25252e/other", "%2e%2e/other", "%2E%2E/other", "..%5cother", "%252e%252e%255cother", "..%255c..%255cother", "%2e%2e%3b/other",
	} {
		r := s.doWith("GET", "/v1/workspaces/default/proxy/api/"+p, "", nil)
		if r.Status != http.StatusBadRequest || r.json(t)["code"] != "invalid_argument" {
			t.Errorf("%s: status %d: %s", p, r.Status, r.Body)
		}
	}
	// A backslash as it is never makes it into a URL the server accepts; encoded, it is refused above.
	if up.count() != 0 {
		t.Fatalf("the upstream received %d requests: last %s", up.count(), up.last(t).Path)
	}
	// Ordinary paths with dots and semicolons still pass.
	for _, p := range []string{"a.b/c..d", "x;y=1/z", "%2e%2e%2e/z", "v1/..a"} {
		mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/api/"+p, "", nil), 200)
	}
}
