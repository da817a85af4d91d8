package console

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/agent"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/vault"
)

type connectionsData struct {
	Items  []gateway.ConnectionView
	Tested string // the connection the result is for
	Result *gateway.TestResult
}

func connsPath(ws string) string { return "/v1/workspaces/" + url.PathEscape(ws) + "/connections" }

func (c *Console) connections(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderConnections(w, r, p, base, http.StatusOK, connectionsData{})
}

func (c *Console) renderConnections(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int, d connectionsData) {
	ws := r.PathValue("ws")
	items, err := listOf[gateway.ConnectionView](c, r, p, connsPath(ws))
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	d.Items = items
	base.Title, base.Data = "Connections in "+ws, d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "connections", base)
}

// testConnection runs the connection's test request and shows status, latency and the
// upstream's error on the list.
func (c *Console) testConnection(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	var res gateway.TestResult
	if err := c.call(r, p, http.MethodPost, connsPath(ws)+"/"+url.PathEscape(name)+"/test", nil, &res); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status >= 500 && ae.Status != http.StatusBadGateway && ae.Status != http.StatusGatewayTimeout || ae.Status == http.StatusUnauthorized {
			c.renderError(w, r, err)
			return
		}
		res = gateway.TestResult{OK: false, Error: ae.Message}
	}
	c.renderConnections(w, r, p, base, http.StatusOK, connectionsData{Tested: name, Result: &res})
}

type connectionForm struct {
	New         bool
	Name        string
	BaseURI     string
	Credential  string
	Credentials []string // nil: the person may not list credentials; a text input instead
	Headers     string
	Requests    string
	PerSeconds  string
	Burst       string
	MaxAttempts string
	TimeoutMS   string
	TestMethod  string
	TestPath    string
	TestExpect  string
	AllowPriv   bool
	RunTest     bool
	// Agent is the on-premise agent the connection routes through. Setting or changing it
	// needs admin (the API's rule): AgentAdmin shows a picker of Agents, otherwise the
	// value is shown read-only and a save keeps the connection's current agent.
	Agent      string
	AgentAdmin bool
	Agents     []string
	Action     string
	Result     *gateway.TestResult
}

func (c *Console) connectionForm(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	f := connectionForm{New: name == "", RunTest: true, Action: "/console/w/" + url.PathEscape(ws) + "/connections/new"}
	if name != "" {
		var v gateway.ConnectionView
		if err := c.call(r, p, http.MethodGet, connsPath(ws)+"/"+url.PathEscape(name), nil, &v); err != nil {
			c.renderError(w, r, err)
			return
		}
		f = formOfConnection(v)
		f.Action = "/console/w/" + url.PathEscape(ws) + "/connections/" + url.PathEscape(name) + "/edit"
	}
	f.Credentials = c.credentialKeys(r, p, ws)
	c.agentChoice(r, p, ws, &f)
	c.renderConnectionForm(w, r, base, http.StatusOK, f)
}

func (c *Console) renderConnectionForm(w http.ResponseWriter, r *http.Request, base *page, status int, f connectionForm) {
	base.Title = "New connection in " + base.WS
	if !f.New {
		base.Title = "Edit connection " + f.Name
	}
	base.Data = f
	c.render(w, r, status, "connection", base)
}

// credentialKeys lists the workspace's credential keys for the picker, if p may list them.
func (c *Console) credentialKeys(r *http.Request, p sesame.Principal, ws string) []string {
	if !c.can(r, p, sesame.PrivManageCredentials, ws) {
		return nil
	}
	items, err := listOf[vault.CredentialView](c, r, p, "/v1/workspaces/"+url.PathEscape(ws)+"/credentials")
	if err != nil {
		return nil
	}
	out := []string{""}
	for _, v := range items {
		out = append(out, v.Key)
	}
	return out
}

// agentChoice fills the agent picker for an admin: "" (none), the workspace's agents, and
// the connection's current agent even if it is gone.
func (c *Console) agentChoice(r *http.Request, p sesame.Principal, ws string, f *connectionForm) {
	f.AgentAdmin = c.can(r, p, sesame.PrivAdmin, "")
	if !f.AgentAdmin {
		return
	}
	f.Agents = []string{""}
	seen := false
	if items, err := listOf[agent.View](c, r, p, agentsPath(ws)); err == nil {
		for _, v := range items {
			f.Agents = append(f.Agents, v.Name)
			seen = seen || v.Name == f.Agent
		}
	}
	if f.Agent != "" && !seen {
		f.Agents = append(f.Agents, f.Agent)
	}
}

