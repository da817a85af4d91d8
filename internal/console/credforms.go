package console

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/vault"
)

// formField is one input of a credential form, generated from the credential registry, so
// a new credential type gets its form for free. A secret field's Value is always empty:
// secrets are never written into a page, not even back into a form that failed.
type formField struct {
	Name     string
	Input    string // text, password, secretarea, file, select, textarea, number, checkbox, url
	Options  []string
	Value    string
	Checked  bool
	Required bool
	Secret   bool
	State    string // secret fields: "set, changed 3 days ago", "needs secret", "not set"
	Help     string
	Error    string
}

type credentialForm struct {
	New    bool
	Key    string
	Type   string
	Types  []string
	Fields []formField
	Action string
	KeyErr string
}

func credentialTypes() []string { return credential.Types() }

func credentialRowOf(v vault.CredentialView) credentialRow {
	row := credentialRow{Key: v.Key, Type: v.Type, OAuth: v.Type == "oauth2" && v.Fields["grant"] == "authorization_code"}
	kind, _ := credential.Lookup(v.Type)
	names := make([]string, 0, len(v.Fields))
	for n := range v.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		val := v.Fields[n]
		if n == "hosts" {
			row.Hosts = publicText(val)
			continue
		}
		if f, ok := fieldOf(kind, n); ok && f.Secret {
			row.Secrets = append(row.Secrets, stateOf(val, n))
			continue
		}
		if _, isState := val.(map[string]any); isState && kind == nil {
			continue
		}
		row.Public = append(row.Public, kv{n, publicText(val)})
	}
	return row
}

func fieldOf(k *credential.Kind, name string) (credential.Field, bool) {
	if k == nil {
		return credential.Field{}, false
	}
	return k.Field(name)
}

// stateOf reads a secret field's state from the API's view ({"set", "needs_secret",
// "updated_at"}); the view never holds the value.
func stateOf(val any, name string) secretState {
	b, _ := json.Marshal(val)
	var st vault.SecretState
	_ = json.Unmarshal(b, &st)
	switch {
	case st.NeedsSecret:
		return secretState{Name: name, State: "needs secret", Needs: true}
	case st.Set && st.UpdatedAt != nil:
		return secretState{Name: name, State: "set, changed " + ago(time.Since(*st.UpdatedAt))}
	case st.Set:
		return secretState{Name: name, State: "set"}
	}
	return secretState{Name: name, State: "not set"}
}

func publicText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			parts = append(parts, fmt.Sprint(e))
		}
		return strings.Join(parts, " ")
	case map[string]any:
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// buildForm lays out the form for kind, with the stored credential's public values and
// secret states when editing (view may be nil).
func buildForm(kind *credential.Kind, view *vault.CredentialView) []formField {
	fields := append(append([]credential.Field{}, kind.Fields...), credential.Field{Name: "hosts", Type: credential.StringList})
	out := make([]formField, 0, len(fields))
	for _, f := range fields {
		ff := formField{Name: f.Name, Required: f.Required, Secret: f.Secret}
		switch {
		case f.Secret && f.Name == "private_key":
			ff.Input, ff.Help = "secretarea", "PEM (PKCS#1, PKCS#8 or SEC1); pasted \\n sequences are repaired."
		case f.Secret && f.Name == "pkcs12":
			ff.Input, ff.Help = "file", "PKCS#12 / PFX file."
		case f.Secret:
			ff.Input = "password"
		case len(f.Enum) > 0:
			ff.Input, ff.Options = "select", append([]string{""}, f.Enum...)
			if f.Default != "" {
				ff.Options = f.Enum
			}
		case f.Type == credential.Object:
			ff.Input, ff.Help = "textarea", "A JSON object."
		case f.Type == credential.StringList:
			ff.Input, ff.Help = "text", "Separated by spaces or commas."
		case f.Type == credential.Integer:
			ff.Input = "number"
		case f.Type == credential.Bool:
			ff.Input = "checkbox"
		case f.Type == credential.URL:
			ff.Input = "url"
		default:
			ff.Input = "text"
		}
		if f.Name == "hosts" {
			ff.Help = "Hosts this credential may be sent to, separated by spaces (empty: bound to the origin of the first connection or function that uses it). Widening them needs the secrets again, or an admin."
		}
		if !f.Secret && ff.Value == "" && f.Default != "" && ff.Input != "select" {
			ff.Help = strings.TrimSpace(ff.Help + " Default: " + f.Default + ".")
		}
		if view != nil {
			val, ok := view.Fields[f.Name]
			if f.Secret {
				ff.State = "not set"
				if ok {
					ff.State = stateOf(val, f.Name).State
				}
			} else if ok {
				if f.Type == credential.Bool {
					ff.Checked, _ = val.(bool)
				} else {
					ff.Value = publicText(val)
				}
			}
		} else if len(f.Enum) > 0 && f.Default != "" {
			ff.Value = f.Default
		}
		out = append(out, ff)
	}
	return out
}

