// Package function parses, validates and builds calls for functions: declared HTTP calls
// written in YAML (or JSON) in the shape integration builders already write:
//
//	connection: google
//	method: GET
//	path: /calendar/v3/calendars/{calendarId}/events
//	parameters:
//	  accessToken: {location: header, required: true, type: oauth2, value: google.oauth}
//	  calendarId:  {location: path,   required: true, type: string}
//	  maxResults:  {location: query,  type: string, value: "100"}
//	outputTransform: .items
//
// Parse turns a definition into a *Function, Build turns a caller's JSON arguments and
// the credential values the server resolved into a Request relative to a base URL, and
// Transform applies the output transform (jq) to a decoded response.
//
// The package does no I/O beyond LoadDir and knows nothing about stores or HTTP clients.
package function

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Limits on a definition.
const (
	MaxSourceSize      = 64 << 10 // bytes of YAML or JSON
	MaxParameters      = 256
	MaxParamNameLen    = 128
	MaxValueLen        = 8 << 10 // a parameter's default value
	MaxDescriptionLen  = 4 << 10
	MaxPathLen         = 2048 // path, and url
	MaxTransformLen    = 8 << 10
	MaxResponseHeaders = 64
	MaxAllowedApps     = 256
	MaxBodyDepth       = 32 // nesting of the body template
)

// DefaultMaxResponseBytes is how much of an upstream response a function call buffers
// when the function does not set maxResponseBytes. A response with an outputTransform
// must fit; one without is streamed to the caller once it is larger.
const DefaultMaxResponseBytes = 16 << 20

// Parameter locations.
const (
	LocationPath   = "path"
	LocationQuery  = "query"
	LocationHeader = "header"
	LocationBody   = "body"
)

var locations = []string{LocationPath, LocationQuery, LocationHeader, LocationBody}

// Value types a caller's argument is checked against. An empty Type accepts any JSON value.
var valueTypes = []string{"string", "number", "integer", "boolean", "array", "object"}

// credentialTypes are the parameter types that mean "this parameter names a stored
// credential": the credential kinds, and the alias "credential" for any kind.
var credentialTypes = []string{"api_key", "basic", "bearer", "secret", "oauth2", "jwt_bearer", "credential"}

// IsCredentialType reports whether t is a parameter type naming a stored credential.
func IsCredentialType(t string) bool { return slices.Contains(credentialTypes, t) }

// Parameter names that are credential references whatever their type, as Jigx functions
// write them (`accessToken: {type: string, value: microsoft.oauth}`).
const (
	nameBasicAuth   = "basicAuth"
	nameAccessToken = "accessToken"
)

// IsAuth reports whether parameter p, named name, is a credential reference: its Type is a
// credential type, or its name is "basicAuth" or "accessToken". Its Value is then the key
// of a credential, and callers cannot give it a value.
func IsAuth(name string, p Param) bool {
	return IsCredentialType(p.Type) || name == nameBasicAuth || name == nameAccessToken
}

// Param is one declared parameter.
type Param struct {
	// Location is where the value goes: path, query, header or body. Parse fills in the
	// default: header for credential references; path or body for a parameter the path
	// or the body template refers to; query otherwise.
	Location string `yaml:"location" json:"location"`
	Required bool   `yaml:"required" json:"required,omitempty"`
	// Type is string, number, integer, boolean, array or object (checked against the
	// caller's value), a credential type (see IsCredentialType), or empty for any value.
	Type string `yaml:"type" json:"type,omitempty"`
	// Value is the default value (its text; for array and object, JSON), or for a
	// credential reference the key of the credential.
	Value       *string `yaml:"value" json:"value,omitempty"`
	Description string  `yaml:"description" json:"description,omitempty"`
}

