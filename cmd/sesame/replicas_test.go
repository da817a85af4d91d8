package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/proctest"
	"github.com/sesamehq/sesame/internal/testpg"
)

// replica is one `sesame serve` subprocess on the shared PostgreSQL store, with its own
// key file.
type replica struct {
	name    string
	keyFile string
	*proctest.Server
}

// cluster is three replicas, an admin key, and an upstream that records the
// Authorization header each proxied call brought.
type cluster struct {
	t        *testing.T
	admin    string
	replicas []*replica
	mu       sync.Mutex
	seen     map[string]string // upstream path -> Authorization
	up       *httptest.Server
}

// newCluster starts one replica per name, each with a key file holding firstKey. With
// named set each gets --replica-id NAME and a 200ms heartbeat; otherwise the defaults.
func newCluster(t *testing.T, firstKey *crypt.MasterKey, named bool, names ...string) *cluster {
	t.Helper()
	pg := testpg.URL(t)
	admin, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, admin: string(admin.Reveal()), seen: map[string]string{}}
	c.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.seen[r.URL.Path] = r.Header.Get("Authorization")
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(c.up.Close)
	dir := t.TempDir()
	for _, name := range names {
		r := &replica{name: name, keyFile: filepath.Join(dir, name+".key")}
		writeKeys(t, r.keyFile, firstKey)
		args := []string{"--postgres", pg, "--master-key-file", r.keyFile, "--data", filepath.Join(dir, name)}
		if named {
			args = append(args, "--replica-id", name, "--heartbeat", "200ms")
		}
		r.Server = proctest.Start(t, proctest.Options{
			Args: args,
			Env:  map[string]string{"SESAME_ADMIN_KEY": c.admin},
		})
		// SIGCONT first, so that a test failing while a replica is stopped still ends it.
		t.Cleanup(func() { _ = syscall.Kill(r.PID(), syscall.SIGCONT) })
		c.replicas = append(c.replicas, r)
	}
	return c
}

