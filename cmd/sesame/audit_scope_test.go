package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestAuditReadsPerWorkspace: read_audit in one workspace shows that workspace's events
// and nothing else: not another workspace's, not server-wide ones (users, keys, grants on
// all workspaces), whatever the filter or format. Verifying the chain and checkpoints stay
// for readers on all workspaces.
func TestAuditReadsPerWorkspace(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			s := destinationServer(t, store)
			for _, ws := range []string{"a", "b"} {
				mustStatus(t, s.do("POST", "/v1/workspaces", `{"name":"`+ws+`"}`), 201)
				mustStatus(t, s.do("PUT", "/v1/workspaces/"+ws+"/credentials/k", `{"type":"secret","fields":{"value":"v-`+ws+`"}}`), 201)
			}
			u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"aud"}`), 201))
			mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"auditor","user":%q,"workspace":"a"}`, u.ID)), 201)
			key := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{"name":"k"}`), 201)).Key

			type page struct {
				Items []struct {
					Workspace, Action string
				} `json:"items"`
			}
			onlyA := func(what string, items []struct{ Workspace, Action string }) {
				t.Helper()
				sawPut := false
				for _, e := range items {
					if e.Workspace != "a" {
						t.Errorf("%s: a reader of workspace a sees %s in workspace %q", what, e.Action, e.Workspace)
					}
					sawPut = sawPut || e.Action == "credential.put"
				}
				if !sawPut {
					t.Errorf("%s: the reader does not see workspace a's credential.put: %+v", what, items)
				}
			}
			for _, q := range []string{"", "?workspace=a", "?action=credential.*", "?order=desc&limit=1000", "?limit=1"} {
				p := decode[page](t, mustStatus(t, s.as(key, "GET", "/v1/audit"+q, ""), 200))
				if q == "?limit=1" {
					if len(p.Items) != 1 || p.Items[0].Workspace != "a" {
						t.Errorf("%s: %+v", q, p.Items)
					}
					continue
				}
				onlyA("GET /v1/audit"+q, p.Items)
			}
			// Another workspace by name: refused, the same whether or not it exists.
			for _, ws := range []string{"b", "nope"} {
				r := s.as(key, "GET", "/v1/audit?workspace="+ws, "")
				if r.Status != 403 || !strings.Contains(string(r.Body), "missing_privilege") {
					t.Errorf("?workspace=%s: %d %s", ws, r.Status, r.Body)
				}
			}
			// The JSON-lines export too.
			r := mustStatus(t, s.as(key, "GET", "/v1/audit?format=jsonl", ""), 200)
			var lines []struct{ Workspace, Action string }
			sc := bufio.NewScanner(bytes.NewReader(r.Body))
			for sc.Scan() {
				var e struct{ Workspace, Action string }
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, e)
			}
			onlyA("export", lines)
			// And the CLI.
			code, out, errOut := run2(s, key, "audit", "list", "--json", "--limit", "1000")
			if code != 0 || strings.Contains(out, `"workspace": "b"`) || !strings.Contains(out, `"workspace": "a"`) {
				t.Errorf("sesame audit list as the reader of a: %d %s %s", code, out, errOut)
			}
			// The whole chain is for readers on all workspaces.
			for _, path := range []string{"POST /v1/audit/verify", "GET /v1/audit/checkpoint"} {
				m, p, _ := strings.Cut(path, " ")
				if r := s.as(key, m, p, ""); r.Status != 403 {
					t.Errorf("%s as the reader of a: %d %s", path, r.Status, r.Body)
				}
			}
			// Without read_audit anywhere: refused.
			dev := newDeveloper(t, s, "dev", "a")
			if r := s.as(dev, "GET", "/v1/audit", ""); r.Status != 403 {
				t.Errorf("a developer reads the audit trail: %d %s", r.Status, r.Body)
			}
			// An admin sees every workspace and server-wide events.
			p := decode[page](t, mustStatus(t, s.do("GET", "/v1/audit?limit=1000", ""), 200))
			seen := map[string]bool{}
			for _, e := range p.Items {
				seen[e.Workspace] = true
			}
			if !seen["a"] || !seen["b"] || !seen[""] {
				t.Errorf("the admin sees workspaces %v", seen)
			}
		})
	}
}
