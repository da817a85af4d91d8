package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

// page is what every template gets.
type page struct {
	Title string
	User  *sesame.Principal
	Nav   nav
	WS    string // the workspace the page is about, if any
	Flash string
	Error string
	Data  any
	// Refresh reloads the page every so many seconds (the audit trail's live tail): a
	// <meta> refresh, so no script is needed.
	Refresh int
	// RefreshTo moves the browser on to this console path at once (a <meta> refresh).
	RefreshTo string
}

// nav says which sections the signed-in principal may open; the API decides the same.
type nav struct {
	Access bool // manage_users
	Audit  bool // read_audit
	Admin  bool
	Apps   bool // manage_apps
	// In the page's workspace:
	Credentials bool // manage_credentials
	Connections bool // manage_connections
	Agents      bool // manage_connections (the API's privilege for /agents)
	Functions   bool // run_functions or manage_connections
}

var funcs = template.FuncMap{
	"ago": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return ago(time.Since(*t))
	},
	"when": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"join": strings.Join,
	"ptr":  func(t time.Time) *time.Time { return &t },
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	default:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

// render writes a page. Pages are never cached: some show what only this person may see.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows an error page: the API's code and message for an API answer (they
// never hold a secret), "internal error" for anything else.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "Internal error."
	var ae *apiError
	var se *sesame.Error
	switch {
	case errors.As(err, &ae):
		status, msg = ae.Status, ae.Message
		if ae.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
	case errors.As(err, &se) && se.Code != sesame.CodeInternal:
		status, msg = http.StatusBadRequest, se.Message
		if sesame.Retryable(se.Code) {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
	default:
		c.log.Error("console", "path", r.URL.Path, "err", err)
	}
	c.render(w, r, status, "error", &page{Title: "Error", Error: msg})
}
