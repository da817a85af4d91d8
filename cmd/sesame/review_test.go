package main

import (
	"strings"
	"testing"
)

// TestAppRevocationCeiling: revoking an app's tokens or certificate acts on the app as a
// principal, like revoking a user's keys (PRODUCT.md §4.6 rule 2). A holder of manage_apps
// alone may not evict an app that is granted admin; the admin may, and the manager still
// revokes the tokens of apps that hold nothing it lacks.
func TestAppRevocationCeiling(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *testServer) {
		mustStatus(t, s.do("POST", "/v1/roles", `{"name":"appmgr","privileges":["use_api_key","manage_apps"]}`), 201)
		_, mgr := newUserWith(t, s, "appmgr", "appmgr@*")
		mustStatus(t, s.do("POST", "/v1/grants", `{"role":"admin","app":"com.corp.pay","workspace":"*"}`), 201)
		signed, certID := signedManifest(t, s, t.TempDir(), "com.corp.*", "com.corp.pay", "Pay", "1.0")
		tok := tokenFrom(t, s.appAuth(signed))
		tokID, _ := mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 200).json(t)["token_id"].(string)
		if tokID == "" {
			t.Fatal("no token_id in /v1/me")
		}

		for _, a := range []struct{ name, method, path string }{
			{"revoke every token of an admin app", "DELETE", "/v1/apps/tokens?app=com.corp.pay"},
			{"revoke one token of an admin app", "DELETE", "/v1/apps/tokens/" + tokID},
			{"revoke the certificate of an admin app", "DELETE", "/v1/apps/certs/" + certID},
		} {
			r := s.doWith(a.method, a.path, "", withKey(mgr))
			if r.Status != 403 || !strings.Contains(string(r.Body), `"privilege_ceiling"`) {
				t.Errorf("%s: %d %s, want 403 privilege_ceiling", a.name, r.Status, r.Body)
			}
			mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 200)
		}
		if c := mustStatus(t, s.do("GET", "/v1/apps/certs/"+certID, ""), 200).json(t); c["revoked_at"] != nil {
			t.Fatalf("the certificate was revoked: %v", c)
		}

		// An app that holds nothing the manager lacks: the manager may evict it.
		trial := tokenFrom(t, s.appAuth(manifestJSON("com.example.tool", "Tool", "1")))
		mustStatus(t, s.doWith("DELETE", "/v1/apps/tokens?app=com.example.tool", "", withKey(mgr)), 200)
		mustStatus(t, s.withToken("GET", "/v1/me", "", trial), 401)
		// Bad input stays bad input.
		wantError(t, s.doWith("DELETE", "/v1/apps/tokens?app=com.*", "", withKey(mgr)), 400, "invalid_field")
		wantError(t, s.doWith("DELETE", "/v1/apps/certs/cert_nope", "", withKey(mgr)), 404, "not_found")

		// The admin may.
		mustStatus(t, s.do("DELETE", "/v1/apps/tokens/"+tokID, ""), 204)
		mustStatus(t, s.withToken("GET", "/v1/me", "", tok), 401)
		mustStatus(t, s.do("DELETE", "/v1/apps/certs/"+certID, ""), 200)
	})
}
