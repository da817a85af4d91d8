package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/proctest"
)

var agentTokenRe = regexp.MustCompile(`sesame_agent_[A-Za-z0-9_\-]+`)

// TestConsoleAgents: an admin creates an agent in the console and sees its token once, as
// text; the list shows it offline, then online with its version once a real agent dials
// in; deleting asks first; cross-site posts are refused.
func TestConsoleAgents(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	b := &browser{t: t, s: s}
	b.signIn(s.AdminKey)

	if _, body := b.send("GET", "/console/workspaces", nil, nil); !strings.Contains(body, `href="/console/w/default/agents"`) {
		t.Fatalf("no Agents link on the workspaces page: %s", body)
	}
	resp, body := b.send("GET", "/console/w/default/agents", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `id="nav-agents"`) || !strings.Contains(body, "No agents yet") {
		t.Fatalf("agents page: %d %s", resp.StatusCode, body)
	}
	resp, body = b.send("POST", "/console/w/default/agents", url.Values{"name": {"plant-1"}}, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	token := regexp.MustCompile(`<code id="new-agent-token">(sesame_agent_[^<]+)</code>`).FindStringSubmatch(body)
	if token == nil {
		t.Fatalf("the new token is not shown as text: %s", body)
	}
	if n := strings.Count(body, token[1]); n != 1 {
		t.Fatalf("the token appears %d times on the result page (an attribute or field?)", n)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("result page is cacheable: %q", resp.Header.Get("Cache-Control"))
	}
	resp, body = b.send("GET", "/console/w/default/agents", nil, nil)
	if resp.StatusCode != 200 || agentTokenRe.MatchString(body) || strings.Contains(body, token[1]) {
		t.Fatalf("the token is shown again on reload: %d %s", resp.StatusCode, body)
	}
	row := func(body string) string {
		i := strings.Index(body, `<tr id="agent-plant-1">`)
		if i < 0 {
			t.Fatalf("no row for plant-1: %s", body)
		}
		return body[i : i+strings.Index(body[i:], "</tr>")]
	}
	if r := row(body); !strings.Contains(r, "offline") || !strings.Contains(r, "never") {
		t.Fatalf("a new agent is not offline, never seen: %s", r)
	}

	// Bad input: the API's message on the page, nothing created.
	resp, body = b.send("POST", "/console/w/default/agents", url.Values{"name": {"../x"}}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, "invalid agent name") {
		t.Fatalf("bad name: %d %s", resp.StatusCode, body)
	}
	resp, _ = b.send("POST", "/console/w/default/agents", url.Values{"name": {"plant-1"}}, nil)
	if resp.StatusCode != 409 {
		t.Fatalf("duplicate: %d", resp.StatusCode)
	}

	// A real agent dials in with the token: online, its version and last seen.
	a := proctest.StartAgent(t, proctest.AgentOptions{
		Args: []string{"--server", s.URL, "--keepalive", "500ms", "--allow", "127.0.0.1"},
		Env:  map[string]string{"SESAME_AGENT_TOKEN": token[1]},
	})
	_ = a
	waitUntil(t, 20*time.Second, "agent online", func() bool {
		return decode[agentStatus](t, mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200)).Online
	})
	_, body = b.send("GET", "/console/w/default/agents", nil, nil)
	if r := row(body); !strings.Contains(r, "online") || strings.Contains(r, "offline") || !strings.Contains(r, "version ") || strings.Contains(r, "never") {
		t.Fatalf("a connected agent is not shown online with its session: %s", r)
	}

	// Cross-site create and delete are refused; nothing changes.
	evil := http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}
	if resp, _ := b.send("POST", "/console/w/default/agents", url.Values{"name": {"evil"}}, evil); resp.StatusCode != 403 {
		t.Fatalf("cross-site create: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/evil", ""), 404)
	if resp, _ := b.send("POST", "/console/w/default/agents/plant-1/delete", url.Values{}, evil); resp.StatusCode != 403 {
		t.Fatalf("cross-site delete: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200)

	// Delete asks first, then deletes.
	if resp, body := b.send("GET", "/console/w/default/agents/plant-1/delete", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, `id="confirm"`) {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200)
	if resp, _ := b.send("POST", "/console/w/default/agents/plant-1/delete", url.Values{}, nil); resp.StatusCode != 303 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 404)
}

