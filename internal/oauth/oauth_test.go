package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sesamehq/sesame/internal/testclock"
	"github.com/sesamehq/sesame/internal/testlog"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/oauth"
	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/outbound"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
	"github.com/sesamehq/sesame/internal/vault"
)

const (
	publicURL    = "http://sesame.test"
	clientSecret = "client-secret-CANARY-5d1e"
)

// clock is a test clock that only moves when told.
type clock = testclock.Clock

// syncBuffer collects output written from many goroutines.
type syncBuffer = testlog.Buffer

// env is one Sesame process's OAuth service over a real store, against a real provider.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	v     *vault.Vault
	m     *oauth.Manager
	p     *oauthtest.Provider
	clock *clock
	logs  *syncBuffer
	kr    *crypt.Keyring
}

type envOptions struct {
	provider oauthtest.Options
	st       *store.Store   // share a store (another process on the same database)
	kr       *crypt.Keyring // and its master key
	p        *oauthtest.Provider
	clock    *clock
	// ssrfSafe refuses token endpoints on private addresses, as production does.
	ssrfSafe bool
	// leaseTTL and leaseWait set the refresh lease's; realClock uses time.Now, so that
	// leases expire.
	leaseTTL, leaseWait time.Duration
	realClock           bool
}

func openSQLite(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sesame.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openPostgres(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, st: o.st, p: o.p, clock: o.clock, logs: &syncBuffer{}, kr: o.kr}
	if e.st == nil {
		e.st = openSQLite(t)
	}
	if e.kr == nil {
		k, err := crypt.GenerateMasterKey()
		if err != nil {
			t.Fatal(err)
		}
		e.kr = crypt.NewKeyring(k)
	}
	if e.p == nil {
		e.p = oauthtest.New(t, o.provider)
		e.p.AddClient("sesame-app", clientSecret, publicURL+"/")
	}
	if e.clock == nil {
		e.clock = testclock.New(time.Now())
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.v = vault.New(e.st, e.kr, e.clock.Now, log)
	if err := e.v.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now
	if o.realClock {
		now = time.Now
	}
	e.m = oauth.New(oauth.Config{
		Store: e.st, Vault: e.v, Keyring: e.kr, Secrets: e.v,
		Transport: outbound.NewTransport(!o.ssrfSafe), PublicURL: publicURL,
		ReturnURLs: []string{"https://app.example/done", "https://app.example/oauth/"},
		Clock:      now, Logger: log, RetryBase: time.Millisecond,
		LeaseTTL: o.leaseTTL, LeaseWait: o.leaseWait,
	})
	return e
}

// putCredential stores an oauth2 credential pointing at the provider.
func (e *env) putCredential(key, grant string, extra map[string]any) {
	e.t.Helper()
	fields := map[string]any{"grant": grant, "client_id": "sesame-app", "client_secret": clientSecret,
		"auth_url": e.p.AuthURL(), "token_url": e.p.TokenURL(), "revocation_url": e.p.RevocationURL(), "scopes": []string{"read", "write"}}
	for k, v := range extra {
		if v == nil {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	body, _ := json.Marshal(map[string]any{"type": "oauth2", "fields": fields})
	if _, _, err := e.v.PutCredential(e.ctx, "default", key, body, vault.Actor{Admin: true}); err != nil {
		e.t.Fatalf("put credential %s: %v", key, err)
	}
}

func (e *env) material(key string) credential.Material {
	e.t.Helper()
	r, err := e.v.Resolve(e.ctx, "default", key)
	if err != nil {
		e.t.Fatal(err)
	}
	return credential.Material{Workspace: "default", Key: key, Type: r.Type, Public: r.Public, Secrets: r.Secrets}
}

// authorize runs the whole authorization code flow as a browser would: Sesame's
// authorize URL, the provider's consent (automatic), and the redirect to the callback.
// It returns the callback's query.
func (e *env) authorize(key, user, returnURL string) url.Values {
	e.t.Helper()
	a, err := e.m.Authorize(e.ctx, oauth.AuthorizeRequest{Workspace: "default", Credential: key, User: user, ReturnURL: returnURL})
	if err != nil {
		e.t.Fatalf("authorize: %v", err)
	}
	return e.consent(a.URL)
}

// consent follows the provider's authorization URL and returns the callback query.
func (e *env) consent(authURL string) url.Values {
	e.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), publicURL+oauth.CallbackPath) {
		e.t.Fatalf("provider answered %d with Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// call injects the credential into a request to the provider's resource endpoint and
// sends it, as the gateway does; it returns the status.
func (e *env) call(ctx context.Context, key string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.p.ResourceURL()+"/me", nil)
	if err := e.m.Inject(ctx, req, e.material(key), credential.Target{}); err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (e *env) grant(key, user string) sesame.OAuthGrant {
	e.t.Helper()
	g, err := e.st.GetOAuthGrant(e.ctx, "default", key, user)
	if err != nil {
		e.t.Fatalf("grant %s/%q: %v", key, user, err)
	}
	return g
}

func (e *env) mustCall(key, user string) {
	e.t.Helper()
	ctx := e.ctx
	if user != "" {
		ctx = sesame.WithEndUser(ctx, user)
	}
	if status, err := e.call(ctx, key); err != nil || status != http.StatusOK {
		e.t.Fatalf("call %s for %q: status %d, err %v", key, user, status, err)
	}
}

func wantCode(t *testing.T, err error, code sesame.Code) *sesame.Error {
	t.Helper()
	var se *sesame.Error
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
	return se
}

// assertNoSecrets checks that no token, code, verifier or client secret the provider
// issued or saw appears in the logs.
func (e *env) assertNoSecrets(where string, data string) {
	e.t.Helper()
	for _, s := range append(e.p.Issued(), "x:"+clientSecret) {
		_, v, _ := strings.Cut(s, ":")
		if len(v) >= 8 && strings.Contains(data, v) {
			e.t.Errorf("%s holds a %s", where, strings.SplitN(s, ":", 2)[0])
		}
	}
}

func TestClientCredentialsFetchedOnFirstUseCachedAndRenewed(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("svc", "client_credentials", map[string]any{"auth_url": nil})

	e.mustCall("svc", "")
	e.mustCall("svc", "")
	if n := e.p.ClientCredentials(); n != 1 {
		t.Fatalf("%d client credentials requests for two calls, want 1 (the token is cached)", n)
	}
	g := e.grant("svc", "")
	if g.Access == nil || g.Refresh != nil || g.ExpiresAt == nil || g.Status != sesame.GrantValid {
		t.Fatalf("stored grant: access %v refresh %v expires %v status %s", g.Access != nil, g.Refresh != nil, g.ExpiresAt, g.Status)
	}
	// The scope went with the provider's separator, as a parameter.
	if got := e.p.LastTokenForm().Get("scope"); got != "read write" {
		t.Fatalf("scope sent %q", got)
	}
	// An end user makes no difference to a client credentials grant.
	e.mustCall("svc", "bob")
	if n := e.p.ClientCredentials(); n != 1 {
		t.Fatalf("%d client credentials requests, want 1", n)
	}
	// Within the margin before expiry, the next call fetches a new token.
	e.clock.Add(time.Hour - 30*time.Second)
	e.mustCall("svc", "")
	if n := e.p.ClientCredentials(); n != 2 {
		t.Fatalf("%d client credentials requests after expiry, want 2", n)
	}
	e.assertNoSecrets("logs", e.logs.String())
}

func tryCall(e *env, key string) (int, error) { return e.call(e.ctx, key) }

func tryCallAs(e *env, key, user string) (int, error) {
	return e.call(sesame.WithEndUser(e.ctx, user), key)
}

func TestAuthorizationCodeWithPKCE(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("gh", "authorization_code", nil)

	// Before any authorization a call is told to authorize, with the URL.
	_, err := tryCallAs(e, "gh", "bob")
	se := wantCode(t, err, sesame.CodeReauthorizationRequired)
	want := publicURL + "/v1/oauth/authorize?credential=gh&user=bob&workspace=default"
	if se.Details["authorize_url"] != want || !strings.Contains(se.Message, want) {
		t.Fatalf("reauthorization error %q details %v, want URL %s", se.Message, se.Details, want)
	}

	a, err := e.m.Authorize(e.ctx, oauth.AuthorizeRequest{Workspace: "default", Credential: "gh", User: "bob", ReturnURL: "https://app.example/oauth/back?x=1"})
	if err != nil {
		t.Fatal(err)
	}
	au, _ := url.Parse(a.URL)
	q := au.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("state") == "" ||
		q.Get("redirect_uri") != publicURL+"/v1/oauth/callback" || q.Get("scope") != "read write" || q.Get("client_id") != "sesame-app" {
		t.Fatalf("authorization URL %s", a.URL)
	}
	cb := e.consent(strings.Replace(a.URL, "?", "?login_hint=bob&", 1))
	res, err := e.m.Callback(e.ctx, cb)
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	if res.Status != "authorized" || res.Redirect != "https://app.example/oauth/back?status=authorized&x=1" {
		t.Fatalf("callback result %+v", res)
	}
	form := e.p.LastTokenForm()
	if form.Get("grant_type") != "authorization_code" || len(form.Get("code_verifier")) != 43 {
		t.Fatalf("the code exchange did not send a PKCE verifier: %v", form.Get("grant_type"))
	}
	// The grant belongs to bob: calls for bob work, calls for the workspace do not.
	e.mustCall("gh", "bob")
	_, err = tryCall(e, "gh")
	wantCode(t, err, sesame.CodeReauthorizationRequired)
	g := e.grant("gh", "bob")
	if g.Refresh == nil || g.Scope != "read write" {
		t.Fatalf("grant: refresh %v scope %q", g.Refresh != nil, g.Scope)
	}
	// The stored tokens are sealed to their grant: moved to another end user they do not open.
	if _, err := e.kr.Open(g.Access, "oauth", "default", "gh", "carol", "access"); err == nil {
		t.Fatal("an access token opened under another end user's identity")
	}
	e.assertNoSecrets("logs", e.logs.String())
}

func TestCallbackStateIsSingleUseExpiringAndBound(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("gh", "authorization_code", nil)

	t.Run("unknown state", func(t *testing.T) {
		_, err := e.m.Callback(e.ctx, url.Values{"state": {"forged"}, "code": {"x"}})
		wantCode(t, err, sesame.CodeInvalidArgument)
		_, err = e.m.Callback(e.ctx, url.Values{"code": {"x"}})
		wantCode(t, err, sesame.CodeInvalidArgument)
	})
	t.Run("replayed state", func(t *testing.T) {
		cb := e.authorize("gh", "", "")
		if _, err := e.m.Callback(e.ctx, cb); err != nil {
			t.Fatal(err)
		}
		before := e.p.Exchanges()
		_, err := e.m.Callback(e.ctx, cb)
		wantCode(t, err, sesame.CodeInvalidArgument)
		if e.p.Exchanges() != before {
			t.Fatal("a replayed state reached the token endpoint")
		}
	})
	t.Run("concurrent callbacks with one state", func(t *testing.T) {
		cb := e.authorize("gh", "dave", "")
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.m.Callback(e.ctx, cb); err == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d callbacks succeeded with one state, want 1", ok.Load())
		}
	})
	t.Run("expired state", func(t *testing.T) {
		cb := e.authorize("gh", "erin", "")
		e.clock.Add(10*time.Minute + time.Second)
		_, err := e.m.Callback(e.ctx, cb)
		wantCode(t, err, sesame.CodeInvalidArgument)
		if _, err := e.st.GetOAuthGrant(e.ctx, "default", "gh", "erin"); !errors.Is(err, sesame.ErrNotFound) {
			t.Fatalf("an expired state created a grant: %v", err)
		}
	})
	t.Run("state from another server secret", func(t *testing.T) {
		// The state value alone is nothing: only its HMAC under this server's key is stored.
		other := newEnv(t, envOptions{p: e.p})
		other.putCredential("gh", "authorization_code", nil)
		cb := other.authorize("gh", "", "")
		_, err := e.m.Callback(e.ctx, cb)
		wantCode(t, err, sesame.CodeInvalidArgument)
	})
	t.Run("token endpoint changed meanwhile", func(t *testing.T) {
		// An authorization started for one token endpoint never sends its code to another.
		e.putCredential("moved", "authorization_code", nil)
		cb := e.authorize("moved", "gina", "")
		other := oauthtest.New(t, oauthtest.Options{})
		e.putCredential("moved", "authorization_code", map[string]any{"token_url": other.TokenURL()})
		before := e.p.Exchanges()
		_, err := e.m.Callback(e.ctx, cb)
		wantCode(t, err, sesame.CodeConflict)
		if other.Exchanges() != 0 || e.p.Exchanges() != before {
			t.Fatal("the code went to a token endpoint")
		}
	})
	t.Run("denied at the provider", func(t *testing.T) {
		e.p.Deny(true)
		defer e.p.Deny(false)
		cb := e.authorize("gh", "frank", "https://app.example/done")
		res, err := e.m.Callback(e.ctx, cb)
		if err != nil || res.Redirect != "https://app.example/done?error=access_denied&status=error" {
			t.Fatalf("denied callback: %+v, %v", res, err)
		}
	})
	t.Run("return URL must be allowed", func(t *testing.T) {
		for _, bad := range []string{"https://evil.example/done", "https://app.example/done/more", "https://app.example/oauthx",
			"javascript:alert(1)", "https://user@app.example/done", "https://app.example/oauth/../admin", "//evil.example/"} {
			_, err := e.m.Authorize(e.ctx, oauth.AuthorizeRequest{Workspace: "default", Credential: "gh", ReturnURL: bad})
			wantCode(t, err, sesame.CodeInvalidArgument)
		}
		for _, good := range []string{"https://app.example/done", "https://app.example/oauth/x/y?z=1", publicURL + "/ui/"} {
			if _, err := e.m.Authorize(e.ctx, oauth.AuthorizeRequest{Workspace: "default", Credential: "gh", ReturnURL: good}); err != nil {
				t.Fatalf("%s: %v", good, err)
			}
		}
	})
	e.assertNoSecrets("logs", e.logs.String())
}

func TestRefresh(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotate=%v", rotate), func(t *testing.T) {
			e := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: rotate, CodeTokenExp: -time.Hour}})
			e.putCredential("gh", "authorization_code", nil)
			if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
				t.Fatal(err)
			}
			before := e.grant("gh", "")
			e.mustCall("gh", "") // the stored token has expired: refreshed first
			after := e.grant("gh", "")
			if e.p.Refreshes() != 1 || after.Version != before.Version+1 || after.RefreshedAt == nil {
				t.Fatalf("refreshes %d, version %d -> %d", e.p.Refreshes(), before.Version, after.Version)
			}
			rtBefore, _ := e.kr.Open(before.Refresh, "oauth", "default", "gh", "", "refresh")
			rtAfter, _ := e.kr.Open(after.Refresh, "oauth", "default", "gh", "", "refresh")
			if rotated := !bytes.Equal(rtBefore, rtAfter); rotated != rotate || len(rtAfter) == 0 {
				t.Fatalf("refresh token rotated=%v, want %v (a response without one keeps the old)", rotated, rotate)
			}
			e.mustCall("gh", "")
			if e.p.Refreshes() != 1 {
				t.Fatal("a fresh token was refreshed again")
			}
			// A second refresh works with whatever refresh token was kept.
			if err := e.m.ForceRefresh(e.ctx, e.material("gh")); err != nil {
				t.Fatal(err)
			}
			e.mustCall("gh", "")
			if e.p.Refreshes() != 2 {
				t.Fatalf("%d refreshes, want 2", e.p.Refreshes())
			}
			e.assertNoSecrets("logs", e.logs.String())
		})
	}
}

