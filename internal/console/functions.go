package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
	"github.com/sesamehq/sesame/internal/gateway"
)

func fnsPath(ws string) string { return "/v1/workspaces/" + url.PathEscape(ws) + "/functions" }

type functionsData struct {
	Items  []gateway.FunctionView
	Manage bool // manage_connections: edit and create
	Run    bool // run_functions: Try it
}

func (c *Console) functions(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	items, err := listOf[gateway.FunctionView](c, r, p, fnsPath(ws))
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	base.Title, base.Flash = "Functions in "+ws, r.URL.Query().Get("done")
	base.Data = functionsData{Items: items, Manage: c.can(r, p, sesame.PrivManageConnections, ws), Run: c.can(r, p, sesame.PrivRunFunctions, ws)}
	c.render(w, r, http.StatusOK, "functions", base)
}

type srcLine struct {
	N    int
	Text string
	Bad  bool
}

type functionForm struct {
	New     bool
	Name    string
	Source  string
	Action  string
	ErrLine int
	Lines   []srcLine // the source, numbered, with the error's line marked
}

const sampleFunction = `connection: my-connection
method: GET
path: /items/{id}
parameters:
  id: {location: path, required: true, type: string}
outputTransform: .
`

func (c *Console) functionForm(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	f := functionForm{New: name == "", Source: sampleFunction, Action: "/console/w/" + url.PathEscape(ws) + "/functions/new"}
	if name != "" {
		var v gateway.FunctionView
		if err := c.call(r, p, http.MethodGet, fnsPath(ws)+"/"+url.PathEscape(name), nil, &v); err != nil {
			c.renderError(w, r, err)
			return
		}
		f.Name, f.Source = name, v.Source
		f.Action = "/console/w/" + url.PathEscape(ws) + "/functions/" + url.PathEscape(name) + "/edit"
	}
	c.renderFunctionForm(w, r, base, http.StatusOK, f)
}

func (c *Console) renderFunctionForm(w http.ResponseWriter, r *http.Request, base *page, status int, f functionForm) {
	base.Title = "New function in " + base.WS
	if !f.New {
		base.Title = "Edit function " + f.Name
	}
	base.Data = f
	c.render(w, r, status, "function", base)
}

var lineInMessage = regexp.MustCompile(`^line (\d+):`)

// saveFunction stores the YAML through PUT on the API; a parse error ("line N: …") is
// shown with the source, its line marked.
func (c *Console) saveFunction(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	f := functionForm{New: name == "", Name: name, Source: strings.ReplaceAll(r.PostFormValue("source"), "\r\n", "\n")}
	if f.New {
		f.Name = strings.TrimSpace(r.PostFormValue("name"))
		f.Action = "/console/w/" + url.PathEscape(ws) + "/functions/new"
	} else {
		f.Action = "/console/w/" + url.PathEscape(ws) + "/functions/" + url.PathEscape(name) + "/edit"
	}
	err := c.call(r, p, http.MethodPut, fnsPath(ws)+"/"+url.PathEscape(f.Name), yamlBody(f.Source), nil)
	if err == nil {
		http.Redirect(w, r, "/console/w/"+url.PathEscape(ws)+"/functions?done="+url.QueryEscape("Saved function "+f.Name+"."), http.StatusSeeOther)
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden {
		c.renderError(w, r, err)
		return
	}
	base.Error = "Not saved: " + ae.Message
	if m := lineInMessage.FindStringSubmatch(ae.Message); m != nil {
		f.ErrLine, _ = strconv.Atoi(m[1])
	}
	for i, line := range strings.Split(f.Source, "\n") {
		f.Lines = append(f.Lines, srcLine{N: i + 1, Text: line, Bad: i+1 == f.ErrLine})
	}
	c.renderFunctionForm(w, r, base, ae.Status, f)
}

type tryParam struct {
	Name, Location, Type, Value, Description string
	Required                                 bool
}

type tryData struct {
	Name   string
	Params []tryParam
	Result *tryResult
}

type tryResult struct {
	Status int
	Header []kv
	Body   string
}

// tryParams lists the parameters a caller gives: credential references are filled in by
// the server and never appear.
func tryParams(fn *function.Function, form func(string) string) []tryParam {
	var out []tryParam
	if fn == nil {
		return nil
	}
	for name, prm := range fn.Parameters {
		if function.IsAuth(name, prm) {
			continue
		}
		tp := tryParam{Name: name, Location: prm.Location, Type: prm.Type, Required: prm.Required, Description: prm.Description}
		if prm.Value != nil {
			tp.Value = *prm.Value
		}
		if form != nil {
			tp.Value = form("p." + name)
		}
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Console) tryFunction(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	var v gateway.FunctionView
	if err := c.call(r, p, http.MethodGet, fnsPath(ws)+"/"+url.PathEscape(name), nil, &v); err != nil {
		c.renderError(w, r, err)
		return
	}
	d := tryData{Name: name}
	if r.Method == http.MethodGet {
		d.Params = tryParams(v.Function, nil)
	} else {
		d.Params = tryParams(v.Function, r.PostFormValue)
		params := map[string]any{}
		for _, tp := range d.Params {
			if tp.Value == "" {
				continue
			}
			params[tp.Name] = typedValue(tp.Type, tp.Value)
		}
		var res gateway.CallResult
		err := c.call(r, p, http.MethodPost, fnsPath(ws)+"/"+url.PathEscape(name)+"/call", map[string]any{"parameters": params}, &res)
		var ae *apiError
		switch {
		case err == nil:
			d.Result = &tryResult{Status: res.Status, Body: pretty(res.Body)}
			for k, val := range res.Headers {
				d.Result.Header = append(d.Result.Header, kv{k, val})
			}
			sort.Slice(d.Result.Header, func(i, j int) bool { return d.Result.Header[i].Name < d.Result.Header[j].Name })
		case errors.As(err, &ae) && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden && ae.Status != http.StatusInternalServerError:
			base.Error = "The call failed: " + string(ae.Code) + ": " + ae.Message
		default:
			c.renderError(w, r, err)
			return
		}
	}
	base.Title, base.Data = "Try "+name, d
	c.render(w, r, http.StatusOK, "try", base)
}

// typedValue turns a form value into the JSON value the parameter's type asks for; a
// value that does not parse is sent as text, and the API says what is wrong with it.
func typedValue(typ, s string) any {
	switch typ {
	case "number", "integer":
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return n
		}
	case "boolean":
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	case "array", "object":
		var v any
		if json.Unmarshal([]byte(s), &v) == nil {
			return v
		}
	}
	return s
}

func pretty(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}
