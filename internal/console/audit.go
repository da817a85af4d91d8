package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
)

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