// fieldsFromForm turns a submitted form into the API's credential fields. An empty secret
// field keeps the stored value (if there is one): an edit changes a secret only when a new
// one is typed. Typed values are only ever sent on, never echoed.
func fieldsFromForm(r *http.Request, kind *credential.Kind, view *vault.CredentialView) (map[string]any, map[string]string) {
	out := map[string]any{}
	errs := map[string]string{}
	fields := append(append([]credential.Field{}, kind.Fields...), credential.Field{Name: "hosts", Type: credential.StringList})
	for _, f := range fields {
		v := r.PostFormValue(f.Name)
		switch {
		case f.Secret && f.Name == "pkcs12":
			if file, _, err := r.FormFile(f.Name); err == nil {
				b, err := io.ReadAll(io.LimitReader(file, 64<<10+1))
				file.Close()
				if err != nil || len(b) > 64<<10 {
					errs[f.Name] = "the file is too large (64 KiB at most)"
					continue
				}
				if len(b) > 0 {
					out[f.Name] = base64.StdEncoding.EncodeToString(b)
					continue
				}
			}
			if storedSecret(view, f.Name) {
				out[f.Name] = map[string]bool{"keep": true}
			}
		case f.Secret:
			if v != "" {
				out[f.Name] = v
			} else if storedSecret(view, f.Name) {
				out[f.Name] = map[string]bool{"keep": true}
			}
		case f.Type == credential.Bool:
			out[f.Name] = v == "on" || v == "true"
			if view == nil && v == "" {
				delete(out, f.Name)
			}
		case v == "":
		case f.Type == credential.StringList:
			out[f.Name] = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\r' || r == '\t' })
		case f.Type == credential.Object:
			var obj map[string]any
			if err := json.Unmarshal([]byte(v), &obj); err != nil {
				errs[f.Name] = "must be a JSON object"
				continue
			}
			out[f.Name] = obj
		case f.Type == credential.Integer:
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				errs[f.Name] = "must be a whole number"
				continue
			}
			out[f.Name] = n
		default:
			out[f.Name] = v
		}
	}
	return out, errs
}

func storedSecret(view *vault.CredentialView, name string) bool {
	if view == nil {
		return false
	}
	val, ok := view.Fields[name]
	if !ok {
		return false
	}
	st := stateOf(val, name)
	return !st.Needs && st.State != "not set"
}

var fieldInMessage = regexp.MustCompile(`field "([a-z0-9_]+)"`)

