package main

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/proctest"
	"github.com/sesamehq/sesame/internal/testpg"
)

// Issue 15: the on-premise agent. The agent runs as a real `sesame agent` process; the
// private API listens where only the agent can reach it: on the loopback of a network
// namespace the test creates (the agent runs inside it, the server outside, joined by a
// veth pair on a private /30), or, where namespaces cannot be made, on the host's
// loopback, which the server's own address check refuses while the agent is allowed it.

const privateMarker = "private-api-5c1e"

// privateAPI is the API inside the private network. It records the Authorization of
// every request; /hold waits until release is closed (or the request goes away).
type privateAPI struct {
	srv      *httptest.Server
	Addr     string // host:port as seen from inside the network
	mu       sync.Mutex
	auths    []string
	arrived  chan struct{}
	release  chan struct{}
	canceled chan struct{} // a held request whose connection went away
	reject   string        // an Authorization answered with 401, as an upstream that revoked it
}

func newPrivateAPI(t *testing.T, ln net.Listener) *privateAPI {
	p := &privateAPI{Addr: ln.Addr().String(), arrived: make(chan struct{}, 64), release: make(chan struct{}), canceled: make(chan struct{}, 64)}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auths = append(p.auths, r.Header.Get("Authorization"))
		reject := p.reject
		p.mu.Unlock()
		if reject != "" && r.Header.Get("Authorization") == reject {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/hold":
			// Read the body first: only then does net/http watch the connection and
			// cancel the request's context when it closes.
			io.Copy(io.Discard, r.Body)
			p.arrived <- struct{}{}
			select {
			case <-p.release:
			case <-r.Context().Done():
				p.canceled <- struct{}{}
				return
			}
		case "/echo":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("X-Body-Sha256", hex.EncodeToString(h.Sum(nil)))
			w.Header().Set("X-Body-Len", fmt.Sprint(n))
			// Answer as many bytes again, so the response is as large as the request.
			chunk := bytes.Repeat([]byte("r"), 64<<10)
			for left := n; left > 0; left -= int64(len(chunk)) {
				w.Write(chunk[:min(int64(len(chunk)), left)])
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"marker":%q,"path":%q}`, privateMarker, r.URL.Path)
	}))
	p.srv.Listener.Close()
	p.srv.Listener = ln
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *privateAPI) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.auths)
}

func (p *privateAPI) lastAuth() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.auths) == 0 {
		return ""
	}
	return p.auths[len(p.auths)-1]
}

// agentRig is a server, a private network with an API in it, and an agent registration.
type agentRig struct {
	s     *testServer
	ns    *netNS // nil: the loopback fallback
	api   *privateAPI
	token string
	data  string
}

// newAgentRig sets up the server (on store "sqlite" or "postgres"), the private network
// and agent "plant-1" in workspace default; no agent process runs yet.
func newAgentRig(t *testing.T, store string) *agentRig {
	t.Helper()
	return newAgentRigEnv(t, store, func(*netNS) map[string]string { return nil })
}

// newAgentRigEnv is newAgentRig with the server's environment chosen once the private
// network is known (nil: the loopback fallback).
func newAgentRigEnv(t *testing.T, store string, envFor func(ns *netNS) map[string]string) *agentRig {
	t.Helper()
	r := &agentRig{data: t.TempDir()}
	ns, err := newNetNS(t)
	if err != nil {
		t.Logf("network namespace not available (%v): loopback fallback — the private API is on the host's loopback, "+
			"which the server's address check refuses for connections, and only the agent's allowlist admits it", err)
	}
	r.ns = ns
	if ns != nil {
		t.Logf("private network: namespace %s (host %s, namespace %s)", ns.Name, ns.HostIP, ns.NSIP)
	}
	env := map[string]string{}
	for k, v := range envFor(ns) {
		env[k] = v
	}
	args := []string{"--data", r.data}
	if store == "postgres" {
		k, _ := crypt.GenerateMasterKey()
		env["SESAME_MASTER_KEY"] = k.Encode()
		args = append(args, "--postgres", testpg.URL(t))
	}
	var ln net.Listener
	if ns != nil {
		args = append(args, "--addr", ns.HostIP+":0") // where the agent in the namespace reaches the server
		ln, err = ns.Listen("127.0.0.1:0")
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	r.s = startServer(t, env, args...)
	if r.s.stopped || r.s.AdminKey == "" {
		t.Fatalf("server did not start: %s", r.s.Stderr.String())
	}
	r.api = newPrivateAPI(t, ln)
	r.token = createAgent(t, r.s, "plant-1")
	mustStatus(t, r.s.do("PUT", "/v1/workspaces/default/credentials/erp.basic",
		`{"type":"basic","fields":{"username":"erp-user","password":"erp-pass-31337"}}`), 201)
	return r
}

func createAgent(t *testing.T, s *testServer, name string) string {
	t.Helper()
	c := decode[struct{ Token string }](t, mustStatus(t, s.do("POST", "/v1/workspaces/default/agents", `{"name":"`+name+`"}`), 201))
	if !strings.HasPrefix(c.Token, "sesame_agent_") {
		t.Fatalf("token %q lacks the sesame_agent_ prefix", c.Token)
	}
	return c.Token
}

// startAgent runs `sesame agent` for plant-1, allowed only the given rules, inside the
// namespace when there is one.
func (r *agentRig) startAgent(t *testing.T, allow ...string) *proctest.Server {
	t.Helper()
	o := proctest.AgentOptions{
		Args: []string{"--server", r.s.URL, "--keepalive", "500ms", "--allow", strings.Join(allow, ",")},
		Env:  map[string]string{"SESAME_AGENT_TOKEN": r.token},
	}
	if r.ns != nil {
		o.Wrap = r.ns.Wrap()
	}
	return proctest.StartAgent(t, o)
}

type agentStatus struct {
	Name     string
	Online   bool
	Sessions []struct {
		Version     string
		Remote      string
		OpenStreams int64 `json:"open_streams"`
	}
	LastSeen *time.Time `json:"last_seen"`
	InFlight int64      `json:"calls_in_flight"`
}

func (r *agentRig) status(t *testing.T) agentStatus {
	t.Helper()
	return decode[agentStatus](t, mustStatus(t, r.s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200))
}

func (r *agentRig) waitSessions(t *testing.T, n int) {
	t.Helper()
	waitUntil(t, 20*time.Second, fmt.Sprintf("%d agent sessions", n), func() bool { return len(r.status(t).Sessions) == n })
}

// connection saves connection name to the private API through plant-1.
func (r *agentRig) connection(t *testing.T, name, extra string) {
	t.Helper()
	body := fmt.Sprintf(`{"base_uri":"http://%s","credential":"erp.basic","agent":"plant-1","test":{"path":"/health"}%s}`, r.api.Addr, extra)
	mustStatus(t, r.s.do("PUT", "/v1/workspaces/default/connections/"+name, body), 201)
}

func (r *agentRig) proxy(path string) response {
	return r.s.do("GET", "/v1/workspaces/default/proxy/erp"+path, "")
}

func errCode(t *testing.T, resp response) string {
	t.Helper()
	var e struct{ Code string }
	_ = json.Unmarshal(resp.Body, &e)
	return e.Code
}

func auditHas(t *testing.T, s *testServer, action, detail string) bool {
	t.Helper()
	page := decode[struct {
		Items []struct{ Action, Target, Detail, Result string }
	}](t, mustStatus(t, s.do("GET", "/v1/audit?action="+action+"&limit=100", ""), 200))
	for _, e := range page.Items {
		if strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

// TestAgentCarriesCallsIntoPrivateNetwork: a connection that names the agent reaches an
// API that the server itself cannot reach, for proxied calls, function calls and
// connection tests, with the credential injected on the server and bodies of several MB
// streaming both ways; the agent's status shows in the API, the CLI, the metrics and
// the audit trail.
func TestAgentCarriesCallsIntoPrivateNetwork(t *testing.T) {
	r := newAgentRig(t, "sqlite")
	s := r.s

	// Offline first: saving a connection that tests through the agent fails clearly.
	offline := s.do("PUT", "/v1/workspaces/default/connections/erp",
		fmt.Sprintf(`{"base_uri":"http://%s","credential":"erp.basic","agent":"plant-1","test":{"path":"/health"}}`, r.api.Addr))
	if offline.Status != 422 || !strings.Contains(string(offline.Body), "agent") {
		t.Fatalf("save with the agent offline: %d %s", offline.Status, offline.Body)
	}
	if st := r.status(t); st.Online || len(st.Sessions) != 0 {
		t.Fatalf("status before the agent runs: %+v", st)
	}

	a := r.startAgent(t, r.api.Addr)
	r.waitSessions(t, 1)
	r.connection(t, "erp", "") // its test request runs through the agent

	// Direct, the server cannot reach the private API.
	if r.ns != nil {
		direct := s.do("PUT", "/v1/workspaces/default/connections/direct?test=false",
			fmt.Sprintf(`{"base_uri":"http://%s","allow_private_networks":true}`, r.api.Addr))
		mustStatus(t, direct, 201)
		got := s.do("GET", "/v1/workspaces/default/proxy/direct/data", "")
		if got.Status == 200 || strings.Contains(string(got.Body), privateMarker) {
			t.Fatalf("the server reached the namespace's API directly: %d %s", got.Status, got.Body)
		}
	} else {
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/direct?test=false",
			fmt.Sprintf(`{"base_uri":"http://%s"}`, r.api.Addr)), 201)
		got := s.do("GET", "/v1/workspaces/default/proxy/direct/data", "")
		if got.Status != 403 || errCode(t, got) != "forbidden_address" {
			t.Fatalf("direct call on loopback: %d %s", got.Status, got.Body)
		}
	}
	before := r.api.count()

	got := mustStatus(t, r.proxy("/data"), 200)
	if !strings.Contains(string(got.Body), privateMarker) {
		t.Fatalf("proxy through the agent: %s", got.Body)
	}
	if want := basicHeader("erp-user", "erp-pass-31337"); r.api.lastAuth() != want {
		t.Fatalf("the private API got Authorization %q, want the injected %q", r.api.lastAuth(), want)
	}

	mustStatus(t, putYAML(s, "default", "erp-data", "connection: erp\nmethod: GET\npath: /data\n"), 201)
	call := mustStatus(t, s.do("POST", "/v1/workspaces/default/functions/erp-data/call", `{}`), 200)
	if !strings.Contains(string(call.Body), privateMarker) {
		t.Fatalf("function call through the agent: %s", call.Body)
	}
	test := decode[struct{ OK bool }](t, mustStatus(t, s.do("POST", "/v1/workspaces/default/connections/erp/test", ""), 200))
	if !test.OK {
		t.Fatal("connection test through the agent failed")
	}
	if r.api.count() < before+3 {
		t.Fatalf("the private API saw %d requests, want at least 3", r.api.count()-before)
	}

	// 8 MB up and 8 MB down, streamed.
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	sum := sha256.Sum256(big)
	req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/default/proxy/erp/echo", bytes.NewReader(big))
	req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Body-Sha256") != hex.EncodeToString(sum[:]) || n != int64(len(big)) {
		t.Fatalf("echo through the agent: status %d, upstream hash %s, %d bytes back", resp.StatusCode, resp.Header.Get("X-Body-Sha256"), n)
	}

	// Status everywhere.
	st := r.status(t)
	if !st.Online || len(st.Sessions) != 1 || st.Sessions[0].Version == "" || st.LastSeen == nil {
		t.Fatalf("status: %+v", st)
	}
	code, out, errOut := s.cli("", "agent", "list")
	if code != 0 || !strings.Contains(out, "plant-1") || !strings.Contains(out, "online") {
		t.Fatalf("sesame agent list: %d %s %s", code, out, errOut)
	}
	metrics := string(mustStatus(t, s.do("GET", "/metrics", ""), 200).Body)
	if !strings.Contains(metrics, "sesame_agent_sessions 1") || !strings.Contains(metrics, "sesame_agent_streams_in_flight") {
		t.Fatalf("metrics lack the agent gauges:\n%s", grepLines(metrics, "sesame_agent"))
	}
	waitUntil(t, 5*time.Second, "agent.connect audited", func() bool { return auditHas(t, s, "agent.connect", "version") })

	// The server's log and the agent's never show the token or the injected password.
	a.Kill()
	for name, text := range map[string]string{"server log": s.Stderr.String(), "agent log": a.Stderr.String()} {
		if strings.Contains(text, r.token) || strings.Contains(text, "erp-pass-31337") {
			t.Fatalf("the %s holds a secret", name)
		}
	}
	r.waitSessions(t, 0)
	waitUntil(t, 5*time.Second, "agent.disconnect audited", func() bool { return auditHas(t, s, "agent.disconnect", "") })
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAgentRefusesTargetsOutsideItsAllowlist: an admin (or a compromised server) points a
// connection through the agent at other hosts of the private network, and at the cloud
// metadata address: the agent refuses by its own allowlist, the caller gets 403
// agent_target_refused, nothing is dialled, and the refusal is audited.
func TestAgentRefusesTargetsOutsideItsAllowlist(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			r := newAgentRig(t, store)
			var otherLn net.Listener
			var err error
			if r.ns != nil {
				otherLn, err = r.ns.Listen("127.0.0.1:0")
			} else {
				otherLn, err = net.Listen("tcp", "127.0.0.1:0")
			}
			if err != nil {
				t.Fatal(err)
			}
			other := newPrivateAPI(t, otherLn)
			r.startAgent(t, r.api.Addr)
			r.waitSessions(t, 1)
			r.connection(t, "erp", "")

			for name, base := range map[string]string{"roam": "http://" + other.Addr, "metadata": "http://169.254.169.254"} {
				mustStatus(t, r.s.do("PUT", "/v1/workspaces/default/connections/"+name+"?test=false",
					fmt.Sprintf(`{"base_uri":%q,"agent":"plant-1"}`, base)), 201)
				got := r.s.do("GET", "/v1/workspaces/default/proxy/"+name+"/latest/meta-data/", "")
				if got.Status != 403 || errCode(t, got) != "agent_target_refused" {
					t.Fatalf("%s through the agent: %d %s", name, got.Status, got.Body)
				}
				host := strings.TrimPrefix(base, "http://")
				if !strings.Contains(host, ":") {
					host += ":80"
				}
				waitUntil(t, 5*time.Second, "refusal of "+host+" audited", func() bool { return auditHas(t, r.s, "agent.target_refused", host) })
			}
			if other.count() != 0 {
				t.Fatalf("the host outside the allowlist got %d requests", other.count())
			}
			// The allowed target still works on the same link.
			mustStatus(t, r.proxy("/data"), 200)
		})
	}
}

// TestAgentKilledMidCall: SIGKILL the agent while a call waits on the private API: the
// caller gets 503 agent_unavailable with Retry-After, calls while it is down get the
// same, and once the agent is restarted it reconnects and calls resume.
func TestAgentKilledMidCall(t *testing.T) {
	r := newAgentRig(t, "sqlite")
	a := r.startAgent(t, r.api.Addr)
	r.waitSessions(t, 1)
	r.connection(t, "erp", "")

	// A POST: not retried, so the caller sees what the link's loss looks like.
	done := make(chan response, 1)
	go func() { done <- r.s.do("POST", "/v1/workspaces/default/proxy/erp/hold", `{"order":42}`) }()
	select {
	case <-r.api.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the held call never reached the private API")
	}
	if st := r.status(t); st.InFlight != 1 {
		t.Fatalf("calls in flight = %d during the held call, want 1", st.InFlight)
	}
	a.Kill()
	var got response
	select {
	case got = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the caller was not answered after the agent died")
	}
	if got.Status != 503 || errCode(t, got) != "agent_unavailable" || got.Header.Get("Retry-After") == "" {
		t.Fatalf("held call when the agent died: %d %v %s", got.Status, got.Header, got.Body)
	}
	down := r.proxy("/data")
	if down.Status != 503 || errCode(t, down) != "agent_unavailable" || down.Header.Get("Retry-After") == "" {
		t.Fatalf("call with the agent down: %d %s", down.Status, down.Body)
	}
	if st := r.status(t); st.Online || st.LastSeen == nil || st.InFlight != 0 {
		t.Fatalf("status with the agent down: %+v", st)
	}

	a.Restart()
	r.waitSessions(t, 1)
	if got := mustStatus(t, r.proxy("/data"), 200); !strings.Contains(string(got.Body), privateMarker) {
		t.Fatalf("after the restart: %s", got.Body)
	}
}

// TestTwoAgentsKillOne: two agent processes with the same token serve the network; calls
// are spread over both, and after one is killed no call fails once retried.
func TestTwoAgentsKillOne(t *testing.T) {
	r := newAgentRig(t, "sqlite")
	a := r.startAgent(t, r.api.Addr)
	r.startAgent(t, r.api.Addr)
	r.waitSessions(t, 2)
	r.connection(t, "erp", "")

	// Two calls at once go over both links.
	held := make(chan response, 2)
	for range 2 {
		go func() { held <- r.proxy("/hold") }()
	}
	for range 2 {
		select {
		case <-r.api.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("held calls did not arrive")
		}
	}
	for _, sess := range r.status(t).Sessions {
		if sess.OpenStreams < 1 {
			t.Fatalf("a link carries no stream while two calls run: %+v", r.status(t).Sessions)
		}
	}
	close(r.api.release)
	for range 2 {
		if got := <-held; got.Status != 200 {
			t.Fatalf("held call: %d %s", got.Status, got.Body)
		}
	}

	a.Kill()
	failedFirst := 0
	for i := range 30 {
		got := r.proxy("/data")
		if got.Status != 200 {
			failedFirst++
			if got.Status != 503 || got.Header.Get("Retry-After") == "" {
				t.Fatalf("call %d after the kill: %d %s", i, got.Status, got.Body)
			}
			got = r.proxy("/data") // the next retry
		}
		if got.Status != 200 {
			t.Fatalf("call %d failed after its retry: %d %s", i, got.Status, got.Body)
		}
	}
	t.Logf("calls that needed their retry after the kill: %d of 30", failedFirst)
	r.waitSessions(t, 1)
}

// TestAgentRegistryAndPrivileges: tokens are shown once and stored only as an HMAC; a
// workspace operator (manage_connections, not admin) manages agents but cannot route a
// connection through one, nor take over the name of an agent that connections use;
// deleting an agent ends its token and its links.
func TestAgentRegistryAndPrivileges(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			r := newAgentRig(t, store)
			s := r.s
			mustStatus(t, s.do("POST", "/v1/workspaces/default/agents", `{"name":"plant-1"}`), 409)
			for _, bad := range []string{`{"name":""}`, `{"name":"../x"}`, `{"nam":"x"}`} {
				if got := s.do("POST", "/v1/workspaces/default/agents", bad); got.Status != 400 {
					t.Fatalf("create %s: %d %s", bad, got.Status, got.Body)
				}
			}
			for _, path := range []string{"/v1/workspaces/default/agents", "/v1/workspaces/default/agents/plant-1"} {
				if body := mustStatus(t, s.do("GET", path, ""), 200).Body; bytes.Contains(body, []byte(r.token)) || bytes.Contains(body, []byte("token")) {
					t.Fatalf("%s shows the token: %s", path, body)
				}
			}
			if store == "sqlite" {
				files, _ := filepath.Glob(filepath.Join(r.data, "*"))
				for _, f := range files {
					if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(r.token)) {
						t.Fatalf("%s holds the agent token in plaintext", f)
					}
				}
			}

			// An operator: manage_connections and run_functions in default, not admin.
			mustStatus(t, s.do("POST", "/v1/roles", `{"name":"operator","privileges":["manage_connections","run_functions","use_api_key"]}`), 201)
			u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"ops"}`), 201))
			mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"operator","user":%q,"workspace":"default"}`, u.ID)), 201)
			k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{"name":"ops"}`), 201))
			ops := func(method, path, body string) response {
				h := withKey(k.Key)
				if body != "" {
					h.Set("Content-Type", "application/json")
				}
				return s.doWith(method, path, body, h)
			}
			mustStatus(t, ops("POST", "/v1/workspaces/default/agents", `{"name":"plant-2"}`), 201)
			mustStatus(t, ops("GET", "/v1/workspaces/default/agents/plant-2", ""), 200)
			conn := fmt.Sprintf(`{"base_uri":"http://%s","credential":"erp.basic","agent":%%q,"timeout_ms":%%d}`, r.api.Addr)
			if got := ops("PUT", "/v1/workspaces/default/connections/erp?test=false", fmt.Sprintf(conn, "plant-2", 1000)); got.Status != 403 || errCode(t, got) != "missing_privilege" {
				t.Fatalf("operator routes a connection through an agent: %d %s", got.Status, got.Body)
			}
			mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/erp?test=false", fmt.Sprintf(conn, "plant-1", 1000)), 201)
			mustStatus(t, ops("PUT", "/v1/workspaces/default/connections/erp?test=false", fmt.Sprintf(conn, "plant-1", 2000)), 200) // keeps its agent
			if got := ops("PUT", "/v1/workspaces/default/connections/erp?test=false", fmt.Sprintf(conn, "plant-2", 2000)); got.Status != 403 {
				t.Fatalf("operator moves a connection to another agent: %d %s", got.Status, got.Body)
			}
			if got := ops("PUT", "/v1/workspaces/default/connections/erp?test=false",
				`{"base_uri":"http://evil.example:80","credential":"erp.basic","agent":"plant-1"}`); got.Status != 403 {
				t.Fatalf("operator changes the origin of an agent connection: %d %s", got.Status, got.Body)
			}
			if got := ops("PUT", "/v1/workspaces/default/connections/erp?test=false",
				fmt.Sprintf(`{"base_uri":"http://%s","credential":"erp.basic"}`, r.api.Addr)); got.Status != 403 || errCode(t, got) != "missing_privilege" {
				t.Fatalf("operator takes the agent off a connection (its host would then resolve outside the network): %d %s", got.Status, got.Body)
			}
			// A copy of the workspace has no agents: a registration is its token.
			mustStatus(t, s.do("POST", "/v1/workspaces/default/copy", `{"name":"staging"}`), 201)
			if body := mustStatus(t, s.do("GET", "/v1/workspaces/staging/agents", ""), 200).Body; bytes.Contains(body, []byte("plant")) {
				t.Fatalf("the copy holds agents: %s", body)
			}

			// Deleting is allowed; taking over the name that erp routes through is not.
			a := r.startAgent(t, r.api.Addr)
			r.waitSessions(t, 1)
			mustStatus(t, ops("DELETE", "/v1/workspaces/default/agents/plant-1", ""), 204)
			mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 404)
			if got := ops("POST", "/v1/workspaces/default/agents", `{"name":"plant-1"}`); got.Status != 403 || errCode(t, got) != "missing_privilege" {
				t.Fatalf("operator re-creates an agent that connections use: %d %s", got.Status, got.Body)
			}
			// The deleted agent's link is gone and its token no longer connects.
			waitUntil(t, 10*time.Second, "link dropped", func() bool {
				return strings.Contains(string(s.do("GET", "/metrics", "").Body), "sesame_agent_sessions 0")
			})
			if got := r.proxy("/data"); got.Status != 503 || errCode(t, got) != "agent_unavailable" {
				t.Fatalf("call through a deleted agent: %d %s", got.Status, got.Body)
			}
			waitUntil(t, 10*time.Second, "agent told no", func() bool {
				return strings.Contains(a.Stderr.String(), "401")
			})
			a.Kill()
			req, _ := http.NewRequest("GET", s.URL+"/v1/agents/connect", nil)
			for _, tok := range []string{r.token, s.AdminKey, "sesame_agent_zz_x"} {
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Fatalf("connect with %.14s…: %d", tok, resp.StatusCode)
				}
			}
			// The CLI: create shows the token once, on its own line; rm removes.
			code, out, errOut := s.cli("", "agent", "create", "plant-3")
			if code != 0 || !strings.Contains(out, "\nagent token: sesame_agent_") {
				t.Fatalf("sesame agent create: %d %q %s", code, out, errOut)
			}
			if code, out, _ := s.cli("", "agent", "get", "plant-3", "--json"); code != 0 || strings.Contains(out, "sesame_agent_") {
				t.Fatalf("sesame agent get: %d %s", code, out)
			}
			if code, _, errOut := s.cli("", "agent", "rm", "plant-3"); code != 0 {
				t.Fatalf("sesame agent rm: %d %s", code, errOut)
			}
			if code, _, errOut := s.cli("", "agent", "get", "plant-3"); code != 1 || !strings.Contains(errOut, "not_found") {
				t.Fatalf("sesame agent get after rm: %d %s", code, errOut)
			}
			// An admin may issue a new token for the name.
			fresh := createAgent(t, s, "plant-1")
			if fresh == r.token {
				t.Fatal("the new token equals the old one")
			}
		})
	}
}

