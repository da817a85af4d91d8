package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test OpenID provider is panva/oidc-provider (OpenID Certified), run with the
// machine's Node.js from testdata/oidcprovider; npm installs its pinned version there once
// (node_modules is ignored by git).
var opInstall struct {
	once sync.Once
	err  error
}

func opDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed; under CI the OIDC tests must run")
		}
		t.Skip("node is not installed; skipping the OIDC tests")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "oidcprovider"))
	if err != nil {
		t.Fatal(err)
	}
	opInstall.once.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--prefix", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			opInstall.err = fmt.Errorf("npm ci: %v\n%s", err, out)
		}
	})
	if opInstall.err != nil {
		t.Fatal(opInstall.err)
	}
	return dir
}

// testOP is a running provider behind a proxy that the test controls: the proxy's URL is
// the issuer, and rewrite, when set, changes the token endpoint's answer (to hand the
// relying party a tampered or foreign ID token).
type testOP struct {
	t        *testing.T
	Issuer   string
	accounts string
	mu       sync.Mutex
	rewrite  func(tok map[string]any)
	target   *url.URL
}

// newTestOP starts the proxy only; start launches the provider once the relying party's
// redirect URI is known.
func newTestOP(t *testing.T) *testOP {
	op := &testOP{t: t, accounts: filepath.Join(t.TempDir(), "accounts.json")}
	op.setAccounts(map[string]map[string]any{})
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			op.mu.Lock()
			target := op.target
			op.mu.Unlock()
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: func(resp *http.Response) error {
			op.mu.Lock()
			rw := op.rewrite
			op.mu.Unlock()
			if rw == nil || resp.Request.URL.Path != "/token" || resp.StatusCode != 200 {
				return nil
			}
			var tok map[string]any
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &tok); err != nil {
				return err
			}
			rw(tok)
			b, _ = json.Marshal(tok)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	op.Issuer = srv.URL
	return op
}

func (op *testOP) setAccounts(a map[string]map[string]any) {
	b, _ := json.Marshal(a)
	if err := os.WriteFile(op.accounts, b, 0o600); err != nil {
		op.t.Fatal(err)
	}
}

func (op *testOP) setRewrite(fn func(tok map[string]any)) {
	op.mu.Lock()
	op.rewrite = fn
	op.mu.Unlock()
}

const (
	opClientSecret    = "sesame-test-client-secret"
	opOtherClient     = "other-app"
	opOtherSecret     = "other-app-secret"
	opOtherRedirect   = "http://127.0.0.1:1/other/callback"
	sesameOIDCCallbak = "/console/oidc/callback"
)

// start runs the provider with the clients "sesame" (redirecting to rpURL's callback) and
// "other-app" (another relying party of the same provider).
func (op *testOP) start(rpURL string) {
	t := op.t
	dir := opDir(t)
	clients, _ := json.Marshal([]map[string]any{
		{"client_id": "sesame", "client_secret": opClientSecret, "redirect_uris": []string{rpURL + sesameOIDCCallbak}},
		{"client_id": opOtherClient, "client_secret": opOtherSecret, "redirect_uris": []string{opOtherRedirect}},
	})
	cmd := exec.Command("node", filepath.Join(dir, "provider.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OP_ISSUER="+op.Issuer, "OP_CLIENTS="+string(clients), "OP_ACCOUNTS="+op.accounts, "NODE_ENV=test")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("provider stderr:\n%s", stderr.String())
		}
	})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		u, _ := url.Parse("http://127.0.0.1:" + p)
		op.mu.Lock()
		op.target = u
		op.mu.Unlock()
	case <-time.After(30 * time.Second):
		t.Fatalf("the provider did not start: %s", stderr.String())
	}
}

// startOIDC starts a provider and a Sesame server signing in through it.
func startOIDC(t *testing.T, env map[string]string, args ...string) (*testServer, *testOP) {
	t.Helper()
	op := newTestOP(t)
	if env == nil {
		env = map[string]string{}
	}
	env["SESAME_OIDC_CLIENT_SECRET"] = opClientSecret
	s := startServer(t, env, append([]string{"--data", t.TempDir(), "--oidc-issuer", op.Issuer, "--oidc-client-id", "sesame", "--oidc-name", "TestIdP"}, args...)...)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	op.start(s.URL)
	return s, op
}

// webClient is a browser without JavaScript: a cookie jar, redirects followed except to stop.
func webClient(t *testing.T, stop func(*url.URL) bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if stop != nil && stop(r.URL) {
			return http.ErrUseLastResponse
		}
		if len(via) > 20 {
			return fmt.Errorf("too many redirects")
		}
		return nil
	}}
}

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// providerLogin follows startURL to the provider's login page, signs in there as login and
// returns the redirect the provider answers with (the callback, not followed).
func providerLogin(t *testing.T, c *http.Client, startURL, login string) *url.URL {
	t.Helper()
	resp, err := c.Get(startURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formAction.FindSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("no login page at the provider: %d %s", resp.StatusCode, body)
	}
	action, _ := resp.Request.URL.Parse(string(m[1]))
	resp, err = c.PostForm(action.String(), url.Values{"prompt": {"login"}, "login": {login}, "password": {"any"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || resp.StatusCode/100 != 3 {
		t.Fatalf("the provider did not redirect back: %d", resp.StatusCode)
	}
	return loc
}

func isCallback(u *url.URL) bool {
	return u.Path == sesameOIDCCallbak || strings.HasPrefix(u.String(), opOtherRedirect)
}

// oidcSignIn runs a whole sign-in as a browser would and returns the browser, the callback
// response's status and its page.
func oidcSignIn(t *testing.T, s *testServer, login string) (*http.Client, int, string) {
	t.Helper()
	c := webClient(t, isCallback)
	cb := providerLogin(t, c, s.URL+"/console/oidc/start", login)
	status, body := get(t, c, cb.String())
	return c, status, body
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// providerIDToken gets an ID token from the provider directly, as client clientID would
// (nonce "" asks for none): what an attacker may hold, to inject into Sesame's sign-in.
func providerIDToken(t *testing.T, op *testOP, clientID, secret, redirect, login, nonce string) string {
	t.Helper()
	verifier := randomString() + randomString()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "response_type": {"code"}, "scope": {"openid email profile"}, "redirect_uri": {redirect},
		"state": {randomString()}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if nonce != "" {
		q.Set("nonce", nonce)
	}
	c := webClient(t, func(u *url.URL) bool { return strings.HasPrefix(u.String(), redirect) })
	cb := providerLogin(t, c, op.Issuer+"/auth?"+q.Encode(), login)
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("no code from the provider: %s", cb)
	}
	req, _ := http.NewRequest("POST", op.Issuer+"/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &tok); err != nil || tok.IDToken == "" {
		t.Fatalf("no ID token: %d %s", resp.StatusCode, b)
	}
	return tok.IDToken
}

// sessionCookie is the console session cookie the client holds for s, if any.
func sessionCookie(c *http.Client, s *testServer) *http.Cookie {
	u, _ := url.Parse(s.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "sesame_session") {
			return ck
		}
	}
	return nil
}
