package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sesamehq/sesame/internal/oauthtest"
)

// TestSharedOAuthApp: an OAuth app defined once (admin) is named by oauth2 credentials in
// several workspaces; each workspace gets its own grant; rotating the app's secret
// rotates it for all. Workspace users can neither change the app nor send its secret (or
// their grants) anywhere else, and the app's workspace is out of reach of the workspace
// routes.
func TestSharedOAuthApp(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			s := destinationServer(t, store)
			p := oauthtest.New(t, oauthtest.Options{})
			p.AddClient("shared-id", "app-secret-1", "")
			var seen strings.Builder
			record := func(r response) response { seen.Write(r.Body); return r }

			appBody := func(secret string) string {
				return fmt.Sprintf(`{"fields":{"grant":"client_credentials","client_id":"shared-id","client_secret":%q,"token_url":%q,"workspaces":["a","b","c"]}}`, secret, p.TokenURL())
			}
			record(mustStatus(t, s.do("PUT", "/v1/oauth/apps/prov", appBody("app-secret-1")), 201))
			for _, ws := range []string{"a", "b"} {
				mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"`+ws+`"}`), 201)
				record(mustStatus(t, s.do("PUT", "/v1/workspaces/"+ws+"/credentials/tok", `{"type":"oauth2","fields":{"oauth_app":"prov","scopes":["read"]}}`), 201))
				mustStatus(t, s.do("PUT", "/v1/workspaces/"+ws+"/connections/api?test=false",
					fmt.Sprintf(`{"base_uri":%q,"credential":"tok","allow_private_networks":true}`, p.URL)), 201)
			}
			call := func(ws string) {
				t.Helper()
				r := record(s.do("GET", "/v1/workspaces/"+ws+"/proxy/api/api/x", ""))
				if r.Status != 200 || !strings.Contains(string(r.Body), `"client":"shared-id"`) {
					t.Fatalf("call in %s: %d %s", ws, r.Status, r.Body)
				}
			}
			call("a")
			if n := p.ClientCredentials(); n != 1 {
				t.Fatalf("token requests: %d", n)
			}
			// Rotate the shared secret once: the provider now knows only the new one.
			p.AddClient("shared-id", "app-secret-2", "")
			record(mustStatus(t, s.do("PUT", "/v1/oauth/apps/prov", appBody("app-secret-2")), 200))
			call("b") // a new token, with the new secret
			p.RevokeAccessTokens()
			call("a") // a's token is refused upstream: refreshed with the new secret
			if n := p.ClientCredentials(); n != 3 {
				t.Fatalf("token requests after the rotation: %d", n)
			}
			// Grants stay per workspace.
			for _, ws := range []string{"a", "b"} {
				g := decode[struct {
					Items []struct{ Credential string }
				}](t, mustStatus(t, s.do("GET", "/v1/workspaces/"+ws+"/oauth/grants", ""), 200))
				if len(g.Items) != 1 || g.Items[0].Credential != "tok" {
					t.Errorf("grants of %s: %+v", ws, g.Items)
				}
			}

			// A developer of workspace a: sees the app (not its secret), cannot change it.
			dev := newDeveloper(t, s, "mallory", "a")
			v := record(mustStatus(t, s.as(dev, "GET", "/v1/oauth/apps/prov", ""), 200))
			if !strings.Contains(string(v.Body), `"client_id":"shared-id"`) || !strings.Contains(string(v.Body), `"set":true`) {
				t.Errorf("app view: %s", v.Body)
			}
			record(mustStatus(t, s.as(dev, "GET", "/v1/oauth/apps", ""), 200))
			for _, m := range []string{"PUT", "DELETE"} {
				if r := s.as(dev, m, "/v1/oauth/apps/prov", appBody("mine")); r.Status != 403 {
					t.Errorf("developer %s app: %d %s", m, r.Status, r.Body)
				}
			}
			// A credential naming the app may not say where the app's secret goes.
			for _, fields := range []string{
				`"oauth_app":"prov","token_url":"https://evil.example.com/token"`,
				`"oauth_app":"prov","auth_url":"https://evil.example.com/auth"`,
				`"oauth_app":"prov","revocation_url":"https://evil.example.com/revoke"`,
				`"oauth_app":"prov","provider":"github"`,
				`"oauth_app":"prov","client_id":"other"`,
				`"oauth_app":"prov","client_secret":"other"`,
				`"oauth_app":"prov","token_params":{"x":"y"}`,
				`"oauth_app":"nope"`,
				`"oauth_app":"../prov"`,
			} {
				r := s.as(dev, "PUT", "/v1/workspaces/a/credentials/evil", `{"type":"oauth2","fields":{`+fields+`}}`)
				if r.Status != 400 {
					t.Errorf("credential with %s: %d %s", fields, r.Status, r.Body)
				}
			}
			// Pointing a credential with grants at another app would send its grants there.
			evil := oauthtest.New(t, oauthtest.Options{})
			record(mustStatus(t, s.do("PUT", "/v1/oauth/apps/other", fmt.Sprintf(`{"fields":{"grant":"client_credentials","client_id":"x","client_secret":"other-secret","token_url":%q,"workspaces":["*"]}}`, evil.TokenURL())), 201))
			r := s.as(dev, "PUT", "/v1/workspaces/a/credentials/tok", `{"type":"oauth2","fields":{"oauth_app":"other"}}`)
			if r.Status != 403 || !strings.Contains(string(r.Body), "destination_locked") {
				t.Errorf("switching the app of a credential with grants: %d %s", r.Status, r.Body)
			}
			call("a")
			if evil.ClientCredentials() != 0 {
				t.Errorf("the other app's token endpoint was called")
			}
			// An app cannot name another; the app's workspace is unreachable as a workspace.
			if r := s.do("PUT", "/v1/oauth/apps/chain", `{"fields":{"oauth_app":"prov"}}`); r.Status != 400 {
				t.Errorf("an app naming an app: %d %s", r.Status, r.Body)
			}
			if r := s.do("PUT", "/v1/oauth/apps/x", `{"type":"basic","fields":{"username":"u","password":"p"}}`); r.Status != 400 {
				t.Errorf("an app of type basic: %d %s", r.Status, r.Body)
			}
			for _, path := range []string{"/v1/workspaces/_oauth_apps", "/v1/workspaces/_oauth_apps/credentials", "/v1/workspaces/_oauth_apps/credentials/prov"} {
				if r := record(s.do("GET", path, "")); r.Status != 400 {
					t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
				}
			}
			if r := s.do("POST", "/v1/workspaces", `{"name":"_oauth_apps"}`); r.Status != 400 {
				t.Errorf("creating the apps' workspace: %d", r.Status)
			}
			if ws := record(mustStatus(t, s.do("GET", "/v1/workspaces", ""), 200)); strings.Contains(string(ws.Body), "_oauth_apps") {
				t.Errorf("the workspace list shows the apps' workspace: %s", ws.Body)
			}
			// Only the workspaces the app lists may name it, checked at save and at every use.
			mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"d"}`), 201)
			if r := s.do("PUT", "/v1/workspaces/d/credentials/tok", `{"type":"oauth2","fields":{"oauth_app":"prov"}}`); r.Status != 400 {
				t.Errorf("a workspace the app does not list names it: %d %s", r.Status, r.Body)
			}
			mustStatus(t, s.do("POST", "/v1/workspaces/b/copy", `{"name":"d2"}`), 201) // copies b's credential naming prov, and its connection
			if r := record(s.do("GET", "/v1/workspaces/d2/proxy/api/api/x", "")); r.Status != 403 || !strings.Contains(string(r.Body), "not for workspace") {
				t.Errorf("a copied credential in a workspace the app does not list: %d %s", r.Status, r.Body)
			}
			record(mustStatus(t, s.do("PUT", "/v1/oauth/apps/prov", strings.Replace(appBody("app-secret-2"), `"a","b","c"`, `"a"`, 1)), 200))
			if r := record(s.do("GET", "/v1/workspaces/b/proxy/api/api/x", "")); r.Status != 403 || !strings.Contains(string(r.Body), "not for workspace") {
				t.Errorf("b after the app stopped listing it: %d %s", r.Status, r.Body)
			}
			call("a")
			for _, bad := range []string{`{"fields":{"grant":"client_credentials","client_id":"x","client_secret":"y","token_url":"https://x.example.com/t"}}`,
				`{"fields":{"grant":"client_credentials","client_id":"x","client_secret":"y","token_url":"https://x.example.com/t","workspaces":["Not A Name"]}}`} {
				if r := s.do("PUT", "/v1/oauth/apps/bad", bad); r.Status != 400 {
					t.Errorf("app %s: %d %s", bad, r.Status, r.Body)
				}
			}
			if r := s.do("PUT", "/v1/workspaces/a/credentials/w", `{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"x","client_secret":"y","token_url":"https://x.example.com/t","workspaces":["*"]}}`); r.Status != 400 {
				t.Errorf("a workspace credential with workspaces: %d %s", r.Status, r.Body)
			}
			// Deleting the app: credentials naming it fail clearly.
			mustStatus(t, s.do("DELETE", "/v1/oauth/apps/other", ""), 204)
			mustStatus(t, s.do("GET", "/v1/oauth/apps/other", ""), 404)
			for _, secret := range []string{"app-secret-1", "app-secret-2", "other-secret"} {
				if strings.Contains(seen.String(), secret) {
					t.Errorf("a response carried the app secret %q", secret)
				}
			}
		})
	}
}