// TestAgentServesEveryReplica: with several replicas on one PostgreSQL, the agent holds a
// link to every replica it is given (--server, repeated), so a call reaching either
// replica goes through it; deleting the agent on one replica drops its link on the other
// within the hub's recheck.
func TestAgentServesEveryReplica(t *testing.T) {
	pg := testpg.URL(t)
	master, admin := sharedKeys(t)
	reps := startReplicas(t, 2, pg, master, admin, nil)
	s1 := &testServer{t: t, URL: reps[0].URL, AdminKey: admin, stopped: true}
	s2 := &testServer{t: t, URL: reps[1].URL, AdminKey: admin, stopped: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // loopback: the replicas' own address check refuses it
	if err != nil {
		t.Fatal(err)
	}
	api := newPrivateAPI(t, ln)
	token := createAgent(t, s1, "plant-1")
	mustStatus(t, s1.do("PUT", "/v1/workspaces/default/credentials/erp.basic",
		`{"type":"basic","fields":{"username":"erp-user","password":"erp-pass-31337"}}`), 201)
	mustStatus(t, s1.do("PUT", "/v1/workspaces/default/connections/erp?test=false",
		fmt.Sprintf(`{"base_uri":"http://%s","credential":"erp.basic","agent":"plant-1"}`, api.Addr)), 201)
	a := proctest.StartAgent(t, proctest.AgentOptions{
		Args: []string{"--server", s1.URL, "--server", s2.URL, "--keepalive", "500ms", "--allow", api.Addr},
		Env:  map[string]string{"SESAME_AGENT_TOKEN": token},
	})
	for i, s := range []*testServer{s1, s2} {
		waitUntil(t, 20*time.Second, fmt.Sprintf("agent online on replica %d", i+1), func() bool {
			return decode[agentStatus](t, mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200)).Online
		})
		got := mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/erp/data", ""), 200)
		if !strings.Contains(string(got.Body), privateMarker) {
			t.Fatalf("replica %d: %s", i+1, got.Body)
		}
	}
	mustStatus(t, s1.do("DELETE", "/v1/workspaces/default/agents/plant-1", ""), 204)
	waitUntil(t, 15*time.Second, "link to replica 2 dropped", func() bool {
		return strings.Contains(string(s2.do("GET", "/metrics", "").Body), "sesame_agent_sessions 0")
	})
	if got := s2.do("GET", "/v1/workspaces/default/proxy/erp/data", ""); got.Status != 503 {
		t.Fatalf("replica 2 after the delete: %d %s", got.Status, got.Body)
	}
	a.Kill()
}

