// Package credential defines the credential kinds: for each type, its fields, which of them
// are secret, and how a request body for it is checked. Each kind lives in its own file and
// is listed once in the registry below; injection (turning a credential into request
// material) plugs into the same Kind values.
package credential

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/sesamehq/sesame"
)

// FieldType says what JSON a field accepts.
type FieldType int

const (
	String     FieldType = iota // a JSON string
	StringList                  // a JSON array of strings, or one string split on spaces/commas
	Object                      // a JSON object (templates, extra headers)
	URL                         // an absolute http(s) URL
	Integer                     // a JSON integer (stored as float64, as JSON decodes it)
	Bool                        // a JSON boolean
)

// Field describes one field of a credential type.
type Field struct {
	Name     string
	Type     FieldType
	Secret   bool
	Required bool
	Enum     []string // allowed values, for String fields
	Default  string   // applied when a String field is absent
	MaxLen   int      // for String fields; 0 means the package default
	// KeyParam marks a field that says how a secret is read (a JWT's alg): changing it
	// needs the secret sent again, never checked against the stored one.
	KeyParam bool
}

// Kind is one credential type.
type Kind struct {
	Name   string
	Fields []Field
	// Check validates the combination of fields once each field is valid on its own.
	// present reports whether a (public or secret) field has a value.
	Check func(public map[string]any, present func(string) bool) error
	// Inject adds the credential to a request; nil for kinds that need a token service.
	Inject InjectFunc
	// Verify, if set, checks the secret values themselves when a credential is saved (for
	// example that a private key parses and fits the algorithm). Its error must name the
	// field and never quote a value.
	Verify func(public map[string]any, secrets map[string]sesame.Secret) error
	// Endpoints, if set, returns the URLs the kind itself sends secrets to, by field name,
	// as they take effect (after a provider template, say). Without it, the kind's URL
	// fields are its endpoints. Where a secret may go is fixed when it is entered: a
	// change of an endpoint needs the secrets again, or an admin.
	Endpoints func(public map[string]any) map[string]string
}

// commonFields are accepted by every kind. "hosts" binds a credential to the hosts it may
// be sent to: a connection or function that would send it elsewhere is refused.
var commonFields = []Field{
	{Name: "hosts", Type: StringList},
}

