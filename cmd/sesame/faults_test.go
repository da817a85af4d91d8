package main

// Fault tests (FAULTS.md): real sesame processes (internal/proctest), killed with SIGKILL
// by PID or stopped with SIGTERM, on a private PostgreSQL cluster that the tests stop and
// start, or on SQLite on a 5 MB filesystem. Each prints what it measured on lines that
// start with "FAULT": go test ./cmd/sesame -run TestFault -v | grep FAULT

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/proctest"
)

// faultHTTP is the client of the fault tests: no keep-alive reuse across restarts matters,
// and a generous timeout so that a hung request fails the test instead of hanging it.
var faultHTTP = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// send makes one request to base with key and returns the response, or the transport error.
func send(base, key, method, path, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := faultHTTP.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// mustSend is send that fails the test on a transport error or another status than want.
func mustSend(t *testing.T, base, key, method, path, body string, want ...int) response {
	t.Helper()
	r, err := send(base, key, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for _, w := range want {
		if r.Status == w {
			return r
		}
	}
	t.Fatalf("%s %s = %d %s; want %v", method, path, r.Status, r.Body, want)
	return r
}

// errorCode is the "code" of an error body ("" if there is none).
func errorCode(r response) string {
	var e struct{ Code string }
	_ = json.Unmarshal(r.Body, &e)
	return e.Code
}

// wantRetryable checks that r is a 503 with the given code and a Retry-After.
func wantRetryable(t *testing.T, what string, r response, code string) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || errorCode(r) != code || r.Header.Get("Retry-After") == "" {
		t.Fatalf("%s = %d %s (Retry-After %q); want 503 %s with Retry-After", what, r.Status, r.Body, r.Header.Get("Retry-After"), code)
	}
}

// sharedKeys returns a master key and an admin key that several replicas share.
func sharedKeys(t *testing.T) (master, admin string) {
	t.Helper()
	ctx := context.Background()
	m, err := proctest.Output(ctx, t, nil, "keys", "generate")
	if err != nil {
		t.Fatalf("keys generate: %v %s", err, m)
	}
	a, err := proctest.Output(ctx, t, nil, "keys", "generate", "--api-key")
	if err != nil {
		t.Fatalf("keys generate --api-key: %v %s", err, a)
	}
	return strings.TrimSpace(m), strings.TrimSpace(a)
}

// startReplicas starts n sesame processes on PostgreSQL url sharing master and admin keys.
func startReplicas(t *testing.T, n int, url, master, admin string, env map[string]string, args ...string) []*proctest.Server {
	t.Helper()
	e := map[string]string{"SESAME_MASTER_KEY": master, "SESAME_ADMIN_KEY": admin}
	for k, v := range env {
		e[k] = v
	}
	var out []*proctest.Server
	for range n {
		out = append(out, proctest.Start(t, proctest.Options{Env: e,
			Args: append([]string{"--postgres", url, "--data", t.TempDir()}, args...)}))
	}
	return out
}

// waitUntil polls fn every 50ms until it reports true or d passes, and returns how long it took.
func waitUntil(t *testing.T, d time.Duration, what string, fn func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !fn() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFaultStoreOutage (issue 11 item 2): while PostgreSQL is down every store-backed call,
// reads, writes and the key lookup of a key not yet cached included, answers 503
// store_unavailable with Retry-After (never 500, never 401), /readyz says 503, and after
// PostgreSQL starts again the same process serves without a restart and has lost nothing.
func TestFaultStoreOutage(t *testing.T) {
	c := proctest.NewCluster(t)
	master, admin := sharedKeys(t)
	s := startReplicas(t, 1, c.URL(), master, admin, nil)[0]
	base := s.URL

	mustSend(t, base, admin, "PUT", "/v1/workspaces/default/credentials/outage.a", `{"type":"secret","fields":{"value":"v1"}}`, 201)
	var u struct{ ID string }
	_ = json.Unmarshal(mustSend(t, base, admin, "POST", "/v1/users", `{"name":"bob"}`, 201).Body, &u)
	mustSend(t, base, admin, "POST", "/v1/grants", fmt.Sprintf(`{"role":"caller","user":%q,"workspace":"default"}`, u.ID), 201)
	var k struct{ Key string }
	_ = json.Unmarshal(mustSend(t, base, admin, "POST", "/v1/users/"+u.ID+"/keys", `{"name":"k"}`, 201).Body, &k)

	mustSend(t, base, admin, "POST", "/v1/grants", `{"role":"app","app":"com.example.*","workspace":"default"}`, 201)
	var app struct{ Token string }
	_ = json.Unmarshal(mustSend(t, base, "", "POST", "/api/v2/auth", `{"appId":"com.example.outage","displayName":"O","version":"1.0.0"}`, 200).Body, &app)

	c.Stop()
	// An app token may be served from memory (revocations and decisions are cached for a
	// moment); if not, it is a retryable 503 too.
	if r, err := send(base, app.Token, "GET", "/v1/workspaces", ""); err != nil || (r.Status != 200 && (r.Status != 503 || r.Header.Get("Retry-After") == "")) {
		t.Fatalf("app token while the store is down = %d %s %v; want 200 or 503 with Retry-After", r.Status, r.Body, err)
	}
	// A trial app token needs no store (it has no row, and its events are recorded in the
	// background: spilled to the data folder while the store is down, replayed after).
	mustSend(t, base, "", "POST", "/api/v2/auth", `{"appId":"com.example.outage2","displayName":"O","version":"1.0.0"}`, 200)
	checks := []struct{ what, key, method, path, body string }{
		{"read a credential", admin, "GET", "/v1/workspaces/default/credentials/outage.a", ""},
		{"list credentials", admin, "GET", "/v1/workspaces/default/credentials", ""},
		{"write a credential", admin, "PUT", "/v1/workspaces/default/credentials/outage.b", `{"type":"secret","fields":{"value":"v"}}`},
		{"create a user", admin, "POST", "/v1/users", `{"name":"carol"}`},
		{"a key never used before (store lookup)", k.Key, "GET", "/v1/workspaces", ""},
		{"read the audit trail", admin, "GET", "/v1/audit?limit=5", ""},
	}
	for _, ch := range checks {
		r, err := send(base, ch.key, ch.method, ch.path, ch.body)
		if err != nil {
			t.Fatalf("%s: %v", ch.what, err)
		}
		wantRetryable(t, ch.what, r, "store_unavailable")
	}
	r, err := send(base, "", "GET", "/readyz", "")
	if err != nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz while the store is down = %d %s, %v; want 503 with Retry-After", r.Status, r.Body, err)
	}
	if v := sample(scrape(t, base+"/metrics", nil), "sesame_store_errors_total", `class="unavailable"`); v < float64(len(checks)) {
		t.Fatalf("metrics count %v store outages, want at least %d", v, len(checks))
	}

	c.Start()
	started := time.Now()
	waitUntil(t, 30*time.Second, "first success after PostgreSQL started", func() bool {
		r, err := send(base, admin, "GET", "/v1/workspaces/default/credentials/outage.a", "")
		if err == nil && r.Status != 200 && r.Status != 503 {
			t.Fatalf("read after PostgreSQL started = %d %s; want 200 or 503", r.Status, r.Body)
		}
		return err == nil && r.Status == 200
	})
	recovery := time.Since(started)
	mustSend(t, base, admin, "PUT", "/v1/workspaces/default/credentials/outage.b", `{"type":"secret","fields":{"value":"v"}}`, 201)
	mustSend(t, base, k.Key, "GET", "/v1/workspaces", "", 200)
	mustSend(t, base, "", "GET", "/readyz", "", 200)
	waitUntil(t, 30*time.Second, "the event of the trial token issued during the outage", func() bool {
		r := mustSend(t, base, admin, "GET", "/v1/audit?action=app.token.issue&limit=100", "", 200)
		return bytes.Contains(r.Body, []byte(`"target":"com.example.outage2"`))
	})
	t.Logf("FAULT store-outage: PostgreSQL stopped: 503 store_unavailable + Retry-After; first success %s after PostgreSQL accepted connections, same process", recovery.Round(time.Millisecond))
}

// mountSmallFS mounts a 5 MB tmpfs at a temporary folder, or skips the test with the reason.
func mountSmallFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk needs a small filesystem: mounting one needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 5 MB tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes zeros to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	// The last partial block: fill it byte by byte-ish.
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
}

