package jwtinject

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"github.com/sesamehq/sesame/internal/testclock"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
)

const canary = "CANARY-91c4-jwtinject"

// clock is a settable test clock.
type clock = testclock.Clock

type fixture struct {
	in    *Injector
	clock *clock
	key   crypto.Signer
	pem   string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	mk, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	c := testclock.New(time.Now().Truncate(time.Second))
	key := jwttest.KeyFor(t, "ES256")
	return &fixture{
		in:    New(Options{Sealer: crypt.NewKeyring(mk), AllowPrivate: true, Now: c.Now, ExchangeTimeout: time.Second}),
		clock: c, key: key, pem: jwttest.PKCS8(t, key),
	}
}

func (f *fixture) material(public map[string]any) credential.Material {
	p := map[string]any{"alg": "ES256", "payload": map[string]any{"iss": "svc", "aud": "https://api.example.com"}}
	for k, v := range public {
		p[k] = v
	}
	return credential.Material{Workspace: "acme", Key: "svc.jwt", Type: "jwt_bearer", Public: p,
		Secrets: map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(f.pem))}}
}

// inject runs the injector on a fresh request and returns it.
func (f *fixture) inject(t testing.TB, ctx context.Context, m credential.Material, target credential.Target) (*http.Request, error) {
	t.Helper()
	req := httptest.NewRequest("GET", "https://api.example.com/v1/things?x=1", nil)
	return req, f.in.Inject(ctx, req, m, target)
}

func (f *fixture) verify(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return f.key.Public(), nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(f.clock.Now), jwt.WithIssuedAt()); err != nil {
		t.Fatalf("the JWT does not verify: %v", err)
	}
	return claims
}

func bearer(t *testing.T, req *http.Request) string {
	t.Helper()
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("Authorization = %q", req.Header.Get("Authorization"))
	}
	return tok
}

func TestFreshJWTPerCall(t *testing.T) {
	f := newFixture(t)
	m := f.material(nil)
	r1, err := f.inject(t, context.Background(), m, credential.Target{})
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := f.inject(t, context.Background(), m, credential.Target{})
	c1, c2 := f.verify(t, bearer(t, r1)), f.verify(t, bearer(t, r2))
	if c1["jti"] == c2["jti"] || c1["iss"] != "svc" {
		t.Errorf("claims %v and %v", c1, c2)
	}
}

func TestPlacement(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		public map[string]any
		target credential.Target
		check  func(r *http.Request) string // returns the token found
	}{
		{"default", nil, credential.Target{}, func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }},
		{"header_name and scheme", map[string]any{"header_name": "X-Auth", "scheme": "JWT"}, credential.Target{},
			func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("X-Auth"), "JWT ") }},
		{"bare token", map[string]any{"header_name": "X-Assertion", "scheme": ""}, credential.Target{},
			func(r *http.Request) string { return r.Header.Get("X-Assertion") }},
		{"function query parameter", nil, credential.Target{In: "query", Name: "assertion"},
			func(r *http.Request) string {
				if r.URL.Query().Get("x") != "1" {
					return ""
				}
				return r.URL.Query().Get("assertion")
			}},
		{"function header", nil, credential.Target{In: "header", Name: "X-Jwt"}, func(r *http.Request) string { return r.Header.Get("X-Jwt") }},
		{"function Authorization header keeps the scheme", nil, credential.Target{In: "header", Name: "Authorization"},
			func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }},
		{"accessToken parameter means the default place", nil, credential.Target{In: "header", Name: "accessToken"},
			func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := f.inject(t, context.Background(), f.material(c.public), c.target)
			if err != nil {
				t.Fatal(err)
			}
			tok := c.check(req)
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("no JWT where expected: %v %v", req.Header, req.URL)
			}
			f.verify(t, tok)
		})
	}
	for _, target := range []credential.Target{{In: "body", Name: "jwt"}, {In: "path", Name: "jwt"}, {In: "header", Name: "X Bad"}} {
		if _, err := f.inject(t, context.Background(), f.material(nil), target); sesame.ErrorCode(err) != sesame.CodeInvalidArgument {
			t.Errorf("target %+v: %v", target, err)
		}
	}
}