// TestConsoleAgentsNeedManageConnections: without manage_connections there is no Agents
// link, and the pages answer the API's 403 and change nothing.
func TestConsoleAgentsNeedManageConnections(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	_, key := newCaller(t, s, "carol", "default")
	b := &browser{t: t, s: s}
	b.signIn(key)
	for _, page := range []string{"/console/workspaces", "/console/w/default/functions"} {
		if resp, body := b.send("GET", page, nil, nil); resp.StatusCode != 200 || strings.Contains(body, "/agents") {
			t.Fatalf("a caller sees the Agents link on %s: %d", page, resp.StatusCode)
		}
	}
	resp, body := b.send("GET", "/console/w/default/agents", nil, nil)
	if resp.StatusCode != 403 || !strings.Contains(body, "manage_connections") {
		t.Fatalf("caller GET agents: %d %s", resp.StatusCode, body)
	}
	resp, _ = b.send("POST", "/console/w/default/agents", url.Values{"name": {"mine"}}, nil)
	if resp.StatusCode != 403 {
		t.Fatalf("caller create: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/mine", ""), 404)
	createAgent(t, s, "plant-1")
	if resp, _ := b.send("POST", "/console/w/default/agents/plant-1/delete", url.Values{}, nil); resp.StatusCode != 403 {
		t.Fatalf("caller delete: %d", resp.StatusCode)
	}
	mustStatus(t, s.do("GET", "/v1/workspaces/default/agents/plant-1", ""), 200)
}

