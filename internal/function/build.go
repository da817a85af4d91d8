package function

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

// Request is a built call, relative to a base URL: the connection's base URI, or for a
// function with a url, Function.BaseURL. Use URL to join the two.
//
// A Request may hold credential values (in Path, Query, Header or Body): never log or
// print it, and drop it once the call is sent.
type Request struct {
	Method string
	// Path is escaped and starts with "/", or is "" when the function has no path. It
	// never holds "//", a "." or ".." segment, a scheme or a host.
	Path   string
	Query  url.Values  // never nil
	Header http.Header // never nil; keys canonical
	// Body is JSON, or nil when the function has no body template and no body
	// parameter was given a value.
	Body []byte
	// ContentType is set when Body is: "application/json", or the value of a
	// Content-Type header parameter.
	ContentType string
	// Inputs are the values of the parameters that are not credentials (the caller's,
	// or defaults), by name: what a Jigx transform sees as $.inputs.
	Inputs map[string]any
}

// String, GoString, Format and LogValue redact: a Request may hold credential values.
func (r Request) String() string             { return "function.Request[redacted]" }
func (r Request) GoString() string           { return r.String() }
func (r Request) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }
func (r Request) LogValue() slog.Value       { return slog.StringValue(r.String()) }

// Build turns a caller's arguments into a Request.
//
// args are the caller's JSON parameters as encoding/json decodes them (with or without
// UseNumber); Go integer types are accepted too. secrets holds, by parameter name, the
// credential values the server resolved for credential parameters that are placed like
// ordinary parameters (api_key and secret credentials): each goes at its parameter's
// location under its parameter's name. A credential parameter not in secrets (a basic,
// bearer, OAuth2 or JWT credential, which the server turns into an Authorization header)
// is left out.
//
// Errors are *sesame.Error (invalid_argument for unknown parameters or a value given
// for a credential parameter, missing_field for missing required ones, invalid_field for
// a bad value) and name parameters, never values. A secret for a parameter that is not a
// credential parameter is a programming error and gives a plain error.
func (f *Function) Build(args map[string]any, secrets map[string]sesame.Secret) (Request, error) {
	return f.BuildContext(context.Background(), args, secrets)
}

