package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/sesamehq/sesame/internal/cli"
)

// runWith runs the program with an environment and no server.
func runWith(env map[string]string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, envFunc(env), strings.NewReader(""), &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

// TestHelpNeverPrintsTheAPIKey asks every client command for help with a key in the
// environment: help exits 0 on standard output, and the key is never shown.
func TestHelpNeverPrintsTheAPIKey(t *testing.T) {
	const key = "sesame_TOPSECRETkeyTOPSECRETkeyTOPSECRE000000"
	env := map[string]string{"SESAME_KEY": key, "SESAME_SERVER": "http://127.0.0.1:1"}
	for _, g := range cli.Commands() {
		usage, _ := cli.Usage(g)
		for _, args := range [][]string{{g, "--help"}, {g, "-h"}, {"help", g}} {
			code, out, errOut := runWith(env, args...)
			if code != 0 || !strings.Contains(out, "usage") || errOut != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
		for _, sub := range subcommandsOf(t, g, usage) {
			for _, h := range []string{"--help", "-h"} {
				args := []string{g, sub, h}
				code, out, errOut := runWith(env, args...)
				if code != 0 || errOut != "" {
					t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
				}
				if strings.Contains(out+errOut, key) || strings.Contains(out+errOut, "TOPSECRET") {
					t.Errorf("%v printed the API key:\n%s", args, out)
				}
				if !strings.Contains(out, "-json") {
					t.Errorf("%v: help lists no flags:\n%s", args, out)
				}
				local := g == "app" && (sub == "keygen" || sub == "sign") || g == "keys" && sub == "generate"
				if !local && !strings.Contains(out, "(default: from SESAME_KEY)") {
					t.Errorf("%v: help does not say where the key comes from:\n%s", args, out)
				}
			}
		}
	}
}

// subcommandsOf finds a group's subcommands by asking for an unknown one: every name the
// usage text shows must be accepted.
func subcommandsOf(t *testing.T, g, usage string) []string {
	t.Helper()
	var subs []string
	for _, line := range strings.Split(usage, "\n") {
		f := strings.Fields(strings.ReplaceAll(strings.ReplaceAll(line, "|", " "), ":", " "))
		for i := 0; i+2 < len(f); i++ {
			if f[i] == "sesame" && f[i+1] == g && !strings.HasPrefix(f[i+2], "-") && !strings.HasPrefix(f[i+2], "[") {
				subs = append(subs, f[i+2])
			}
		}
	}
	if g == "ws" { // "usage: sesame ws list | get NAME | ..."
		subs = append(subs, "get", "create", "copy", "rm")
	}
	if len(subs) == 0 {
		t.Fatalf("no subcommands found in the usage of %s:\n%s", g, usage)
	}
	return subs
}

func TestExitCodes(t *testing.T) {
	env := map[string]string{}
	cases := []struct {
		args       []string
		code       int
		stdout     string // substring
		stderr     string // substring
		notStderr  string
		emptyStder bool
	}{
		{args: []string{"help"}, code: 0, stdout: "sesame serve"},
		{args: []string{"--help"}, code: 0, stdout: "sesame serve"},
		{args: nil, code: 2, stderr: "Usage"},
		{args: []string{"serve", "--help"}, code: 0, stdout: "-addr", emptyStder: true},
		{args: []string{"serve", "-h"}, code: 0, stdout: "SESAME_ADDR", emptyStder: true},
		{args: []string{"help", "serve"}, code: 0, stdout: "-addr", emptyStder: true},
		{args: []string{"serve", "--bogus"}, code: 2, stderr: "-bogus", notStderr: "help requested"},
		{args: []string{"serve", "--heartbeat", "0s"}, code: 2, stderr: "--heartbeat"},
		{args: []string{"serve", "extra"}, code: 2, stderr: "unexpected argument"},
		{args: []string{"cred", "lst"}, code: 2, stderr: `unknown command "sesame cred lst"; did you mean "sesame cred list"?`},
		{args: []string{"crd", "list"}, code: 2, stderr: `unknown command "sesame crd"; did you mean "sesame cred"?`},
		{args: []string{"audit", "verfy"}, code: 2, stderr: `did you mean "sesame audit verify"?`},
		{args: []string{"key", "revoke-al"}, code: 2, stderr: `did you mean "sesame key revoke-all"?`},
		{args: []string{"zzzzzz"}, code: 2, stderr: `unknown command "sesame zzzzzz"`, notStderr: "did you mean"},
		{args: []string{"cred"}, code: 2, stderr: "sesame cred list"},
		{args: []string{"cred", "list", "--bogus"}, code: 2, stderr: "-bogus"},
		{args: []string{"cred", "get"}, code: 2, stderr: "usage"},
		{args: []string{"cred", "list"}, code: 2, stderr: "no API key"},
		{args: []string{"keys", "generate"}, code: 0},
	}
	for _, c := range cases {
		code, out, errOut := runWith(env, c.args...)
		if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errOut, c.stderr) ||
			(c.notStderr != "" && strings.Contains(errOut, c.notStderr)) || (c.emptyStder && errOut != "") {
			t.Errorf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s", c.args, code, c.code, out, errOut)
		}
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestClientExplainsAnUnreachableServer(t *testing.T) {
	const key = "sesame_TOPSECRETkeyTOPSECRETkeyTOPSECRE000000"
	addr := freeAddr(t)
	for _, args := range [][]string{{"cred", "list"}, {"audit", "export"}} {
		code, _, errOut := runWith(map[string]string{"SESAME_KEY": key, "SESAME_SERVER": "http://" + addr}, args...)
		if code != 1 || !strings.Contains(errOut, "no Sesame server answers at http://"+addr) ||
			!strings.Contains(errOut, "sesame serve") || strings.Contains(errOut, "dial tcp") {
			t.Errorf("%v, connection refused: exit %d: %s", args, code, errOut)
		}
	}
	for _, server := range []string{"127.0.0.1:8420", "localhost:8420", "sesame.example.com", "ftp://x"} {
		code, _, errOut := runWith(map[string]string{"SESAME_KEY": key, "SESAME_SERVER": server}, "cred", "list")
		if code != 2 || !strings.Contains(errOut, `SESAME_SERVER="`+server+`" is not a server URL`) || !strings.Contains(errOut, "http://") {
			t.Errorf("SESAME_SERVER=%s: exit %d: %s", server, code, errOut)
		}
		code, _, errOut = runWith(map[string]string{"SESAME_KEY": key}, "cred", "list", "--server", server)
		if code != 2 || !strings.Contains(errOut, `--server="`+server+`" is not a server URL`) {
			t.Errorf("--server %s: exit %d: %s", server, code, errOut)
		}
	}
}

// TestServeOnATakenAddress: the error names --addr, and the admin key is neither printed
// nor used up: the next start on a free address prints it.
func TestServeOnATakenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := t.TempDir()
	code, out, errOut := runWith(nil, "serve", "--data", data, "--addr", ln.Addr().String())
	if code != 1 || !strings.Contains(errOut, "already in use") || !strings.Contains(errOut, "--addr") {
		t.Fatalf("taken address: exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "admin key") {
		t.Fatalf("the admin key was printed before the listener was bound: %s", out)
	}
	s := startServer(t, nil, "--data", data)
	if s.stopped || s.AdminKey == "" {
		t.Fatalf("the next start did not create and print the admin key: %s", s.Stderr.String())
	}
}
