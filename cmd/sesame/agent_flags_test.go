package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentConfigPrecedence: flags override the environment, which overrides the config
// file; an agent without an allowlist, token or server refuses to start.
func TestAgentConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.conf")
	os.WriteFile(file, []byte("# plant 1\nserver https://file.example\ntoken sesame_agent_file\nallow 10.0.0.0/8\nallow erp.corp:443\nkeepalive = 7s\n"), 0o600)
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("sesame_agent_tokenfile\n"), 0o600)

	env := map[string]string{"SESAME_AGENT_CONFIG": file}
	cfg, err := parseAgentFlags(nil, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Servers, " ") != "https://file.example" || string(cfg.Token.Reveal()) != "sesame_agent_file" ||
		cfg.Allow.String() != "erp.corp:443,10.0.0.0/8" || cfg.KeepAlive != 7*time.Second {
		t.Fatalf("from the file: %v %s %v", cfg.Servers, cfg.Allow, cfg.KeepAlive)
	}

	env["SESAME_AGENT_SERVER"] = "https://a.example, https://b.example"
	env["SESAME_AGENT_TOKEN"] = "sesame_agent_env"
	env["SESAME_AGENT_ALLOW"] = "192.168.1.0/24"
	cfg, err = parseAgentFlags(nil, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Servers, " ") != "https://a.example https://b.example" || string(cfg.Token.Reveal()) != "sesame_agent_env" || cfg.Allow.String() != "192.168.1.0/24" {
		t.Fatalf("from the environment: %v %s", cfg.Servers, cfg.Allow)
	}

	cfg, err = parseAgentFlags([]string{"--server", "http://flag.example", "--token-file", tokFile, "--allow", "127.0.0.1:9000", "--allow", "10.1.0.0/16"}, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Servers, " ") != "http://flag.example" || string(cfg.Token.Reveal()) != "sesame_agent_tokenfile" || cfg.Allow.String() != "127.0.0.1:9000,10.1.0.0/16" {
		t.Fatalf("from flags: %v %s", cfg.Servers, cfg.Allow)
	}

	for name, args := range map[string][]string{
		"no allowlist": {"--server", "http://x", "--token", "sesame_agent_x"},
		"no token":     {"--server", "http://x", "--allow", "10.0.0.0/8"},
		"no server":    {"--token", "sesame_agent_x", "--allow", "10.0.0.0/8"},
		"bad rule":     {"--server", "http://x", "--token", "sesame_agent_x", "--allow", "erp.corp"},
		"bad server":   {"--server", "ftp://x", "--token", "sesame_agent_x", "--allow", "10.0.0.0/8"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := runAgent(ctx, args, envFunc(nil), io.Discard, io.Discard)
		cancel()
		if err == nil {
			t.Errorf("%s: the agent started", name)
		}
	}
}