func TestTemplateUsesEndUserAndCaller(t *testing.T) {
	f := newFixture(t)
	m := f.material(map[string]any{"payload": map[string]any{"sub": "{{user}}", "act": "{{caller}}", "ws": "{{workspace}}"}})
	ctx := sesame.WithPrincipal(sesame.WithEndUser(context.Background(), "alice@example.com"),
		sesame.Principal{Kind: sesame.PrincipalUser, UserID: "u1", UserName: "ops"})
	req, err := f.inject(t, ctx, m, credential.Target{})
	if err != nil {
		t.Fatal(err)
	}
	claims := f.verify(t, bearer(t, req))
	if claims["sub"] != "alice@example.com" || claims["act"] != "ops" || claims["ws"] != "acme" {
		t.Errorf("claims = %v", claims)
	}
	noUser := sesame.WithPrincipal(context.Background(), sesame.Principal{Kind: sesame.PrincipalUser, UserID: "u1", UserName: "ops"})
	_, err = f.inject(t, noUser, m, credential.Target{})
	if sesame.ErrorCode(err) != sesame.CodeInvalidArgument || !strings.Contains(err.Error(), "uses {{user}}, but") || !strings.Contains(err.Error(), "X-Sesame-User") {
		t.Errorf("no end user: %v", err)
	}
}

// TestReuse: with reuse the same JWT serves calls until shortly before it expires.
func TestReuse(t *testing.T) {
	f := newFixture(t)
	m := f.material(map[string]any{"reuse": true, "lifetime_seconds": 300.0})
	tok := func() string {
		req, err := f.inject(t, context.Background(), m, credential.Target{})
		if err != nil {
			t.Fatal(err)
		}
		return bearer(t, req)
	}
	first := tok()
	if tok() != first {
		t.Fatal("a second call signed anew")
	}
	f.clock.Add(260 * time.Second) // margin for 300 s is 30 s
	if tok() != first {
		t.Fatal("the token was replaced too early")
	}
	f.clock.Add(15 * time.Second) // 275 s: within the last 30 s
	second := tok()
	if second == first {
		t.Fatal("the token was reused into its last seconds")
	}
	f.verify(t, second)
	// Without reuse every call signs.
	plain := f.material(nil)
	r1, _ := f.inject(t, context.Background(), plain, credential.Target{})
	r2, _ := f.inject(t, context.Background(), plain, credential.Target{})
	if bearer(t, r1) == bearer(t, r2) {
		t.Fatal("tokens reused without reuse")
	}
	// Reused tokens are kept per end user when the payload names the user.
	pu := f.material(map[string]any{"reuse": true, "payload": map[string]any{"sub": "{{user}}"}})
	ra, _ := f.inject(t, sesame.WithEndUser(context.Background(), "a"), pu, credential.Target{})
	rb, _ := f.inject(t, sesame.WithEndUser(context.Background(), "b"), pu, credential.Target{})
	if ca, cb := f.verify(t, bearer(t, ra)), f.verify(t, bearer(t, rb)); ca["sub"] != "a" || cb["sub"] != "b" {
		t.Fatalf("per-user tokens mixed: %v %v", ca, cb)
	}
}

// TestCacheHoldsTokensSealed: what the injector keeps is ciphertext bound to its key.
func TestCacheHoldsTokensSealed(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	m := f.material(map[string]any{"token_url": ts.URL + "/token"})
	if _, err := f.inject(t, context.Background(), m, credential.Target{}); err != nil {
		t.Fatal(err)
	}
	mr := f.material(map[string]any{"reuse": true})
	req, _ := f.inject(t, context.Background(), mr, credential.Target{})
	jwtTok := bearer(t, req)
	f.in.mu.Lock()
	defer f.in.mu.Unlock()
	if len(f.in.tokens) != 2 {
		t.Fatalf("%d cached tokens", len(f.in.tokens))
	}
	for k, e := range f.in.tokens {
		if bytes.Contains(e.blob, []byte("at-1")) || bytes.Contains(e.blob, []byte(jwtTok[:20])) {
			t.Fatal("a cached token is in plaintext")
		}
		for other := range f.in.tokens {
			if other != k {
				if _, err := f.in.open(e, other); err == nil {
					t.Fatal("a sealed token opens under another cache key")
				}
			}
		}
	}
}

