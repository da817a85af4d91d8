package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeTour is the README's five-minute tour as one bash script, and its first block (build
// and start) alone.
func readmeTour(t *testing.T) (script, first string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tour := string(readme)
	start, end := strings.Index(tour, "## Five-minute tour"), strings.Index(tour, "## Running it")
	if start < 0 || end < start {
		t.Fatal("README has no tour section")
	}
	var b strings.Builder
	b.WriteString("set -euo pipefail\n")
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(tour[start:end], -1)
	for _, m := range blocks {
		b.WriteString(m[1])
	}
	b.WriteString("wait\n")
	return b.String(), "set -euo pipefail\n" + blocks[0][1]
}

// TestREADMETour runs the README's five-minute tour exactly as written, with bash and curl,
// in a copy of the repository, twice in the same folder (a re-run must work), and checks
// what it prints; then checks that a taken port stops it loudly.
func TestREADMETour(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed for the README tour", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	script, first := readmeTour(t)

	// A copy of the tracked files, so the tour's build and data stay out of the work tree.
	dir := t.TempDir()
	files, err := exec.Command("git", "-C", "../..", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(files)) {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			continue // deleted in the work tree
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A free port of our own: 8420 may be taken on a shared machine.
	_, port, _ := net.SplitHostPort(freeAddr(t))
	bash := func(script string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SESAME_KEY=", "SESAME_SERVER=", "SESAME_MASTER_KEY=", "SESAME_ADMIN_KEY=", "SESAME_POSTGRES=", "SESAME_DATA=", "SESAME_ADDR=", "SESAME_PORT="+port)
		return cmd.CombinedOutput()
	}
	var adminKey []byte
	for run := 1; run <= 2; run++ {
		out, err := bash(script)
		if err != nil {
			t.Fatalf("run %d: tour failed: %v\n%s", run, err, out)
		}
		t.Logf("run %d: tour output:\n%s", run, out)
		for _, want := range []string{
			`"password":{"set":true`,
			`"code":"secret_required"`,
			`"username":"bob2"`,
			"needs secret: value",
			"master key rotated:",
			`"next_cursor"`, // the proxied, paginated list of workspaces
			`"acme",`,       // fn call: the jq transform's list of workspace names
			"in_use",        // deleting a credential that is in use
			"function list-workspaces saved",
			"missing_privilege", // bob may call functions but not read credentials
			"laptop",            // bob's key in the key list
			`{"status":200,"headers":{"Content-Type":"application/json"},"body":["acme"`, // the app token's call
			"credential.put",   // the audit list
			"events, head seq", // audit verify
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("run %d: tour output lacks %q:\n%s", run, want, out)
			}
		}
		log, err := os.ReadFile(filepath.Join(dir, "sesame.log"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), "sesame listening"); n != run {
			t.Errorf("run %d: sesame.log has %d starts:\n%s", run, n, log)
		}
		if n := strings.Count(string(log), "msg=stopped"); n != run {
			t.Errorf("run %d: sesame.log has %d clean stops:\n%s", run, n, log)
		}
		if strings.Contains(string(out), "level=INFO") {
			t.Errorf("run %d: server log lines reached the terminal:\n%s", run, out)
		}
		key, err := os.ReadFile(filepath.Join(dir, "sesame-admin.key"))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, "sesame-admin.key")); fi.Mode().Perm() != 0o600 {
			t.Errorf("sesame-admin.key has mode %v", fi.Mode().Perm())
		}
		if run == 2 && string(key) != string(adminKey) {
			t.Errorf("the second run replaced the saved admin key")
		}
		adminKey = key
		for _, secret := range []string{"hunter2", "ghp_example_token", "abc123", "staging-key", strings.TrimSpace(string(key))} {
			if strings.Contains(string(out), secret) || strings.Contains(string(log), secret) {
				t.Errorf("run %d: the tour printed or logged the secret %q", run, secret)
			}
		}
	}

	// Something else answers on the port: the first block says so and fails, and never
	// talks to that server.
	other := httptest.NewUnstartedServer(http.NotFoundHandler())
	other.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	other.Listener = ln
	other.Start()
	defer other.Close()
	out, err := bash(first)
	if err == nil || !strings.Contains(string(out), "port "+port+" is taken") {
		t.Fatalf("tour on a taken port: err %v\n%s", err, out)
	}
}
