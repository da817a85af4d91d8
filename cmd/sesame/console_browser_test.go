package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/sesamehq/sesame/internal/oauthtest"
)

// The console's browser tests drive a real Chromium (Debian's chromium package) with
// chromedp. One browser serves every test of this binary; each test gets its own tab and
// its own incognito-like context. Without chromium they skip, unless CI is set.

var sharedBrowser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedBrowser.cancel != nil {
		sharedBrowser.cancel()
	}
	os.Exit(code)
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newTab returns a browser context for one test; on failure a screenshot of the page is
// written to a temporary folder and its path logged.
func newTab(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; under CI the browser tests must run (.ci/run installs it)")
		}
		t.Skip("chromium is not installed (apt-get install chromium); skipping the browser tests")
	}
	sharedBrowser.once.Do(func() {
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.NoSandbox, // tests may run as root in a container
			chromedp.DisableGPU,
			chromedp.WindowSize(1280, 800),
			chromedp.Flag("disable-dev-shm-usage", true),
		)
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(alloc)
		if err := chromedp.Run(ctx); err != nil {
			sharedBrowser.err = err
		}
		sharedBrowser.ctx = ctx
		sharedBrowser.cancel = func() { cancel(); cancelAlloc() }
	})
	if sharedBrowser.err != nil {
		t.Fatalf("start chromium: %v", sharedBrowser.err)
	}
	// A new tab per test, with no cookie left from an earlier test (tests of this package
	// do not run in parallel).
	tab, cancelTab := chromedp.NewContext(sharedBrowser.ctx)
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	if err := chromedp.Run(ctx, network.ClearBrowserCookies()); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var png []byte
			sctx, scancel := context.WithTimeout(tab, 5*time.Second)
			if err := chromedp.Run(sctx, chromedp.FullScreenshot(&png, 90)); err != nil {
				t.Logf("no screenshot of the failing page: %v", err)
			} else {
				dir, _ := os.MkdirTemp("", "sesame-console-failure-")
				file := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
				if os.WriteFile(file, png, 0o644) == nil {
					t.Logf("screenshot of the failing page: %s", file)
				}
			}
			scancel()
		}
		cancel()
		cancelTab()
	})
	return ctx
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func browserSignIn(t *testing.T, ctx context.Context, s *testServer, key string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(`#api_key`, chromedp.ByQuery),
		chromedp.SendKeys(`#api_key`, key, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#nav-keys`, chromedp.ByQuery),
	)
}

// pageCheck finds, on the page in the browser, what the console must never have: an input
// without a <label>, a button without text, an inline script or style, or anything loaded
// from another origin.
const pageCheck = `(() => {
  const p = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!el.id || !document.querySelector('label[for="' + el.id + '"]')) p.push('unlabelled ' + (el.name || el.id));
  }
  for (const b of document.querySelectorAll('button')) if (!b.textContent.trim()) p.push('button without text');
  for (const el of document.querySelectorAll('script[src], link[href], img[src], iframe, object, embed')) {
    const u = new URL(el.src || el.href || el.data || '', location.href);
    if (u.origin !== location.origin) p.push('loads from ' + u.origin);
  }
  if (document.querySelector('script:not([src])')) p.push('inline script');
  if (document.querySelector('[style]')) p.push('inline style attribute');
  return p;
})()`