// TestAgentDeadLinkNoticedAndReconnected: a frozen agent (SIGSTOP: its TCP connection
// stays open but nothing answers) is noticed by the server's keep-alive and dropped, so
// calls get 503 agent_unavailable instead of hanging; thawed, the agent finds its link
// gone and reconnects by itself (backoff with jitter), and when the server restarts on
// the same address the agent reconnects again.
func TestAgentDeadLinkNoticedAndReconnected(t *testing.T) {
	srv := proctest.Start(t, proctest.Options{Args: []string{"--data", t.TempDir()}})
	s := &testServer{t: t, URL: srv.URL, AdminKey: srv.AdminKey, stopped: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := newPrivateAPI(t, ln)
	token := createAgent(t, s, "plant-1")
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/erp?test=false",
		fmt.Sprintf(`{"base_uri":"http://%s","agent":"plant-1"}`, api.Addr)), 201)
	a := proctest.StartAgent(t, proctest.AgentOptions{
		Args: []string{"--server", s.URL, "--keepalive", "500ms", "--allow", api.Addr},
		Env:  map[string]string{"SESAME_AGENT_TOKEN": token},
	})
	online := func() bool {
		return decode[agentStatus](t, mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200)).Online
	}
	waitUntil(t, 20*time.Second, "online", online)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/erp/data", ""), 200)

	if err := syscall.Kill(a.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := waitUntil(t, 60*time.Second, "frozen agent dropped", func() bool { return !online() })
	t.Logf("the server dropped the frozen agent's link after %s", took.Round(100*time.Millisecond))
	if got := s.do("GET", "/v1/workspaces/default/proxy/erp/data", ""); got.Status != 503 || errCode(t, got) != "agent_unavailable" {
		t.Fatalf("call with the agent frozen: %d %s", got.Status, got.Body)
	}
	if err := syscall.Kill(a.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "thawed agent back", online)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/erp/data", ""), 200)

	srv.Kill()
	srv.Restart()
	waitUntil(t, 30*time.Second, "agent back after the server restart", online)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/erp/data", ""), 200)
}