// TestConsoleConnectionAgentField: an admin picks a connection's agent in the form; an
// operator (manage_connections, not admin) sees it read-only, and saving the form keeps
// it; a crafted post of another agent is refused by the API.
func TestConsoleConnectionAgentField(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	createAgent(t, s, "plant-1")
	createAgent(t, s, "plant-2")
	admin := &browser{t: t, s: s}
	admin.signIn(s.AdminKey)
	_, body := admin.send("GET", "/console/w/default/connections/new", nil, nil)
	if !strings.Contains(body, `<select id="c-agent" name="agent">`) || !strings.Contains(body, `<option value="plant-2">`) {
		t.Fatalf("admin form has no agent picker: %s", body)
	}
	resp, body := admin.send("POST", "/console/w/default/connections/new", url.Values{
		"name": {"erp"}, "base_uri": {up.URL}, "allow_private_networks": {"on"}, "agent": {"plant-1"}, "timeout_ms": {"1000"},
	}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("admin save with agent: %d %s", resp.StatusCode, body)
	}
	agentOf := func() string {
		return decode[struct{ Agent string }](t, mustStatus(t, s.do("GET", "/v1/workspaces/default/connections/erp", ""), 200)).Agent
	}
	if got := agentOf(); got != "plant-1" {
		t.Fatalf("agent after admin save: %q", got)
	}

	mustStatus(t, s.do("POST", "/v1/roles", `{"name":"operator","privileges":["manage_connections","run_functions","use_api_key"]}`), 201)
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"ops"}`), 201))
	mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"operator","user":%q,"workspace":"default"}`, u.ID)), 201)
	k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", `{"name":"ops"}`), 201))
	ops := &browser{t: t, s: s}
	ops.signIn(k.Key)
	resp, body = ops.send("GET", "/console/w/default/connections/erp/edit", nil, nil)
	if resp.StatusCode != 200 || strings.Contains(body, `name="agent"`) || !strings.Contains(body, `<span id="c-agent">plant-1</span>`) {
		t.Fatalf("operator form: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `id="nav-agents"`) {
		t.Fatalf("operator (manage_connections) has no Agents link")
	}
	form := url.Values{"base_uri": {up.URL}, "allow_private_networks": {"on"}, "timeout_ms": {"2000"}}
	if resp, body := ops.send("POST", "/console/w/default/connections/erp/edit", form, nil); resp.StatusCode != 303 {
		t.Fatalf("operator save keeping the agent: %d %s", resp.StatusCode, body)
	}
	if got := agentOf(); got != "plant-1" {
		t.Fatalf("operator's save changed the agent to %q", got)
	}
	form.Set("agent", "plant-2")
	ops.send("POST", "/console/w/default/connections/erp/edit", form, nil)
	if got := agentOf(); got != "plant-1" {
		t.Fatalf("operator's crafted post moved the connection to agent %q", got)
	}
	resp, body = ops.send("POST", "/console/w/default/connections/new", url.Values{"name": {"erp2"}, "base_uri": {"https://erp.example"}, "agent": {"plant-2"}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("operator new connection: %d %s", resp.StatusCode, body)
	}
	if got := decode[struct{ Agent string }](t, mustStatus(t, s.do("GET", "/v1/workspaces/default/connections/erp2", ""), 200)).Agent; got != "" {
		t.Fatalf("operator's crafted post routed a new connection through agent %q", got)
	}
}

// TestConsoleConnectionSaveKeepsHiddenFields: the connection form shows only some fields;
// saving it keeps the others as stored (before, an edit in the console silently dropped
// media_type, auth, max_body_bytes, auth_failure and the finer retry and rate-limit
// settings), and the fields it shows are replaced, cleared ones included.
func TestConsoleConnectionSaveKeepsHiddenFields(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	up := newUpstream(t)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/api?test=false", fmt.Sprintf(`{"base_uri":%q,
		"allow_private_networks":true,"media_type":"application/xml","max_body_bytes":4096,
		"auth_failure":{"statuses":[401],"json_path":"error","values":["expired"]},
		"rate_limit":{"requests":5,"per_seconds":1,"max_wait_ms":250},"retry":{"max_attempts":2,"base_delay_ms":50},
		"headers":{"X-Old":"1"},"timeout_ms":900}`, up.URL)), 201)
	admin := &browser{t: t, s: s}
	admin.signIn(s.AdminKey)
	resp, body := admin.send("POST", "/console/w/default/connections/api/edit", url.Values{
		"base_uri": {up.URL}, "allow_private_networks": {"on"}, "requests": {"7"}, "per_seconds": {"2"}, "max_attempts": {"3"},
	}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("save: %d %s", resp.StatusCode, body)
	}
	got := decode[struct {
		MediaType    string `json:"media_type"`
		MaxBodyBytes int64  `json:"max_body_bytes"`
		AuthFailure  *struct {
			Statuses []int `json:"statuses"`
		} `json:"auth_failure"`
		RateLimit struct {
			Requests  int     `json:"requests"`
			PerSecs   float64 `json:"per_seconds"`
			MaxWaitMS int     `json:"max_wait_ms"`
		} `json:"rate_limit"`
		Retry struct {
			MaxAttempts int `json:"max_attempts"`
			BaseDelayMS int `json:"base_delay_ms"`
		} `json:"retry"`
		Headers   map[string]string `json:"headers"`
		TimeoutMS int               `json:"timeout_ms"`
	}](t, mustStatus(t, s.do("GET", "/v1/workspaces/default/connections/api", ""), 200))
	if got.MediaType != "application/xml" || got.MaxBodyBytes != 4096 || got.AuthFailure == nil || len(got.AuthFailure.Statuses) != 1 ||
		got.RateLimit.MaxWaitMS != 250 || got.Retry.BaseDelayMS != 50 {
		t.Errorf("fields the form does not show were lost: %+v", got)
	}
	if got.RateLimit.Requests != 7 || got.RateLimit.PerSecs != 2 || got.Retry.MaxAttempts != 3 || len(got.Headers) != 0 || got.TimeoutMS != 0 {
		t.Errorf("the form's own fields were not applied: %+v", got)
	}
}