// tokenServer is an RFC 7523 token endpoint that checks the grant and the assertion.
type tokenServer struct {
	*httptest.Server
	n       atomic.Int32
	mu      sync.Mutex
	forms   []url.Values
	delay   time.Duration
	expires any
	handle  func(w http.ResponseWriter, r *http.Request) bool // true if it answered
}

func newTokenServer(t *testing.T, f *fixture) *tokenServer {
	ts := &tokenServer{expires: 3600}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.n.Add(1)
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		ts.mu.Lock()
		ts.forms = append(ts.forms, form)
		delay, expires, handle := ts.delay, ts.expires, ts.handle
		ts.mu.Unlock()
		time.Sleep(delay)
		if handle != nil && handle(w, r) {
			return
		}
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
			form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"unsupported_grant_type"}`)
			return
		}
		if _, err := jwt.Parse(form.Get("assertion"), func(*jwt.Token) (any, error) { return f.key.Public(), nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(f.clock.Now)); err != nil {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":%v}`, n, expires)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) set(fn func(ts *tokenServer)) {
	ts.mu.Lock()
	fn(ts)
	ts.mu.Unlock()
}

func TestExchangeAndCache(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	ts.expires = 100
	m := f.material(map[string]any{"token_url": ts.URL + "/token", "scope": "read write"})
	get := func() string {
		t.Helper()
		req, err := f.inject(t, context.Background(), m, credential.Target{})
		if err != nil {
			t.Fatal(err)
		}
		return bearer(t, req)
	}
	if got := get(); got != "at-1" {
		t.Fatalf("token %q", got)
	}
	form := ts.forms[0]
	if form.Get("scope") != "read write" || len(form) != 3 {
		t.Errorf("form = %v", form)
	}
	if get() != "at-1" || ts.n.Load() != 1 {
		t.Fatalf("the second call exchanged again (%d exchanges)", ts.n.Load())
	}
	// In the last tenth of its life the cached token is still served while one exchange
	// runs in the background.
	f.clock.Add(95 * time.Second)
	if got := get(); got != "at-1" {
		t.Fatalf("token during early refresh: %q", got)
	}
	waitFor(t, func() bool { return ts.n.Load() == 2 })
	waitFor(t, func() bool { return get() == "at-2" })
	// Expired: the caller waits for a new one.
	f.clock.Add(101 * time.Second)
	if got := get(); got != "at-3" {
		t.Fatalf("token after expiry: %q", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneExchangeUnderConcurrency: 100 callers at once cause one exchange.
func TestOneExchangeUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	ts.delay = 100 * time.Millisecond
	m := f.material(map[string]any{"token_url": ts.URL})
	var wg sync.WaitGroup
	tokens := make([]string, 100)
	errs := make([]error, 100)
	for i := range 100 {
		wg.Go(func() {
			req := httptest.NewRequest("GET", "https://api.example.com/", nil)
			errs[i] = f.in.Inject(context.Background(), req, m, credential.Target{})
			tokens[i] = req.Header.Get("Authorization")
		})
	}
	wg.Wait()
	for i := range 100 {
		if errs[i] != nil || tokens[i] != "Bearer at-1" {
			t.Fatalf("caller %d: %q %v", i, tokens[i], errs[i])
		}
	}
	if n := ts.n.Load(); n != 1 {
		t.Fatalf("%d exchanges for 100 concurrent callers", n)
	}
}

// TestChangedCredentialGetsNewToken: a cached token is never served for a credential
// whose key or template has changed since; other credentials and end users are apart.
func TestChangedCredentialGetsNewToken(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	m := f.material(map[string]any{"token_url": ts.URL})
	tok := func(ctx context.Context, m credential.Material) string {
		t.Helper()
		req, err := f.inject(t, ctx, m, credential.Target{})
		if err != nil {
			t.Fatal(err)
		}
		return bearer(t, req)
	}
	ctx := context.Background()
	if tok(ctx, m) != "at-1" || tok(ctx, m) != "at-1" {
		t.Fatal("not cached")
	}
	changed := f.material(map[string]any{"token_url": ts.URL, "payload": map[string]any{"iss": "svc2"}})
	if got := tok(ctx, changed); got != "at-2" {
		t.Fatalf("changed payload served %q", got)
	}
	other := f.material(map[string]any{"token_url": ts.URL})
	other.Key = "other.jwt"
	if got := tok(ctx, other); got != "at-3" {
		t.Fatalf("another credential served %q", got)
	}
	// A new key (same public fields) is a changed credential too.
	newKey := jwttest.KeyFor(t, "ES256")
	rekeyed := f.material(map[string]any{"token_url": ts.URL, "payload": map[string]any{"iss": "svc2"}})
	rekeyed.Secrets = map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(jwttest.PKCS8(t, newKey)))}
	ts.set(func(ts *tokenServer) {
		ts.handle = func(w http.ResponseWriter, r *http.Request) bool {
			fmt.Fprintf(w, `{"access_token":"at-rekeyed","expires_in":3600}`)
			return true
		}
	})
	if got := tok(ctx, rekeyed); got != "at-rekeyed" {
		t.Fatalf("re-keyed credential served %q", got)
	}
	ts.set(func(ts *tokenServer) { ts.handle = nil })
	// Per end user when the payload names the user.
	pu := f.material(map[string]any{"token_url": ts.URL, "payload": map[string]any{"sub": "{{user}}"}})
	a, b := sesame.WithEndUser(ctx, "alice"), sesame.WithEndUser(ctx, "bob")
	ta, tb := tok(a, pu), tok(b, pu)
	if ta == tb || tok(a, pu) != ta || tok(b, pu) != tb {
		t.Fatalf("per-user tokens: alice %s, bob %s", ta, tb)
	}
	// Tokens of the credential's earlier content are dropped: left are alice's and bob's,
	// and the other credential's.
	f.in.mu.Lock()
	n := len(f.in.tokens)
	f.in.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d cached tokens, want 3", n)
	}
}

