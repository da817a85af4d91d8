package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
)

// canaryPEMBody is a jwt_bearer credential body whose private_key is a real EC key behind
// a line holding the canary (as openssl's "Bag Attributes" text sits before a key).
func canaryPEMBody(canary string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	text := "friendlyName: " + canary + "\n" + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, _ := json.Marshal(map[string]any{"type": "jwt_bearer", "fields": map[string]any{"alg": "ES256", "private_key": text}})
	return string(b)
}

// canaryPKCS12Body is a jwt_bearer credential body with a real PKCS#12 whose password is
// the canary.
func canaryPKCS12Body(canary string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pfx, err := pkcs12.Modern.WithIterations(1000).Encode(k, cert, nil, canary)
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(map[string]any{"type": "jwt_bearer", "fields": map[string]any{
		"alg": "ES256", "pkcs12": base64.StdEncoding.EncodeToString(pfx), "pkcs12_password": canary}})
	return string(b)
}

// jwtCredential is a PUT body for a jwt_bearer credential.
func jwtCredential(t *testing.T, fields map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": "jwt_bearer", "fields": fields})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func verifyJWT(t *testing.T, token string, key any, alg string, opts ...jwt.ParserOption) (jwt.MapClaims, map[string]any) {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return key, nil },
		append([]jwt.ParserOption{jwt.WithValidMethods([]string{alg}), jwt.WithExpirationRequired(), jwt.WithIssuedAt()}, opts...)...)
	if err != nil {
		t.Fatalf("the JWT the upstream received does not verify: %v", err)
	}
	return claims, parsed.Header
}

// TestJWTBearerReachesUpstream: a signed JWT with the expected claims reaches an upstream
// through the proxy and through functions (in the default place, a named header and a
// query parameter), from a key pasted with literal "\n" sequences.
func TestJWTBearerReachesUpstream(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	key := jwttest.RSA(t, 2048)
	pasted := strings.ReplaceAll(jwttest.PKCS1(t, key), "\n", `\n`) // as a web form sends it
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/svc.jwt", jwtCredential(t, map[string]any{
		"alg": "PS256", "private_key": pasted, "lifetime_seconds": 600, "headers": map[string]any{"kid": "k-2024"},
		"payload": map[string]any{"iss": "svc@example.iam", "aud": "https://api.example.com", "sub": "{{user}}",
			"by": "{{caller}}", "ws": "{{workspace}}", "scope": "read"},
	})), 201)
	view := s.do("GET", "/v1/workspaces/default/credentials/svc.jwt", "").json(t)
	if f := view["fields"].(map[string]any); f["lifetime_seconds"] != 600.0 || f["private_key"].(map[string]any)["set"] != true {
		t.Fatalf("view = %v", view)
	}
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/api?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"svc.jwt","allow_private_networks":true}`, up.URL)), 201)

	// Proxy, for an end user.
	h := http.Header{"X-Sesame-User": {"alice@example.com"}}
	r := mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/api/v1/me", "", h), 200)
	got := up.last(t)
	tok, ok := strings.CutPrefix(got.Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("upstream Authorization = %q", got.Header.Get("Authorization"))
	}
	claims, header := verifyJWT(t, tok, key.Public(), "PS256", jwt.WithIssuer("svc@example.iam"), jwt.WithAudience("https://api.example.com"))
	if claims["sub"] != "alice@example.com" || claims["by"] != "admin" || claims["ws"] != "default" || claims["scope"] != "read" {
		t.Errorf("claims = %v", claims)
	}
	if claims["exp"].(float64)-claims["iat"].(float64) != 600 || claims["jti"] == nil || header["kid"] != "k-2024" || header["typ"] != "JWT" {
		t.Errorf("claims %v, header %v", claims, header)
	}
	if strings.Contains(string(r.Body), tok) {
		t.Fatal("the JWT came back to the caller")
	}
	// A fresh JWT per call.
	mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/api/v1/me", "", h), 200)
	if tok2 := strings.TrimPrefix(up.last(t).Header.Get("Authorization"), "Bearer "); tok2 == tok {
		t.Error("the JWT was reused without reuse")
	}

	// Functions: the conventional accessToken parameter, a named header, a query parameter.
	mustStatus(t, putYAML(s, "default", "me2", `
