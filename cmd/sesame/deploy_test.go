package main

import (
	"bufio"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The Dockerfile's build command, run here, makes a static binary that works; the image
// is distroless, runs as a non-root user and keeps its data in a volume. (No Docker daemon
// is needed for this.)
func TestDockerfileBuildCommand(t *testing.T) {
	df := readRepoFile(t, "Dockerfile")
	for _, want := range []string{"FROM gcr.io/distroless/static", "USER 65532:65532", `VOLUME ["/var/lib/sesame"]`, "EXPOSE 8420", "SESAME_DATA=/var/lib/sesame"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(df, "\nHEALTHCHECK") {
		t.Error("distroless has no shell to run a HEALTHCHECK")
	}
	var build string
	sc := bufio.NewScanner(strings.NewReader(df))
	for sc.Scan() {
		if cmd, ok := strings.CutPrefix(sc.Text(), "RUN "); ok && strings.Contains(cmd, "go build") {
			build = cmd
		}
	}
	if !strings.HasPrefix(build, "CGO_ENABLED=0 go build") || !strings.Contains(build, "-o /out/sesame ./cmd/sesame") {
		t.Fatalf("Dockerfile build command: %q", build)
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "sesame")
	cmd := exec.Command("sh", "-c", strings.Replace(build, "-o /out/sesame", "-o "+bin, 1))
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked (it has an interpreter); distroless/static cannot run it")
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "sesame ") {
		t.Fatalf("%s version: %v %q", bin, err, out)
	}
}

// The systemd unit carries the hardening options, and systemd-analyze accepts it when
// it is installed here.
func TestSystemdUnit(t *testing.T) {
	unit := readRepoFile(t, "deploy/sesame.service")
	directives := map[string]bool{}
	for _, line := range strings.Split(unit, "\n") {
		directives[strings.TrimSpace(line)] = true
	}
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
		"PrivateTmp=yes", "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service", "StateDirectory=sesame", "LoadCredential=master-key:/etc/sesame/master.key",
		"Environment=SESAME_MASTER_KEY_FILE=%d/master-key", "UMask=0077"} {
		if !directives[want] {
			t.Errorf("deploy/sesame.service lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sesame.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/sesame", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The example config file is valid.
func TestExampleConfigFile(t *testing.T) {
	c, err := parseServeFlags([]string{"--config", filepath.Join("..", "..", "deploy", "sesame.yaml")}, envFunc(nil), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "0.0.0.0:8420" || c.logFormat != "json" {
		t.Fatalf("example config: %+v", c)
	}
}