func TestInvalidGrantNeedsReauthorization(t *testing.T) {
	e := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "bob", "")); err != nil {
		t.Fatal(err)
	}
	e.p.RevokeRefreshTokens() // the user withdrew consent at the provider
	_, err := tryCallAs(e, "gh", "bob")
	se := wantCode(t, err, sesame.CodeReauthorizationRequired)
	if se.Details["reason"] != "invalid_grant" || se.Details["authorize_url"] != publicURL+"/v1/oauth/authorize?credential=gh&user=bob&workspace=default" {
		t.Fatalf("details %v", se.Details)
	}
	g := e.grant("gh", "bob")
	if g.Status != sesame.GrantReauthorize || g.Access != nil || g.Refresh != nil {
		t.Fatalf("grant after invalid_grant: status %s, tokens kept %v %v", g.Status, g.Access != nil, g.Refresh != nil)
	}
	// Later calls fail the same way without asking the provider again.
	n := e.p.Refreshes()
	_, err = tryCallAs(e, "gh", "bob")
	wantCode(t, err, sesame.CodeReauthorizationRequired)
	if e.p.Refreshes() != n {
		t.Fatal("a grant marked for re-authorization was refreshed again")
	}
	views, err := e.m.ListGrants(e.ctx, "default", "", "", 10)
	if err != nil || len(views) != 1 || views[0].Status != "reauthorization_required" || views[0].AuthorizeURL == "" {
		t.Fatalf("grants %+v, %v", views, err)
	}
	// Re-authorizing restores it.
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "bob", "")); err != nil {
		t.Fatal(err)
	}
	e.mustCall("gh", "bob")
}

