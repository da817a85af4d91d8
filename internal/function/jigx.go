package function

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sesamehq/sesame"
	"go.yaml.in/yaml/v3"
)

// Jigx's REST function format. A definition with a top-level `provider` field is read as
// a Jigx function file, as Jigx documents it:
//
//	provider: DATA_PROVIDER_REST
//	method: GET
//	url: https://graph.microsoft.com/v1.0/users/{id}/events
//	useLocalCall: true
//	parameters:
//	  accessToken: {location: header, required: true, type: string, value: microsoft.oauth}
//	  id:          {location: path, required: true, type: string}
//	  $top:        {location: query, type: number, value: 50}
//	outputTransform: $.value          # JSONata
//	records: $.value                  # JSONata: the list of records of a response
//	continuation:
//	  when: $exists($."@odata.nextLink")
//	  url: $."@odata.nextLink"         # JSONata on the last page, or a literal URL
//	  parameters:
//	    page: {location: query, value: =$.page + 1}
//
// It becomes an ordinary Function (url, method, parameters) whose transforms are JSONata.
// Differences from Sesame's own format: parameter locations `credential` and `secret`
// name a credential (put where its kind goes, as header parameters are); type `image` is
// a string (a URL or base64 text); a `value` that is a Jigx expression (`=@ctx…`) is no
// default: the caller supplies the value; `inputTransform` builds the request body from
// the parameters; `records` and `continuation` gather records over pages.
//
// As in Jigx's own samples: a string literal as a path step names a field
// (`$."@odata.nextLink"`, see quotedSteps); `errorTransform` shapes a response with an
// error status, which keeps its status; `format: pdf` (any binary response) hands the
// outputTransform {"data": base64 of the body, "inputs": {name: {"value": v}}}, and
// without one the result is {"data": …}; a continuation may repeat a credential parameter
// of the function (same name, same credential), which changes nothing since every page
// gets the function's credentials; a path parameter the url has no {name} for is accepted
// and unused; type `jigx` (Jigx's platform token) names a credential, by its value
// ("jigx"), which must exist in the workspace.

// ProviderREST is the one Jigx provider Sesame runs.
const ProviderREST = "DATA_PROVIDER_REST"

// Continuation says how a Jigx function follows pages: while When holds on the last
// response, the next request goes to URL (an expression on the last response, a literal
// URL, or by default the function's own) with Parameters added.
type Continuation struct {
	When       string           `json:"when"`
	URL        string           `json:"url,omitempty"`
	Parameters map[string]Param `json:"parameters,omitempty"`

	when      *jsonataTransform
	urlExpr   *jsonataTransform // nil for a literal URL or none
	urlFixed  *url.URL          // a literal URL
	valueExpr map[string]*jsonataTransform
}

// Jigx fields of a Function; see the format above.
type jigxFields struct {
	Provider       string        `json:"provider,omitempty"`
	UseLocalCall   bool          `json:"useLocalCall,omitempty"`
	InputTransform string        `json:"inputTransform,omitempty"`
	Records        string        `json:"records,omitempty"`
	Continuation   *Continuation `json:"continuation,omitempty"`
	// ErrorTransform is applied, instead of the outputTransform, to a response with an
	// error status (400 and up); the caller gets its result with that status.
	ErrorTransform string `json:"errorTransform,omitempty"`
	// Format is how the response is read: "" or "json" as JSON; "pdf", Jigx's generic
	// binary format, as bytes handed to the outputTransform as {"data": base64,
	// "inputs": {name: {"value": v}}}.
	Format string `json:"format,omitempty"`

	// Conversions are Jigx's file conversions. Sesame acts on one: a body parameter
	// converted to "buffer" is the whole request body, sent as the bytes of the caller's
	// base64 (or data: URI) value. The others concern files on the device and are kept
	// as they are.
	Conversions []Conversion `json:"conversions,omitempty"`

	bufferBody   string // the body parameter sent as raw bytes, if any
	errTransform *jsonataTransform
	// platform are the parameters of type jigx: Jigx's own platform token, which
	// Sesame has only as a credential of that name.
	platform map[string]bool
}