connection: api
method: GET
path: /v1/me
parameters:
  accessToken: {location: header, type: jwt_bearer, value: svc.jwt}
  X-Assertion: {location: header, type: jwt_bearer, value: svc.jwt}
  assertion: {location: query, type: jwt_bearer, value: svc.jwt}
`), 201)
	r = mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/me2/call", `{"parameters":{},"user":"bob"}`), 200)
	got = up.last(t)
	for where, tok := range map[string]string{
		"Authorization": strings.TrimPrefix(got.Header.Get("Authorization"), "Bearer "),
		"X-Assertion":   got.Header.Get("X-Assertion"),
		"query":         got.Query.Get("assertion"),
	} {
		claims, _ := verifyJWT(t, tok, key.Public(), "PS256", jwt.WithIssuer("svc@example.iam"))
		if claims["sub"] != "bob" {
			t.Errorf("%s: sub = %v", where, claims["sub"])
		}
		if strings.Contains(string(r.Body), tok) {
			t.Errorf("%s: the JWT came back to the caller", where)
		}
	}
	if !strings.HasPrefix(got.Header.Get("Authorization"), "Bearer ") {
		t.Errorf("Authorization = %q", got.Header.Get("Authorization"))
	}

	// Without an end user the payload cannot be filled: a clear error, no call.
	n := up.count()
	r = s.do("GET", "/v1/workspaces/default/proxy/api/v1/me", "")
	if r.Status != 400 || !strings.Contains(string(r.Body), "{{user}}") || up.count() != n {
		t.Errorf("no end user: %d %s", r.Status, r.Body)
	}
	assertNoKeyInLogs(t, s, pasted)
}

// tokenEndpoint is an RFC 7523 token endpoint for the tests.
type tokenEndpoint struct {
	*httptest.Server
	exchanges atomic.Int32
	mu        sync.Mutex
	bad       []string
	seen      []string // assertions
}

func newTokenEndpoint(t *testing.T, pub any, alg string) *tokenEndpoint {
	return newTokenEndpointOn(t, pub, alg, nil)
}

// newTokenEndpointOn is newTokenEndpoint listening on ln (nil: a new loopback listener).
func newTokenEndpointOn(t *testing.T, pub any, alg string, ln net.Listener) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := te.exchanges.Add(1)
		time.Sleep(50 * time.Millisecond) // long enough for concurrent callers to pile up
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		problem := ""
		switch {
		case err != nil || r.Method != "POST" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
			problem = "not a form POST"
		case form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
			problem = "grant_type " + form.Get("grant_type")
		default:
			claims := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(form.Get("assertion"), claims, func(*jwt.Token) (any, error) { return pub, nil },
				jwt.WithValidMethods([]string{alg}), jwt.WithAudience(te.URL+"/token"), jwt.WithIssuer("svc@example.iam"), jwt.WithExpirationRequired())
			if err != nil {
				problem = "assertion: " + err.Error()
			}
		}
		te.mu.Lock()
		te.seen = append(te.seen, form.Get("assertion"))
		if problem != "" {
			te.bad = append(te.bad, problem)
		}
		te.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if problem != "" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"at-%d-%s","token_type":"Bearer","expires_in":3600}`, n, strings.Repeat("x", 20))
	}))
	if ln != nil {
		te.Server.Listener.Close()
		te.Server.Listener = ln
	}
	te.Server.Start()
	t.Cleanup(te.Close)
	return te
}