// stored is the connection as saved now, or nil for a new one: a save starts from it, so
// that fields the form does not show (media_type, auth, max_body_bytes, auth_failure, and
// the finer retry and rate-limit settings) are kept.
func (c *Console) stored(r *http.Request, p sesame.Principal, ws, name string) (*gateway.Connection, error) {
	if name == "" {
		return nil, nil
	}
	var v gateway.ConnectionView
	err := c.call(r, p, http.MethodGet, connsPath(ws)+"/"+url.PathEscape(name), nil, &v)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v.Connection, nil
}

func formOfConnection(v gateway.ConnectionView) connectionForm {
	f := connectionForm{Name: v.Name, BaseURI: v.BaseURI, Credential: v.Credential, AllowPriv: v.AllowPrivateNetworks, RunTest: true, Agent: v.Agent}
	var hs []string
	for k, val := range v.Headers {
		hs = append(hs, k+": "+val)
	}
	sort.Strings(hs)
	f.Headers = strings.Join(hs, "\n")
	if v.RateLimit != nil {
		f.Requests, f.PerSeconds = strconv.Itoa(v.RateLimit.Requests), strconv.FormatFloat(v.RateLimit.PerSeconds, 'f', -1, 64)
		if v.RateLimit.Burst > 0 {
			f.Burst = strconv.Itoa(v.RateLimit.Burst)
		}
	}
	if v.Retry != nil {
		f.MaxAttempts = strconv.Itoa(v.Retry.MaxAttempts)
	}
	if v.TimeoutMS > 0 {
		f.TimeoutMS = strconv.Itoa(v.TimeoutMS)
	}
	if v.Test != nil {
		f.TestMethod, f.TestPath = v.Test.Method, v.Test.Path
		if v.Test.ExpectStatus > 0 {
			f.TestExpect = strconv.Itoa(v.Test.ExpectStatus)
		}
	}
	return f
}