func TestForceRefresh(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	m := f.material(map[string]any{"token_url": ts.URL})
	ctx, served := credential.WithServed(context.Background())
	req, _ := f.inject(t, ctx, m, credential.Target{})
	if bearer(t, req) != "at-1" {
		t.Fatal(req.Header)
	}
	if _, ok := served.Get(servedKey(m)); !ok {
		t.Fatal("the served token was not recorded")
	}
	// The upstream refused at-1: drop it; the next call exchanges anew.
	if err := f.in.ForceRefresh(ctx, m); err != nil {
		t.Fatal(err)
	}
	ctx2, _ := credential.WithServed(context.Background())
	req, _ = f.inject(t, ctx2, m, credential.Target{})
	if bearer(t, req) != "at-2" {
		t.Fatalf("after ForceRefresh: %v", req.Header)
	}
	// A late refusal of at-1 (already replaced) does not drop at-2.
	if err := f.in.ForceRefresh(ctx, m); err != nil {
		t.Fatal(err)
	}
	req, _ = f.inject(t, context.Background(), m, credential.Target{})
	if bearer(t, req) != "at-2" || ts.n.Load() != 2 {
		t.Fatalf("a stale refusal dropped the new token: %v, %d exchanges", req.Header, ts.n.Load())
	}
}

