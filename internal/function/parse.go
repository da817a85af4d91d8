package function

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"
	"github.com/sesamehq/sesame"
	"go.yaml.in/yaml/v3"
)

// Parse parses and validates the definition of the function called name, in YAML or JSON
// (which is YAML). Errors are *sesame.Error whose message names the line and the field,
// such as "line 6: parameters.calendarId.location: must be one of path, query, header,
// body". Codes: invalid_name for the name, invalid_argument for text that is not YAML
// or is too large, unknown_field for an unknown key, missing_field for a missing one,
// invalid_field for a bad value. Messages quote keys but never values.
func Parse(name string, src []byte) (*Function, error) {
	if !sesame.ValidCredentialKey(name) {
		return nil, sesame.Errorf(sesame.CodeInvalidName,
			"function name must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(src) > MaxSourceSize {
		return nil, sesame.Errorf(sesame.CodePayloadTooLarge, "function definition is larger than %d KiB", MaxSourceSize>>10)
	}
	root, err := parseYAML(src)
	if err != nil {
		return nil, err
	}
	p := &parser{lines: map[string]int{"": root.Line}}
	f := &Function{Name: name}
	if isJigx(root) {
		if err := p.parseJigx(root, f); err != nil {
			return nil, err
		}
		return f, nil
	}
	if err := p.decode(root, f); err != nil {
		return nil, err
	}
	if err := p.validate(f); err != nil {
		return nil, err
	}
	return f, nil
}

// parseYAML parses src into the mapping node of its single document.
func parseYAML(src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, sesame.Errorf(sesame.CodeInvalidArgument, "function definition is empty")
		}
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "function definition is not valid YAML: %s",
			strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "function definition must be a single YAML document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "function definition is empty")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "line %d: function definition must be a mapping", root.Line)
	}
	return root, nil
}

// parser remembers the line of every field it decoded, so that checks made on the
// decoded Function can still name the line.
type parser struct {
	lines map[string]int
	// jigx is set for a Jigx function file: a path parameter need not be in the url.
	jigx bool
	// platform are the Jigx parameters of type jigx (see jigxPlatformType).
	platform map[string]bool
}

func (p *parser) errAt(code sesame.Code, line int, field, format string, args ...any) error {
	return sesame.Errorf(code, "line %d: %s: %s", line, field, fmt.Sprintf(format, args...))
}

func (p *parser) errNode(code sesame.Code, n *yaml.Node, field, format string, args ...any) error {
	return p.errAt(code, n.Line, field, format, args...)
}

// fail reports a problem with a decoded field, at the line of the field or of the
// nearest enclosing field that was decoded.
func (p *parser) fail(code sesame.Code, field, format string, args ...any) error {
	key := field
	for {
		if line, ok := p.lines[key]; ok {
			return p.errAt(code, line, field, format, args...)
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return p.errAt(code, p.lines[""], field, format, args...)
		}
		key = key[:i]
	}
}

// pairs calls fn for each key and value of mapping n, refusing duplicate, merge and
// non-scalar keys.
func (p *parser) pairs(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node) error) error {
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return p.errNode(sesame.CodeInvalidField, k, field, "keys must be strings")
		}
		if k.ShortTag() == "!!merge" {
			return p.errNode(sesame.CodeInvalidField, k, field, "merge keys (<<) are not supported")
		}
		if seen[k.Value] {
			return p.errNode(sesame.CodeInvalidField, k, join(field, k.Value), "is given more than once")
		}
		seen[k.Value] = true
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func join(field, key string) string {
	if field == "" {
		return truncate(key, 64)
	}
	return field + "." + truncate(key, 64)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// str decodes a scalar as its text; null gives ok=false.
func (p *parser) str(n *yaml.Node, field string) (s string, ok bool, err error) {
	switch n.Kind {
	case yaml.AliasNode:
		return "", false, p.errNode(sesame.CodeInvalidField, n, field, "aliases are not supported")
	case yaml.ScalarNode:
	default:
		return "", false, p.errNode(sesame.CodeInvalidField, n, field, "must be a string")
	}
	switch n.ShortTag() {
	case "!!null":
		return "", false, nil
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return n.Value, true, nil
	default:
		return "", false, p.errNode(sesame.CodeInvalidField, n, field, "tag %q is not supported", truncate(n.Tag, 32))
	}
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, error) {
	if isNull(n) {
		return false, nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		return false, p.errNode(sesame.CodeInvalidField, n, field, "must be true or false")
	}
	return b, nil
}

func (p *parser) strList(n *yaml.Node, field string, max int) ([]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "must be a list of strings")
	}
	if len(n.Content) > max {
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "must have at most %d entries", max)
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		s, ok, err := p.str(e, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, p.errNode(sesame.CodeInvalidField, e, fmt.Sprintf("%s[%d]", field, i), "must be a string")
		}
		out = append(out, s)
	}
	return out, nil
}