func TestNoRefreshTokenNeedsReauthorization(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	// Drop the refresh token as a provider that issues none would.
	g := e.grant("gh", "")
	g.Refresh = nil
	if _, err := e.st.UpdateOAuthGrant(e.ctx, g, g.Version); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Hour)
	_, err := tryCall(e, "gh")
	se := wantCode(t, err, sesame.CodeReauthorizationRequired)
	if se.Details["reason"] != "no_refresh_token" {
		t.Fatalf("details %v", se.Details)
	}
}

func TestProviderFailureDuringRefreshIsTransient(t *testing.T) {
	e := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	t.Run("every try fails", func(t *testing.T) {
		e.p.FailTokenRequests(3, http.StatusServiceUnavailable)
		_, err := tryCall(e, "gh")
		se := wantCode(t, err, sesame.CodeUpstreamError)
		if !strings.Contains(se.Message, "HTTP 503") || !strings.Contains(se.Message, "stays valid") {
			t.Fatalf("message %q", se.Message)
		}
		if g := e.grant("gh", ""); g.Status != sesame.GrantValid || g.Refresh == nil {
			t.Fatalf("a transient failure changed the grant: %s", g.Status)
		}
		if e.p.Refreshes() != 3 {
			t.Fatalf("%d refresh tries, want 3", e.p.Refreshes())
		}
	})
	t.Run("a retry succeeds", func(t *testing.T) {
		e.p.FailTokenRequests(1, http.StatusBadGateway)
		e.mustCall("gh", "")
	})
}

