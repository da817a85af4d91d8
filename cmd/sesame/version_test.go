package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersionReadsModuleVersionAndRevision(t *testing.T) {
	fake := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/sesamehq/sesame", Version: "v1.4.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "3f2a9c1b7d0e55aa00112233445566778899aabb"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	v := readBuildVersion(fake)
	if got, want := v.Short(), "v1.4.0 (3f2a9c1b7d0e, modified)"; got != want {
		t.Errorf("Short() = %q, want %q", got, want)
	}
	if got := v.String(); !strings.Contains(got, "sesame v1.4.0\n") || !strings.Contains(got, "commit 3f2a9c1b7d0e55aa00112233445566778899aabb (modified)") || !strings.Contains(got, "go1.26.8") {
		t.Errorf("String() = %q", got)
	}
	none := readBuildVersion(func() (*debug.BuildInfo, bool) { return nil, false })
	if none.Short() != "(unknown)" {
		t.Errorf("without build info Short() = %q", none.Short())
	}
}

func TestVersionCommandAndFlag(t *testing.T) {
	want := readBuildVersion(debug.ReadBuildInfo).String()
	for _, arg := range []string{"version", "--version"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{arg}, envFunc(nil), strings.NewReader(""), &out, &errOut, nil)
		if code != 0 || out.String() != want {
			t.Errorf("sesame %s: exit %d, stdout %q (want %q), stderr %q", arg, code, out.String(), want, errOut.String())
		}
	}
}

func TestHealthzAndStartLogShowVersion(t *testing.T) {
	srv := startServer(t, nil, "--data", t.TempDir())
	want := readBuildVersion(debug.ReadBuildInfo)
	resp := srv.do("GET", "/healthz", "")
	var body map[string]string
	if err := json.Unmarshal(resp.Body, &body); err != nil || resp.Status != 200 {
		t.Fatalf("healthz: %d %s", resp.Status, resp.Body)
	}
	if body["status"] != "ok" || body["version"] != want.Short() {
		t.Errorf("healthz = %v, want status ok and version %q", body, want.Short())
	}
	if log := srv.Stderr.String(); !strings.Contains(log, "msg=\"sesame starting\" version="+want.Version) {
		t.Errorf("start log does not name the version %q:\n%s", want.Version, log)
	}
}