// Conversion is one entry of a Jigx function's conversions.
type Conversion struct {
	Property string `json:"property"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
}

// Jigx response formats.
const (
	FormatJSON = "json"
	FormatPDF  = "pdf" // Jigx's generic binary format
)

var jigxFormats = []string{FormatJSON, FormatPDF}

// Binary reports whether f reads its response as bytes (format: pdf).
func (f *Function) Binary() bool { return f.Format == FormatPDF }

// PlatformToken reports whether parameter name is of Jigx's type jigx: Jigx's platform
// token, which Sesame has only as a credential named as the parameter's value.
func (f *Function) PlatformToken(name string) bool { return f.platform[name] }

// BinaryInput is what the outputTransform of a binary function (format: pdf) reads:
// {"data": the body in base64, "inputs": {name: {"value": v}}} for the call's inputs
// (Request.Inputs), as Jigx gives them.
func BinaryInput(body []byte, inputs map[string]any) map[string]any {
	in := make(map[string]any, len(inputs))
	for k, v := range inputs {
		in[k] = map[string]any{"value": v}
	}
	return map[string]any{"data": base64.StdEncoding.EncodeToString(body), "inputs": in}
}

// HasErrorTransform reports whether f has an errorTransform.
func (f *Function) HasErrorTransform() bool { return f.errTransform != nil }

// TransformError applies the errorTransform to an error response v (decoded JSON, or
// its text). Without one it returns v.
func (f *Function) TransformError(ctx context.Context, v any) (any, error) {
	if f.errTransform == nil {
		return v, nil
	}
	return f.errTransform.apply(ctx, f.Name, "errorTransform", v)
}

var jigxFieldNames = []string{
	"provider", "method", "url", "useLocalCall", "parameters", "inputTransform", "outputTransform",
	"records", "continuation", "errorTransform", "format", "description", "forRowsWithMatchingIds", "forRowsWithValues", "forRowsInRange",
	"conversions", "disableTokenRefresh",
}

// jigxIgnored are Jigx fields that steer the app's local data on the device, or the
// app's own handling of a 401 (disableTokenRefresh); Sesame accepts and ignores them.
var jigxIgnored = []string{"forRowsWithMatchingIds", "forRowsWithValues", "forRowsInRange", "disableTokenRefresh"}

var jigxParamFields = []string{"location", "required", "type", "value", "description"}

var jigxLocations = []string{LocationPath, LocationQuery, LocationHeader, LocationBody, "credential", "secret"}

// jigxTypes are Jigx's parameter types, and "credential", which is how Sesame's JSON form
// of a Jigx function writes a parameter in location credential or secret.
var jigxTypes = []string{"string", "number", "boolean", "array", "object", "image", "credential", jigxPlatformType}

// jigxPlatformType is Jigx's parameter type for its own platform token (value: jigx).
// Sesame has no such token: the parameter names a credential, by its value, like an
// accessToken, and a call without that credential is refused saying so.
const jigxPlatformType = "jigx"

// isJigx reports whether root (a mapping) has a top-level provider field.
func isJigx(root *yaml.Node) bool {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "provider" {
			return true
		}
	}
	return false
}

// parseJigx decodes and validates a Jigx function file into f.
func (p *parser) parseJigx(root *yaml.Node, f *Function) error {
	var desc string
	p.jigx = true
	err := p.pairs(root, "", func(key string, k, v *yaml.Node) error {
		p.lines[key] = k.Line
		strField := func(dst *string, max int) error {
			s, _, err := p.str(v, key)
			if err != nil {
				return err
			}
			if len(s) > max {
				return p.errNode(sesame.CodeInvalidField, v, key, "must be at most %d bytes", max)
			}
			*dst = s
			return nil
		}
		switch key {
		case "provider":
			if err := strField(&f.Provider, 64); err != nil {
				return err
			}
			if f.Provider != ProviderREST {
				return p.errNode(sesame.CodeInvalidField, v, key,
					"provider %q is not supported: Sesame runs only %s functions (SQL and other providers run in the Jigx app)",
					truncate(f.Provider, 64), ProviderREST)
			}
			return nil
		case "method":
			return strField(&f.Method, 16)
		case "url":
			return strField(&f.URL, MaxPathLen)
		case "description":
			return strField(&desc, MaxDescriptionLen)
		case "name": // not Jigx's: the JSON form Sesame shows has it
			var s string
			if err := strField(&s, 256); err != nil {
				return err
			}
			if s != "" && s != f.Name {
				return p.errNode(sesame.CodeInvalidField, v, key, "does not match the function's name %q", f.Name)
			}
			return nil
		case "useLocalCall":
			var err error
			f.UseLocalCall, err = p.boolean(v, key)
			return err
		case "inputTransform":
			return strField(&f.InputTransform, MaxTransformLen)
		case "outputTransform":
			return strField(&f.OutputTransform, MaxTransformLen)
		case "records":
			return strField(&f.Records, MaxTransformLen)
		case "errorTransform":
			return strField(&f.ErrorTransform, MaxTransformLen)
		case "format":
			if err := strField(&f.Format, 16); err != nil {
				return err
			}
			if !slices.Contains(jigxFormats, f.Format) {
				return p.errNode(sesame.CodeInvalidField, v, key, "must be one of %s (pdf: any binary response, returned as base64); Jigx's text and xml are not supported", strings.Join(jigxFormats, ", "))
			}
			return nil
		case "parameters":
			return p.decodeJigxParams(k, v, "parameters", &f.Parameters, false)
		case "continuation":
			return p.decodeContinuation(v, f)
		case "conversions":
			return p.decodeConversions(v, f)
		}
		if slices.Contains(jigxIgnored, key) {
			return nil
		}
		return p.errNode(sesame.CodeUnknownField, k, truncate(key, 64), "unknown field of a Jigx function (a file with provider: is read as Jigx's); fields are: %s",
			strings.Join(jigxFieldNames, ", "))
	})
	if err != nil {
		return err
	}
	if f.URL == "" {
		return p.fail(sesame.CodeMissingField, "url", "is required (an absolute URL)")
	}
	// The checks of Sesame's own format apply to the url, method and parameters; the
	// transforms are JSONata, compiled here.
	out := f.OutputTransform
	f.OutputTransform = ""
	if err := p.validate(f); err != nil {
		return err
	}
	f.OutputTransform = out
	compile := func(field, src string) (*jsonataTransform, error) {
		if src == "" {
			return nil, nil
		}
		t, msg := compileJSONata(src)
		if msg != "" {
			return nil, p.fail(sesame.CodeInvalidField, field, "%s", msg)
		}
		return t, nil
	}
	var t *jsonataTransform
	if t, err = compile("outputTransform", f.OutputTransform); err != nil {
		return err
	}
	if t != nil {
		f.transform = t
	}
	if f.input, err = compile("inputTransform", f.InputTransform); err != nil {
		return err
	}
	if f.records, err = compile("records", f.Records); err != nil {
		return err
	}
	if f.errTransform, err = compile("errorTransform", f.ErrorTransform); err != nil {
		return err
	}
	if f.Binary() && f.Paged() {
		return p.fail(sesame.CodeInvalidField, "format", "a binary response (format: %s) cannot have records or a continuation", f.Format)
	}
	f.platform = p.platform
	if err := p.bufferBody(f); err != nil {
		return err
	}
	if f.input != nil && f.Body != nil {
		return p.fail(sesame.CodeInvalidField, "inputTransform", "cannot be used with a body template")
	}
	if c := f.Continuation; c != nil {
		if err := p.validateContinuation(f, c, compile); err != nil {
			return err
		}
	}
	return nil
}

// decodeJigxParams decodes a Jigx parameters mapping into *dst, as Sesame parameters.
// A value that is a Jigx expression (=…) is dropped unless keepExpr.
func (p *parser) decodeJigxParams(k, n *yaml.Node, field string, dst *map[string]Param, keepExpr bool) error {
	rules := paramRules{fields: jigxParamFields, locations: jigxLocations, types: jigxTypes}
	return p.decodeParamMap(k, n, field, dst, rules, func(name string, prm *Param) {
		switch prm.Type {
		case "image":
			prm.Type = "string"
		case jigxPlatformType:
			prm.Type = "credential"
			if prm.Value == nil {
				v := jigxPlatformType
				prm.Value = &v
			}
			if field == "parameters" {
				if p.platform == nil {
					p.platform = map[string]bool{}
				}
				p.platform[name] = true
			}
		}
		switch prm.Location {
		case "credential", "secret":
			prm.Location, prm.Type = LocationHeader, "credential"
		}
		if prm.Type == "credential" && prm.Location == "" {
			prm.Location = LocationHeader
		}
		auth := IsAuth(name, *prm)
		if prm.Value != nil && strings.HasPrefix(*prm.Value, "=") && !auth && !keepExpr {
			prm.Value = nil // a Jigx expression, evaluated in the app: the caller supplies the value
		}
		if auth && prm.Location != "" && prm.Location != LocationHeader {
			// accessToken and basicAuth are Authorization headers, wherever they are declared.
			prm.Location = LocationHeader
		}
	})
}

func (p *parser) decodeContinuation(n *yaml.Node, f *Function) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errNode(sesame.CodeInvalidField, n, "continuation", "must be a mapping with fields when, url, parameters")
	}
	c := &Continuation{}
	err := p.pairs(n, "continuation", func(key string, k, v *yaml.Node) error {
		sub := join("continuation", key)
		p.lines[sub] = k.Line
		var err error
		switch key {
		case "when":
			c.When, _, err = p.str(v, sub)
		case "url":
			c.URL, _, err = p.str(v, sub)
		case "parameters":
			err = p.decodeJigxParams(k, v, sub, &c.Parameters, true)
		default:
			return p.errNode(sesame.CodeUnknownField, k, sub, "unknown field; fields are: when, url, parameters")
		}
		if err == nil && (len(c.When) > MaxTransformLen || len(c.URL) > MaxTransformLen) {
			err = p.errNode(sesame.CodeInvalidField, v, sub, "must be at most %d bytes", MaxTransformLen)
		}
		return err
	})
	f.Continuation = c
	return err
}

func (p *parser) validateContinuation(f *Function, c *Continuation, compile func(string, string) (*jsonataTransform, error)) error {
	var err error
	if c.When == "" {
		return p.fail(sesame.CodeMissingField, "continuation.when", "is required: a JSONata expression on the last response that says whether to fetch another page")
	}
	if c.when, err = compile("continuation.when", c.When); err != nil {
		return err
	}
	if u := strings.TrimSpace(c.URL); strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		parsed, perr := url.Parse(u)
		if perr != nil || parsed.User != nil || parsed.Fragment != "" || strings.ContainsAny(u, "{}") {
			return p.fail(sesame.CodeInvalidField, "continuation.url", "a literal URL must be absolute, without placeholders, user info or fragment; use an expression to compute it")
		}
		if !sameOrigin(parsed, f.base) {
			return p.fail(sesame.CodeInvalidField, "continuation.url", "must have the origin of url (%s)", f.base)
		}
		c.urlFixed = parsed
	} else if u != "" {
		if c.urlExpr, err = compile("continuation.url", u); err != nil {
			return err
		}
	}
	c.valueExpr = map[string]*jsonataTransform{}
	for _, name := range sortedKeys(c.Parameters) {
		prm := c.Parameters[name]
		field := join("continuation.parameters", name)
		if prm.Type == "credential" || IsAuth(name, prm) {
			// Jigx files repeat the function's credential for the next pages. Every page
			// gets the function's credentials injected anew, so such a parameter is
			// accepted when it repeats one of them and does nothing more; a caller never
			// supplies it, and a continuation cannot bring in another credential.
			top, ok := f.Parameters[name]
			if !ok || !IsAuth(name, top) || top.Value == nil || prm.Value == nil || *top.Value != *prm.Value {
				return p.fail(sesame.CodeInvalidField, field,
					"a continuation's credential parameter must repeat the function's parameter %q with the same credential (every page gets the function's credentials)", name)
			}
			continue
		}
		if prm.Location == "" {
			prm.Location = LocationQuery
		}
		switch prm.Location {
		case LocationQuery, LocationBody:
		case LocationHeader:
			if !validToken(name) || slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)) || http.CanonicalHeaderKey(name) == "Authorization" {
				return p.fail(sesame.CodeInvalidField, field, "is not a header a continuation may set")
			}
		default:
			return p.fail(sesame.CodeInvalidField, field+".location", "must be query, header or body")
		}
		if prm.Value == nil {
			return p.fail(sesame.CodeMissingField, field+".value", "is required: a literal or an expression (=…) on the last response")
		}
		if strings.HasPrefix(*prm.Value, "=") {
			t, err := compile(field+".value", *prm.Value)
			if err != nil {
				return err
			}
			c.valueExpr[name] = t
		}
		c.Parameters[name] = prm
	}
	return nil
}

// sameOrigin reports whether u has origin base ("scheme://host[:port]").
func sameOrigin(u *url.URL, base string) bool {
	b, err := url.Parse(base)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, b.Scheme) && strings.EqualFold(hostPort(u), hostPort(b))
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}

// Paged reports whether a call of f reads its response as records, over pages if it
// has a continuation.
func (f *Function) Paged() bool { return f.records != nil || f.Continuation != nil }

// PageRecords returns the records of one response: the records expression's result as a
// list, or without one the response itself.
func (f *Function) PageRecords(ctx context.Context, page any) ([]any, error) {
	if f.records == nil {
		return []any{page}, nil
	}
	v, err := f.records.apply(ctx, f.Name, "records", page)
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return v, nil
	default:
		return []any{v}, nil
	}
}

// Next is how the next page's request differs from the first one.
type Next struct {
	// URL, when not nil, replaces the request's path and query; it has the function's
	// origin (NextPage checks it).
	URL    *url.URL
	Query  map[string]string
	Header map[string]string
	Body   map[string]any
}

// NextPage evaluates the continuation on page, the last response (redacted): ok is false
// when there is no next page.
func (f *Function) NextPage(ctx context.Context, page any) (Next, bool, error) {
	c := f.Continuation
	if c == nil {
		return Next{}, false, nil
	}
	w, err := c.when.apply(ctx, f.Name, "continuation.when", page)
	if err != nil || !truthy(w) {
		return Next{}, false, err
	}
	n := Next{Query: map[string]string{}, Header: map[string]string{}, Body: map[string]any{}}
	switch {
	case c.urlFixed != nil:
		u := *c.urlFixed
		n.URL = &u
	case c.urlExpr != nil:
		v, err := c.urlExpr.apply(ctx, f.Name, "continuation.url", page)
		if err != nil {
			return Next{}, false, err
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return Next{}, false, nil // no next URL: no next page
		}
		u, err := url.Parse(s)
		if err != nil || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") || !sameOrigin(u, f.base) {
			return Next{}, false, sesame.Errorf(sesame.CodeUpstreamError,
				"function %s: continuation.url gave a URL that is not on the function's origin %s", f.Name, f.base)
		}
		u.Fragment, u.RawFragment = "", ""
		n.URL = u
	}
	for name, prm := range c.Parameters {
		if prm.Type == "credential" || IsAuth(name, prm) {
			continue // the function's own credential, injected on every page
		}
		var v any = *prm.Value
		if t := c.valueExpr[name]; t != nil {
			if v, err = t.apply(ctx, f.Name, "continuation.parameters."+name, page); err != nil {
				return Next{}, false, err
			}
		}
		switch prm.Location {
		case LocationBody:
			n.Body[name] = v
		case LocationHeader:
			s := stringForm(v)
			if !validHeaderValue(s) {
				return Next{}, false, sesame.Errorf(sesame.CodeUpstreamError, "function %s: continuation parameter %q gave a value that cannot be a header", f.Name, name)
			}
			n.Header[name] = s
		default:
			n.Query[name] = stringForm(v)
		}
	}
	return n, true, nil
}

// truthy is JSONata's $boolean.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case json.Number:
		f, err := v.Float64()
		return err == nil && f != 0
	case float64:
		return v != 0
	case []any:
		return slices.ContainsFunc(v, truthy)
	case map[string]any:
		return len(v) > 0
	}
	return false
}

// inputBody builds the request body with the inputTransform from the parameter values
// (credential values are not among them).
func (f *Function) inputBody(ctx context.Context, values map[string]any, fromSecret map[string]bool) ([]byte, error) {
	in := make(map[string]any, len(values))
	for k, v := range values {
		if !fromSecret[k] && !IsAuth(k, f.Parameters[k]) {
			in[k] = v
		}
	}
	v, err := f.input.apply(ctx, f.Name, "inputTransform", in)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("function %s: encode inputTransform result: %w", f.Name, err)
	}
	return b, nil
}

// decodeConversions reads Jigx's conversions: a list of {property, from, to}; other keys
// of an entry (such as convertHeicToJpg) are the app's and are dropped.
func (p *parser) decodeConversions(n *yaml.Node, f *Function) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errNode(sesame.CodeInvalidField, n, "conversions", "must be a list of {property, from, to}")
	}
	if len(n.Content) > MaxParameters {
		return p.errNode(sesame.CodeInvalidField, n, "conversions", "must have at most %d entries", MaxParameters)
	}
	for i, e := range n.Content {
		field := fmt.Sprintf("conversions[%d]", i)
		p.lines[field] = e.Line
		if e.Kind != yaml.MappingNode {
			return p.errNode(sesame.CodeInvalidField, e, field, "must be a mapping with fields property, from, to")
		}
		var c Conversion
		err := p.pairs(e, field, func(key string, k, v *yaml.Node) error {
			sub := join(field, key)
			p.lines[sub] = k.Line
			var dst *string
			switch key {
			case "property":
				dst = &c.Property
			case "from":
				dst = &c.From
			case "to":
				dst = &c.To
			default:
				return nil
			}
			s, _, err := p.str(v, sub)
			if err == nil && len(s) > MaxParamNameLen {
				err = p.errNode(sesame.CodeInvalidField, v, sub, "must be at most %d bytes", MaxParamNameLen)
			}
			*dst = s
			return err
		})
		if err != nil {
			return err
		}
		if c.Property == "" {
			return p.errNode(sesame.CodeMissingField, e, join(field, "property"), "is required")
		}
		f.Conversions = append(f.Conversions, c)
	}
	return nil
}

// bufferBody finds the body parameter a conversion to "buffer" makes the whole request
// body. It must be the function's only body parameter, without an inputTransform.
func (p *parser) bufferBody(f *Function) error {
	for i, c := range f.Conversions {
		prm, ok := f.Parameters[c.Property]
		if c.To != "buffer" || !ok || prm.Location != LocationBody {
			continue // a conversion of a response property, or of a file on the device
		}
		field := fmt.Sprintf("conversions[%d]", i)
		if f.bufferBody != "" && f.bufferBody != c.Property {
			return p.fail(sesame.CodeInvalidField, field, "only one body parameter can be sent as the request body (buffer)")
		}
		if f.input != nil {
			return p.fail(sesame.CodeInvalidField, field, "a body parameter sent as the request body (buffer) cannot be used with an inputTransform")
		}
		for name, other := range f.Parameters {
			if name != c.Property && other.Location == LocationBody {
				return p.fail(sesame.CodeInvalidField, field, "parameter %q is sent as the request body (buffer), so no other parameter can be in location body", c.Property)
			}
		}
		f.bufferBody = c.Property
	}
	return nil
}

// bufferBytes decodes the value of the buffer body parameter: base64 (standard or URL
// alphabet, padded or not) or a data: URI with base64 data.
func (f *Function) bufferBytes(v any) ([]byte, error) {
	s, ok := v.(string)
	if ok {
		if rest, isURI := strings.CutPrefix(s, "data:"); isURI {
			_, data, found := strings.Cut(rest, ";base64,")
			s, ok = data, found
		}
	}
	if ok {
		s = strings.TrimRight(s, "=")
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				return b, nil
			}
		}
	}
	return nil, sesame.Errorf(sesame.CodeInvalidField,
		"parameter %q must be the file's bytes in base64 (or a data: URI with base64): it is sent as the request body", f.bufferBody)
}