func TestRejectedClientIsNotReauthorization(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("svc", "client_credentials", map[string]any{"client_secret": "wrong-secret"})
	_, err := tryCall(e, "svc")
	se := wantCode(t, err, sesame.CodeUpstreamError)
	if !strings.Contains(se.Message, "invalid_client") || strings.Contains(se.Message, "wrong-secret") {
		t.Fatalf("message %q", se.Message)
	}
	if e.p.ClientCredentials() != 1 {
		t.Fatalf("a permanent failure was retried: %d requests", e.p.ClientCredentials())
	}
}

func TestConcurrentCallsRefreshOnce(t *testing.T) {
	e := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, err := tryCall(e, "gh"); err == nil && status == 200 {
				ok.Add(1)
			} else {
				t.Errorf("call: %d %v", status, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 200 || e.p.Refreshes() != 1 {
		t.Fatalf("%d successes, %d refreshes; want 200 and 1", ok.Load(), e.p.Refreshes())
	}
}

func TestForcedRefreshesCoalesce(t *testing.T) {
	e := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: true}})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	// Fifty requests carried the same token and were all rejected: one refresh.
	var wg, injected sync.WaitGroup
	injected.Add(50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, _ := credential.WithServed(e.ctx)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.p.ResourceURL(), nil)
			err := e.m.Inject(ctx, req, e.material("gh"), credential.Target{})
			injected.Done()
			if err != nil {
				t.Error(err)
				return
			}
			injected.Wait() // every request carries the old token before any refresh
			if err := e.m.ForceRefresh(ctx, e.material("gh")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if e.p.Refreshes() != 1 {
		t.Fatalf("%d refreshes for one rejected token, want 1", e.p.Refreshes())
	}
}