// TestFaultDiskFull (issue 11 item 5): SQLite on a 5 MB filesystem. Once the disk is full
// a write answers 503 storage_full with Retry-After and changes nothing, /readyz says
// storage_full, reads go on; after space is freed writes work again and /readyz is ready,
// and after a kill -9 and restart every acknowledged write is there.
func TestFaultDiskFull(t *testing.T) {
	mnt := mountSmallFS(t)
	data := filepath.Join(mnt, "data")
	_, admin := sharedKeys(t)
	s := proctest.Start(t, proctest.Options{Env: map[string]string{"SESAME_ADMIN_KEY": admin}, Args: []string{"--data", data}})
	base := s.URL

	value := strings.Repeat("x", 8<<10)
	put := func(i int) (response, error) {
		return send(base, admin, "PUT", fmt.Sprintf("/v1/workspaces/default/credentials/full.%d", i),
			fmt.Sprintf(`{"type":"secret","fields":{"value":"%s-%d"}}`, value, i))
	}
	var acked []int
	for i := 0; i < 5; i++ {
		if r, err := put(i); err != nil || r.Status != 201 {
			t.Fatalf("write %d before the disk is full = %d %s %v", i, r.Status, r.Body, err)
		}
		acked = append(acked, i)
	}
	fill(t, filepath.Join(mnt, "filler"))

	// Writes go on until the database has no room left; from then on each is refused.
	full := 0
	for i := 5; i < 400 && full < 5; i++ {
		r, err := put(i)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		switch {
		case r.Status == 201:
			acked = append(acked, i)
			full = 0
		case r.Status == 503 && errorCode(r) == "storage_full":
			wantRetryable(t, "a write on a full disk", r, "storage_full")
			full++
		default:
			t.Fatalf("write %d on a full disk = %d %s; want 201 or 503 storage_full", i, r.Status, r.Body)
		}
	}
	if full == 0 {
		t.Fatal("the disk never filled up")
	}
	wantRetryable(t, "readyz on a full disk", mustSend(t, base, "", "GET", "/readyz", "", 503), "storage_full")
	if v := sample(scrape(t, base+"/metrics", nil), "sesame_store_errors_total", `class="storage_full"`); v < float64(full) {
		t.Fatalf("metrics count %v full-disk refusals, want at least %d", v, full)
	}
	for _, i := range acked {
		mustSend(t, base, admin, "GET", fmt.Sprintf("/v1/workspaces/default/credentials/full.%d", i), "", 200)
	}
	mustSend(t, base, admin, "GET", "/v1/workspaces/default/credentials?limit=1000", "", 200)

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	mustSend(t, base, "", "GET", "/readyz", "", 200)
	if r, err := put(1000); err != nil || r.Status != 201 {
		t.Fatalf("write after space was freed = %d %s %v", r.Status, r.Body, err)
	}
	acked = append(acked, 1000)
	recovery := time.Since(freed)

	s.Kill()
	s.Restart()
	for _, i := range acked {
		r := mustSend(t, base, admin, "GET", fmt.Sprintf("/v1/workspaces/default/credentials/full.%d", i), "", 200)
		if !strings.Contains(string(r.Body), `"value":{"set":true`) {
			t.Fatalf("credential full.%d after restart: %s", i, r.Body)
		}
	}
	t.Logf("FAULT disk-full: SQLite on a 5 MB tmpfs: %d writes acknowledged, then 503 storage_full + Retry-After, readyz 503 storage_full, reads served; ready and writable %s after space was freed; all %d acknowledged writes present after kill -9 and restart",
		len(acked)-1, recovery.Round(time.Millisecond), len(acked))
}