// value converts a node of the body template (or a structured default value) into the
// JSON value it stands for.
func (p *parser) value(n *yaml.Node, field string, depth int) (any, error) {
	if depth > MaxBodyDepth {
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "is nested more than %d levels deep", MaxBodyDepth)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "aliases are not supported")
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			v, err := p.value(e, fmt.Sprintf("%s[%d]", field, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		err := p.pairs(n, field, func(key string, _, v *yaml.Node) error {
			val, err := p.value(v, join(field, key), depth+1)
			out[key] = val
			return err
		})
		return out, err
	case yaml.ScalarNode:
	default:
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "is not a JSON value")
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!str", "!!timestamp":
		return n.Value, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, p.errNode(sesame.CodeInvalidField, n, field, "is not a valid boolean")
		}
		return b, nil
	case "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, p.errNode(sesame.CodeInvalidField, n, field, "is not a valid integer")
		}
		switch v.(type) {
		case int, int64, uint64:
			return v, nil
		case float64:
			return checkFloat(p, n, field, v.(float64))
		}
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "is not a valid integer")
	case "!!float":
		var v float64
		if err := n.Decode(&v); err != nil {
			return nil, p.errNode(sesame.CodeInvalidField, n, field, "is not a valid number")
		}
		return checkFloat(p, n, field, v)
	default:
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "tag %q is not supported", truncate(n.Tag, 32))
	}
}

func checkFloat(p *parser, n *yaml.Node, field string, v float64) (any, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, p.errNode(sesame.CodeInvalidField, n, field, "must be a finite number")
	}
	return v, nil
}

var topLevelFields = []string{
	"name", "connection", "url", "method", "path", "parameters", "body",
	"outputTransform", "responseHeaders", "allowAnonymous", "allowAnonymousEndUser", "allowedApps", "maxResponseBytes",
}

var paramFields = []string{"location", "required", "type", "value", "description"}

// decode fills f from the mapping root, checking the shape of each field.
func (p *parser) decode(root *yaml.Node, f *Function) error {
	return p.pairs(root, "", func(key string, k, v *yaml.Node) error {
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
		var err error
		switch key {
		case "name":
			var s string
			if err = strField(&s, 256); err == nil && s != "" && s != f.Name {
				err = p.errNode(sesame.CodeInvalidField, v, key, "does not match the function's name %q", f.Name)
			}
		case "connection":
			err = strField(&f.Connection, 256)
		case "url":
			err = strField(&f.URL, MaxPathLen)
		case "method":
			err = strField(&f.Method, 16)
		case "path":
			err = strField(&f.Path, MaxPathLen)
		case "outputTransform":
			err = strField(&f.OutputTransform, MaxTransformLen)
		case "parameters":
			err = p.decodeParams(k, v, f)
		case "body":
			f.Body, err = p.value(v, key, 0)
		case "responseHeaders":
			f.ResponseHeaders, err = p.strList(v, key, MaxResponseHeaders)
		case "allowAnonymous":
			f.AllowAnonymous, err = p.boolean(v, key)
		case "allowAnonymousEndUser":
			f.AllowAnonymousEndUser, err = p.boolean(v, key)
		case "allowedApps":
			f.AllowedApps, err = p.strList(v, key, MaxAllowedApps)
		case "maxResponseBytes":
			n, perr := strconv.ParseInt(v.Value, 10, 64)
			if v.Kind != yaml.ScalarNode || perr != nil || n < 1 || n > 1<<40 {
				err = p.errNode(sesame.CodeInvalidField, v, key, "must be a whole number of bytes from 1 to %d", int64(1<<40))
			} else {
				f.MaxResponseBytes = n
			}
		default:
			return p.errNode(sesame.CodeUnknownField, k, truncate(key, 64), "unknown field; fields are: %s",
				strings.Join(topLevelFields, ", "))
		}
		return err
	})
}