// TestAgentCallerGoneCancelsUpstream: when the caller goes away mid-call, the request
// inside the private network is canceled too (the stream closes, the agent closes the
// upstream connection).
func TestAgentCallerGoneCancelsUpstream(t *testing.T) {
	r := newAgentRig(t, "sqlite")
	r.startAgent(t, r.api.Addr)
	r.waitSessions(t, 1)
	r.connection(t, "erp", "")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", r.s.URL+"/v1/workspaces/default/proxy/erp/hold", nil)
	req.Header.Set("Authorization", "Bearer "+r.s.AdminKey)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-r.api.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the private API")
	}
	cancel()
	<-errc
	select {
	case <-r.api.canceled:
	case <-time.After(20 * time.Second):
		t.Fatal("the private API's request was not canceled when the caller went away")
	}
	waitUntil(t, 10*time.Second, "no call in flight", func() bool { return r.status(t).InFlight == 0 })
}

// listen opens a listener inside the private network (the host's loopback in the
// fallback).
func (r *agentRig) listen(t *testing.T) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	if r.ns != nil {
		ln, err = r.ns.Listen("127.0.0.1:0")
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestAgentCarriesTokenRequests: an OAuth2 token endpoint that only the private network
// can reach. A client-credentials credential on a connection through the agent gets its
// token through the agent (once: the next call reuses it), and the API gets that token;
// the same kind of credential on a connection without the agent cannot get one; and a
// token endpoint outside the agent's allowlist is refused with agent_target_refused,
// without the provider seeing a request. With namespaces the server may reach private
// token endpoints (SESAME_ALLOW_PRIVATE_TOKEN_URLS), so what stops the direct fetch is
// the network, not the address check. The grants are stored, so on both stores.
func TestAgentCarriesTokenRequests(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { testAgentCarriesTokenRequests(t, store) })
	}
}