// saveConnection creates or replaces a connection through PUT on the API; by default the
// API runs the test request first and refuses a connection whose test fails.
func (c *Console) saveConnection(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	f := connectionForm{
		New: name == "", Name: name,
		BaseURI: strings.TrimSpace(r.PostFormValue("base_uri")), Credential: r.PostFormValue("credential"),
		Headers: r.PostFormValue("headers"), Requests: r.PostFormValue("requests"), PerSeconds: r.PostFormValue("per_seconds"),
		Burst: r.PostFormValue("burst"), MaxAttempts: r.PostFormValue("max_attempts"), TimeoutMS: r.PostFormValue("timeout_ms"),
		TestMethod: r.PostFormValue("test_method"), TestPath: r.PostFormValue("test_path"), TestExpect: r.PostFormValue("test_expect"),
		AllowPriv: r.PostFormValue("allow_private_networks") != "", RunTest: r.PostFormValue("run_test") != "",
	}
	if f.New {
		f.Name = strings.TrimSpace(r.PostFormValue("name"))
		f.Action = "/console/w/" + url.PathEscape(ws) + "/connections/new"
	} else {
		f.Action = "/console/w/" + url.PathEscape(ws) + "/connections/" + url.PathEscape(name) + "/edit"
	}
	f.Credentials = c.credentialKeys(r, p, ws)
	old, err := c.stored(r, p, ws, f.Name)
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	conn := gateway.Connection{}
	if old != nil {
		conn = *old
	}
	// Only an admin chooses the agent; anyone else's save keeps the current one (the
	// form's value is ignored, so a crafted post cannot route traffic through an agent
	// either: the API refuses that too).
	if c.can(r, p, sesame.PrivAdmin, "") {
		f.Agent = strings.TrimSpace(r.PostFormValue("agent"))
	} else {
		f.Agent = conn.Agent
	}
	c.agentChoice(r, p, ws, &f)
	again := func(status int, msg string) {
		base.Error = msg
		c.renderConnectionForm(w, r, base, status, f)
	}
	conn.BaseURI, conn.AllowPrivateNetworks, conn.Credential, conn.Agent = f.BaseURI, f.AllowPriv, f.Credential, f.Agent
	conn.Headers = nil
	if strings.TrimSpace(f.Headers) != "" {
		hs := map[string]string{}
		for _, line := range strings.Split(f.Headers, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				again(http.StatusBadRequest, "Headers: write one \"Name: value\" per line.")
				return
			}
			hs[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		conn.Headers = hs
	}
	num := func(label, s string) (float64, bool) {
		if strings.TrimSpace(s) == "" {
			return 0, true
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || n < 0 {
			again(http.StatusBadRequest, label+" must be a number.")
			return 0, false
		}
		return n, true
	}
	req, ok1 := num("Requests", f.Requests)
	per, ok2 := num("Per seconds", f.PerSeconds)
	burst, ok3 := num("Burst", f.Burst)
	attempts, ok4 := num("Max attempts", f.MaxAttempts)
	timeout, ok5 := num("Timeout", f.TimeoutMS)
	expect, ok6 := num("Expected status", f.TestExpect)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return
	}
	// The form's fields replace their stored values; the finer settings it does not show
	// (the rate limit's max wait, the retry delays) stay.
	if req > 0 || per > 0 {
		rl := gateway.RateLimit{}
		if conn.RateLimit != nil {
			rl = *conn.RateLimit
		}
		rl.Requests, rl.PerSeconds, rl.Burst = int(req), per, int(burst)
		conn.RateLimit = &rl
	} else {
		conn.RateLimit = nil
	}
	if attempts > 0 {
		rt := gateway.Retry{}
		if conn.Retry != nil {
			rt = *conn.Retry
		}
		rt.MaxAttempts = int(attempts)
		conn.Retry = &rt
	} else {
		conn.Retry = nil
	}
	conn.TimeoutMS = int(timeout)
	conn.Test = nil
	if f.TestPath != "" || f.TestMethod != "" || expect > 0 {
		conn.Test = &gateway.TestRequest{Method: f.TestMethod, Path: f.TestPath, ExpectStatus: int(expect)}
	}
	path := connsPath(ws) + "/" + url.PathEscape(f.Name) + "?test=" + strconv.FormatBool(f.RunTest)
	rec, err := c.raw(r.Context(), r, p, http.MethodPut, path, conn)
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	if rec.status >= 200 && rec.status < 300 {
		http.Redirect(w, r, "/console/w/"+url.PathEscape(ws)+"/connections?done="+url.QueryEscape("Saved connection "+f.Name+"."), http.StatusSeeOther)
		return
	}
	var failed struct {
		apiError
		Test *gateway.TestResult `json:"test"`
	}
	_ = jsonUnmarshal(rec.body.Bytes(), &failed)
	if rec.status >= 500 && rec.status != http.StatusBadGateway || rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden || failed.Code == "" {
		failed.apiError.Status = rec.status
		if failed.Code == "" {
			failed.Code, failed.Message = sesame.CodeInternal, "internal error"
		}
		c.renderError(w, r, &failed.apiError)
		return
	}
	f.Result = failed.Test
	again(rec.status, "Not saved: "+failed.Message)
}

func (c *Console) confirmDelete(kind, ws, name, back string) confirmData {
	return confirmData{
		Question: "Delete " + kind + " " + name + " from " + ws + "? Functions or callers that use it stop working.",
		Action:   back + "/" + url.PathEscape(name) + "/delete", Button: "Delete " + kind + " " + name, Back: back,
	}
}

func (c *Console) confirmDeleteConnection(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	base.Title, base.Data = "Delete connection", c.confirmDelete("connection", ws, r.PathValue("name"), "/console/w/"+url.PathEscape(ws)+"/connections")
	c.render(w, r, http.StatusOK, "confirm", base)
}

func (c *Console) deleteConnection(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	if err := c.call(r, p, http.MethodDelete, connsPath(ws)+"/"+url.PathEscape(name), nil, nil); err != nil {
		c.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/w/"+url.PathEscape(ws)+"/connections?done="+url.QueryEscape("Deleted connection "+name+"."), http.StatusSeeOther)
}

func (c *Console) confirmDeleteFunction(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	base.Title, base.Data = "Delete function", c.confirmDelete("function", ws, r.PathValue("name"), "/console/w/"+url.PathEscape(ws)+"/functions")
	c.render(w, r, http.StatusOK, "confirm", base)
}

func (c *Console) deleteFunction(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	if err := c.call(r, p, http.MethodDelete, fnsPath(ws)+"/"+url.PathEscape(name), nil, nil); err != nil {
		c.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/w/"+url.PathEscape(ws)+"/functions?done="+url.QueryEscape("Deleted function "+name+"."), http.StatusSeeOther)
}