func (p *parser) decodeParams(k, n *yaml.Node, f *Function) error {
	return p.decodeParamMap(k, n, "parameters", &f.Parameters, paramRules{fields: paramFields}, nil)
}

// paramRules is what a function format accepts in a parameter: its fields, and the
// locations and types it allows (nil: any; Sesame's own format checks them in validate).
type paramRules struct {
	fields, locations, types []string
}

// decodeParamMap decodes a parameters mapping at field into *dst under rules, calling
// each (if not nil) with every decoded parameter before it is stored, to adapt it.
func (p *parser) decodeParamMap(k, n *yaml.Node, field string, dst *map[string]Param, rules paramRules, each func(name string, prm *Param)) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errNode(sesame.CodeInvalidField, n, field, "must be a mapping from parameter name to parameter")
	}
	if len(n.Content)/2 > MaxParameters {
		return p.errNode(sesame.CodeInvalidField, k, field, "must have at most %d parameters", MaxParameters)
	}
	*dst = make(map[string]Param, len(n.Content)/2)
	return p.pairs(n, field, func(name string, k, v *yaml.Node) error {
		pf := join(field, name)
		if len(name) > MaxParamNameLen || !queryParamName.MatchString(name) {
			return p.errNode(sesame.CodeInvalidField, k, pf,
				"parameter names must be 1 to %d letters, digits, '_', '-', '.' or '$'", MaxParamNameLen)
		}
		p.lines[pf] = k.Line
		if v.Kind != yaml.MappingNode {
			return p.errNode(sesame.CodeInvalidField, v, pf, "must be a mapping with fields %s", strings.Join(rules.fields, ", "))
		}
		var prm Param
		err := p.pairs(v, pf, func(key string, k, v *yaml.Node) error {
			sub := join(pf, key)
			p.lines[sub] = k.Line
			var err error
			switch key {
			case "location":
				if prm.Location, _, err = p.str(v, sub); err == nil && rules.locations != nil && !slices.Contains(rules.locations, prm.Location) {
					err = p.errNode(sesame.CodeInvalidField, v, sub, "must be one of %s", strings.Join(rules.locations, ", "))
				}
			case "type":
				if prm.Type, _, err = p.str(v, sub); err == nil && rules.types != nil && prm.Type != "" && !slices.Contains(rules.types, prm.Type) {
					err = p.errNode(sesame.CodeInvalidField, v, sub, "must be one of %s", strings.Join(rules.types, ", "))
				}
			case "description":
				prm.Description, _, err = p.str(v, sub)
			case "required":
				prm.Required, err = p.boolean(v, sub)
			case "value":
				prm.Value, err = p.paramValue(v, sub)
			default:
				return p.errNode(sesame.CodeUnknownField, k, sub, "unknown field; fields are: %s", strings.Join(rules.fields, ", "))
			}
			return err
		})
		if err != nil {
			return err
		}
		if each != nil {
			each(name, &prm)
		}
		(*dst)[name] = prm
		return nil
	})
}

// paramValue decodes a parameter's value: a scalar's text, or for a list or mapping
// (a structured default) its JSON text.
func (p *parser) paramValue(n *yaml.Node, field string) (*string, error) {
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		v, err := p.value(n, field, 0)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, p.errNode(sesame.CodeInvalidField, n, field, "is not a JSON value")
		}
		s := string(b)
		return &s, nil
	}
	s, ok, err := p.str(n, field)
	if err != nil || !ok {
		return nil, err
	}
	return &s, nil
}

