package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func getWith(t *testing.T, url, header, value string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set(header, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// runOK runs a command that needs no server.
func runOK(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errOut, nil)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
	}
	return code, out.String(), errOut.String()
}

func TestCLIWorkspacesAndCredentials(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	steps := []struct {
		stdin string
		args  []string
		want  []string // substrings of stdout
		code  int
	}{
		{"", []string{"ws", "create", "acme"}, []string{"acme"}, 0},
		{"", []string{"ws", "list"}, []string{"NAME", "acme", "default"}, 0},
		{"", []string{"cred", "put", "-w", "acme", "weather.basicAuth", "--type", "basic", "username=bob", "password=hunter2"}, []string{"username", "bob", "(secret, set"}, 0},
		{"tok-from-stdin\n", []string{"cred", "put", "-w", "acme", "github.token", "--type", "bearer", "token=@-"}, []string{"Bearer"}, 0},
		{"", []string{"cred", "put", "-w", "acme", "jwt", "--type", "jwt_bearer", "alg=HS256", "secret=an-hmac-secret-of-32-bytes-at-least", `payload:={"iss":"me"}`}, []string{`{"iss":"me"}`}, 0},
		{"", []string{"cred", "list", "-w", "acme"}, []string{"KEY", "github.token", "weather.basicAuth", "ok"}, 0},
		{"", []string{"cred", "put", "-w", "acme", "weather.basicAuth", "--type", "basic", "username=bob2"}, nil, 1},
		{"", []string{"cred", "put", "-w", "acme", "weather.basicAuth", "--type", "basic", "username=bob2", "--keep", "password"}, []string{"bob2"}, 0},
		{"", []string{"ws", "copy", "acme", "acme-staging"}, []string{"acme-staging"}, 0},
		{"", []string{"cred", "list", "-w", "acme-staging"}, []string{"needs secret: password"}, 0},
		{"", []string{"cred", "get", "-w", "acme-staging", "weather.basicAuth"}, []string{"NEEDS A VALUE"}, 0},
		{"", []string{"ws", "rm", "acme-staging"}, nil, 1},
		{"", []string{"ws", "rm", "acme-staging", "--force"}, nil, 0},
		{"", []string{"cred", "rm", "-w", "acme", "jwt"}, nil, 0},
		{"", []string{"cred", "get", "-w", "acme", "jwt"}, nil, 1},
		{"", []string{"cred", "put", "x", "--type", "basic", "nonsense"}, nil, 2},
		{"", []string{"bogus"}, nil, 2},
	}
	for _, st := range steps {
		code, out, errOut := s.cli(st.stdin, st.args...)
		if code != st.code {
			t.Fatalf("%v: exit %d, want %d; stderr %s", st.args, code, st.code, errOut)
		}
		for _, w := range st.want {
			if !strings.Contains(out, w) {
				t.Fatalf("%v: stdout %q lacks %q", st.args, out, w)
			}
		}
		if strings.Contains(out+errOut, "hunter2") || strings.Contains(out+errOut, "tok-from-stdin") {
			t.Fatalf("%v: a secret was printed", st.args)
		}
	}

	code, out, _ := s.cli("", "cred", "get", "-w", "acme", "weather.basicAuth", "--json")
	var c struct {
		Type   string                    `json:"type"`
		Fields map[string]map[string]any `json:"-"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil || c.Type != "basic" {
		t.Fatalf("--json output: %s", out)
	}
	code, _, errOut := s.cli("", "cred", "get", "-w", "nope", "x")
	if code != 1 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("missing workspace: %d %s", code, errOut)
	}
}