// Function is a parsed, validated function definition. It is read-only after Parse and
// safe for concurrent use.
type Function struct {
	Name            string           `yaml:"-" json:"name"`
	Connection      string           `yaml:"connection" json:"connection,omitempty"`
	URL             string           `yaml:"url" json:"url,omitempty"`
	Method          string           `yaml:"method" json:"method"`
	Path            string           `yaml:"path" json:"path,omitempty"`
	Parameters      map[string]Param `yaml:"parameters" json:"parameters,omitempty"`
	Body            any              `yaml:"body" json:"body,omitempty"`
	OutputTransform string           `yaml:"outputTransform" json:"outputTransform,omitempty"`
	ResponseHeaders []string         `yaml:"responseHeaders" json:"responseHeaders,omitempty"`
	AllowAnonymous  bool             `yaml:"allowAnonymous" json:"allowAnonymous,omitempty"`
	// AllowAnonymousEndUser lets anonymous callers name the end user of a call (a function
	// call's "user"), which selects an OAuth2 grant and fills {{user}} in a signed JWT.
	// Without it an anonymous call that names one is refused: the end user would be
	// whoever the caller claims. It needs AllowAnonymous.
	AllowAnonymousEndUser bool     `yaml:"allowAnonymousEndUser" json:"allowAnonymousEndUser,omitempty"`
	AllowedApps           []string `yaml:"allowedApps" json:"allowedApps,omitempty"`
	// MaxResponseBytes bounds what a call buffers of the upstream response (see
	// ResponseBuffer); 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64 `yaml:"maxResponseBytes" json:"maxResponseBytes,omitempty"`
	// The fields of a Jigx function file (see jigx.go); zero for Sesame's own format.
	jigxFields

	base      string         // for a url function: scheme://host[:port]; "" for a connection
	baseQuery url.Values     // for a url function: the url's query
	path      []part         // path template (url path + path), parsed
	defaults  map[string]any // typed default values of non-credential parameters
	bodyUsed  map[string]bool
	transform transformer       // outputTransform: jq, or JSONata for a Jigx function
	input     *jsonataTransform // Jigx inputTransform
	records   *jsonataTransform // Jigx records
}

// part is a piece of the path template: a literal (already escaped) or a placeholder.
type part struct {
	lit   string
	param string
}

// ResponseBuffer is the most a call buffers of the upstream response.
func (f *Function) ResponseBuffer() int64 {
	if f.MaxResponseBytes > 0 {
		return f.MaxResponseBytes
	}
	return DefaultMaxResponseBytes
}

// AuthParams returns the names of the credential-reference parameters, sorted.
func (f *Function) AuthParams() []string {
	var out []string
	for name, p := range f.Parameters {
		if IsAuth(name, p) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// BaseURL returns the base a Request built by f is relative to when f has a url:
// its scheme and host (with port), such as "https://api.example.com". The url's path is
// part of every Request.Path and its query part of every Request.Query. For a function
// on a connection it returns "": the connection's base URI is the base.
func (f *Function) BaseURL() string { return f.base }

var (
	paramName      = regexp.MustCompile(`^[A-Za-z0-9_.$-]+$`)
	queryParamName = regexp.MustCompile(`^[A-Za-z0-9_.$\[\]-]+$`) // JSON:API style filter[name]
	appID          = regexp.MustCompile(`^[a-z0-9*][a-z0-9.*_-]{0,254}$`)
	jsonNumber     = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)
	jsonInteger    = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	// placeholder is a body template placeholder, "{{name}}" with optional spaces.
	placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.$-]+)\s*\}\}`)
	// wholePlaceholder is a string that is one placeholder and nothing else.
	wholePlaceholder = regexp.MustCompile(`^\{\{\s*([A-Za-z0-9_.$-]+)\s*\}\}$`)
)

var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// reservedHeaders are headers a parameter may not set: they steer the connection or the
// framing of the request, not the API call (Host would let a function talk to another
// virtual host behind the connection's address).
var reservedHeaders = []string{
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade",
	"Te", "Trailer", "Expect", "Proxy-Authorization", "Proxy-Connection", "Proxy-Authenticate",
}

// validToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s may be sent as a header value: no control
// characters other than horizontal tab (so no CR, LF or NUL).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
