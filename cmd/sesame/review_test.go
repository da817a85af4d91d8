package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/testpg"
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

// TestRecreatedObjectsGetNoStaleSettingsPostgres: a connection or function deleted (here
// with its workspace) on one replica and created again under the same name starts again at
// version 1. Another replica that used the old one may apply nothing it cached for it to
// the new one: not the old connection's allow_private_networks (which only an admin may
// set), not the old function's allowAnonymous or path.
func TestRecreatedObjectsGetNoStaleSettingsPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	dataA := t.TempDir()
	a := startServer(t, nil, "--data", dataA, "--postgres", pgURL)
	b := startServer(t, nil, "--data", t.TempDir(), "--postgres", pgURL, "--master-key-file", filepath.Join(dataA, "master.key"))
	if a.stopped || b.stopped {
		t.Fatalf("replicas did not start: %s %s", a.Stderr.String(), b.Stderr.String())
	}
	b.AdminKey = a.AdminKey
	oldUp, newUp := newUpstream(t), newUpstream(t) // both on 127.0.0.1: private addresses

	mustStatus(t, a.do("POST", "/v1/workspaces", `{"name":"w"}`), 201)
	mustStatus(t, a.do("PUT", "/v1/workspaces/w/connections/internal?test=false",
		fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, oldUp.URL)), 201)
	mustStatus(t, putYAML(a, "w", "f", "connection: internal\nmethod: GET\npath: /old\nallowAnonymous: true\n"), 201)
	// b uses both.
	mustStatus(t, b.do("GET", "/v1/workspaces/w/proxy/internal/x", ""), 200)
	mustStatus(t, anonymousCallIn(t, b, "w", "f"), 200)

	// On a: the workspace goes, and comes back with a developer's connection to another
	// private address (without allow_private_networks) and function, under the old names.
	mustStatus(t, a.do("DELETE", "/v1/workspaces/w?force=true", ""), 204)
	mustStatus(t, a.do("POST", "/v1/workspaces", `{"name":"w"}`), 201)
	_, dev := newUserWith(t, a, "dev", "developer@w")
	mustStatus(t, a.doWith("PUT", "/v1/workspaces/w/connections/internal?test=false",
		fmt.Sprintf(`{"base_uri":%q}`, newUp.URL), withKey(dev)), 201)
	mustStatus(t, a.doWith("PUT", "/v1/workspaces/w/functions/f", "connection: internal\nmethod: GET\npath: /new\n",
		http.Header{"Content-Type": {"application/yaml"}, "Authorization": {"Bearer " + dev}}), 201)

	// Once b reads the new definitions...
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := b.do("GET", "/v1/workspaces/w/connections/internal", "")
		f := b.do("GET", "/v1/workspaces/w/functions/f", "")
		if c.Status == 200 && strings.Contains(string(c.Body), newUp.URL) && f.Status == 200 && strings.Contains(string(f.Body), "/new") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b does not see the new connection and function: %s %s", c.Body, f.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ...it applies them, and nothing of the old ones.
	n, oldN := newUp.count(), oldUp.count()
	if r := b.doWith("GET", "/v1/workspaces/w/proxy/internal/x", "", withKey(dev)); r.Status != 403 || !strings.Contains(string(r.Body), `"forbidden_address"`) {
		t.Errorf("proxy through a connection without allow_private_networks to a private address: %d %s", r.Status, r.Body)
	}
	if r := anonymousCallIn(t, b, "w", "f"); r.Status != 401 {
		t.Errorf("anonymous call of a function that does not allow it: %d %s", r.Status, r.Body)
	}
	if newUp.count() != n || oldUp.count() != oldN {
		t.Fatalf("b sent requests with the deleted objects' settings (new upstream %d→%d, old %d→%d)", n, newUp.count(), oldN, oldUp.count())
	}
}

// anonymousCallIn calls function name in ws without any credential.
func anonymousCallIn(t *testing.T, s *testServer, ws, name string) response {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/"+ws+"/functions/"+name+"/call", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestConnectionTestReasonPhraseRedacted: an upstream that quotes the credential in its
// status line's reason phrase ("401 bad token …"), with an empty body, must not hand the
// credential to whoever runs the connection test.
func TestConnectionTestReasonPhraseRedacted(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	const token = "tok-reason/CANARY-0123456789"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 401 bad %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", r.Header.Get("Authorization"))
		buf.Flush()
	}))
	defer up.Close()
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/reason", `{"type":"bearer","fields":{"token":"`+token+`"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/reason?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"reason","allow_private_networks":true}`, up.URL)), 201)
	for _, r := range []response{
		s.do("POST", "/v1/workspaces/default/connections/reason/test", ""),
		s.do("PUT", "/v1/workspaces/default/connections/reason", fmt.Sprintf(`{"base_uri":%q,"credential":"reason","allow_private_networks":true,"test":{"method":"GET","path":"/"}}`, up.URL)),
	} {
		if strings.Contains(string(r.Body), "CANARY") {
			t.Errorf("the connection test hands back the token: %d %s", r.Status, r.Body)
		}
		if !strings.Contains(string(r.Body), "401") {
			t.Errorf("the test result does not say what failed: %d %s", r.Status, r.Body)
		}
	}
}