// Field returns the named field.
func (k *Kind) Field(name string) (Field, bool) {
	for _, f := range append(k.Fields, commonFields...) {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// SecretFields returns the names of the kind's secret fields.
func (k *Kind) SecretFields() []string {
	var out []string
	for _, f := range k.Fields {
		if f.Secret {
			out = append(out, f.Name)
		}
	}
	return out
}

// registry lists every kind; adding a kind is one file and one line here.
var registry = map[string]*Kind{
	apiKey.Name:    &apiKey,
	basic.Name:     &basic,
	bearer.Name:    &bearer,
	secret.Name:    &secret,
	oauth2.Name:    &oauth2,
	jwtBearer.Name: &jwtBearer,
}

// Lookup returns the kind named t.
func Lookup(t string) (*Kind, bool) {
	k, ok := registry[t]
	return k, ok
}

// Types returns the names of all kinds, sorted.
func Types() []string {
	out := make([]string, 0, len(registry))
	for name := range registry {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

const (
	defaultMaxLen = 4096
	maxSecretLen  = 64 << 10 // PEM and PKCS#12 blobs
	maxListLen    = 100
	maxObjectLen  = 16 << 10
)

// SecretInput is the value given for a secret field in a write: a new value, or Keep.
type SecretInput struct {
	Value sesame.Secret
	Keep  bool
}

// Input is a checked credential body.
type Input struct {
	Kind    *Kind
	Public  map[string]any
	Secrets map[string]SecretInput
}

// Parse checks a credential body {"type": ..., "fields": {...}} and splits it into public
// values and secret inputs. Errors name the offending field and never quote a value.
func Parse(body []byte) (Input, error) {
	in, err := ParseUnchecked(body)
	if err != nil {
		return Input{}, err
	}
	return in, in.Validate()
}

// ParseUnchecked is Parse without the checks that need every field at once (required
// fields and the kind's combination rules), so a caller can first say something more
// precise about a field that is missing; it must then call Validate.
func ParseUnchecked(body []byte) (Input, error) {
	var raw struct {
		Type   *string                    `json:"type"`
		Fields map[string]json.RawMessage `json:"fields"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Input{}, jsonError(err)
	}
	// Only whitespace may follow the value. (dec.More() would let a stray "}" or "]" through.)
	if len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return Input{}, sesame.Errorf(sesame.CodeInvalidJSON, "request body must hold a single JSON object")
	}
	if raw.Type == nil || *raw.Type == "" {
		return Input{}, sesame.Errorf(sesame.CodeMissingField, "field %q is required", "type")
	}
	kind, ok := Lookup(*raw.Type)
	if !ok {
		// The value is not echoed: a pasted secret in the wrong place must not come back.
		return Input{}, sesame.Errorf(sesame.CodeUnknownType, "field %q names an unknown credential type; known types: %s",
			"type", strings.Join(Types(), ", "))
	}
	return kind.parseFields(raw.Fields)
}

func (k *Kind) parseFields(fields map[string]json.RawMessage) (Input, error) {
	in := Input{Kind: k, Public: map[string]any{}, Secrets: map[string]SecretInput{}}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // report errors deterministically
	for _, name := range names {
		f, ok := k.Field(name)
		if !ok {
			return Input{}, sesame.Errorf(sesame.CodeUnknownField, "unknown field %q for type %s; fields are: %s",
				truncate(name, 64), k.Name, strings.Join(k.fieldNames(), ", "))
		}
		v := fields[name]
		if isNull(v) {
			continue
		}
		if f.Secret {
			s, err := parseSecret(f, v)
			if err != nil {
				return Input{}, err
			}
			in.Secrets[name] = s
			continue
		}
		pv, err := parsePublic(f, v)
		if err != nil {
			return Input{}, err
		}
		if name == "hosts" {
			if err := checkHosts(pv.([]any)); err != nil {
				return Input{}, err
			}
		}
		in.Public[name] = pv
	}
	for _, f := range k.Fields {
		if f.Secret {
			continue
		}
		if _, ok := in.Public[f.Name]; !ok && f.Default != "" {
			in.Public[f.Name] = f.Default
		}
	}
	return in, nil
}

// Validate checks that required fields are present and that the kind accepts the
// combination of fields.
func (in Input) Validate() error {
	present := func(name string) bool {
		if _, ok := in.Public[name]; ok {
			return true
		}
		_, ok := in.Secrets[name]
		return ok
	}
	for _, f := range in.Kind.Fields {
		if f.Required && !present(f.Name) {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for type %s", f.Name, in.Kind.Name)
		}
	}
	if in.Kind.Check != nil {
		return in.Kind.Check(in.Public, present)
	}
	return nil
}

func (k *Kind) fieldNames() []string {
	var out []string
	for _, f := range append(k.Fields, commonFields...) {
		out = append(out, f.Name)
	}
	return out
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func parseSecret(f Field, v json.RawMessage) (SecretInput, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		if s == "" {
			return SecretInput{}, sesame.Errorf(sesame.CodeInvalidField, "field %q must not be empty", f.Name)
		}
		if len(s) > maxSecretLen {
			return SecretInput{}, sesame.Errorf(sesame.CodeInvalidField, "field %q is longer than %d bytes", f.Name, maxSecretLen)
		}
		return SecretInput{Value: sesame.NewSecret([]byte(s))}, nil
	}
	var keep struct {
		Keep bool `json:"keep"`
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&keep); err == nil && keep.Keep {
		return SecretInput{Keep: true}, nil
	}
	return SecretInput{}, sesame.Errorf(sesame.CodeInvalidField,
		`secret field %q must be a string, or {"keep": true} to keep the stored value`, f.Name)
}

func parsePublic(f Field, v json.RawMessage) (any, error) {
	switch f.Type {
	case String, URL:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be a string", f.Name)
		}
		max := f.MaxLen
		if max == 0 {
			max = defaultMaxLen
		}
		if len(s) > max {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q is longer than %d bytes", f.Name, max)
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must not contain CR, LF or NUL", f.Name)
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be one of: %s", f.Name, strings.Join(f.Enum, ", "))
		}
		if f.Type == URL {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
				return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be an absolute http or https URL without user info", f.Name)
			}
		}
		return s, nil
	case StringList:
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be an array of strings", f.Name)
			}
			list = strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
		}
		if len(list) > maxListLen {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q has more than %d entries", f.Name, maxListLen)
		}
		out := make([]any, 0, len(list))
		for _, s := range list {
			if s == "" || len(s) > defaultMaxLen || strings.ContainsAny(s, "\r\n\x00") {
				return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q has an empty or invalid entry", f.Name)
			}
			out = append(out, s)
		}
		return out, nil
	case Integer:
		var n int64
		if err := json.Unmarshal(v, &n); err != nil || n > 1<<53 || n < -(1<<53) {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be an integer", f.Name)
		}
		return float64(n), nil
	case Bool:
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be true or false", f.Name)
		}
		return b, nil
	case Object:
		if len(v) > maxObjectLen {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q is larger than %d bytes", f.Name, maxObjectLen)
		}
		var obj map[string]any
		if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
			return nil, sesame.Errorf(sesame.CodeInvalidField, "field %q must be a JSON object", f.Name)
		}
		return obj, nil
	}
	return nil, fmt.Errorf("credential: field %q has unknown type %d", f.Name, f.Type)
}

func jsonError(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return sesame.Errorf(sesame.CodeUnknownField, "unknown top-level field %s; a credential body is {\"type\": ..., \"fields\": {...}}",
			truncate(strings.TrimPrefix(msg, "json: unknown field "), 64))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return sesame.Errorf(sesame.CodeInvalidJSON, "field %q has the wrong JSON type", te.Field)
	}
	return sesame.Errorf(sesame.CodeInvalidJSON, "request body is not valid JSON")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
