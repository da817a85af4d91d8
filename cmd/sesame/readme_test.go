package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMETour runs the README's five-minute tour exactly as written, with bash and curl,
// in a copy of the repository, and checks what it prints.
func TestREADMETour(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed for the README tour", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tour := string(readme)
	start, end := strings.Index(tour, "## Five-minute tour"), strings.Index(tour, "## Running it")
	if start < 0 || end < start {
		t.Fatal("README has no tour section")
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(tour[start:end], -1) {
		script.WriteString(m[1])
	}
	script.WriteString("wait\n")

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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SESAME_KEY=", "SESAME_SERVER=", "SESAME_MASTER_KEY=", "SESAME_ADMIN_KEY=", "SESAME_POSTGRES=", "SESAME_DATA=", "SESAME_ADDR=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tour failed: %v\n%s", err, out)
	}
	t.Logf("tour output:\n%s", out)
	for _, want := range []string{
		`"password":{"set":true`,
		`"code":"secret_required"`,
		`"username":"bob2"`,
		"needs secret: value",
		"master key rotated:",
		"sesame listening",
		"msg=stopped",
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
			t.Errorf("tour output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"hunter2", "ghp_example_token", "abc123", "staging-key"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the tour printed the secret %q", secret)
		}
	}
}