// TestBindingOnFirstUseIsAudited: a proxy call (not itself a change) that binds a
// credential without hosts to its first destination changes where the secret may go; that
// change must be in the audit trail like any other, committed with it (PRODUCT.md §4.8),
// naming who caused it.
func TestBindingOnFirstUseIsAudited(t *testing.T) {
	onEachStore(t, func(t *testing.T, s *testServer) {
		up := newUpstream(t)
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/b", fmt.Sprintf(`{"type":"bearer","fields":{"token":"tok-bind-CANARY","hosts":[%q]}}`, up.URL)), 201)
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/c?test=false",
			fmt.Sprintf(`{"base_uri":%q,"credential":"b","allow_private_networks":true}`, up.URL)), 201)
		// The admin clears its hosts (the secret stays): the next use binds it again.
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/b", `{"type":"bearer","fields":{"token":{"keep":true},"hosts":[]}}`), 200)
		callerID, caller := newUserWith(t, s, "carol", "caller@default")
		mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/c/x", "", withKey(caller)), 200)
		if v := mustStatus(t, s.do("GET", "/v1/workspaces/default/credentials/b", ""), 200).json(t); fmt.Sprint(v["fields"].(map[string]any)["hosts"]) == "[]" {
			t.Fatalf("the proxy call did not bind the credential: %v", v)
		}
		events := decode[struct {
			Items []struct {
				Action, Target, Workspace, Result, Detail string
				UserID                                    string `json:"user_id"`
			}
		}](t, mustStatus(t, s.do("GET", "/v1/audit?action=credential.*&limit=1000", ""), 200))
		found := false
		for _, e := range events.Items {
			if e.Action == "credential.bind" && e.Target == "b" && e.Workspace == "default" && e.UserID == callerID && e.Result == "ok" &&
				strings.Contains(e.Detail, strings.TrimPrefix(up.URL, "http://")) {
				found = true
			}
		}
		if !found {
			t.Fatalf("no audit event records the binding of credential b by %s: %+v", callerID, events.Items)
		}
	})
}

// TestEmbeddedBase64EchoRedacted: an upstream that echoes the request base64-encoded as
// part of a larger document (a debug endpoint's "raw request") carries the injected token
// at any alignment of the base64 stream, not only as the base64 of the token alone. The
// caller must not be able to decode it back, whichever of the three alignments it has.
func TestEmbeddedBase64EchoRedacted(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	const token = "tok-b64/CANARY-0123456789abcdef"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pad := strings.Repeat("p", len(r.URL.Query().Get("pad")))
		raw := pad + "GET / HTTP/1.1\r\nAuthorization: " + r.Header.Get("Authorization") + "\r\nAccept: */*\r\n\r\n"
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"std":%q,"url":%q}`, base64.StdEncoding.EncodeToString([]byte(raw)), base64.RawURLEncoding.EncodeToString([]byte(raw)))
	}))
	defer up.Close()
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/b64", `{"type":"bearer","fields":{"token":"`+token+`"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/b64?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"b64","allow_private_networks":true}`, up.URL)), 201)
	_, caller := newUserWith(t, s, "carol", "caller@default")
	for _, pad := range []string{"", "x", "xx"} {
		r := mustStatus(t, s.doWith("GET", "/v1/workspaces/default/proxy/b64/echo?pad="+pad, "", withKey(caller)), 200)
		var body struct{ Std, URL string }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("pad %q: %v: %s", pad, err, r.Body)
		}
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.RawURLEncoding} {
			v := map[string]string{"std": body.Std, "url": body.URL}[name]
			// Decode what can be decoded around the markers, as a caller would.
			for _, part := range strings.Split(v, "[redacted]") {
				for cut := 0; cut < 4 && cut < len(part); cut++ {
					p := strings.TrimRight(part[cut:], "=")
					p = p[:len(p)/4*4]
					dec := make([]byte, len(p))
					n, _ := enc.WithPadding(base64.NoPadding).Decode(dec, []byte(p))
					if strings.Contains(string(dec[:n]), "CANARY") {
						t.Errorf("pad %q, %s base64: the token decodes from the response: %q", pad, name, dec[:n])
					}
				}
			}
		}
	}
}
