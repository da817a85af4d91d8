package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// authzEnv is the real API with access control over a real SQLite store.
type authzEnv struct {
	srv   *Server
	acc   *access.Service
	authn *auth.Authenticator
	admin string
}

func newAuthzEnv(tb testing.TB) *authzEnv {
	tb.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "a.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	k, _ := crypt.GenerateMasterKey()
	log := slog.New(slog.DiscardHandler)
	v := vault.New(st, crypt.NewKeyring(k), time.Now, log)
	if err := v.Unlock(ctx); err != nil {
		tb.Fatal(err)
	}
	pepper, err := v.ServerSecret(ctx, "api-key-hmac")
	if err != nil {
		tb.Fatal(err)
	}
	h := auth.NewHasher(pepper)
	authn := auth.New(st, h, nil, log)
	acc := access.New(st, h, nil, log)
	acc.OnChange(authn.Invalidate)
	adminKey, err := authn.Bootstrap(ctx, "")
	if err != nil {
		tb.Fatal(err)
	}
	gw := gateway.New(gateway.Config{Store: st, Vault: v, Logger: log})
	srv := New(Config{Vault: v, Auth: authn, Access: acc, Gateway: gw, Ready: st.Ping, Logger: log,
		Rotate: func(context.Context, string) (vault.RotateResult, error) { return vault.RotateResult{}, nil }})
	return &authzEnv{srv: srv, acc: acc, authn: authn, admin: string(adminKey.Reveal())}
}

func (e *authzEnv) call(tb testing.TB, key, method, path, body string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec
}