// pageHTML returns the DOM of the page in the browser, after checking it with pageCheck.
func pageHTML(t *testing.T, ctx context.Context) string {
	t.Helper()
	var html, where string
	var problems []string
	do(t, ctx, chromedp.OuterHTML("html", &html, chromedp.ByQuery), chromedp.Evaluate(pageCheck, &problems), chromedp.Location(&where))
	if len(problems) > 0 {
		t.Errorf("%s: %v", where, problems)
	}
	return html
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var s string
	do(t, ctx, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// TestBrowserConsoleAdmin: an admin signs in, creates credentials of several types through
// their forms, never sees a secret in the DOM again, tests a connection against a real
// upstream, creates a key and sees it once, and verifies the audit chain.
func TestBrowserConsoleAdmin(t *testing.T) {
	ctx := newTab(t)
	s := startServer(t, nil, "--data", t.TempDir())
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":"upstream is on fire"}`)
		default:
			fmt.Fprint(w, `{"ok":true}`)
		}
	}))
	defer up.Close()
	browserSignIn(t, ctx, s, s.AdminKey)

	// Credentials of several types, each through the form the registry generates.
	secrets := []string{}
	type cred struct {
		typ, key string
		public   map[string]string
		secret   map[string]string
	}
	creds := []cred{
		{"basic", "weather.basic", map[string]string{"username": "bob"}, map[string]string{"password": "pw-basic-Secret-111"}},
		{"bearer", "gh.token", nil, map[string]string{"token": "ghp_SecretToken222"}},
		{"api_key", "weather.key", map[string]string{"name": "X-Weather-Key"}, map[string]string{"value": "apikey-Secret-333"}},
		{"secret", "named.secret", nil, map[string]string{"value": "named-Secret-444"}},
		{"jwt_bearer", "svc.jwt", map[string]string{"alg": "HS256"}, map[string]string{"secret": "hmac-Secret-555-long-enough-for-hs256"}},
		{"oauth2", "svc.oauth", map[string]string{"grant": "client_credentials", "client_id": "cid", "token_url": up.URL + "/token"}, map[string]string{"client_secret": "oauth-Secret-666"}},
	}
	for _, c := range creds {
		actions := []chromedp.Action{
			chromedp.Navigate(s.URL + "/console/w/default/credentials/new?type=" + c.typ),
			chromedp.WaitVisible(`#credential-form`, chromedp.ByQuery),
			chromedp.SendKeys(`#f-key`, c.key, chromedp.ByQuery),
		}
		for f, v := range c.public {
			actions = append(actions, chromedp.SetValue(`#f-`+f, v, chromedp.ByQuery))
		}
		for f, v := range c.secret {
			actions = append(actions, chromedp.SendKeys(`#f-`+f, v, chromedp.ByQuery))
			secrets = append(secrets, v)
		}
		actions = append(actions, chromedp.Click(`#save-credential`, chromedp.ByQuery), chromedp.WaitVisible(`#credentials`, chromedp.ByQuery))
		do(t, ctx, actions...)
		if html := pageHTML(t, ctx); !strings.Contains(html, c.key) {
			t.Fatalf("%s not listed after saving", c.key)
		}
	}
	if shot := os.Getenv("SESAME_CONSOLE_SCREENSHOT"); shot != "" {
		var png []byte
		do(t, ctx, chromedp.EmulateViewport(1280, 800), chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	listHTML := pageHTML(t, ctx)
	if !strings.Contains(listHTML, "set, changed") {
		t.Fatalf("secret state not shown: %s", listHTML)
	}
	// An edit form with an error: the secret typed is not put back.
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/w/default/credentials/weather.basic/edit"),
		chromedp.WaitVisible(`#credential-form`, chromedp.ByQuery),
		chromedp.SetValue(`#f-username`, "a:b", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, "pw-typed-Secret-777", chromedp.ByQuery),
		chromedp.Click(`#save-credential`, chromedp.ByQuery),
		chromedp.WaitVisible(`#e-username`, chromedp.ByQuery),
	)
	secrets = append(secrets, "pw-typed-Secret-777")
	var typed string
	do(t, ctx, chromedp.Value(`#f-password`, &typed, chromedp.ByQuery))
	if typed != "" {
		t.Fatal("the password input was prefilled after an error")
	}
	pages := []string{listHTML, pageHTML(t, ctx)}
	for _, c := range creds {
		do(t, ctx, chromedp.Navigate(s.URL+"/console/w/default/credentials/"+c.key+"/edit"), chromedp.WaitVisible(`#credential-form`, chromedp.ByQuery))
		pages = append(pages, pageHTML(t, ctx))
	}
	for _, html := range pages {
		for _, sec := range secrets {
			if strings.Contains(html, sec) {
				t.Fatalf("secret %q is in the DOM", sec)
			}
		}
	}

	// A connection through its form, then "Test connection": status and latency, and the
	// upstream's error for one that fails.
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/w/default/connections/new"),
		chromedp.WaitVisible(`#connection-form`, chromedp.ByQuery),
		chromedp.SendKeys(`#c-name`, "up", chromedp.ByQuery),
		chromedp.SetValue(`#c-base`, up.URL, chromedp.ByQuery),
		chromedp.SetValue(`#c-cred`, "weather.key", chromedp.ByQuery),
		chromedp.SetValue(`#c-tp`, "/ping", chromedp.ByQuery),
		chromedp.Click(`#c-priv`, chromedp.ByQuery),
		chromedp.Click(`#save-connection`, chromedp.ByQuery),
		chromedp.WaitVisible(`#connections`, chromedp.ByQuery),
		chromedp.Click(`#test-up`, chromedp.ByQuery),
		chromedp.WaitVisible(`#test-result`, chromedp.ByQuery),
	)
	if got := text(t, ctx, `#test-status`); got != "200" {
		t.Fatalf("test status %q", got)
	}
	if got := text(t, ctx, `#test-latency`); got == "" {
		t.Fatal("no latency")
	}
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/w/default/connections/new"),
		chromedp.WaitVisible(`#connection-form`, chromedp.ByQuery),
		chromedp.SendKeys(`#c-name`, "broken", chromedp.ByQuery),
		chromedp.SetValue(`#c-base`, up.URL, chromedp.ByQuery),
		chromedp.SetValue(`#c-tp`, "/broken", chromedp.ByQuery),
		chromedp.Click(`#c-priv`, chromedp.ByQuery),
		chromedp.Click(`#c-run`, chromedp.ByQuery), // save without testing
		chromedp.Click(`#save-connection`, chromedp.ByQuery),
		chromedp.WaitVisible(`#test-broken`, chromedp.ByQuery),
		chromedp.Click(`#test-broken`, chromedp.ByQuery),
		chromedp.WaitVisible(`#test-result`, chromedp.ByQuery),
	)
	if got := text(t, ctx, `#test-result`); !strings.Contains(got, "failed") || !strings.Contains(got, "500") {
		t.Fatalf("failed test shows %q", got)
	}

	// A function in the YAML editor: an error is shown at its line; then "Try it" with a
	// form generated from the parameters.
	bad := "connection: up\nmethod: FETCH\npath: /items/{id}\nparameters:\n  id: {location: path, required: true, type: string}\n"
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/w/default/functions/new"),
		chromedp.WaitVisible(`#function-form`, chromedp.ByQuery),
		chromedp.SendKeys(`#fn-name`, "item", chromedp.ByQuery),
		chromedp.SetValue(`#fn-source`, bad, chromedp.ByQuery),
		chromedp.Click(`#save-function`, chromedp.ByQuery),
		chromedp.WaitVisible(`#fn-error-line`, chromedp.ByQuery),
	)
	if got := text(t, ctx, `#fn-error-line`); got != "2" {
		t.Fatalf("error line %q", got)
	}
	if got := text(t, ctx, `li.bad`); !strings.Contains(got, "FETCH") {
		t.Fatalf("marked line %q", got)
	}
	do(t, ctx,
		chromedp.SetValue(`#fn-source`, strings.Replace(bad, "FETCH", "GET", 1), chromedp.ByQuery),
		chromedp.Click(`#save-function`, chromedp.ByQuery),
		chromedp.WaitVisible(`#try-item`, chromedp.ByQuery),
		chromedp.Click(`#try-item`, chromedp.ByQuery),
		chromedp.WaitVisible(`#p-id`, chromedp.ByQuery),
		chromedp.SendKeys(`#p-id`, "42", chromedp.ByQuery),
		chromedp.Click(`#call-function`, chromedp.ByQuery),
		chromedp.WaitVisible(`#call-result`, chromedp.ByQuery),
	)
	if got := text(t, ctx, `#call-status`); got != "200" {
		t.Fatalf("call status %q", got)
	}
	if got := text(t, ctx, `#call-body`); !strings.Contains(got, `"ok"`) {
		t.Fatalf("call body %q", got)
	}

	// A user and a key: shown once, as text only.
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/access"),
		chromedp.WaitVisible(`#u-name`, chromedp.ByQuery),
		chromedp.SendKeys(`#u-name`, "bob", chromedp.ByQuery),
		chromedp.Click(`#create-user`, chromedp.ByQuery),
		chromedp.WaitVisible(`//td[text()="bob"]`),
		chromedp.Click(`//tr[td[text()="bob"]]//a`),
		chromedp.WaitVisible(`#k-name`, chromedp.ByQuery),
		chromedp.SendKeys(`#k-name`, "laptop", chromedp.ByQuery),
		chromedp.Click(`#create-key`, chromedp.ByQuery),
	)
	key := strings.TrimSpace(text(t, ctx, `#new-key`))
	if !strings.HasPrefix(key, "sesame_") {
		t.Fatalf("new key %q", key)
	}
	html := pageHTML(t, ctx)
	if strings.Count(html, key) != 1 || !strings.Contains(html, `<code id="new-key">`+key+`</code>`) {
		t.Fatal("the new key appears elsewhere than its one text node")
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 403) // a real key (bob has no use_api_key yet)
	do(t, ctx, chromedp.Reload(), chromedp.WaitVisible(`#keys`, chromedp.ByQuery))
	if strings.Contains(pageHTML(t, ctx), key) {
		t.Fatal("the key is shown again after a reload")
	}

	// Verify the audit chain from the page.
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/audit"),
		chromedp.WaitVisible(`#verify-chain`, chromedp.ByQuery),
		chromedp.Click(`#verify-chain`, chromedp.ByQuery),
		chromedp.WaitVisible(`#verify-result`, chromedp.ByQuery),
	)
	if got := text(t, ctx, `#verify-result`); !strings.Contains(got, "Chain verified") {
		t.Fatalf("verify: %q", got)
	}
	for _, sec := range append(secrets, key, s.AdminKey) {
		if strings.Contains(pageHTML(t, ctx), sec) {
			t.Fatal("a secret or key is on the audit page")
		}
	}
}

