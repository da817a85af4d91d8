package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

type accessData struct {
	Privileges []sesame.Privilege // for the new-role form
	Groups     []sesame.Group
	Users      []sesame.User
	Roles      []sesame.Role
	Grants     []sesame.Grant
	Names      map[string]string // user ID → name, for the grants table
}

func (c *Console) access(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderAccess(w, r, p, base, http.StatusOK)
}

func (c *Console) renderAccess(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
	var users struct {
		Items []sesame.User `json:"items"`
	}
	var roles struct {
		Items []sesame.Role `json:"items"`
	}
	var grants struct {
		Items []sesame.Grant `json:"items"`
	}
	var groups struct {
		Items []sesame.Group `json:"items"`
	}
	for _, call := range []struct {
		path string
		out  any
	}{{"/v1/users?limit=500", &users}, {"/v1/roles?limit=500", &roles}, {"/v1/grants?limit=500", &grants}, {"/v1/groups?limit=500", &groups}} {
		if err := c.call(r, p, http.MethodGet, call.path, nil, call.out); err != nil {
			c.renderError(w, r, err)
			return
		}
	}
	d := accessData{Privileges: sesame.Privileges, Groups: groups.Items, Users: users.Items, Roles: roles.Items, Grants: grants.Items, Names: map[string]string{}}
	for _, u := range users.Items {
		d.Names[u.ID] = u.Name
	}
	for _, g := range groups.Items {
		d.Names[g.ID] = g.Name
	}
	base.Title, base.Data = "Access", d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "access", base)
}

func (c *Console) createUser(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	var u sesame.User
	if err := c.call(r, p, http.MethodPost, "/v1/users", map[string]string{"name": name}, &u); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Created user "+name+"."), http.StatusSeeOther)
}

// createRole creates a role with the privileges ticked; the privilege ceiling is the API's.
func (c *Console) createRole(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	privs := r.PostForm["privileges"]
	if privs == nil {
		privs = []string{}
	}
	if err := c.call(r, p, http.MethodPost, "/v1/roles", map[string]any{"name": name, "privileges": privs}, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Created role "+name+"."), http.StatusSeeOther)
}

func (c *Console) createGrant(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	body := map[string]string{"role": r.PostFormValue("role"), "workspace": strings.TrimSpace(r.PostFormValue("workspace"))}
	if g := r.PostFormValue("group"); g != "" {
		body["group"] = g
	} else {
		body["user"] = r.PostFormValue("user")
	}
	if err := c.call(r, p, http.MethodPost, "/v1/grants", body, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Granted "+body["role"]+"."), http.StatusSeeOther)
}

type keysData struct {
	UserID string
	Keys   []sesame.APIKey
	// NewKey is the key just created: shown once, in this response only, as text (never in
	// an attribute or a field), with Cache-Control: no-store like every page.
	NewKey     string
	NewKeyName string
	Now        time.Time
}

func (c *Console) userKeys(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderKeys(w, r, p, base, http.StatusOK, keysData{})
}

func (c *Console) renderKeys(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int, d keysData) {
	id := r.PathValue("id")
	var keys struct {
		Items []sesame.APIKey `json:"items"`
	}
	if err := c.call(r, p, http.MethodGet, "/v1/users/"+url.PathEscape(id)+"/keys?limit=500", nil, &keys); err != nil {
		c.renderError(w, r, err)
		return
	}
	d.UserID, d.Keys, d.Now = id, keys.Items, time.Now()
	base.Title, base.Data = "API keys", d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "keys", base)
}

// createKey issues a key and shows it on this response, once.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id := r.PathValue("id")
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name"))}
	if exp := strings.TrimSpace(r.PostFormValue("expires")); exp != "" {
		t, err := time.Parse("2006-01-02", exp)
		if err != nil {
			base.Error = "Expiry must be a date (YYYY-MM-DD)."
			c.renderKeys(w, r, p, base, http.StatusBadRequest, keysData{})
			return
		}
		body["expires_at"] = t.UTC()
	}
	var k struct {
		sesame.APIKey
		Key string `json:"key"`
	}
	if err := c.call(r, p, http.MethodPost, "/v1/users/"+url.PathEscape(id)+"/keys", body, &k); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderKeys(w, r, p, base, status, keysData{})
		})
		return
	}
	c.renderKeys(w, r, p, base, http.StatusCreated, keysData{NewKey: k.Key, NewKeyName: k.Name})
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id, key := r.PathValue("id"), r.PathValue("key")
	if err := c.call(r, p, http.MethodDelete, "/v1/keys/"+url.PathEscape(key), nil, nil); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderKeys(w, r, p, base, status, keysData{})
		})
		return
	}
	if key == p.KeyID {
		// The session acted as this key: it ended with it.
		http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/access/users/"+url.PathEscape(id)+"?done="+url.QueryEscape("Revoked key "+key+"."), http.StatusSeeOther)
}