func TestCanceledCallerStillStoresRotatedToken(t *testing.T) {
	e := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	before := e.grant("gh", "")
	ctx, cancel := context.WithCancel(e.ctx)
	returned := make(chan struct{})
	// The provider has issued the rotated tokens; before they leave, the caller gives up
	// and returns.
	e.p.OnRefresh(func() {
		cancel()
		<-returned
	})
	var callErr error
	go func() {
		_, callErr = e.call(ctx, "gh")
		close(returned)
	}()
	<-returned
	if callErr == nil {
		t.Fatal("the canceled call succeeded")
	}
	e.p.OnRefresh(nil)
	// A new call gets the refreshed token without another refresh: it joins the refresh
	// still running, or reads what it stored.
	e.mustCall("gh", "")
	if e.p.Refreshes() != 1 {
		t.Fatalf("%d refreshes, want 1", e.p.Refreshes())
	}
	after := e.grant("gh", "")
	if after.Version == before.Version || bytes.Equal(after.Refresh, before.Refresh) {
		t.Fatal("the rotated refresh token was not stored")
	}
	// The old refresh token is dead at the provider; a refresh with the stored one works,
	// which proves the stored one is the rotated one.
	if err := e.m.ForceRefresh(e.ctx, e.material("gh")); err != nil {
		t.Fatalf("refresh with the stored token: %v", err)
	}
}