// validate checks the decoded function as a whole and prepares what Build needs.
func (p *parser) validate(f *Function) error {
	if f.Connection == "" && f.URL == "" {
		return p.fail(sesame.CodeMissingField, "connection", "one of connection or url is required")
	}
	if f.Connection != "" && f.URL != "" {
		return p.fail(sesame.CodeInvalidField, "url", "must not be given together with connection")
	}
	if f.Connection != "" && !sesame.ValidCredentialKey(f.Connection) {
		return p.fail(sesame.CodeInvalidField, "connection",
			"must be a connection name: letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if f.Method == "" {
		return p.fail(sesame.CodeMissingField, "method", "is required")
	}
	f.Method = strings.ToUpper(f.Method)
	if !slices.Contains(methods, f.Method) {
		return p.fail(sesame.CodeInvalidField, "method", "must be one of %s", strings.Join(methods, ", "))
	}

	// Where the path and the body template refer to parameters.
	var urlPath string
	if f.URL != "" {
		var err error
		if urlPath, err = p.parseURL(f); err != nil {
			return err
		}
	}
	if f.Path != "" {
		if !strings.HasPrefix(f.Path, "/") {
			return p.fail(sesame.CodeInvalidField, "path", "must start with /")
		}
		urlPath = strings.TrimSuffix(urlPath, "/")
	}
	tmplField := "path"
	if f.Path == "" {
		tmplField = "url"
	}
	parts, msg := parsePathTemplate(urlPath + f.Path)
	if msg != "" {
		return p.fail(sesame.CodeInvalidField, tmplField, "%s", msg)
	}
	f.path = parts
	inPath := map[string]bool{}
	for _, pt := range parts {
		if pt.param != "" {
			inPath[pt.param] = true
		}
	}
	inBody := map[string]bool{}
	collectPlaceholders(f.Body, inBody)

	// Parameters one by one.
	f.defaults = map[string]any{}
	headers := map[string]string{}
	for _, name := range sortedKeys(f.Parameters) {
		prm := f.Parameters[name]
		field := join("parameters", name)
		auth := IsAuth(name, prm)
		if prm.Location == "" {
			switch {
			case auth:
				prm.Location = LocationHeader
			case inPath[name]:
				prm.Location = LocationPath
			case inBody[name]:
				prm.Location = LocationBody
			default:
				prm.Location = LocationQuery
			}
		}
		if !slices.Contains(locations, prm.Location) {
			return p.fail(sesame.CodeInvalidField, field+".location", "must be one of %s", strings.Join(locations, ", "))
		}
		if prm.Type != "" && !IsCredentialType(prm.Type) && !slices.Contains(valueTypes, prm.Type) {
			return p.fail(sesame.CodeInvalidField, field+".type", "must be one of %s, or a credential type: %s",
				strings.Join(valueTypes, ", "), strings.Join(credentialTypes, ", "))
		}
		if len(prm.Description) > MaxDescriptionLen {
			return p.fail(sesame.CodeInvalidField, field+".description", "must be at most %d bytes", MaxDescriptionLen)
		}
		if prm.Value != nil && len(*prm.Value) > MaxValueLen {
			return p.fail(sesame.CodeInvalidField, field+".value", "must be at most %d bytes", MaxValueLen)
		}
		if prm.Location != LocationQuery && !paramName.MatchString(name) {
			return p.fail(sesame.CodeInvalidField, field, "'[' and ']' are only allowed in the names of query parameters")
		}
		switch {
		case inPath[name] && prm.Location != LocationPath:
			return p.fail(sesame.CodeInvalidField, field+".location", "must be path: the %s refers to {%s}", tmplField, name)
		case prm.Location == LocationPath && !inPath[name] && !p.jigx:
			// Jigx files declare path parameters their url does not use; the value is unused.
			return p.fail(sesame.CodeInvalidField, field+".location", "is path but the %s has no {%s}", tmplField, name)
		case inBody[name] && prm.Location != LocationBody:
			return p.fail(sesame.CodeInvalidField, field+".location", "must be body: the body template refers to {{%s}}", name)
		}
		if prm.Location == LocationHeader {
			canon := http.CanonicalHeaderKey(name)
			if !validToken(name) {
				return p.fail(sesame.CodeInvalidField, field, "is not a valid header name")
			}
			if slices.Contains(reservedHeaders, canon) {
				return p.fail(sesame.CodeInvalidField, field, "header %s cannot be set by a function", canon)
			}
			if other, ok := headers[canon]; ok {
				return p.fail(sesame.CodeInvalidField, field, "is the same header as parameter %q", other)
			}
			headers[canon] = name
		}
		if prm.Location == LocationQuery && f.baseQuery.Has(name) {
			return p.fail(sesame.CodeInvalidField, field, "the url's query already sets %q", name)
		}
		if auth {
			if prm.Value == nil {
				return p.fail(sesame.CodeMissingField, field+".value", "must name the credential of this credential parameter")
			}
			if !sesame.ValidCredentialKey(*prm.Value) {
				return p.fail(sesame.CodeInvalidField, field+".value", "must be a credential key such as google.oauth")
			}
			f.Parameters[name] = prm
			continue
		}
		if prm.Location == LocationPath && inPath[name] && !prm.Required && prm.Value == nil {
			return p.fail(sesame.CodeInvalidField, field, "a path parameter must be required or have a default value")
		}
		if prm.Value != nil {
			v, msg := typedDefault(prm.Type, *prm.Value)
			if msg != "" {
				return p.fail(sesame.CodeInvalidField, field+".value", "%s", msg)
			}
			if prm.Location == LocationHeader && !validHeaderValue(*prm.Value) {
				return p.fail(sesame.CodeInvalidField, field+".value", "must not contain control characters such as CR or LF")
			}
			if prm.Location == LocationPath {
				if !safePathValue(listForm(v)) {
					return p.fail(sesame.CodeInvalidField, field+".value", "a path value must not be empty, \".\" or \"..\"")
				}
			}
			f.defaults[name] = v
		}
		f.Parameters[name] = prm
	}
	for _, name := range sortedKeys(inBody) {
		if _, ok := f.Parameters[name]; !ok {
			return p.fail(sesame.CodeInvalidField, "body", "refers to {{%s}}, which is not a declared parameter", truncate(name, 64))
		}
	}
	for _, name := range sortedKeys(inPath) {
		if _, ok := f.Parameters[name]; !ok {
			return p.fail(sesame.CodeInvalidField, tmplField, "refers to {%s}, which is not a declared parameter", name)
		}
	}
	f.bodyUsed = inBody

	// Body parameters the template does not use become top-level fields of the body,
	// so the template must be an object without those fields.
	if f.Body != nil {
		tmpl, isObject := f.Body.(map[string]any)
		for _, name := range sortedKeys(f.Parameters) {
			if f.Parameters[name].Location != LocationBody || inBody[name] {
				continue
			}
			field := join("parameters", name)
			if !isObject {
				return p.fail(sesame.CodeInvalidField, field, "body parameters not used by the body template need a template that is an object")
			}
			if _, ok := tmpl[name]; ok {
				return p.fail(sesame.CodeInvalidField, field, "the body template already has a field %q; use {{%s}} there", name, name)
			}
		}
	}

	if f.OutputTransform != "" {
		q, err := gojq.Parse(f.OutputTransform)
		if err != nil {
			return p.fail(sesame.CodeInvalidField, "outputTransform", "is not a valid jq expression: %s", truncate(err.Error(), 200))
		}
		guardQuery(q)
		code, err := gojq.Compile(q, append(guardOptions(), gojq.WithEnvironLoader(func() []string { return nil }))...)
		if err != nil {
			return p.fail(sesame.CodeInvalidField, "outputTransform", "is not a valid jq expression: %s", truncate(err.Error(), 200))
		}
		f.transform = jqTransform{code}
	}
	for i, h := range f.ResponseHeaders {
		if !validToken(h) {
			return p.fail(sesame.CodeInvalidField, "responseHeaders", "entry %d is not a valid header name", i)
		}
	}
	if f.AllowAnonymousEndUser && !f.AllowAnonymous {
		return p.fail(sesame.CodeInvalidField, "allowAnonymousEndUser", "needs allowAnonymous: true (it lets anonymous callers name the end user)")
	}
	for i, a := range f.AllowedApps {
		if !appID.MatchString(a) {
			return p.fail(sesame.CodeInvalidField, "allowedApps", "entry %d is not an app ID such as com.example.app", i)
		}
	}
	return nil
}

// parseURL checks f.URL and returns the raw (escaped) path part of it, which may hold
// {placeholders}. It sets f.base and f.baseQuery.
func (p *parser) parseURL(f *Function) (string, error) {
	raw := f.URL
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return "", p.fail(sesame.CodeInvalidField, "url", "must be an absolute http or https URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", p.fail(sesame.CodeInvalidField, "url", "must be an absolute http or https URL")
	}
	if u.User != nil {
		return "", p.fail(sesame.CodeInvalidField, "url", "must not hold a user name or password; use a credential parameter")
	}
	if u.Hostname() == "" || strings.ContainsAny(u.Host, "{}") {
		return "", p.fail(sesame.CodeInvalidField, "url", "must have a host")
	}
	if strings.Contains(raw, "#") {
		return "", p.fail(sesame.CodeInvalidField, "url", "must not have a fragment")
	}
	if !strings.EqualFold(raw[:len(u.Scheme)+3], u.Scheme+"://") {
		return "", p.fail(sesame.CodeInvalidField, "url", "must be an absolute http or https URL")
	}
	rest := raw[len(u.Scheme)+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	if rest[:end] != u.Host {
		return "", p.fail(sesame.CodeInvalidField, "url", "must be an absolute http or https URL")
	}
	pathAndQuery := rest[end:]
	rawPath, rawQuery, _ := strings.Cut(pathAndQuery, "?")
	if strings.ContainsAny(rawQuery, "{}") {
		return "", p.fail(sesame.CodeInvalidField, "url", "placeholders are only supported in the path")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", p.fail(sesame.CodeInvalidField, "url", "has a query that is not valid")
	}
	if _, msg := parsePathTemplate(rawPath); msg != "" {
		return "", p.fail(sesame.CodeInvalidField, "url", "path %s", msg)
	}
	f.base = scheme + "://" + u.Host
	f.baseQuery = q
	return rawPath, nil
}

// parsePathTemplate checks a path template and splits it into literals and
// placeholders. It returns a message on error.
func parsePathTemplate(s string) ([]part, string) {
	if s == "" {
		return nil, ""
	}
	if !strings.HasPrefix(s, "/") {
		return nil, "must start with /"
	}
	var parts []part
	var lit strings.Builder
	var shape strings.Builder // s with each placeholder as "x", to check segments
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, "has a { without a matching }"
			}
			name := s[i+1 : i+end]
			if !paramName.MatchString(name) || len(name) > MaxParamNameLen {
				return nil, fmt.Sprintf("has a placeholder {%s} that is not a valid parameter name", truncate(name, 64))
			}
			if lit.Len() > 0 {
				parts = append(parts, part{lit: lit.String()})
				lit.Reset()
			}
			parts = append(parts, part{param: name})
			shape.WriteByte('x')
			i += end
			continue
		case c == '}':
			return nil, "has a } without a matching {"
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, "has a % that does not start an escape such as %20"
			}
			switch b := unhex(s[i+1])<<4 | unhex(s[i+2]); b {
			case '.', '/', '\\':
				return nil, "must not hold an escaped '.', '/' or '\\'"
			}
		case c == '?':
			return nil, "must not hold a query (?); use query parameters"
		case c == '#':
			return nil, "must not hold a fragment (#)"
		case c == '\\':
			return nil, "must not hold a backslash"
		case isPathChar(c):
		default:
			return nil, "holds a character that must be escaped"
		}
		lit.WriteByte(c)
		shape.WriteByte(c)
	}
	if lit.Len() > 0 {
		parts = append(parts, part{lit: lit.String()})
	}
	sh := shape.String()
	if strings.HasPrefix(sh, "//") {
		return nil, "must not start with // (a host)"
	}
	if strings.Contains(sh, "//") {
		return nil, "must not hold an empty segment (//)"
	}
	for _, seg := range strings.Split(sh, "/") {
		if seg == "." || seg == ".." {
			return nil, "must not hold a \".\" or \"..\" segment"
		}
	}
	return parts, ""
}