// --- audit ---

type auditData struct {
	Events []sesame.AuditEvent
	Filter map[string]string
	Query  string
	Verify *verifyView
	Tail   bool
}

type verifyView struct {
	OK     bool
	Events int64
	Head   int64
	Broken string
	Lost   int64
}

var auditFilters = []string{"workspace", "user", "key", "action", "result"}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderAudit(w, r, p, base, nil)
}

func (c *Console) auditQuery(r *http.Request) (url.Values, map[string]string) {
	q := url.Values{}
	f := map[string]string{}
	for _, name := range auditFilters {
		if v := strings.TrimSpace(r.FormValue(name)); v != "" {
			q.Set(name, v)
			f[name] = v
		}
	}
	return q, f
}

func (c *Console) renderAudit(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, v *verifyView) {
	q, f := c.auditQuery(r)
	list := q
	list.Set("order", "desc")
	list.Set("limit", "100")
	var events struct {
		Items []sesame.AuditEvent `json:"items"`
	}
	if err := c.call(r, p, http.MethodGet, "/v1/audit?"+list.Encode(), nil, &events); err != nil {
		c.renderError(w, r, err)
		return
	}
	q.Del("order")
	q.Del("limit")
	tail := r.URL.Query().Get("tail") == "1" && v == nil
	if tail {
		base.Refresh = 5
	}
	base.Title, base.Data = "Audit trail", auditData{Events: events.Items, Filter: f, Query: q.Encode(), Verify: v, Tail: tail}
	c.render(w, r, http.StatusOK, "audit", base)
}

func (c *Console) verifyAudit(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	var res struct {
		OK          bool  `json:"ok"`
		Events      int64 `json:"events"`
		Head        struct{ Seq int64 }
		FirstBroken *struct {
			Seq    int64  `json:"seq"`
			Reason string `json:"reason"`
		} `json:"first_broken"`
		Lost int64 `json:"lost"`
	}
	if err := c.call(r, p, http.MethodPost, "/v1/audit/verify", nil, &res); err != nil {
		c.renderError(w, r, err)
		return
	}
	v := &verifyView{OK: res.OK, Events: res.Events, Head: res.Head.Seq, Lost: res.Lost}
	if res.FirstBroken != nil {
		v.Broken = "event " + itoa(int(res.FirstBroken.Seq)) + ": " + res.FirstBroken.Reason
	}
	c.renderAudit(w, r, p, base, v)
}

// exportAudit streams the filtered trail as JSON lines, as GET /v1/audit?format=jsonl does.
func (c *Console) exportAudit(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	q, _ := c.auditQuery(r)
	q.Set("format", "jsonl")
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/audit?"+q.Encode(), nil)
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	ew := &exportWriter{w: w}
	c.cfg.API.ServeAs(ew, req, p)
	if ew.failed != nil {
		e := &apiError{Status: ew.failed.status}
		if jsonUnmarshal(ew.failed.body.Bytes(), e) != nil || e.Code == "" {
			e.Code, e.Message = sesame.CodeInternal, "internal error"
		}
		c.renderError(w, r, e)
	}
}

// exportWriter streams a successful export to the browser as a download; a refusal is
// kept and shown as a page instead.
type exportWriter struct {
	w      http.ResponseWriter
	hdr    http.Header
	failed *recorder
	wrote  bool
}

func (e *exportWriter) Header() http.Header {
	if e.hdr == nil {
		e.hdr = http.Header{}
	}
	return e.hdr
}

func (e *exportWriter) WriteHeader(code int) {
	if e.wrote || e.failed != nil {
		return
	}
	if code != http.StatusOK {
		e.failed = &recorder{header: e.hdr, status: code}
		return
	}
	e.wrote = true
	h := e.w.Header()
	for _, k := range []string{"Content-Type", "X-Request-Id"} {
		if v := e.Header().Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Content-Disposition", `attachment; filename="sesame-audit.jsonl"`)
	h.Set("Cache-Control", "no-store")
	e.w.WriteHeader(code)
}

func (e *exportWriter) Write(b []byte) (int, error) {
	if !e.wrote && e.failed == nil {
		e.WriteHeader(http.StatusOK)
	}
	if e.failed != nil {
		return e.failed.body.Write(b)
	}
	return e.w.Write(b)
}

// Flush passes the API's flushes on, so the export streams.
func (e *exportWriter) Flush() {
	if f, ok := e.w.(http.Flusher); ok && e.wrote {
		f.Flush()
	}
}