// BuildContext is Build with a context, which bounds a Jigx function's inputTransform:
// with one, the body is the transform's result on the values of the parameters that are
// not credentials (its failure is a *sesame.Error with code CodeTransformFailed).
func (f *Function) BuildContext(ctx context.Context, args map[string]any, secrets map[string]sesame.Secret) (Request, error) {
	// A parameter is a credential parameter if it says so (IsAuth), or if the server
	// found that its default value names a stored credential and gave its value here.
	isCred := func(name string, p Param) bool {
		_, ok := secrets[name]
		return ok || IsAuth(name, p)
	}
	for name := range secrets {
		if _, ok := f.Parameters[name]; !ok {
			return Request{}, fmt.Errorf("function %s: a credential value was given for %q, which is not a parameter", f.Name, name)
		}
	}

	var unknown []string
	for _, name := range sortedKeys(args) {
		p, ok := f.Parameters[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		if isCred(name, p) {
			return Request{}, sesame.Errorf(sesame.CodeInvalidArgument,
				"parameter %q is a credential reference; credentials cannot be passed by callers", name)
		}
	}
	if len(unknown) > 0 {
		return Request{}, sesame.Errorf(sesame.CodeInvalidArgument, "unknown parameters %s; parameters are: %s",
			quoteNames(unknown), strings.Join(f.callerParams(), ", "))
	}

	values := make(map[string]any, len(f.Parameters))
	fromSecret := map[string]bool{}
	var missing []string
	for _, name := range sortedKeys(f.Parameters) {
		p := f.Parameters[name]
		if isCred(name, p) {
			if s, ok := secrets[name]; ok {
				values[name] = string(s.Reveal())
				fromSecret[name] = true
			}
			continue
		}
		if v, ok := args[name]; ok && v != nil {
			nv, err := checkValue(name, p.Type, v)
			if err != nil {
				return Request{}, err
			}
			values[name] = nv
		} else if d, ok := f.defaults[name]; ok {
			values[name] = d
		} else if p.Required {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return Request{}, sesame.Errorf(sesame.CodeMissingField, "missing required parameters %s", quoteNames(missing))
	}

	r := Request{Method: f.Method, Query: url.Values{}, Header: http.Header{}, Inputs: map[string]any{}}
	for name, v := range values {
		if !fromSecret[name] && !IsAuth(name, f.Parameters[name]) {
			r.Inputs[name] = v
		}
	}
	for k, vs := range f.baseQuery {
		r.Query[k] = append([]string(nil), vs...)
	}
	var err error
	if r.Path, err = f.buildPath(values, fromSecret); err != nil {
		return Request{}, err
	}
	for _, name := range sortedKeys(values) {
		v := values[name]
		switch f.Parameters[name].Location {
		case LocationQuery:
			if list, ok := v.([]any); ok {
				for _, e := range list {
					r.Query.Add(name, stringForm(e))
				}
			} else {
				r.Query.Add(name, stringForm(v))
			}
		case LocationHeader:
			s := listForm(v)
			if !validHeaderValue(s) {
				if fromSecret[name] {
					return Request{}, sesame.Errorf(sesame.CodeInvalidField,
						"the credential for parameter %q holds characters that are not allowed in a header (such as CR or LF)", name)
				}
				return Request{}, sesame.Errorf(sesame.CodeInvalidField,
					"parameter %q must not contain control characters such as CR or LF", name)
			}
			r.Header.Set(name, s)
		}
	}
	raw := false
	switch v, ok := values[f.bufferBody]; {
	case f.input != nil:
		r.Body, err = f.inputBody(ctx, values, fromSecret)
	case f.bufferBody != "" && ok:
		r.Body, err = f.bufferBytes(v)
		raw = true
	default:
		r.Body, err = f.buildBody(values)
	}
	if err != nil {
		return Request{}, err
	}
	if r.Body != nil {
		r.ContentType = "application/json"
		if raw {
			r.ContentType = "application/octet-stream"
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			r.ContentType = ct
		}
	}
	return r, nil
}

// callerParams returns the names of the parameters a caller may give, sorted.
func (f *Function) callerParams() []string {
	var out []string
	for _, name := range sortedKeys(f.Parameters) {
		if !IsAuth(name, f.Parameters[name]) {
			out = append(out, strconv.Quote(name))
		}
	}
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}

// quoteNames lists caller-given names, quoted and shortened, at most ten of them.
func quoteNames(names []string) string {
	const max = 10
	var b strings.Builder
	for i, n := range names {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(names)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(truncate(n, 64)))
	}
	return b.String()
}

// checkValue checks a caller's value against type t and normalizes Go numbers to
// float64 or json.Number.
func checkValue(name, t string, v any) (any, error) {
	switch n := v.(type) {
	case int:
		v = json.Number(strconv.FormatInt(int64(n), 10))
	case int8:
		v = json.Number(strconv.FormatInt(int64(n), 10))
	case int16:
		v = json.Number(strconv.FormatInt(int64(n), 10))
	case int32:
		v = json.Number(strconv.FormatInt(int64(n), 10))
	case int64:
		v = json.Number(strconv.FormatInt(n, 10))
	case uint:
		v = json.Number(strconv.FormatUint(uint64(n), 10))
	case uint8:
		v = json.Number(strconv.FormatUint(uint64(n), 10))
	case uint16:
		v = json.Number(strconv.FormatUint(uint64(n), 10))
	case uint32:
		v = json.Number(strconv.FormatUint(uint64(n), 10))
	case uint64:
		v = json.Number(strconv.FormatUint(n, 10))
	case float32:
		v = float64(n)
	}
	bad := func(what string) error {
		return sesame.Errorf(sesame.CodeInvalidField, "parameter %q must be %s", name, what)
	}
	switch n := v.(type) {
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, bad("a finite number")
		}
	case json.Number:
		if !jsonNumber.MatchString(string(n)) {
			return nil, bad("a number")
		}
	case string, bool, []any, map[string]any:
	default:
		return nil, bad("a JSON value")
	}
	switch t {
	case "string":
		if _, ok := v.(string); !ok {
			return nil, bad("a string")
		}
	case "number":
		switch v.(type) {
		case float64, json.Number:
		default:
			return nil, bad("a number")
		}
	case "integer":
		ok := false
		switch n := v.(type) {
		case float64:
			ok = n == math.Trunc(n)
		case json.Number:
			if jsonInteger.MatchString(string(n)) {
				ok = true
			} else if fl, err := n.Float64(); err == nil {
				ok = fl == math.Trunc(fl)
			}
		}
		if !ok {
			return nil, bad("an integer")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return nil, bad("true or false")
		}
	case "array":
		if _, ok := v.([]any); !ok {
			return nil, bad("an array")
		}
	case "object":
		if _, ok := v.(map[string]any); !ok {
			return nil, bad("an object")
		}
	}
	return v, nil
}