// TestSharedOAuthAppCLI: sesame oauth app-put/apps/app-get/app-rm, and a credential naming
// the app with sesame cred put; the secret comes from standard input and is never printed.
func TestSharedOAuthAppCLI(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	steps := []struct {
		stdin string
		args  []string
		want  string
		code  int
	}{
		{"cli-app-secret\n", []string{"oauth", "app-put", "google-prod", "grant=authorization_code", "client_id=gid", "client_secret=@-", "provider=google", `workspaces:=["default"]`}, "(secret, set", 0},
		{"", []string{"oauth", "apps"}, "google-prod", 0},
		{"", []string{"oauth", "app-get", "google-prod", "--json"}, `"client_id": "gid"`, 0},
		{"", []string{"cred", "put", "g", "--type", "oauth2", "oauth_app=google-prod", `scopes:=["email"]`}, "google-prod", 0},
		{"", []string{"cred", "put", "g2", "--type", "oauth2", "oauth_app=google-prod", "token_url=https://evil.example.com/t"}, "", 1},
		{"", []string{"oauth", "app-put", "google-prod", "grant=authorization_code", "client_id=gid2", "provider=google", `workspaces:=["default"]`, "--keep", "client_secret"}, "gid2", 0},
		{"", []string{"oauth", "app-rm", "google-prod"}, "", 0},
		{"", []string{"oauth", "app-get", "google-prod"}, "", 1},
	}
	for _, st := range steps {
		code, out, errOut := s.cli(st.stdin, st.args...)
		if code != st.code || !strings.Contains(out, st.want) {
			t.Fatalf("%v: exit %d (want %d): %s %s", st.args, code, st.code, out, errOut)
		}
		if strings.Contains(out+errOut, "cli-app-secret") {
			t.Fatalf("%v printed the app secret", st.args)
		}
	}
}