func TestRevokeDeletesAndRevokesAtProvider(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "bob", "")); err != nil {
		t.Fatal(err)
	}
	rev, err := e.m.DeleteGrant(e.ctx, "default", "gh", "bob")
	if err != nil || !rev.Deleted || !rev.RevokedAtProvider || e.p.Revocations() != 1 {
		t.Fatalf("revocation %+v, %v, provider saw %d", rev, err, e.p.Revocations())
	}
	_, err = tryCallAs(e, "gh", "bob")
	wantCode(t, err, sesame.CodeReauthorizationRequired)
	_, err = e.m.DeleteGrant(e.ctx, "default", "gh", "bob")
	wantCode(t, err, sesame.CodeNotFound)

	// Without a revocation endpoint the grant is still deleted, and the answer says so.
	e.putCredential("gh2", "authorization_code", map[string]any{"revocation_url": nil})
	if _, err := e.m.Callback(e.ctx, e.authorize("gh2", "", "")); err != nil {
		t.Fatal(err)
	}
	rev, err = e.m.DeleteGrant(e.ctx, "default", "gh2", "")
	if err != nil || !rev.Deleted || rev.RevokedAtProvider || rev.RevocationError == "" {
		t.Fatalf("revocation %+v, %v", rev, err)
	}
}

func TestLocalCallToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "bob", "")); err != nil {
		t.Fatal(err)
	}
	tok, err := e.m.AccessToken(e.ctx, "default", "gh", "bob")
	if err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresAt == nil {
		t.Fatalf("token %+v, %v", tok.ExpiresAt, err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.p.ResourceURL(), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the local-call token does not work at the provider: %v", err)
	}
	resp.Body.Close()
}

