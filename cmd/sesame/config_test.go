package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sesame.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Precedence: flag > environment > file > default, for every kind of flag.
func TestConfigFilePrecedence(t *testing.T) {
	path := writeConfig(t, `# serve settings
addr: 10.0.0.1:9000
log-level: debug
heartbeat: 7s
max-anonymous-requests: 9
metrics-anonymous: false
oauth-return-urls: [https://a.example/done, https://b.example/]
audit-spill-dir: /var/spill
`)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want func(c serveConfig) string
	}{
		{"file over default", []string{"--config", path}, nil, func(c serveConfig) string {
			if c.addr != "10.0.0.1:9000" || c.logLevel != "debug" || c.heartbeat != 7*time.Second || c.limits.maxAnonymous != 9 ||
				c.metricsAnon || c.oauth.returnURLs != "https://a.example/done,https://b.example/" || c.audit.spillDir != "/var/spill" {
				return "file values not applied"
			}
			if c.logFormat != "text" {
				return "default lost"
			}
			return ""
		}},
		{"SESAME_CONFIG names the file", nil, map[string]string{"SESAME_CONFIG": path}, func(c serveConfig) string {
			if c.addr != "10.0.0.1:9000" {
				return "SESAME_CONFIG ignored"
			}
			return ""
		}},
		{"environment over file", []string{"--config", path}, map[string]string{"SESAME_ADDR": "10.0.0.2:9000", "SESAME_HEARTBEAT": "3s", "SESAME_METRICS_ANONYMOUS": "true"}, func(c serveConfig) string {
			if c.addr != "10.0.0.2:9000" || c.heartbeat != 3*time.Second || !c.metricsAnon || c.logLevel != "debug" {
				return "environment did not win over the file"
			}
			return ""
		}},
		{"flag over environment and file", []string{"--config", path, "--addr", "10.0.0.3:9000", "--heartbeat", "2s", "--max-anonymous-requests", "4"},
			map[string]string{"SESAME_ADDR": "10.0.0.2:9000"}, func(c serveConfig) string {
				if c.addr != "10.0.0.3:9000" || c.heartbeat != 2*time.Second || c.limits.maxAnonymous != 4 || c.logLevel != "debug" {
					return "flag did not win"
				}
				return ""
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServeFlags(tc.args, envFunc(tc.env), io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.want(c); msg != "" {
				t.Fatalf("%s: %+v", msg, c)
			}
		})
	}
}

// Bad files are refused with the key and the line, and nothing starts.
func TestConfigFileErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"unknown key", "addr: 127.0.0.1:1\n\nlisten: 0.0.0.0:80\n", []string{"line 3", `unknown key "listen"`}},
		{"snake case", "log_level: debug\n", []string{"line 1", `"log_level"`, `"log-level"`}},
		{"typo", "postgress: postgres://x\n", []string{"line 1", `did you mean "postgres"`}},
		{"master key in plaintext", "addr: x:1\nmaster-key: c2VjcmV0\n", []string{"line 2", "master-key-file", "may not hold the master key"}},
		{"bad duration", "heartbeat: often\n", []string{"line 1", "heartbeat", "not a valid value"}},
		{"bad bool", "metrics-anonymous: maybe\n", []string{"line 1", "metrics-anonymous"}},
		{"repeated key", "addr: a:1\nlog-level: info\naddr: b:2\n", []string{"line 3", `"addr" repeats line 1`}},
		{"no value", "addr:\n", []string{"line 1", "addr", "no value"}},
		{"nested", "addr:\n  host: x\n", []string{"line 1", "plain value"}},
		{"not a mapping", "- addr\n", []string{"line 1", "mapping"}},
		{"another config", "config: other.yaml\n", []string{"line 1", "cannot name another"}},
		{"not YAML", "addr: [\n", []string{"sesame.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.text)
			_, err := parseServeFlags([]string{"--config", path}, envFunc(nil), io.Discard, io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error repeats the key's value: %v", err)
			}
		})
	}
	if _, err := parseServeFlags([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, envFunc(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

// Every serve flag can be set from the file and from its environment variable, named
// SESAME_ and the flag in upper snake case (the usage says which).
func TestEveryServeFlagHasAnEnvironmentVariable(t *testing.T) {
	var names []string
	_, _ = parseServeFlags([]string{"-h"}, envFunc(nil), &flagLister{names: &names}, io.Discard)
	if len(names) < 20 {
		t.Fatalf("found only %d flags in the usage", len(names))
	}
	for _, n := range names {
		if !strings.Contains(usageOf(t, n), envName(n)) {
			t.Errorf("flag --%s: usage does not name %s", n, envName(n))
		}
	}
}

// flagLister collects flag names from the usage text that -h prints.
type flagLister struct {
	names *[]string
	text  strings.Builder
}

func (f *flagLister) Write(b []byte) (int, error) {
	f.text.Write(b)
	*f.names = (*f.names)[:0]
	for _, line := range strings.Split(f.text.String(), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && strings.HasPrefix(line, "  -") {
			name, _, _ = strings.Cut(name, " ")
			*f.names = append(*f.names, name)
		}
	}
	return len(b), nil
}

// usageOf returns the usage text of one serve flag.
func usageOf(t *testing.T, name string) string {
	t.Helper()
	var out strings.Builder
	_, _ = parseServeFlags([]string{"-h"}, envFunc(nil), &out, io.Discard)
	lines := strings.Split(out.String(), "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "  -"+name+" ") || line == "  -"+name {
			text := line
			for _, more := range lines[i+1:] {
				if strings.HasPrefix(more, "  -") {
					break
				}
				text += more
			}
			return text
		}
	}
	t.Fatalf("no usage for --%s", name)
	return ""
}

// A server started from a config file runs with its settings.
func TestServeFromConfigFile(t *testing.T) {
	data := t.TempDir()
	path := writeConfig(t, "data: "+data+"\nlog-format: json\n")
	s := startServer(t, nil, "--config", path)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	if !strings.Contains(s.Stderr.String(), `"msg":"sesame listening"`) {
		t.Fatalf("log is not JSON:\n%s", s.Stderr.String())
	}
	if _, err := os.Stat(filepath.Join(data, "sesame.db")); err != nil {
		t.Fatalf("the store is not in the configured data folder: %v", err)
	}
	bad := startServer(t, nil, "--config", writeConfig(t, "data: "+t.TempDir()+"\nadress: 127.0.0.1:1\n"))
	if !bad.stopped || bad.code != 1 || !strings.Contains(bad.Stderr.String(), `line 2: unknown key "adress"`) {
		t.Fatalf("unknown key: stopped %v code %d stderr %s", bad.stopped, bad.code, bad.Stderr.String())
	}
}