// TestExchangeErrors: what a failing token endpoint makes of a call. Messages say what
// went wrong and hold neither the assertion nor a secret.
func TestExchangeErrors(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	var lastAssertion string
	cases := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		code   sesame.Code
		want   string
	}{
		{"invalid_grant with a description echoing the assertion", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature for %s; secret %s"}`, lastAssertion, canary+"-xxxxxxxxxxxxxxxxxxxxxxxx")
		}, sesame.CodeUpstreamError, "HTTP 400, invalid_grant: Invalid JWT Signature for [...]"},
		{"HTML error page", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(503)
			fmt.Fprint(w, "<html>down</html>")
		}, sesame.CodeUpstreamError, "(HTTP 503)"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/token", http.StatusFound)
		}, sesame.CodeUpstreamError, "redirects are not followed"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "access_token=x") }, sesame.CodeUpstreamError, "JSON token response"},
		{"no access_token", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token_type":"Bearer"}`) }, sesame.CodeUpstreamError, "without an access_token"},
		{"access_token with a line break", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"access_token":"a\r\nX-Evil: 1"}`)
		}, sesame.CodeUpstreamError, "cannot go in a header"},
		{"too slow", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(1200 * time.Millisecond)
		}, sesame.CodeUpstreamTimeout, "did not answer in time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts.set(func(ts *tokenServer) {
				ts.handle = func(w http.ResponseWriter, r *http.Request) bool {
					ts.mu.Lock()
					lastAssertion = ts.forms[len(ts.forms)-1].Get("assertion")
					ts.mu.Unlock()
					c.handle(w, r)
					return true
				}
			})
			m := f.material(map[string]any{"token_url": ts.URL + "/" + strings.ReplaceAll(c.name, " ", "-")})
			_, err := f.inject(t, context.Background(), m, credential.Target{})
			if sesame.ErrorCode(err) != c.code || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %s saying %q", err, c.code, c.want)
			}
			msg := err.Error()
			ts.mu.Lock()
			assertion := lastAssertion
			ts.mu.Unlock()
			if strings.Contains(msg, canary) || (assertion != "" && strings.Contains(msg, assertion[len(assertion)-20:])) {
				t.Fatalf("message leaks: %q", msg)
			}
		})
	}
	// Errors are not cached: the endpoint recovers, the next call succeeds.
	ts.set(func(ts *tokenServer) { ts.handle = nil })
	m := f.material(map[string]any{"token_url": ts.URL + "/too-slow"})
	if req, err := f.inject(t, context.Background(), m, credential.Target{}); err != nil || !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer at-") {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestTokenURLToPrivateAddressRefused: without AllowPrivate, the exchange client refuses
// loopback and private addresses as outbound calls do.
func TestTokenURLToPrivateAddressRefused(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	mk, _ := crypt.GenerateMasterKey()
	strict := New(Options{Sealer: crypt.NewKeyring(mk)})
	for _, u := range []string{ts.URL, "http://169.254.169.254/latest/meta-data/token", "http://10.0.0.1/token"} {
		req := httptest.NewRequest("GET", "https://api.example.com/", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := strict.Inject(ctx, req, f.material(map[string]any{"token_url": u}), credential.Target{})
		cancel()
		if sesame.ErrorCode(err) != sesame.CodeForbiddenAddress || !strings.Contains(err.Error(), "SESAME_ALLOW_PRIVATE_TOKEN_URLS") {
			t.Errorf("%s: %v", u, err)
		}
	}
	if ts.n.Load() != 0 {
		t.Fatal("the token endpoint on loopback was reached")
	}
}

// TestCanceledCallerDoesNotCancelTheExchange: a caller that gives up leaves the exchange
// running for the others.
func TestCanceledCallerDoesNotCancelTheExchange(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	ts.delay = 200 * time.Millisecond
	m := f.material(map[string]any{"token_url": ts.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.inject(t, ctx, m, credential.Target{}); err == nil {
		t.Fatal("a canceled caller got a token")
	}
	req, err := f.inject(t, context.Background(), m, credential.Target{})
	if err != nil || req.Header.Get("Authorization") != "Bearer at-1" || ts.n.Load() != 1 {
		t.Fatalf("%v %v, %d exchanges", req.Header, err, ts.n.Load())
	}
}

func TestBadStoredCredential(t *testing.T) {
	f := newFixture(t)
	m := f.material(nil)
	m.Secrets = map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(canary))}
	_, err := f.inject(t, context.Background(), m, credential.Target{})
	if sesame.ErrorCode(err) != sesame.CodeInvalidField || strings.Contains(err.Error(), canary) {
		t.Fatalf("error %v", err)
	}
}