// safePathValue reports whether s may go into a path: it is not empty and does not hide
// a dot segment (HidesDotSegment). url.PathEscape escapes every slash and percent sign, so
// such parts could not change the path for a server that follows RFC 3986; refusing them
// also protects against servers that decode "%2F" or decode twice before they resolve
// dot segments.
func safePathValue(s string) bool {
	return s != "" && !HidesDotSegment(s)
}

// HidesDotSegment reports whether s, as it is or percent-decoded again and again (as a
// chain of servers may), holds a "." or ".." segment between slashes or backslashes, also
// with a ";..." suffix that some servers drop ("..;" is ".." to Tomcat).
func HidesDotSegment(s string) bool {
	for range 4 {
		if hasDotPart(s) {
			return true
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return false
		}
		s = d
	}
	return true // still decoding after four rounds: nobody means that
}

func hasDotPart(s string) bool {
	for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// stringForm is the text of a value placed in a path, query or header, or interpolated
// into a body string: strings as they are, numbers and booleans as JSON writes them,
// null as "", arrays and objects as compact JSON.
func stringForm(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	}
	b, err := marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// listForm is stringForm, except that an array becomes its elements' forms joined by
// "," (as HTTP lists are written).
func listForm(v any) string {
	list, ok := v.([]any)
	if !ok {
		return stringForm(v)
	}
	forms := make([]string, len(list))
	for i, e := range list {
		forms[i] = stringForm(e)
	}
	return strings.Join(forms, ",")
}

func (f *Function) buildPath(values map[string]any, fromSecret map[string]bool) (string, error) {
	var b strings.Builder
	for _, pt := range f.path {
		if pt.param == "" {
			b.WriteString(pt.lit)
			continue
		}
		v, ok := values[pt.param]
		if !ok {
			// Only a credential parameter can lack a value here: Parse makes other path
			// parameters required or gives them a default.
			return "", sesame.Errorf(sesame.CodeInvalidArgument,
				"parameter %q is in the path but has no credential value that can be placed there", pt.param)
		}
		s := listForm(v)
		if !safePathValue(s) {
			if fromSecret[pt.param] {
				return "", sesame.Errorf(sesame.CodeInvalidField,
					"the credential for path parameter %q cannot be placed in a path: it is empty or holds a \".\" or \"..\" segment", pt.param)
			}
			return "", sesame.Errorf(sesame.CodeInvalidField,
				"path parameter %q must not be empty, \".\" or \"..\", nor hold a \".\" or \"..\" segment such as \"../\"", pt.param)
		}
		b.WriteString(url.PathEscape(s))
	}
	path := b.String()
	// Values next to each other or to a literal could still make a dot segment
	// ("{a}{b}" with "." twice); url.PathEscape has escaped every "/" they held.
	if strings.Contains(path, "//") {
		return "", sesame.Errorf(sesame.CodeInvalidField, "the path parameters' values make an empty path segment")
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return "", sesame.Errorf(sesame.CodeInvalidField, "the path parameters' values make a \".\" or \"..\" path segment")
		}
	}
	return path, nil
}