// fieldOfError names the form field an API error is about ("field \"password\" …").
func fieldOfError(msg string) string {
	if m := fieldInMessage.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

func credPath(ws, key string) string {
	return "/v1/workspaces/" + url.PathEscape(ws) + "/credentials/" + url.PathEscape(key)
}

func (c *Console) newCredential(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	t := r.URL.Query().Get("type")
	kind, ok := credential.Lookup(t)
	if !ok {
		t = "api_key"
		kind, _ = credential.Lookup(t)
	}
	c.renderCredentialForm(w, r, base, http.StatusOK, credentialForm{
		New: true, Type: t, Types: credentialTypes(), Fields: buildForm(kind, nil),
		Action: "/console/w/" + url.PathEscape(ws) + "/credentials/new",
	})
}

func (c *Console) editCredential(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, key := r.PathValue("ws"), r.PathValue("key")
	var v vault.CredentialView
	if err := c.call(r, p, http.MethodGet, credPath(ws, key), nil, &v); err != nil {
		c.renderError(w, r, err)
		return
	}
	kind, ok := credential.Lookup(v.Type)
	if !ok {
		c.renderError(w, r, sesame.Errorf(sesame.CodeUnknownType, "unknown credential type %q", v.Type))
		return
	}
	c.renderCredentialForm(w, r, base, http.StatusOK, credentialForm{
		Key: key, Type: v.Type, Fields: buildForm(kind, &v),
		Action: "/console/w/" + url.PathEscape(ws) + "/credentials/" + url.PathEscape(key) + "/edit",
	})
}

func (c *Console) renderCredentialForm(w http.ResponseWriter, r *http.Request, base *page, status int, f credentialForm) {
	if f.New {
		base.Title = "New credential in " + base.WS
	} else {
		base.Title = "Edit " + f.Key
	}
	base.Data = f
	c.render(w, r, status, "credential", base)
}

// saveCredential creates (…/new) or updates (…/{key}/edit) a credential through PUT on the
// API. Errors are shown next to the field they name; the form comes back with its public
// values and every secret input empty.
func (c *Console) saveCredential(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		c.renderError(w, r, sesame.Errorf(sesame.CodeInvalidArgument, "the form could not be read"))
		return
	}
	ws, key := r.PathValue("ws"), r.PathValue("key")
	isNew := key == ""
	form := credentialForm{New: isNew, Types: credentialTypes()}
	var view *vault.CredentialView
	t := r.PostFormValue("type")
	if isNew {
		key = strings.TrimSpace(r.PostFormValue("key"))
		form.Action = "/console/w/" + url.PathEscape(ws) + "/credentials/new"
	} else {
		var v vault.CredentialView
		if err := c.call(r, p, http.MethodGet, credPath(ws, key), nil, &v); err != nil {
			c.renderError(w, r, err)
			return
		}
		view, t = &v, v.Type
		form.Action = "/console/w/" + url.PathEscape(ws) + "/credentials/" + url.PathEscape(key) + "/edit"
	}
	kind, ok := credential.Lookup(t)
	if !ok {
		c.renderError(w, r, sesame.Errorf(sesame.CodeUnknownType, "unknown credential type"))
		return
	}
	form.Key, form.Type = key, t
	form.Fields = buildForm(kind, view)
	keep := func() {
		// Keep what was typed in public fields; never a secret.
		for i := range form.Fields {
			f := &form.Fields[i]
			if f.Secret {
				continue
			}
			if f.Input == "checkbox" {
				f.Checked = r.PostFormValue(f.Name) != ""
			} else {
				f.Value = r.PostFormValue(f.Name)
			}
		}
	}
	fields, errs := fieldsFromForm(r, kind, view)
	if isNew && key == "" {
		form.KeyErr = "a key is required"
	}
	if len(errs) > 0 || form.KeyErr != "" {
		keep()
		for i := range form.Fields {
			form.Fields[i].Error = errs[form.Fields[i].Name]
		}
		base.Error = "Fix the fields marked below."
		c.renderCredentialForm(w, r, base, http.StatusBadRequest, form)
		return
	}
	if isNew {
		// A new credential must not replace one of the same key unseen.
		err := c.call(r, p, http.MethodGet, credPath(ws, key), nil, nil)
		var ae *apiError
		if err == nil {
			keep()
			form.KeyErr = "a credential with this key exists; edit it instead"
			base.Error = "Fix the fields marked below."
			c.renderCredentialForm(w, r, base, http.StatusConflict, form)
			return
		}
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			c.renderError(w, r, err)
			return
		}
	}
	err := c.call(r, p, http.MethodPut, credPath(ws, key), map[string]any{"type": t, "fields": fields}, nil)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden {
			c.renderError(w, r, err)
			return
		}
		keep()
		name := fieldOfError(ae.Message)
		placed := false
		for i := range form.Fields {
			if form.Fields[i].Name == name {
				form.Fields[i].Error, placed = ae.Message, true
			}
		}
		if !placed && (ae.Code == sesame.CodeInvalidName) {
			form.KeyErr, placed = ae.Message, true
		}
		base.Error = "Not saved: fix the fields marked below."
		if !placed {
			base.Error = "Not saved: " + ae.Message
		}
		c.renderCredentialForm(w, r, base, ae.Status, form)
		return
	}
	http.Redirect(w, r, "/console/w/"+url.PathEscape(ws)+"/credentials?done="+url.QueryEscape("Saved "+key+"."), http.StatusSeeOther)
}