// isPathChar reports whether c may appear unescaped in a path: RFC 3986 pchar and "/".
func isPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// collectPlaceholders adds the names of the placeholders in the strings of template v.
func collectPlaceholders(v any, into map[string]bool) {
	switch v := v.(type) {
	case string:
		for _, m := range placeholder.FindAllStringSubmatch(v, -1) {
			into[m[1]] = true
		}
	case []any:
		for _, e := range v {
			collectPlaceholders(e, into)
		}
	case map[string]any:
		for _, e := range v {
			collectPlaceholders(e, into)
		}
	}
}

// typedDefault converts a default value's text into the JSON value of type t.
func typedDefault(t, s string) (any, string) {
	switch t {
	case "number":
		if !jsonNumber.MatchString(s) {
			return nil, "must be a number"
		}
		return json.Number(s), ""
	case "integer":
		if !jsonInteger.MatchString(s) {
			return nil, "must be an integer"
		}
		return json.Number(s), ""
	case "boolean":
		switch s {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return nil, "must be true or false"
	case "array", "object":
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil || dec.Decode(new(any)) != io.EOF {
			return nil, "must be a JSON " + t
		}
		if _, ok := v.([]any); t == "array" && !ok {
			return nil, "must be a JSON array"
		}
		if _, ok := v.(map[string]any); t == "object" && !ok {
			return nil, "must be a JSON object"
		}
		return v, ""
	}
	return s, ""
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