func (f *Function) buildBody(values map[string]any) ([]byte, error) {
	var body any
	if f.Body != nil {
		v, ok := render(f.Body, values)
		if !ok {
			return nil, nil
		}
		// Only an object template renders to a new map; a template that is one
		// placeholder renders to the value itself, which Build must not change (Parse
		// allows no unused body parameters then).
		if _, tmplIsObject := f.Body.(map[string]any); tmplIsObject {
			obj := v.(map[string]any)
			for name, val := range values {
				if f.Parameters[name].Location == LocationBody && !f.bodyUsed[name] {
					obj[name] = val
				}
			}
		}
		body = v
	} else {
		obj := map[string]any{}
		for name, val := range values {
			if f.Parameters[name].Location == LocationBody {
				obj[name] = val
			}
		}
		if len(obj) == 0 {
			return nil, nil
		}
		body = obj
	}
	b, err := marshal(body)
	if err != nil {
		// Values were checked; this is a bug, and the error names no value.
		return nil, fmt.Errorf("function %s: encoding the body: %w", f.Name, err)
	}
	return b, nil
}

// render fills the body template v with values. A string that is one placeholder
// becomes the parameter's value with its JSON type; placeholders inside a longer string
// are replaced by the values' string forms ("" when absent). ok is false when v is one
// placeholder whose parameter has no value: such an object field is left out, such an
// array element becomes null. Render never changes the template.
func render(v any, values map[string]any) (any, bool) {
	switch v := v.(type) {
	case string:
		if m := wholePlaceholder.FindStringSubmatch(v); m != nil {
			val, ok := values[m[1]]
			return val, ok
		}
		if !strings.Contains(v, "{{") {
			return v, true
		}
		return placeholder.ReplaceAllStringFunc(v, func(s string) string {
			name := placeholder.FindStringSubmatch(s)[1]
			return stringForm(values[name])
		}), true
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i], _ = render(e, values)
		}
		return out, true
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if r, ok := render(e, values); ok {
				out[k] = r
			}
		}
		return out, true
	}
	return v, true
}

// marshal is json.Marshal without HTML escaping and without the trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// URL joins base (a connection's base URI, or Function.BaseURL) and r: base's path with
// r.Path appended (a trailing "/" of base is dropped first), base's query with r.Query
// added. It checks that the result keeps base's scheme, host and path prefix.
func (r Request) URL(base string) (*url.URL, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "base URL is not a valid URL")
	}
	if (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" || b.User != nil || b.Opaque != "" {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "base URL must be an absolute http or https URL without user information")
	}
	basePath := strings.TrimSuffix(b.EscapedPath(), "/")
	q := b.Query()
	for k, vs := range r.Query {
		q[k] = append(q[k], vs...)
	}
	raw := b.Scheme + "://" + b.Host + basePath + r.Path
	if enc := q.Encode(); enc != "" {
		raw += "?" + enc
	}
	u, err := url.Parse(raw)
	if err != nil {
		// err quotes the URL, which may hold a credential: leave it out.
		return nil, fmt.Errorf("joining a request path to its base URL gave an invalid URL")
	}
	if u.Scheme != b.Scheme || u.Host != b.Host || u.User != nil || !strings.HasPrefix(u.EscapedPath(), basePath) {
		return nil, fmt.Errorf("joining a request path to its base URL changed its scheme, host or path")
	}
	return u, nil
}
