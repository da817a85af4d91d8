package jwtbearer

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

// Field names of a jwt_bearer credential (PRODUCT.md §3, and the public settings this
// package adds).
const (
	FieldAlg            = "alg"
	FieldSecret         = "secret"
	FieldSecretEncoding = "secret_encoding"
	FieldPrivateKey     = "private_key"
	FieldPKCS12         = "pkcs12"
	FieldPKCS12Password = "pkcs12_password"
	FieldPayload        = "payload"
	FieldHeaders        = "headers"
	FieldTokenURL       = "token_url"
	FieldScope          = "scope"
	FieldLifetime       = "lifetime_seconds"
	FieldReuse          = "reuse"
	FieldHeaderName     = "header_name"
	FieldScheme         = "scheme"
)

// Values of secret_encoding.
const (
	EncodingText   = "text"
	EncodingBase64 = "base64"
)

// Lifetime bounds of a signed JWT.
const (
	DefaultLifetime = 5 * time.Minute
	MinLifetime     = 10 * time.Second
	MaxLifetime     = 24 * time.Hour
)

// Options are the public settings of a jwt_bearer credential.
type Options struct {
	Alg      string
	Payload  map[string]any // claims template
	Headers  map[string]any // extra JOSE header fields (template)
	Lifetime time.Duration
	Reuse    bool // reuse a signed JWT until shortly before it expires
	TokenURL string
	Scope    string // sent with the RFC 7523 exchange
	// HeaderName and Scheme say where the token goes by default: HeaderName: Scheme token.
	// An empty Scheme sends the bare token.
	HeaderName string
	Scheme     string

	usesUser, usesCaller bool
}

// UsesUser reports whether the payload uses {{user}}, so tokens must be kept apart per
// end user.
func (o Options) UsesUser() bool { return o.usesUser }

// UsesCaller reports whether the payload uses {{caller}}, so tokens must be kept apart per
// caller.
func (o Options) UsesCaller() bool { return o.usesCaller }

// Template variables. Payload values may use the first four; header values those fixed
// per credential.
const (
	VarUser       = "user"       // the end user the call acts for (sesame.EndUserFrom)
	VarCaller     = "caller"     // the authenticated caller: a Sesame user's name or an app's ID
	VarWorkspace  = "workspace"  // the credential's workspace
	VarCredential = "credential" // the credential's key
	VarX5t        = "x5t"        // base64url SHA-1 thumbprint of the key's certificate
	VarX5tS256    = "x5t#S256"   // base64url SHA-256 thumbprint of the key's certificate
)

var (
	payloadVars = []string{VarUser, VarCaller, VarWorkspace, VarCredential}
	headerVars  = []string{VarWorkspace, VarCredential, VarX5t, VarX5tS256}
	templateVar = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_#]+)\s*\}\}`)
)

// headers that Sesame sets or that would change how the JWS is read.
var reservedHeaders = []string{"alg", "crit", "b64", "enc", "zip", "jwk", "x5c", "x5u", "jku"}

// ParseOptions reads and checks the public fields of a jwt_bearer credential as they are
// stored (numbers may arrive as float64 or int64). Errors name the field.
func ParseOptions(public map[string]any) (Options, error) {
	o := Options{Lifetime: DefaultLifetime, HeaderName: "Authorization", Scheme: "Bearer"}
	o.Alg, _ = public[FieldAlg].(string)
	if _, ok := algorithms[o.Alg]; !ok {
		return o, fieldError(FieldAlg, "must be one of %s", strings.Join(Algorithms, ", "))
	}
	if enc, ok := public[FieldSecretEncoding].(string); ok {
		if enc != EncodingText && enc != EncodingBase64 {
			return o, fieldError(FieldSecretEncoding, "must be %q or %q", EncodingText, EncodingBase64)
		}
		if algorithms[o.Alg].family != familyHMAC {
			return o, fieldError(FieldSecretEncoding, "applies only to HS256/384/512")
		}
	}
	var err error
	if o.Payload, err = object(public, FieldPayload); err != nil {
		return o, err
	}
	if o.Headers, err = object(public, FieldHeaders); err != nil {
		return o, err
	}
	used, err := checkTemplate(FieldPayload, o.Payload, payloadVars)
	if err != nil {
		return o, err
	}
	o.usesUser, o.usesCaller = used[VarUser], used[VarCaller]
	if _, err = checkTemplate(FieldHeaders, o.Headers, headerVars); err != nil {
		return o, err
	}
	for _, h := range reservedHeaders {
		if _, ok := o.Headers[h]; ok {
			return o, fieldError(FieldHeaders, "must not set %q: Sesame sets the JOSE header fields that decide how the token is read", h)
		}
	}
	for _, h := range []string{"kid", "typ", "cty"} {
		if v, ok := o.Headers[h]; ok && v != nil {
			if _, isString := v.(string); !isString {
				return o, fieldError(FieldHeaders, "field %q must be a string (or null to leave it out)", h)
			}
		}
	}
	if v, ok := public[FieldLifetime]; ok {
		n, ok := number(v)
		if !ok || n != math.Trunc(n) || n < MinLifetime.Seconds() || n > MaxLifetime.Seconds() {
			return o, fieldError(FieldLifetime, "must be a whole number of seconds from %d to %d", int(MinLifetime.Seconds()), int(MaxLifetime.Seconds()))
		}
		o.Lifetime = time.Duration(n) * time.Second
	}
	if v, ok := public[FieldReuse]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return o, fieldError(FieldReuse, "must be true or false")
		}
		o.Reuse = b
	}
	if v, ok := public[FieldTokenURL].(string); ok && v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return o, fieldError(FieldTokenURL, "must be an absolute http or https URL without user info or fragment")
		}
		o.TokenURL = v
	}
	if v, ok := public[FieldScope].(string); ok {
		if o.TokenURL == "" {
			return o, fieldError(FieldScope, "applies only with %q (it is sent with the token exchange; put a scope claim in %q instead)", FieldTokenURL, FieldPayload)
		}
		o.Scope = v
	}
	if v, ok := public[FieldHeaderName].(string); ok {
		if !isToken(v) {
			return o, fieldError(FieldHeaderName, "must be a valid HTTP header name")
		}
		o.HeaderName = v
	}
	if v, ok := public[FieldScheme].(string); ok {
		if v != "" && !isToken(v) {
			return o, fieldError(FieldScheme, "must be an HTTP auth scheme such as Bearer, or empty to send the bare token")
		}
		o.Scheme = v
	}
	if v, ok := o.Payload["exp"]; ok && v == nil && o.Reuse {
		return o, fieldError(FieldReuse, "needs an expiring token, but %q leaves out %q", FieldPayload, "exp")
	}
	return o, nil
}

