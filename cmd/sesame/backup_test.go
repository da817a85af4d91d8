package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

// storeKind makes a new, empty store location for serve, backup and restore.
type storeKind struct {
	name string
	new  func(t *testing.T) []string
}

var (
	sqliteStore   = storeKind{"sqlite", func(t *testing.T) []string { return []string{"--data", t.TempDir() + "/data"} }}
	postgresStore = storeKind{"postgres", func(t *testing.T) []string { return []string{"--postgres", testpg.URL(t), "--data", t.TempDir()} }}
)

// sesameCmd runs a sesame command in this process and returns its exit code and output.
func sesameCmd(env map[string]string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, envFunc(env), strings.NewReader(""), &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

func keyEnv(t *testing.T) map[string]string {
	t.Helper()
	k, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"SESAME_MASTER_KEY": k.Encode()}
}

// writeLoad puts credentials (each with its own secret) from several goroutines until
// stop closes, and records every write the server acknowledged, in order.
type writeLoad struct {
	mu    sync.Mutex
	acked []string
	stop  chan struct{}
	done  sync.WaitGroup
	fails []string
}

func startWriteLoad(s *testServer, writers int) *writeLoad {
	l := &writeLoad{stop: make(chan struct{})}
	client := &http.Client{Timeout: 30 * time.Second}
	for g := range writers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				key := fmt.Sprintf("load.w%d-%d", g, i)
				body := fmt.Sprintf(`{"type":"api_key","fields":{"value":"secret-%s","name":"X-Load"}}`, key)
				req, _ := http.NewRequest("PUT", s.URL+"/v1/workspaces/default/credentials/"+key, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.AdminKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					l.mu.Lock()
					l.fails = append(l.fails, err.Error())
					l.mu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				l.mu.Lock()
				if resp.StatusCode == 201 {
					l.acked = append(l.acked, key)
				} else {
					l.fails = append(l.fails, resp.Status)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *writeLoad) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

func (l *writeLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// testBackupUnderLoad takes a backup of a server's store while writers keep writing, restores
// it into a new store of kind to, and checks that every write acknowledged before the
// backup began is there, with its secret usable, the admin key valid and the audit chain
// intact.
func testBackupUnderLoad(t *testing.T, from, to storeKind) {
	env := keyEnv(t)
	srcArgs := from.new(t)
	src := startServer(t, env, srcArgs...)
	if src.stopped {
		t.Fatalf("server did not start: %s", src.Stderr.String())
	}
	load := startWriteLoad(src, 3)
	for load.count() < 30 {
		time.Sleep(10 * time.Millisecond)
	}
	before := load.snapshot()
	file := filepath.Join(t.TempDir(), "sesame.backup")
	code, out, errOut := sesameCmd(env, append(append([]string{"backup"}, srcArgs...), file)...)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s %s", code, out, errOut)
	}
	during := load.count() - len(before)
	close(load.stop)
	load.done.Wait()
	t.Logf("%s; %d writes acknowledged before the backup, %d while it ran", strings.TrimSpace(out), len(before), during)
	if len(load.fails) > 0 {
		t.Fatalf("writes failed under backup: %v", load.fails[:min(5, len(load.fails))])
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if plain := gunzipFile(t, file); !bytes.Contains(plain, []byte(before[0])) || bytes.Contains(plain, []byte("secret-load")) {
		t.Fatal("the backup lacks a credential's name, or holds a secret in plaintext")
	}
	src.Stop()

	dstArgs := to.new(t)
	code, out, errOut = sesameCmd(env, append(append([]string{"restore"}, dstArgs...), file)...)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
	}
	dst := startServer(t, env, dstArgs...)
	if dst.stopped {
		t.Fatalf("restored server did not start: %s", dst.Stderr.String())
	}
	dst.AdminKey = src.AdminKey // the admin user and its key come back with the store
	var missing []string
	for _, key := range before {
		if r := dst.do("GET", "/v1/workspaces/default/credentials/"+key, ""); r.Status != 200 {
			missing = append(missing, fmt.Sprintf("%s (%d)", key, r.Status))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged writes are missing after restore, e.g. %v", len(missing), len(before), missing[:min(5, len(missing))])
	}
	// The sealed secrets open under the same master key: inject one.
	up := newUpstream(t)
	key := before[len(before)/2]
	mustStatus(t, dst.do("PUT", "/v1/workspaces/default/connections/up?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true}`, up.URL, key)), 201)
	mustStatus(t, dst.do("GET", "/v1/workspaces/default/proxy/up/x", ""), 200)
	if got := up.last(t).Header.Get("X-Load"); got != "secret-"+key {
		t.Fatalf("the restored secret of %s injects %q", key, got)
	}
	if v := dst.do("POST", "/v1/audit/verify", "").json(t); v["ok"] != true {
		t.Fatalf("audit chain after restore: %v", v)
	}
}

func TestBackupUnderWriteLoadRestoresEveryAcknowledgedWrite(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testBackupUnderLoad(t, sqliteStore, sqliteStore) })
	t.Run("postgres", func(t *testing.T) { testBackupUnderLoad(t, postgresStore, postgresStore) })
	t.Run("sqlite to postgres", func(t *testing.T) { testBackupUnderLoad(t, sqliteStore, postgresStore) })
	t.Run("postgres to sqlite", func(t *testing.T) { testBackupUnderLoad(t, postgresStore, sqliteStore) })
}

func gunzipFile(t *testing.T, file string) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// hideKeys rewrites a backup's header to claim that nothing in it is sealed.
func hideKeys(t *testing.T, file string) string {
	t.Helper()
	first, rest, _ := bytes.Cut(gunzipFile(t, file), []byte("\n"))
	var h map[string]any
	if err := json.Unmarshal(first, &h); err != nil {
		t.Fatal(err)
	}
	delete(h, "keycheck")
	h["master_key_ids"] = []string{}
	first, _ = json.Marshal(h)
	out := filepath.Join(t.TempDir(), "lying.backup")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(append(append(first, '\n'), rest...))
	zw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// A restore refuses, and changes nothing, without the master key that opens the backup,
// with another key, into a store that is not empty, and from a damaged file.
func TestRestoreRefusals(t *testing.T) {
	for _, kind := range []storeKind{sqliteStore, postgresStore} {
		t.Run(kind.name, func(t *testing.T) {
			env := keyEnv(t)
			srcArgs := kind.new(t)
			src := startServer(t, env, srcArgs...)
			mustStatus(t, src.do("PUT", "/v1/workspaces/default/credentials/a.key", `{"type":"secret","fields":{"value":"CANARY-restore"}}`), 201)
			src.Stop()
			file := filepath.Join(t.TempDir(), "b.backup")
			if code, out, errOut := sesameCmd(nil, append(append([]string{"backup"}, srcArgs...), file)...); code != 0 {
				t.Fatalf("backup (needs no key): exit %d: %s %s", code, out, errOut)
			}
			if code, _, errOut := sesameCmd(nil, append(append([]string{"backup"}, srcArgs...), file)...); code != 1 || !strings.Contains(errOut, "exists") {
				t.Fatalf("backup over an existing file: exit %d: %s", code, errOut)
			}

			other := keyEnv(t)
			truncated := filepath.Join(t.TempDir(), "cut.backup")
			raw, _ := os.ReadFile(file)
			if err := os.WriteFile(truncated, raw[:len(raw)*2/3], 0o600); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name string
				env  map[string]string
				args []string
				file string
				want string
			}{
				{"no master key", nil, kind.new(t), file, "give the key with --master-key-file or SESAME_MASTER_KEY"},
				{"another master key", other, kind.new(t), file, "cannot open this backup"},
				{"store not empty", env, srcArgs, file, "not empty"},
				{"truncated file", env, kind.new(t), truncated, "truncated"},
				{"header hides the keys", nil, kind.new(t), hideKeys(t, file), "give the key with --master-key-file or SESAME_MASTER_KEY"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					code, out, errOut := sesameCmd(tc.env, append(append([]string{"restore"}, tc.args...), tc.file)...)
					if code != 1 || !strings.Contains(errOut, tc.want) {
						t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, tc.want)
					}
					if strings.Contains(errOut, "CANARY") {
						t.Fatal("the error shows a secret")
					}
					// Nothing changed: the target is still empty (a new data folder is not even
					// left behind), so a correct restore into it works.
					if tc.name != "store not empty" {
						if len(tc.args) == 2 {
							if _, err := os.Stat(tc.args[1]); !os.IsNotExist(err) {
								t.Fatalf("a refused restore left %s behind: %v", tc.args[1], err)
							}
						}
						if code, out, errOut := sesameCmd(env, append(append([]string{"restore"}, tc.args...), file)...); code != 0 {
							t.Fatalf("restore after the refusal: exit %d: %s %s", code, out, errOut)
						}
					}
				})
			}
			// The refused restore into the used store changed nothing there either.
			again := startServer(t, env, srcArgs...)
			again.AdminKey = src.AdminKey
			mustStatus(t, again.do("GET", "/v1/workspaces/default/credentials/a.key", ""), 200)
		})
	}
}

// Help exits 0, a wrong command line 2, and flags may come after FILE.
func TestBackupCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup", "-h"}, 0, "usage: sesame backup [flags] FILE"},
		{[]string{"restore", "--help"}, 0, "usage: sesame restore [flags] FILE"},
		{[]string{"backup"}, 2, "one file, got 0"},
		{[]string{"restore", "a", "b"}, 2, "one file, got 2"},
		{[]string{"backup", "--no-such-flag", "x"}, 2, "no-such-flag"},
		{[]string{"backup", filepath.Join(t.TempDir(), "x.backup"), "--data", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
	} {
		code, out, errOut := sesameCmd(nil, tc.args...)
		if tc.code == 0 {
			errOut = out // help goes to standard output
		}
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("sesame %v: exit %d, output %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