// TestJWTBearerExchange: with token_url the JWT is exchanged (RFC 7523) and the access
// token used and cached: a second call exchanges nothing, 50 concurrent calls exchange
// once, and an edited credential is not served the old token.
func TestJWTBearerExchange(t *testing.T) {
	// The token endpoint is on loopback, which only this switch lets the exchange reach.
	s := startServer(t, map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}, "--data", t.TempDir())
	up := newUpstream(t)
	key := jwttest.EC(t, elliptic.P384())
	te := newTokenEndpoint(t, key.Public(), "ES384")
	p12 := jwttest.PKCS12(t, key, "p12-pass")
	fields := func(iss string) map[string]any {
		return map[string]any{"alg": "ES384", "pkcs12": p12, "pkcs12_password": "p12-pass", "token_url": te.URL + "/token",
			"payload": map[string]any{"iss": iss, "aud": te.URL + "/token", "scope": "https://www.googleapis.com/auth/calendar"}}
	}
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/google.sa", jwtCredential(t, fields("svc@example.iam"))), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/cal?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"google.sa","allow_private_networks":true}`, up.URL)), 201)

	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/cal/calendars", ""), 200)
	first := up.last(t).Header.Get("Authorization")
	if !strings.HasPrefix(first, "Bearer at-1-") {
		t.Fatalf("upstream Authorization = %q (token endpoint problems: %v)", first, te.bad)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/cal/calendars", ""), 200)
	if got := up.last(t).Header.Get("Authorization"); got != first || te.exchanges.Load() != 1 {
		t.Fatalf("second call: %q after %d exchanges", got, te.exchanges.Load())
	}

	// An edited credential (here: another issuer) gets a token of its own, and then 50
	// concurrent callers share one exchange.
	fresh := fields("svc@example.iam")
	fresh["lifetime_seconds"] = 120
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/google.sa", jwtCredential(t, fresh)), 200)
	before := te.exchanges.Load()
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range 50 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", s.URL+"/v1/workspaces/default/proxy/cal/calendars", nil)
			req.Header.Set("Authorization", "Bearer "+s.AdminKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("concurrent call %d: status %d", i, c)
		}
	}
	if n := te.exchanges.Load() - before; n != 1 {
		t.Fatalf("50 concurrent calls made %d exchanges, want 1", n)
	}
	up.mu.Lock()
	last50 := up.seen[len(up.seen)-50:]
	up.mu.Unlock()
	for _, r := range last50 {
		if a := r.Header.Get("Authorization"); a == first || !strings.HasPrefix(a, "Bearer at-") || a != last50[0].Header.Get("Authorization") {
			t.Fatalf("after the edit the upstream got %q (first token %q)", a, first)
		}
	}
	te.mu.Lock()
	bad, assertions := te.bad, te.seen
	te.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("the token endpoint saw bad requests: %v", bad)
	}
	for _, a := range assertions {
		assertNoKeyInLogs(t, s, a)
	}
	assertNoKeyInLogs(t, s, strings.TrimPrefix(first, "Bearer "))
	assertNoKeyInLogs(t, s, p12)
	if !strings.Contains(s.Stderr.String(), "jwt bearer token exchange") {
		t.Error("exchanges are not logged")
	}

	// The upstream revokes the cached token (401): Sesame drops it, exchanges once more
	// and repeats the call with the new token.
	revoked := last50[0].Header.Get("Authorization")
	up.setHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == revoked {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	before = te.exchanges.Load()
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/cal/calendars", ""), 200)
	if got := up.last(t).Header.Get("Authorization"); got == revoked || te.exchanges.Load() != before+1 {
		t.Fatalf("after a 401 the upstream got %q, %d new exchanges", got, te.exchanges.Load()-before)
	}
	up.setHandler(nil)

	// A token endpoint that refuses: a clear upstream error naming its OAuth error code.
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/google.sa", jwtCredential(t, fields("someone-else"))), 200)
	r := s.do("GET", "/v1/workspaces/default/proxy/cal/calendars", "")
	if r.Status < 500 || !strings.Contains(string(r.Body), "invalid_grant") || !strings.Contains(string(r.Body), "upstream_error") {
		t.Errorf("refused assertion: %d %s", r.Status, r.Body)
	}
}