// TestBrowserConsoleWithoutPrivileges: a caller (run_functions only) sees no management screen.
func TestBrowserConsoleWithoutPrivileges(t *testing.T) {
	ctx := newTab(t)
	s := startServer(t, nil, "--data", t.TempDir())
	_, key := newCaller(t, s, "carol", "default")
	browserSignIn(t, ctx, s, key)
	html := pageHTML(t, ctx)
	for _, hidden := range []string{`id="nav-access"`, `id="nav-audit"`, "/credentials", "/connections", "Create workspace", "Delete…", "Copy"} {
		if strings.Contains(html, hidden) {
			t.Errorf("a caller sees %q", hidden)
		}
	}
	do(t, ctx, chromedp.Navigate(s.URL+"/console/access"), chromedp.WaitVisible(`#page-error`, chromedp.ByQuery))
	if got := text(t, ctx, `#page-error`); !strings.Contains(got, "manage_users") {
		t.Fatalf("access page for a caller: %q", got)
	}
	if strings.Contains(pageHTML(t, ctx), `id="users"`) {
		t.Fatal("a caller sees the users table")
	}
}

// TestBrowserConsoleOAuthConnect: "Connect" runs the authorization-code flow against a real
// authorization server in the test, the browser lands on a human page, the grant shows as
// valid, and "Revoke" removes it. No token or client secret reaches any page.
func TestBrowserConsoleOAuthConnect(t *testing.T) {
	ctx := newTab(t)
	p := oauthtest.New(t, oauthtest.Options{})
	s := startServer(t, map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}, "--data", t.TempDir())
	p.AddClient("sesame-app", oauthClientSecret, s.URL+"/")
	browserSignIn(t, ctx, s, s.AdminKey)
	var pages []string
	do(t, ctx,
		chromedp.Navigate(s.URL+"/console/w/default/credentials/new?type=oauth2"),
		chromedp.WaitVisible(`#credential-form`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-key`, "gh", chromedp.ByQuery),
		chromedp.SetValue(`#f-grant`, "authorization_code", chromedp.ByQuery),
		chromedp.SetValue(`#f-client_id`, "sesame-app", chromedp.ByQuery),
		chromedp.SendKeys(`#f-client_secret`, oauthClientSecret, chromedp.ByQuery),
		chromedp.SetValue(`#f-auth_url`, p.AuthURL(), chromedp.ByQuery),
		chromedp.SetValue(`#f-token_url`, p.TokenURL(), chromedp.ByQuery),
		chromedp.SetValue(`#f-revocation_url`, p.RevocationURL(), chromedp.ByQuery),
		chromedp.SetValue(`#f-scopes`, "read", chromedp.ByQuery),
		chromedp.Click(`#save-credential`, chromedp.ByQuery),
		chromedp.WaitVisible(`#connect-gh`, chromedp.ByQuery),
	)
	pages = append(pages, pageHTML(t, ctx))
	do(t, ctx,
		chromedp.Click(`#connect-gh`, chromedp.ByQuery),
		chromedp.WaitVisible(`#oauth-result`, chromedp.ByQuery),
	)
	var landed string
	do(t, ctx, chromedp.Location(&landed))
	if !strings.HasPrefix(landed, s.URL+"/console/oauth/done?") {
		t.Fatalf("landed on %q", landed)
	}
	if got := text(t, ctx, `#oauth-result`); !strings.Contains(got, "holds a grant for gh") {
		t.Fatalf("landing page: %q", got)
	}
	pages = append(pages, pageHTML(t, ctx))
	do(t, ctx, chromedp.Click(`#oauth-back`, chromedp.ByQuery), chromedp.WaitVisible(`#grants`, chromedp.ByQuery))
	if got := text(t, ctx, `.grant-status`); !strings.Contains(got, "valid") {
		t.Fatalf("grant status %q", got)
	}
	pages = append(pages, pageHTML(t, ctx))
	do(t, ctx,
		chromedp.Click(`#revoke-grant-`, chromedp.ByQuery),
		chromedp.WaitVisible(`.flash`, chromedp.ByQuery),
	)
	if html := pageHTML(t, ctx); !strings.Contains(html, "No grant yet") {
		t.Fatal("the grant is still listed after Revoke")
	}
	if p.Revocations() == 0 {
		t.Fatal("Revoke did not reach the provider")
	}
	issued := append(p.Issued(), "client_secret:"+oauthClientSecret)
	for _, html := range pages {
		for _, item := range issued {
			if _, v, _ := strings.Cut(item, ":"); v != "" && strings.Contains(html, v) {
				t.Fatalf("%s is on a page", strings.SplitN(item, ":", 2)[0])
			}
		}
	}
}