// TestTwoProcessesOnPostgresRefreshOnce runs two OAuth services, each with its own store
// handle (as two replicas have), on one PostgreSQL schema: 100 concurrent calls each on an
// expired token make one refresh at the provider.
func TestTwoProcessesOnPostgresRefreshOnce(t *testing.T) {
	pgURL := testpg.URL(t)
	a := newEnv(t, envOptions{provider: oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}, st: openPostgres(t, pgURL)})
	b := newEnv(t, envOptions{st: openPostgres(t, pgURL), kr: a.kr, p: a.p})
	a.putCredential("gh", "authorization_code", nil)
	if _, err := a.m.Callback(a.ctx, a.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	start := make(chan struct{})
	for _, e := range []*env{a, b} {
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if status, err := tryCall(e, "gh"); err == nil && status == 200 {
					ok.Add(1)
				} else {
					t.Errorf("call: %d %v", status, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if ok.Load() != 200 || a.p.Refreshes() != 1 {
		t.Fatalf("%d successes, %d refreshes; want 200 and 1", ok.Load(), a.p.Refreshes())
	}
}

// TestLeaseHeartbeatAndBoundedWait: a live refresher keeps its short lease by renewing
// it, so another process does not take over however long the provider takes (one token
// request in all), and a caller whose wait bound passes first gets refresh_in_progress
// with Retry-After. (A dead holder's lease expiring is TestFaultOAuthLeaseTakeover in
// cmd/sesame, with a real SIGKILL.)
func TestLeaseHeartbeatAndBoundedWait(t *testing.T) {
	ttl := 150 * time.Millisecond
	a := newEnv(t, envOptions{leaseTTL: ttl, leaseWait: 20 * time.Second, realClock: true})
	b := newEnv(t, envOptions{st: a.st, kr: a.kr, p: a.p, leaseTTL: ttl, leaseWait: 20 * time.Second, realClock: true})
	c := newEnv(t, envOptions{st: a.st, kr: a.kr, p: a.p, leaseTTL: ttl, leaseWait: 100 * time.Millisecond, realClock: true})
	a.putCredential("cc", "client_credentials", nil)
	arrived, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	a.p.OnToken(func(string) {
		if first.CompareAndSwap(false, true) {
			close(arrived)
			<-release
		}
	})
	aDone, bDone := make(chan error, 1), make(chan error, 1)
	go func() { _, err := tryCall(a, "cc"); aDone <- err }()
	<-arrived
	go func() { _, err := tryCall(b, "cc"); bDone <- err }()

	_, err := tryCall(c, "cc")
	if se := wantCode(t, err, sesame.CodeRefreshInProgress); se.RetryAfter <= 0 {
		t.Fatalf("refresh_in_progress without Retry-After: %v", se)
	}
	time.Sleep(8 * ttl) // many lease lifetimes: only renewals keep a's lease
	unblock()
	for name, done := range map[string]chan error{"a": aDone, "b": bDone} {
		if err := <-done; err != nil {
			t.Fatalf("%s's call: %v", name, err)
		}
	}
	if n := a.p.ClientCredentials(); n != 1 {
		t.Fatalf("token requests = %d; want 1 (b took over a live holder's lease)", n)
	}
}

// TestProviderTemplatesAndOverrides: a credential names a template and overrides fields;
// the template's quirks (extra parameters, scope separator, PKCE) shape the requests.
// The URLs are overridden to reach the test provider.
func TestProviderTemplatesAndOverrides(t *testing.T) {
	e := newEnv(t, envOptions{})
	authURL := func(key string) url.Values {
		t.Helper()
		a, err := e.m.Authorize(e.ctx, oauth.AuthorizeRequest{Workspace: "default", Credential: key})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(a.URL)
		return u.Query()
	}
	e.putCredential("google", "authorization_code", map[string]any{"provider": "google", "scopes": nil, "revocation_url": nil})
	q := authURL("google")
	if q.Get("access_type") != "offline" || q.Get("prompt") != "consent" || q.Get("scope") != "openid email" || q.Get("code_challenge") == "" {
		t.Fatalf("google template: %v", q)
	}
	if !strings.HasPrefix(q.Get("redirect_uri"), publicURL) {
		t.Fatal("redirect_uri")
	}
	e.putCredential("slack", "authorization_code", map[string]any{"provider": "slack", "scopes": []string{"chat:write", "channels:read"}})
	q = authURL("slack")
	if q.Get("scope") != "chat:write,channels:read" || q.Get("code_challenge") != "" {
		t.Fatalf("slack template (comma-separated scopes, no PKCE): %v", q)
	}
	e.putCredential("dropbox", "authorization_code", map[string]any{"provider": "dropbox", "pkce": "none",
		"auth_params": map[string]any{"token_access_type": "legacy", "locale": "de"}})
	q = authURL("dropbox")
	if q.Get("token_access_type") != "legacy" || q.Get("locale") != "de" || q.Get("code_challenge") != "" {
		t.Fatalf("overrides: %v", q)
	}
	// The whole flow works through a template whose URLs are overridden.
	if _, err := e.m.Callback(e.ctx, e.consent(func() string {
		a, _ := e.m.Authorize(e.ctx, oauth.AuthorizeRequest{Workspace: "default", Credential: "google"})
		return a.URL
	}())); err != nil {
		t.Fatal(err)
	}
	e.mustCall("google", "")

	// token_in query puts the token in the query string instead of the header.
	e.putCredential("q", "client_credentials", map[string]any{"token_in": "query", "token_param": "access_token"})
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.p.ResourceURL()+"/me?x=1", nil)
	if err := e.m.Inject(e.ctx, req, e.material("q"), credential.Target{}); err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Authorization") != "" || req.URL.Query().Get("access_token") == "" || req.URL.Query().Get("x") != "1" {
		t.Fatal("token_in query did not put the token in the query")
	}

	// Unknown templates and reserved parameters are refused on save.
	for _, bad := range []map[string]any{
		{"provider": "nope"},
		{"auth_params": map[string]any{"state": "x"}},
		{"token_params": map[string]any{"k": 1}},
		{"client_secret": nil, "pkce": "none"},
	} {
		fields := map[string]any{"grant": "authorization_code", "client_id": "c", "client_secret": "s", "auth_url": e.p.AuthURL(), "token_url": e.p.TokenURL()}
		for k, v := range bad {
			if v == nil {
				delete(fields, k)
			} else {
				fields[k] = v
			}
		}
		body, _ := json.Marshal(map[string]any{"type": "oauth2", "fields": fields})
		_, _, err := e.v.PutCredential(e.ctx, "default", "bad", body, vault.Actor{Admin: true})
		var se *sesame.Error
		if !errors.As(err, &se) || (se.Code != sesame.CodeInvalidField && se.Code != sesame.CodeMissingField) {
			t.Fatalf("%v: got %v", bad, err)
		}
	}
}

// TestGrantsSurviveMasterKeyRotation: the sealed tokens and verifiers are re-wrapped with
// every other secret.
func TestGrantsSurviveMasterKeyRotation(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "bob", "")); err != nil {
		t.Fatal(err)
	}
	pending := e.authorize("gh", "carol", "") // a state still waiting for its callback
	k, _ := crypt.GenerateMasterKey()
	res, err := e.v.RotateMasterKey(e.ctx, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrapped < 4 {
		t.Fatalf("re-wrapped %d blobs; the grant's two tokens and the state's verifier are among them", res.Rewrapped)
	}
	if len(e.kr.Keys()) != 1 {
		t.Fatal("the old key was not retired")
	}
	e.mustCall("gh", "bob")
	if _, err := e.m.Callback(e.ctx, pending); err != nil {
		t.Fatalf("callback after rotation: %v", err)
	}
	e.mustCall("gh", "carol")
}

func TestTokenEndpointOnPrivateAddressIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{ssrfSafe: true})
	e.putCredential("svc", "client_credentials", nil)
	_, err := tryCall(e, "svc")
	wantCode(t, err, sesame.CodeForbiddenAddress)
	if e.p.ClientCredentials() != 0 {
		t.Fatal("a loopback token endpoint was reached")
	}
}
