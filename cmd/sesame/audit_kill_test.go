package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/auth"
)

// TestKillNineLeavesNoChangeWithoutItsEvent runs the real binary, writes credentials from
// several clients at once, kills the server with SIGKILL in the middle, starts it again on
// the same data, and checks that every credential that exists has its credential.put
// event (PRODUCT.md §4.8).
func TestKillNineLeavesNoChangeWithoutItsEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sesame")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	admin := string(key.Reveal())
	data := filepath.Join(dir, "data")

	for round := range 2 {
		s, cmd := startBinary(t, bin, data, admin)
		var wg sync.WaitGroup
		var acked atomic.Int64
		stop := make(chan struct{})
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r, err := s.tryDo("PUT", fmt.Sprintf("/v1/workspaces/default/credentials/kill.%d.%d.%d", round, g, i), `{"type":"secret","fields":{"value":"v"}}`)
					if err != nil {
						return // the server is gone
					}
					if r.Status == 201 {
						acked.Add(1)
					}
				}
			})
		}
		for acked.Load() < 40 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no flush
			t.Fatal(err)
		}
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
	}
	s, cmd := startBinary(t, bin, data, admin)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if missing := credentialsWithoutEvents(t, s); len(missing) > 0 {
		t.Fatalf("%d credential(s) changed with no audit event after kill -9, e.g. %v", len(missing), missing[0])
	}
	if v := s.auditVerify(t); !v.OK {
		t.Fatalf("chain after kill -9: %+v", v)
	}
}

var listeningRE = regexp.MustCompile(`sesame listening.*addr=(http://[0-9.:]+)`)

// startBinary starts `sesame serve` as a process and waits until it listens.
func startBinary(t *testing.T, bin, data, admin string) (*testServer, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data)
	cmd.Env = append(os.Environ(), "SESAME_ADMIN_KEY="+admin)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
	}()
	select {
	case a := <-addr:
		return &testServer{t: t, URL: strings.TrimSpace(a), AdminKey: admin, stopped: true}, cmd
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the server did not start")
	}
	return nil, nil
}

// tryDo is do for other goroutines: it returns transport errors instead of failing.
func (s *testServer) tryDo(method, path, body string) (response, error) {
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}