func object(public map[string]any, field string) (map[string]any, error) {
	v, ok := public[field]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldError(field, "must be a JSON object")
	}
	return m, nil
}

// number returns a JSON number as float64, as it arrives from a fresh parse or from storage.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

// checkTemplate checks that every {{variable}} in the string values of tmpl is one of
// allowed, and returns the variables used.
func checkTemplate(field string, tmpl map[string]any, allowed []string) (map[string]bool, error) {
	used := map[string]bool{}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case string:
			for _, m := range templateVar.FindAllStringSubmatch(x, -1) {
				name := m[1]
				if !contains(allowed, name) {
					if len(name) > 32 {
						name = name[:32] + "…"
					}
					return fieldError(field, "uses the unknown variable {{%s}}; %s may use %s", name, field, listVars(allowed))
				}
				used[name] = true
			}
		case map[string]any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if tmpl == nil {
		return used, nil
	}
	return used, walk(tmpl)
}

func listVars(vs []string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "{{" + v + "}}"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// isToken reports whether s is an RFC 9110 token, as header names and auth schemes are.
func isToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Vars are the values of the template variables for one call.
type Vars struct {
	User       string // end user
	Caller     string
	Workspace  string
	Credential string
}

func (v Vars) lookup(name string) string {
	switch name {
	case VarUser:
		return v.User
	case VarCaller:
		return v.Caller
	case VarWorkspace:
		return v.Workspace
	case VarCredential:
		return v.Credential
	}
	return ""
}

// missingVars lists template variables that had no value, as an error.
type missingVars []string

func (m missingVars) Error() string { return "{{" + strings.Join(m, "}}, {{") + "}}" }

// render returns a deep copy of tmpl with each {{variable}} replaced by lookup's value.
// A variable without a value is an error (a missingVars, sorted): a token must never go
// out with an empty subject because the call had no user.
func render(tmpl map[string]any, lookup func(string) (string, bool)) (map[string]any, error) {
	var missing missingVars
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			if !strings.Contains(x, "{{") {
				return x
			}
			return templateVar.ReplaceAllStringFunc(x, func(m string) string {
				name := templateVar.FindStringSubmatch(m)[1]
				val, ok := lookup(name)
				if !ok && !contains(missing, name) {
					missing = append(missing, name)
				}
				return val
			})
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = walk(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		}
		return v
	}
	out, _ := walk(tmpl).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return out, missing
	}
	return out, nil
}

func missingVar(err error, key string) error {
	var hints []string
	if m, ok := err.(missingVars); ok {
		for _, name := range m {
			switch name {
			case VarUser:
				hints = append(hints, "the end user comes from the proxy's X-Sesame-User header or a function call's \"user\"")
			case VarCaller:
				hints = append(hints, "the caller is the authenticated user or app")
			}
		}
	}
	msg := fmt.Sprintf("credential %q signs a JWT whose payload uses %s, but this call has no value for it", key, err.Error())
	if len(hints) > 0 {
		msg += " (" + strings.Join(hints, "; ") + ")"
	}
	return &sesame.Error{Code: sesame.CodeInvalidArgument, Message: msg}
}