// TestFaultOAuthLeaseTakeover (issue 11 item 4): two replicas on PostgreSQL share one
// client credentials grant. Replica A starts the refresh and hangs at the provider; while A
// lives, B's callers give up after --oauth-lease-wait with 503 refresh_in_progress and
// Retry-After. A is killed with SIGKILL mid-refresh: B takes the lease over within seconds
// (the lease is short and only a live holder renews it), and afterwards a burst of callers
// on both replicas still refreshes exactly once.
func TestFaultOAuthLeaseTakeover(t *testing.T) {
	c := proctest.NewCluster(t)
	p := oauthtest.New(t, oauthtest.Options{CodeTokenExp: 10 * time.Second})
	p.AddClient("sesame-app", oauthClientSecret, "http://127.0.0.1/")
	arrived, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	p.OnToken(func(string) {
		if first.CompareAndSwap(false, true) {
			close(arrived)
			<-release // A's refresh hangs at the provider until the test ends
		}
	})
	t.Cleanup(func() { close(release) })

	master, admin := sharedKeys(t)
	rs := startReplicas(t, 2, c.URL(), master, admin, map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"},
		"--oauth-lease-wait", "3s")
	a, b := rs[0], rs[1]
	mustSend(t, a.URL, admin, "PUT", "/v1/workspaces/default/credentials/svc", fmt.Sprintf(
		`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"sesame-app","client_secret":%q,"token_url":%q}}`,
		oauthClientSecret, p.TokenURL()), 201)
	mustSend(t, a.URL, admin, "PUT", "/v1/workspaces/default/connections/api?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"svc","allow_private_networks":true}`, p.ResourceURL()), 201)
	const tokenPath = "/v1/workspaces/default/connections/api/token"

	go func() { _, _ = send(a.URL, admin, "GET", tokenPath, "") }() // dies with A
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("replica A never asked the provider for a token")
	}
	// A is alive and renews its lease: B's caller waits --oauth-lease-wait, then gets 503.
	wantRetryable(t, "B's call while A refreshes", mustSend(t, b.URL, admin, "GET", tokenPath, "", 503), "refresh_in_progress")

	a.Kill()
	killed := time.Now()
	var took time.Duration
	for {
		r, err := send(b.URL, admin, "GET", tokenPath, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == 200 {
			took = time.Since(killed)
			break
		}
		wantRetryable(t, "B's call while A's lease expires", r, "refresh_in_progress")
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("B did not take over A's refresh within 20s")
		}
	}
	got := time.Now()
	if n := p.ClientCredentials(); n != 2 {
		t.Fatalf("token requests = %d; want 2 (A's, which hangs, and B's)", n)
	}

	// Exactly once still holds: once the token is due (half its 10s life), 20 callers on
	// both replicas cause one token request.
	a.Restart()
	time.Sleep(time.Until(got.Add(6 * time.Second)))
	before := p.ClientCredentials()
	errs := make(chan error, 20)
	for i := range 20 {
		base := []string{a.URL, b.URL}[i%2]
		go func() {
			r, err := send(base, admin, "GET", tokenPath, "")
			if err == nil && r.Status != 200 {
				err = fmt.Errorf("status %d %s", r.Status, r.Body)
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatalf("token after takeover: %v", err)
		}
	}
	if n := p.ClientCredentials() - before; n != 1 {
		t.Fatalf("20 callers on two replicas made %d token requests; want exactly 1", n)
	}
	t.Logf("FAULT oauth-holder-killed: holder SIGKILLed mid-refresh: other replica's callers get 503 refresh_in_progress + Retry-After after --oauth-lease-wait (3s here, default 10s); lease taken over and token served %s after the kill; exactly one refresh afterwards",
		took.Round(time.Millisecond))
}

// drillClient is a client behind a load balancer: each request goes to the next replica
// in turn, and a connection error (a replica being restarted) is retried on the others.
type drillClient struct {
	bases []string
	key   string
	next  atomic.Uint64
}

// do returns the response of the first replica that answered, or the last transport error
// if none did.
func (c *drillClient) do(method, path, body string) (response, error) {
	start := int(c.next.Add(1))
	var err error
	for i := range c.bases {
		var r response
		r, err = send(c.bases[(start+i)%len(c.bases)], c.key, method, path, body)
		if err == nil {
			return r, nil
		}
	}
	return response{}, err
}

// drillStats counts the outcomes of one phase of the drill.
type drillStats struct {
	ok, unavailable, other int
}

// TestFaultRestartDrill (issue 11 item 6): three replicas on PostgreSQL under steady load
// (writes, reads of acknowledged writes, proxied calls to an upstream), restarted one at a
// time (SIGTERM, then start again on the same address), then PostgreSQL stopped and
// started. Every acknowledged write is readable on every replica afterwards, the audit
// chain verifies, replica restarts cost no failed request (the client retries connection
// errors on another replica, as a load balancer would), and the database restart costs
// only 503s with Retry-After.
func TestFaultRestartDrill(t *testing.T) {
	c := proctest.NewCluster(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(up.Close)
	master, admin := sharedKeys(t)
	rs := startReplicas(t, 3, c.URL(), master, admin, nil)
	cl := &drillClient{key: admin}
	for _, r := range rs {
		cl.bases = append(cl.bases, r.URL)
	}
	mustSend(t, rs[0].URL, admin, "PUT", "/v1/workspaces/default/credentials/up.key", `{"type":"api_key","fields":{"value":"drill-key"}}`, 201)
	mustSend(t, rs[0].URL, admin, "PUT", "/v1/workspaces/default/connections/up?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"up.key","allow_private_networks":true}`, up.URL), 201)

	// The load: workers loop until stop, each op a write, a read of one of its acknowledged
	// writes, or a proxied call. phase names the current step; outcomes are counted per phase.
	var (
		mu       sync.Mutex
		phase    = "warm-up"
		stats    = map[string]*drillStats{}
		order    []string
		bad      []string
		acked    []string
		stop     = make(chan struct{})
		workers  sync.WaitGroup
		setPhase = func(p string) {
			mu.Lock()
			phase = p
			mu.Unlock()
		}
	)
	record := func(op string, r response, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		st := stats[phase]
		if st == nil {
			st = &drillStats{}
			stats[phase] = st
			order = append(order, phase)
		}
		switch {
		case err == nil && r.Status < 300:
			st.ok++
			return true
		case err == nil && r.Status == 503 && r.Header.Get("Retry-After") != "" && phase == "database-restart":
			st.unavailable++
		default:
			st.other++
			if len(bad) < 20 {
				bad = append(bad, fmt.Sprintf("%s during %s: %d %s %v", op, phase, r.Status, r.Body, err))
			}
		}
		return false
	}
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			var mine []string
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				switch {
				case n%3 == 0 || len(mine) == 0:
					key := fmt.Sprintf("drill.w%d.%d", w, n)
					r, err := cl.do("PUT", "/v1/workspaces/default/credentials/"+key, fmt.Sprintf(`{"type":"secret","fields":{"value":"v-%d"}}`, n))
					if record("write", r, err) {
						mine = append(mine, key)
						mu.Lock()
						acked = append(acked, key)
						mu.Unlock()
					}
				case n%3 == 1:
					r, err := cl.do("GET", "/v1/workspaces/default/credentials/"+mine[n%len(mine)], "")
					record("read", r, err)
				default:
					r, err := cl.do("GET", "/v1/workspaces/default/proxy/up/ping", "")
					record("proxy", r, err)
				}
			}
		}()
	}
	sleep := func(d time.Duration) { time.Sleep(d) }

	sleep(2 * time.Second)
	for i, r := range rs {
		setPhase(fmt.Sprintf("replica-%d-restart", i+1))
		r.Stop()
		sleep(time.Second)
		r.Restart()
		sleep(time.Second)
	}

	setPhase("database-restart")
	stopped := time.Now()
	c.Stop()
	sleep(1500 * time.Millisecond)
	c.Start()
	started := time.Now()
	// Recovery: until every replica has served a read that needs the store.
	var firstOK []time.Duration
	for _, r := range rs {
		waitUntil(t, 30*time.Second, "replica serves after PostgreSQL started", func() bool {
			resp, err := send(r.URL, admin, "GET", "/v1/workspaces/default/credentials/up.key", "")
			return err == nil && resp.Status == 200
		})
		firstOK = append(firstOK, time.Since(started))
	}
	setPhase("after")
	sleep(2 * time.Second)
	close(stop)
	workers.Wait()

	for _, p := range order {
		st := stats[p]
		t.Logf("phase %-18s ok %5d  503 %4d  other failures %d", p, st.ok, st.unavailable, st.other)
	}
	if len(bad) > 0 {
		t.Fatalf("requests failed other than with 503 during the database restart:\n%s", strings.Join(bad, "\n"))
	}
	if stats["database-restart"] == nil || stats["after"] == nil || stats["after"].ok == 0 {
		t.Fatal("the load did not run through the database restart")
	}

	// Every acknowledged write is readable on every replica.
	for _, key := range acked {
		for _, r := range rs {
			mustSend(t, r.URL, admin, "GET", "/v1/workspaces/default/credentials/"+key, "", 200)
		}
	}
	out, err := proctest.Run(context.Background(), t, map[string]string{"SESAME_SERVER": rs[0].URL, "SESAME_KEY": admin}, "audit", "verify")
	if err != nil || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	t.Logf("FAULT restart-drill: 3 replicas restarted in turn under load: no failed request; PostgreSQL stopped for %s: only 503 + Retry-After; every replica served again %v after PostgreSQL started; %d acknowledged writes all readable on every replica; audit verify: %s",
		started.Sub(stopped).Round(time.Millisecond), roundAll(firstOK), len(acked), strings.TrimSpace(out))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