// userWith creates a user holding privs in workspace ws (plus use_api_key) and returns its key.
func (e *authzEnv) userWith(tb testing.TB, ws string, privs ...sesame.Privilege) string {
	tb.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("u%d", time.Now().UnixNano())
	u, err := e.acc.CreateUser(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := e.acc.PutRole(ctx, bootstrapAdmin(tb, e.acc), "r-"+name, append([]sesame.Privilege{sesame.PrivUseAPIKey}, privs...)); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.acc.CreateGrant(ctx, bootstrapAdmin(tb, e.acc), access.GrantInput{Role: "r-" + name, User: u.ID, Workspace: ws}); err != nil {
		tb.Fatal(err)
	}
	k, err := e.acc.CreateKey(ctx, bootstrapAdmin(tb, e.acc), u.ID, "k", nil)
	if err != nil {
		tb.Fatal(err)
	}
	return string(k.Key.Reveal())
}

// concrete fills a route pattern's wildcards.
func concrete(pattern, ws string) string {
	r := strings.NewReplacer("{ws}", ws, "{key}", "some.cred", "{name}", "some-name", "{id}", "some-id", "{conn}", "some-conn", "{path...}", "x/y")
	return r.Replace(pattern)
}

func routeMethod(rt route) string {
	if rt.method == anyMethod {
		return http.MethodGet
	}
	return rt.method
}

func codeOf(tb testing.TB, rec *httptest.ResponseRecorder) string {
	var body struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return body.Code
}

// TestEveryRouteNeedsItsPrivilege walks the route table: with every other privilege but the
// route's own, a request is refused with 403 missing_privilege; with the route's privilege
// (in the right workspace), it gets past authorization.
func TestEveryRouteNeedsItsPrivilege(t *testing.T) {
	e := newAuthzEnv(t)
	for _, rt := range e.srv.routes() {
		if rt.anonymous || (len(rt.privileges) == 0 && !rt.inWorkspace) {
			continue
		}
		name := routeMethod(rt) + " " + rt.pattern
		t.Run(name, func(t *testing.T) {
			var others []sesame.Privilege
			for _, p := range sesame.Privileges {
				granted := false
				for _, q := range rt.privileges {
					granted = granted || p == q
				}
				if !granted && p != sesame.PrivAdmin {
					others = append(others, p)
				}
			}
			path := concrete(rt.pattern, "default")
			if !rt.inWorkspace {
				without := e.userWith(t, sesame.AllWorkspaces, others...)
				rec := e.call(t, without, routeMethod(rt), path, "{}")
				if rec.Code != http.StatusForbidden || codeOf(t, rec) != "missing_privilege" {
					t.Fatalf("without %v: %d %s", rt.privileges, rec.Code, rec.Body)
				}
			}
			for _, p := range rt.privileges {
				with := e.userWith(t, sesame.AllWorkspaces, p)
				rec := e.call(t, with, routeMethod(rt), path, "{}")
				if rec.Code == http.StatusForbidden && codeOf(t, rec) == "missing_privilege" || rec.Code == http.StatusUnauthorized {
					t.Fatalf("with %s: %d %s", p, rec.Code, rec.Body)
				}
			}
			if strings.Contains(rt.pattern, "{ws}") {
				// Rights in another workspace do not count, and the answer is the same
				// whether or not the workspace exists (OWASP API1).
				ctx := context.Background()
				if _, err := e.acc.GetUser(ctx, "x"); err == nil {
					t.Fatal("unexpected user")
				}
				priv := sesame.PrivRunFunctions
				if len(rt.privileges) > 0 {
					priv = rt.privileges[0]
				}
				elsewhere := e.userWith(t, "default", priv)
				for _, ws := range []string{"other", "no-such-ws"} {
					rec := e.call(t, elsewhere, routeMethod(rt), concrete(rt.pattern, ws), "{}")
					if rec.Code != http.StatusForbidden || codeOf(t, rec) != "missing_privilege" {
						t.Fatalf("rights in default used in %s: %d %s", ws, rec.Code, rec.Body)
					}
				}
			}
		})
	}
}

func TestUseAPIKeyPrivilegeAndSelfServiceKeys(t *testing.T) {
	e := newAuthzEnv(t)
	ctx := context.Background()
	u, _ := e.acc.CreateUser(ctx, "nokeys")
	k, _ := e.acc.CreateKey(ctx, bootstrapAdmin(t, e.acc), u.ID, "k", nil)
	rec := e.call(t, string(k.Key.Reveal()), "GET", "/v1/me", "")
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "use_api_key") {
		t.Fatalf("a user without use_api_key: %d %s", rec.Code, rec.Body)
	}
	// A user manages its own keys, not others'.
	me := e.userWith(t, "default", sesame.PrivRunFunctions)
	var whoami struct {
		UserID string `json:"user_id"`
	}
	json.Unmarshal(e.call(t, me, "GET", "/v1/me", "").Body.Bytes(), &whoami)
	if rec := e.call(t, me, "POST", "/v1/users/"+whoami.UserID+"/keys", `{"name":"second"}`); rec.Code != 201 || !strings.Contains(rec.Body.String(), `"key":"sesame_`) {
		t.Fatalf("own key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call(t, me, "POST", "/v1/users/"+u.ID+"/keys", `{}`); rec.Code != 403 {
		t.Fatalf("someone else's key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call(t, me, "DELETE", "/v1/keys/"+k.ID, ""); rec.Code != 403 {
		t.Fatalf("revoking someone else's key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call(t, me, "DELETE", "/v1/keys/key_doesnotexist", ""); rec.Code != 403 {
		t.Fatalf("probing key IDs: %d %s", rec.Code, rec.Body)
	}
}

func TestWorkspaceListShowsOnlyGrantedWorkspaces(t *testing.T) {
	e := newAuthzEnv(t)
	for _, ws := range []string{"alpha", "beta", "gamma"} {
		if rec := e.call(t, e.admin, "POST", "/v1/workspaces", `{"name":"`+ws+`"}`); rec.Code != 201 {
			t.Fatal(rec.Body)
		}
	}
	key := e.userWith(t, "beta", sesame.PrivRunFunctions)
	body := e.call(t, key, "GET", "/v1/workspaces?limit=1", "").Body.String()
	if !strings.Contains(body, `"beta"`) || strings.Contains(body, "alpha") || strings.Contains(body, "gamma") || strings.Contains(body, `"default"`) {
		t.Fatalf("workspace list: %s", body)
	}
	if rec := e.call(t, key, "GET", "/v1/workspaces/alpha", ""); rec.Code != 403 {
		t.Fatalf("get another workspace: %d", rec.Code)
	}
	if rec := e.call(t, key, "GET", "/v1/workspaces/beta", ""); rec.Code != 200 {
		t.Fatalf("get own workspace: %d", rec.Code)
	}
}

// BenchmarkAuthenticateAndAuthorize is the inbound hot path on a warm cache: verify an API
// key and decide a route's privilege in a workspace.
func BenchmarkAuthenticateAndAuthorize(b *testing.B) {
	e := newAuthzEnv(b)
	key := e.userWith(b, "default", sesame.PrivRunFunctions)
	ctx := context.Background()
	p, err := e.authn.Authenticate(ctx, key)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.acc.Authorize(ctx, p, sesame.PrivRunFunctions, "default"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := e.authn.Authenticate(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if ok, _ := e.acc.HasAnywhere(ctx, p, sesame.PrivUseAPIKey); !ok {
			b.Fatal("no use_api_key")
		}
		if err := e.acc.Authorize(ctx, p, sesame.PrivRunFunctions, "default"); err != nil {
			b.Fatal(err)
		}
	}
}

// bootstrapAdmin is the bootstrap admin as an actor, for setting up through the access service.
func bootstrapAdmin(tb testing.TB, acc *access.Service) sesame.Principal {
	tb.Helper()
	for after := ""; ; {
		users, err := acc.ListUsers(context.Background(), after, 100)
		if err != nil {
			tb.Fatal(err)
		}
		if len(users) == 0 {
			tb.Fatal("no admin user")
		}
		for _, u := range users {
			if u.Name == "admin" {
				return sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID}
			}
		}
		after = users[len(users)-1].ID
	}
}