// TestJWTBearerTokenURLOnLoopbackRefused: without SESAME_ALLOW_PRIVATE_TOKEN_URLS the
// exchange does not reach loopback, even when the connection allows private networks.
func TestJWTBearerTokenURLOnLoopbackRefused(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	key := jwttest.EC(t, elliptic.P256())
	te := newTokenEndpoint(t, key.Public(), "ES256")
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/x.sa", jwtCredential(t, map[string]any{
		"alg": "ES256", "private_key": jwttest.SEC1(t, key), "token_url": te.URL + "/token"})), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/x?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"x.sa","allow_private_networks":true}`, up.URL)), 201)
	r := s.do("GET", "/v1/workspaces/default/proxy/x/", "")
	if r.Status != 403 || !strings.Contains(string(r.Body), "SESAME_ALLOW_PRIVATE_TOKEN_URLS") || te.exchanges.Load() != 0 || up.count() != 0 {
		t.Fatalf("%d %s; %d exchanges", r.Status, r.Body, te.exchanges.Load())
	}
}

// TestJWTBearerBadKeysRefused: saving a credential with a key that does not parse or fit
// gets 400 naming the field, never echoes the key, and stores nothing.
func TestJWTBearerBadKeysRefused(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	small := jwttest.PKCS1(t, jwttest.RSA(t, 1024))
	rsaPEM := jwttest.PKCS8(t, jwttest.RSA(t, 2048))
	p12 := jwttest.PKCS12(t, jwttest.EC(t, elliptic.P256()), "right")
	cases := []struct {
		name   string
		fields map[string]any
		field  string
		want   string
		secret string
	}{
		{"canary as the key", map[string]any{"alg": "RS256", "private_key": canary}, "private_key", "not a PEM private key", canary},
		{"RSA key of 1024 bits", map[string]any{"alg": "RS256", "private_key": small}, "private_key", "1024 bits", small},
		{"RSA key for ES256", map[string]any{"alg": "ES256", "private_key": rsaPEM}, "private_key", "needs an EC key", rsaPEM},
		{"PEM cut short", map[string]any{"alg": "RS256", "private_key": rsaPEM[:len(rsaPEM)/2]}, "private_key", "cut short", rsaPEM},
		{"wrong PKCS#12 password", map[string]any{"alg": "ES256", "pkcs12": p12, "pkcs12_password": canary}, "pkcs12_password", "wrong password", p12},
		{"short HMAC secret", map[string]any{"alg": "HS384", "secret": canary}, "secret", "needs at least 48", canary},
		{"unknown template variable", map[string]any{"alg": "HS256", "secret": canary + canary, "payload": map[string]any{"sub": "{{password}}"}}, "payload", "unknown variable", canary},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("PUT", "/v1/workspaces/default/credentials/bad.jwt", jwtCredential(t, c.fields))
			if r.Status != 400 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			body := r.json(t)
			msg, _ := body["message"].(string)
			if body["code"] != "invalid_field" || !strings.Contains(msg, `"`+c.field+`"`) || !strings.Contains(msg, c.want) {
				t.Fatalf("response %s: want invalid_field naming %q saying %q", r.Body, c.field, c.want)
			}
			assertNoMaterial(t, "the response", string(r.Body), c.secret)
			mustStatus(t, s.do("GET", "/v1/workspaces/default/credentials/bad.jwt", ""), 404)
		})
	}
	for _, c := range cases {
		assertNoKeyInLogs(t, s, c.secret)
	}
}

// assertNoMaterial fails if text holds the canary or any 12-byte stretch of secret.
func assertNoMaterial(t *testing.T, where, text, secret string) {
	t.Helper()
	if strings.Contains(text, canary) {
		t.Fatalf("%s holds the canary", where)
	}
	for _, line := range strings.Fields(strings.ReplaceAll(secret, `\n`, "\n")) {
		if strings.HasPrefix(line, "-----") || strings.HasSuffix(line, "-----") {
			continue
		}
		for i := 0; i+12 <= len(line); i++ {
			if strings.Contains(text, line[i:i+12]) {
				t.Fatalf("%s holds secret material %q", where, line[i:i+12])
			}
		}
	}
}

func assertNoKeyInLogs(t *testing.T, s *testServer, secret string) {
	t.Helper()
	assertNoMaterial(t, "the server log", s.Stdout.String()+s.Stderr.String(), secret)
}