func writeKeys(t *testing.T, path string, keys ...*crypt.MasterKey) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.Encode() + "\n")
	}
	if err := os.WriteFile(path+".tmp", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func genKey(t *testing.T) *crypt.MasterKey {
	t.Helper()
	k, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (c *cluster) call(r *replica, method, path, body string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.admin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusInternalServerError {
		c.t.Fatalf("%s %s on %s answered 500: %s", method, path, r.name, b)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// putCred stores a bearer credential and a connection that uses it, on replica r.
func (c *cluster) putCred(r *replica, name string) response {
	c.t.Helper()
	res := c.call(r, "PUT", "/v1/workspaces/default/credentials/"+name, fmt.Sprintf(`{"type":"bearer","fields":{"token":"tok-%s"}}`, name))
	if res.Status != 201 {
		return res
	}
	mustStatus(c.t, c.call(r, "PUT", "/v1/workspaces/default/connections/"+name+"?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true}`, c.up.URL, name)), 201)
	return res
}

// putConn adds the connection that putCred adds, for a credential written otherwise.
func (c *cluster) putConn(r *replica, name string) {
	c.t.Helper()
	mustStatus(c.t, c.call(r, "PUT", "/v1/workspaces/default/connections/"+name+"?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true}`, c.up.URL, name)), 201)
}

// writeUntil writes bearer credentials on the given replicas in turn until stop closes,
// and returns the names of those acknowledged with 201. A 503 (retryable) is allowed; any
// other answer is returned as "FAILED ...". It runs outside the test goroutine.
func (c *cluster) writeUntil(stop <-chan struct{}, rs ...*replica) []string {
	var acked []string
	for i := 0; ; i++ {
		select {
		case <-stop:
			return acked
		default:
		}
		r := rs[i%len(rs)]
		name := fmt.Sprintf("w%s%d", strings.ToLower(r.name), i)
		req, _ := http.NewRequest("PUT", r.URL+"/v1/workspaces/default/credentials/"+name,
			strings.NewReader(fmt.Sprintf(`{"type":"bearer","fields":{"token":"tok-%s"}}`, name)))
		req.Header.Set("Authorization", "Bearer "+c.admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return append(acked, "FAILED "+err.Error())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 201:
			acked = append(acked, name)
		case 503:
		default:
			return append(acked, fmt.Sprintf("FAILED write %s on %s: %d %s", name, r.name, resp.StatusCode, b))
		}
	}
}

// use calls the upstream through r with credential name; it returns the response and
// what the upstream received.
func (c *cluster) use(r *replica, name string) (response, string) {
	c.t.Helper()
	path := fmt.Sprintf("/%s/%s/%d", r.name, name, time.Now().UnixNano())
	res := c.call(r, "GET", "/v1/workspaces/default/proxy/"+name+path, "")
	c.mu.Lock()
	defer c.mu.Unlock()
	return res, c.seen[path]
}

// mustUse checks that every given replica injects every given credential.
func (c *cluster) mustUse(rs []*replica, names ...string) {
	c.t.Helper()
	for _, r := range rs {
		for _, name := range names {
			res, got := c.use(r, name)
			if res.Status != 200 || got != "Bearer tok-"+name {
				c.t.Fatalf("call with %s through %s: status %d, upstream got %q: %s", name, r.name, res.Status, got, res.Body)
			}
		}
	}
}

type keyStatus struct {
	Primary string `json:"primary"`
	Keys    []struct {
		ID    string `json:"key_id"`
		State string `json:"state"`
	} `json:"keys"`
	Replicas []struct {
		ID     string   `json:"id"`
		KeyIDs []string `json:"key_ids"`
		Live   bool     `json:"live"`
	} `json:"replicas"`
}

func (c *cluster) status(r *replica) keyStatus {
	c.t.Helper()
	res := mustStatus(c.t, c.call(r, "GET", "/v1/system/master-keys", ""), 200)
	var st keyStatus
	if err := json.Unmarshal(res.Body, &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

func (st keyStatus) state(id string) string {
	for _, k := range st.Keys {
		if k.ID == id {
			return k.State
		}
	}
	return ""
}

// holds reports whether replica name is live and holds key id, by the status.
func (st keyStatus) holds(name, id string) (live, holds bool) {
	for _, r := range st.Replicas {
		if r.ID == name {
			for _, k := range r.KeyIDs {
				holds = holds || k == id
			}
			return r.Live, holds
		}
	}
	return false, false
}

// eventually polls cond until it returns nil or 20 seconds pass.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) waitHolds(r *replica, id string, names ...string) {
	c.t.Helper()
	eventually(c.t, "replicas report the new key", func() error {
		st := c.status(r)
		for _, n := range names {
			if live, holds := st.holds(n, id); !live || !holds {
				return fmt.Errorf("replica %s: live %v, holds %s %v (%+v)", n, live, id, holds, st.Replicas)
			}
		}
		return nil
	})
}

// rotateCLI runs `sesame keys rotate` against r, with --new-key-file when keyFile is set.
func (c *cluster) rotateCLI(r *replica, keyFile string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"keys", "rotate"}
	if keyFile != "" {
		args = append(args, "--new-key-file", keyFile)
	}
	return proctest.Run(ctx, c.t, map[string]string{"SESAME_SERVER": r.URL, "SESAME_KEY": c.admin}, args...)
}

// TestRotationNeverStrandsAReplica is the reported failure: three replicas with the same
// key file, `sesame keys rotate` on one of them. Before, the others answered 500 on every
// call that needed a secret, and acknowledged writes sealed under the retired key. Now the
// rotation is refused, naming the replicas that lack the new key, and everything works.
func TestRotationNeverStrandsAReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	c := newCluster(t, genKey(t), false, "A", "B", "C")
	A, B, C := c.replicas[0], c.replicas[1], c.replicas[2]
	mustStatus(t, c.putCred(A, "a1"), 201)
	c.mustUse(c.replicas, "a1")

	out, err := c.rotateCLI(A, "") // A generates a key only it holds
	c.mustUse([]*replica{B, C}, "a1")
	mustStatus(t, c.putCred(B, "b1"), 201)
	c.mustUse(c.replicas, "a1", "b1")
	if err == nil || !strings.Contains(out, "rotation_refused") || !strings.Contains(out, B.Addr) || !strings.Contains(out, C.Addr) {
		t.Fatalf("rotation that strands B and C: err %v, output:\n%s", err, out)
	}
	for _, r := range c.replicas {
		r.Stop()
		r.Restart()
	}
	c.mustUse(c.replicas, "a1", "b1")
}

func wantCode(t *testing.T, res response, status int, code string) {
	t.Helper()
	var body struct{ Code, Message string }
	_ = json.Unmarshal(res.Body, &body)
	if res.Status != status || body.Code != code {
		t.Fatalf("status %d code %q, want %d %s: %s", res.Status, body.Code, status, code, res.Body)
	}
}

// TestMasterKeyRotationWithThreeReplicas runs three `sesame serve` processes on one
// PostgreSQL database through the documented procedure: add the new key to every
// replica's key file, rotate, retire the old key.
func TestMasterKeyRotationWithThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	k1, k2, k3 := genKey(t), genKey(t), genKey(t)
	c := newCluster(t, k1, true, "A", "B", "C")
	A, B, C := c.replicas[0], c.replicas[1], c.replicas[2]
	all := c.replicas
	dir := t.TempDir()
	k2File, k3File := filepath.Join(dir, "k2"), filepath.Join(dir, "k3")
	writeKeys(t, k2File, k2)
	writeKeys(t, k3File, k3)
	id1, id2, id3 := k1.ID().String(), k2.ID().String(), k3.ID().String()

	mustStatus(t, c.putCred(A, "a1"), 201)
	mustStatus(t, c.putCred(A, "a0"), 201) // never used on C before C loses track of the key
	c.mustUse(all, "a1")
	c.mustUse([]*replica{A, B}, "a0")

	// (a) A and B hold the new key, C does not: the rotation is refused, naming C, and
	// nothing changes.
	writeKeys(t, A.keyFile, k1, k2)
	writeKeys(t, B.keyFile, k1, k2)
	c.waitHolds(A, id2, "A", "B")
	out, err := c.rotateCLI(A, k2File)
	if err == nil || !strings.Contains(out, "rotation_refused") || !strings.Contains(out, "C (holds "+id1+")") {
		t.Fatalf("rotation while C lacks the key: err %v, output:\n%s", err, out)
	}
	res := c.call(A, "POST", "/v1/system/master-key/rotate", fmt.Sprintf(`{"new_key":%q}`, k2.Encode()))
	wantCode(t, res, 409, "rotation_refused")
	if !strings.Contains(string(res.Body), `"replicas":"C"`) || strings.Contains(string(res.Body), k2.Encode()) {
		t.Fatalf("refusal should name C and never show the key: %s", res.Body)
	}
	if st := c.status(B); st.Primary != id1 || st.state(id2) != "" {
		t.Fatalf("after a refused rotation the key ring changed: %+v", st)
	}
	c.mustUse(all, "a1")
	mustStatus(t, c.putCred(C, "c0"), 201)
	c.mustUse(all, "c0")

	// (c) C is cut off (SIGSTOP) long enough to count as gone, the rotation goes ahead
	// without it, and C comes back without the new key: it refuses, it does not guess.
	if err := syscall.Kill(C.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "C stops counting as live", func() error {
		if live, _ := c.status(A).holds("C", id1); live {
			return fmt.Errorf("C is still live")
		}
		return nil
	})
	out, err = c.rotateCLI(A, k2File)
	if err != nil || !strings.Contains(out, "-> "+id2) {
		t.Fatalf("rotation to k2: %v\n%s", err, out)
	}
	if err := syscall.Kill(C.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// A write on C is never acknowledged: C lacks the primary key.
	res = c.call(C, "PUT", "/v1/workspaces/default/credentials/c1", `{"type":"bearer","fields":{"token":"tok-c1"}}`)
	wantCode(t, res, 503, "master_key_unavailable")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if !strings.Contains(string(res.Body), id2) {
		t.Fatalf("the refusal should name the key: %s", res.Body)
	}
	mustStatus(t, c.call(A, "GET", "/v1/workspaces/default/credentials/c1", ""), 404)
	// Reads of values now sealed under k2 (re-wrapped, or written by B after the
	// rotation): 503, not 500. (A value C read just before may still be in its one-second
	// record cache; it is the same secret, sealed under a key C holds.)
	mustStatus(t, c.putCred(B, "b1"), 201)
	for _, name := range []string{"a0", "b1"} {
		res, got := c.use(C, name)
		wantCode(t, res, 503, "master_key_unavailable")
		if got != "" || res.Header.Get("Retry-After") == "" {
			t.Fatalf("upstream got %q; Retry-After %q", got, res.Header.Get("Retry-After"))
		}
	}
	wantCode(t, c.call(C, "GET", "/readyz", ""), 503, "master_key_unavailable")
	eventually(t, "C logs the missing key", func() error {
		for _, line := range strings.Split(C.Stderr.String(), "\n") {
			if strings.Contains(line, "master key unavailable") && strings.Contains(line, `"key_id":"`+id2+`"`) {
				return nil
			}
		}
		return fmt.Errorf("no log line names %s:\n%s", id2, C.Stderr.String())
	})
	// The others carry on.
	c.mustUse([]*replica{A, B}, "a0", "a1", "b1", "c0")
	if st := c.status(A); st.Primary != id2 || st.state(id1) != "retired" {
		t.Fatalf("after rotation: %+v", st)
	}
	// Adding the key to C's file (SIGHUP reloads at once) brings it back without a restart.
	writeKeys(t, C.keyFile, k1, k2)
	if err := syscall.Kill(C.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "C becomes ready", func() error {
		if r := c.call(C, "GET", "/readyz", ""); r.Status != 200 {
			return fmt.Errorf("readyz %d: %s", r.Status, r.Body)
		}
		return nil
	})
	mustStatus(t, c.putCred(C, "c1"), 201)
	c.mustUse(all, "a0", "a1", "b1", "c0", "c1")

	// (b, d) The documented procedure, a second rotation: add k3 everywhere, rotate on B,
	// retire the old keys from the files.
	for _, r := range all {
		writeKeys(t, r.keyFile, k1, k2, k3)
	}
	c.waitHolds(B, id3, "A", "B", "C")
	for i := range 250 { // more than one re-wrap batch, so the rotation takes a while
		mustStatus(t, c.call(A, "PUT", fmt.Sprintf("/v1/workspaces/default/credentials/bulk%03d", i), `{"type":"secret","fields":{"value":"v"}}`), 201)
	}
	// A and C keep writing secrets while B rotates: whatever they acknowledge must be
	// usable everywhere once the old keys are gone.
	stop := make(chan struct{})
	writes := make(chan []string, 1)
	go func() { writes <- c.writeUntil(stop, A, C) }()
	out, err = c.rotateCLI(B, k3File)
	close(stop)
	concurrent := <-writes
	if err != nil || !strings.Contains(out, "-> "+id3) {
		t.Fatalf("rotation to k3: %v\n%s", err, out)
	}
	for _, name := range concurrent {
		if strings.HasPrefix(name, "FAILED ") {
			t.Fatal(name)
		}
		c.putConn(A, name)
	}
	t.Logf("%d writes on A and C acknowledged during the rotation", len(concurrent))
	st := c.status(C)
	if st.Primary != id3 || st.state(id2) != "retired" || st.state(id1) != "retired" {
		t.Fatalf("after the second rotation: %+v", st)
	}
	for _, r := range all {
		writeKeys(t, r.keyFile, k3)
		if err := syscall.Kill(r.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	c.waitHolds(A, id3, "A", "B", "C")
	c.mustUse(all, "a0", "a1", "b1", "c0", "c1")
	mustStatus(t, c.putCred(A, "a2"), 201)
	mustStatus(t, c.putCred(B, "b2"), 201)
	mustStatus(t, c.putCred(C, "c2"), 201)
	names := append([]string{"a0", "a1", "b1", "c0", "c1", "a2", "b2", "c2"}, concurrent...)
	c.mustUse(all, names...)

	// Restarts: each replica starts with only k3 and opens everything.
	for _, r := range all {
		r.Stop()
		r.Restart()
	}
	for _, r := range all {
		mustStatus(t, c.call(r, "GET", "/readyz", ""), 200)
	}
	c.mustUse(all, names...)
	for _, r := range all {
		if strings.Contains(r.Stderr.String(), k3.Encode()) || strings.Contains(r.Stderr.String(), "tok-a1") {
			t.Fatalf("%s logged a key or a secret", r.name)
		}
	}
}