// TestBrowserOIDCSignIn: in Chromium, "Sign in with TestIdP" on the sign-in page leads to
// the provider's login page; signing in there lands in the console as the Sesame user.
func TestBrowserOIDCSignIn(t *testing.T) {
	s, op := startOIDC(t, nil)
	op.setAccounts(oidcAccounts())
	mustStatus(t, s.do("POST", "/v1/users", `{"name":"alice@example.com"}`), 201)
	ctx := newTab(t)
	do(t, ctx, chromedp.Navigate(s.URL+"/console/signin"), chromedp.WaitVisible(`#signin-oidc`, chromedp.ByQuery))
	if got := text(t, ctx, "#signin-oidc"); got != "Sign in with TestIdP" {
		t.Fatalf("button: %q", got)
	}
	pageHTML(t, ctx)
	do(t, ctx,
		chromedp.Click(`#signin-oidc`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=login]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=login]`, "alice", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, "whatever", chromedp.ByQuery),
		chromedp.Click(`button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#nav-keys`, chromedp.ByQuery),
	)
	if who := text(t, ctx, ".who"); who != "alice@example.com" {
		t.Fatalf("signed in as %q", who)
	}
	var where string
	do(t, ctx, chromedp.Location(&where))
	if !strings.HasPrefix(where, s.URL+"/console/") || strings.Contains(where, "signin") || strings.Contains(where, "oidc") {
		t.Fatalf("landed on %s", where)
	}
}