func testAgentCarriesTokenRequests(t *testing.T, store string) {
	r := newAgentRigEnv(t, store, func(ns *netNS) map[string]string {
		if ns == nil {
			return nil // the host's loopback: only the address check keeps the server out
		}
		return map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}
	})
	s := r.s
	prov := oauthtest.New(t, oauthtest.Options{Listener: r.listen(t)})
	prov.AddClient("plant-client", "plant-secret-7781", "http://unused.example")
	// A second provider in the private network, which the agent does not allow.
	other := oauthtest.New(t, oauthtest.Options{Listener: r.listen(t)})
	other.AddClient("plant-client", "plant-secret-7781", "http://unused.example")
	// An RFC 7523 token endpoint in the private network, for a jwt_bearer credential.
	jwtKey := jwttest.EC(t, elliptic.P256())
	jwtEnd := newTokenEndpointOn(t, jwtKey.Public(), "ES256", r.listen(t))
	host := func(u string) string { return strings.TrimPrefix(u, "http://") }
	r.startAgent(t, r.api.Addr, host(prov.URL), host(jwtEnd.URL))
	r.waitSessions(t, 1)

	cred := func(name, tokenURL string) {
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/"+name, fmt.Sprintf(
			`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"plant-client","client_secret":"plant-secret-7781","token_url":%q}}`,
			tokenURL)), 201)
	}
	conn := func(name, credName, extra string) {
		mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/"+name+"?test=false", fmt.Sprintf(
			`{"base_uri":"http://%s","credential":%q%s}`, r.api.Addr, credName, extra)), 201)
	}

	// Through the agent: the token is fetched through it, then reused.
	cred("erp.oauth", prov.TokenURL())
	conn("erp", "erp.oauth", `,"agent":"plant-1"`)
	got := mustStatus(t, r.proxy("/data"), 200)
	if !strings.Contains(string(got.Body), privateMarker) {
		t.Fatalf("proxy through the agent: %s", got.Body)
	}
	if prov.ClientCredentials() != 1 {
		t.Fatalf("the provider answered %d client_credentials requests, want 1", prov.ClientCredentials())
	}
	auth := r.api.lastAuth()
	if !strings.HasPrefix(auth, "Bearer ") || !slices.Contains(prov.Issued(), "access:"+strings.TrimPrefix(auth, "Bearer ")) {
		t.Fatalf("the private API got Authorization %q, not a token the provider issued", auth)
	}
	mustStatus(t, r.proxy("/data"), 200)
	if prov.ClientCredentials() != 1 || r.api.lastAuth() != auth {
		t.Fatalf("second call: %d token requests, Authorization %q; want the stored token reused", prov.ClientCredentials(), r.api.lastAuth())
	}
	// The API rejects that token: one forced refresh, through the agent, and the call is
	// sent once more with the new token.
	r.api.mu.Lock()
	r.api.reject = auth
	r.api.mu.Unlock()
	mustStatus(t, r.proxy("/data"), 200)
	renewed := r.api.lastAuth()
	if prov.ClientCredentials() != 2 || renewed == auth || !slices.Contains(prov.Issued(), "access:"+strings.TrimPrefix(renewed, "Bearer ")) {
		t.Fatalf("after a 401: %d token requests, Authorization %q (was %q)", prov.ClientCredentials(), renewed, auth)
	}

	// Without the agent: the server cannot reach the token endpoint, so no token and no call.
	cred("direct.oauth", prov.TokenURL())
	conn("direct", "direct.oauth", `,"allow_private_networks":true`)
	before := r.api.count()
	direct := s.do("GET", "/v1/workspaces/default/proxy/direct/data", "")
	if direct.Status == 200 || strings.Contains(string(direct.Body), privateMarker) {
		t.Fatalf("a token was fetched without the agent: %d %s", direct.Status, direct.Body)
	}
	if prov.ClientCredentials() != 2 || r.api.count() != before {
		t.Fatalf("without the agent the provider got %d requests and the API %d, want none",
			prov.ClientCredentials()-2, r.api.count()-before)
	}
	t.Logf("without the agent: %d %s", direct.Status, direct.Body)

	// A token endpoint outside the agent's allowlist: refused by the agent, clearly.
	cred("roam.oauth", other.TokenURL())
	conn("roam", "roam.oauth", `,"agent":"plant-1"`)
	roam := s.do("GET", "/v1/workspaces/default/proxy/roam/data", "")
	if roam.Status != 403 || errCode(t, roam) != "agent_target_refused" || !strings.Contains(string(roam.Body), "token endpoint") {
		t.Fatalf("token endpoint outside the allowlist: %d %s", roam.Status, roam.Body)
	}
	if other.ClientCredentials() != 0 || r.api.count() != before {
		t.Fatalf("the refused token endpoint got %d requests, the API %d", other.ClientCredentials(), r.api.count()-before)
	}
	otherHost := host(other.URL)
	waitUntil(t, 5*time.Second, "refusal of "+otherHost+" audited", func() bool { return auditHas(t, s, "agent.target_refused", otherHost) })

	// A jwt_bearer credential exchanges its JWT at the private token endpoint through the
	// agent; without the agent the exchange does not get there.
	jwtFields := func() string {
		return jwtCredential(t, map[string]any{"alg": "ES256", "private_key": jwttest.SEC1(t, jwtKey), "token_url": jwtEnd.URL + "/token",
			"payload": map[string]any{"iss": "svc@example.iam", "aud": jwtEnd.URL + "/token"}})
	}
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/erp.jwt", jwtFields()), 201)
	conn("erpjwt", "erp.jwt", `,"agent":"plant-1"`)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/erpjwt/data", ""), 200)
	if a := r.api.lastAuth(); !strings.HasPrefix(a, "Bearer at-1-") || jwtEnd.exchanges.Load() != 1 {
		jwtEnd.mu.Lock()
		defer jwtEnd.mu.Unlock()
		t.Fatalf("jwt_bearer through the agent: the API got %q after %d exchanges (endpoint problems: %v)", a, jwtEnd.exchanges.Load(), jwtEnd.bad)
	}
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/direct.jwt", jwtFields()), 201)
	conn("directjwt", "direct.jwt", `,"allow_private_networks":true`)
	before = r.api.count()
	if got := s.do("GET", "/v1/workspaces/default/proxy/directjwt/data", ""); got.Status == 200 || jwtEnd.exchanges.Load() != 1 || r.api.count() != before {
		t.Fatalf("jwt_bearer without the agent: %d %s after %d exchanges", got.Status, got.Body, jwtEnd.exchanges.Load())
	} else {
		t.Logf("jwt_bearer without the agent: %d %s", got.Status, got.Body)
	}

	for _, secret := range []string{"plant-secret-7781", strings.TrimPrefix(auth, "Bearer ")} {
		if strings.Contains(s.Stderr.String(), secret) {
			t.Fatal("the server log holds the client secret or the access token")
		}
	}
}
