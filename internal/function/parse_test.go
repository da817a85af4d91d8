package function_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

// calendar is the example of the product specification, with a body template.
const calendar = `connection: google
method: GET
path: /calendar/v3/calendars/{calendarId}/events
parameters:
  accessToken: {location: header, required: true, type: oauth2, value: google.oauth}
  calendarId:  {location: path,   required: true, type: string}
  maxResults:  {location: query,  type: string, value: "100"}
  title:       {type: string, description: the event's title}
  attendees:   {type: array}
  name:        {location: body}
body:
  summary: "{{title}}"
  attendees: "{{attendees}}"
  note: "Hello {{name}}!"
outputTransform: .items
responseHeaders: [Content-Type, X-RateLimit-Remaining]
allowAnonymous: false
allowedApps: [com.example.app]
`

func mustParse(t testing.TB, name, src string) *function.Function {
	t.Helper()
	f, err := function.Parse(name, []byte(src))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return f
}

func ptr(s string) *string { return &s }

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, f *function.Function)
	}{
		{
			name: "the specification's example with a body template",
			src:  calendar,
			check: func(t *testing.T, f *function.Function) {
				want := map[string]function.Param{
					"accessToken": {Location: "header", Required: true, Type: "oauth2", Value: ptr("google.oauth")},
					"calendarId":  {Location: "path", Required: true, Type: "string"},
					"maxResults":  {Location: "query", Type: "string", Value: ptr("100")},
					"title":       {Location: "body", Type: "string", Description: "the event's title"},
					"attendees":   {Location: "body", Type: "array"},
					"name":        {Location: "body"},
				}
				if !reflect.DeepEqual(f.Parameters, want) {
					t.Errorf("Parameters = %+v\nwant %+v", f.Parameters, want)
				}
				if f.Connection != "google" || f.Method != "GET" || f.OutputTransform != ".items" || f.BaseURL() != "" {
					t.Errorf("got %+v", f)
				}
				if got := f.AuthParams(); !reflect.DeepEqual(got, []string{"accessToken"}) {
					t.Errorf("AuthParams = %v", got)
				}
				if !reflect.DeepEqual(f.ResponseHeaders, []string{"Content-Type", "X-RateLimit-Remaining"}) ||
					!reflect.DeepEqual(f.AllowedApps, []string{"com.example.app"}) {
					t.Errorf("got %v %v", f.ResponseHeaders, f.AllowedApps)
				}
			},
		},
		{
			name: "Jigx basicAuth header with a url and a lower-case method",
			src: `method: get
url: https://api.weather.example/data/2.5/forecast
parameters:
  basicAuth:
    location: header
    required: true
    type: string
    value: weather.basicAuth
  city:
    location: query
    required: true
    type: string
outputTransform: '.list | map({temp: .main.temp})'
`,
			check: func(t *testing.T, f *function.Function) {
				if f.Method != "GET" || f.BaseURL() != "https://api.weather.example" {
					t.Errorf("Method %q BaseURL %q", f.Method, f.BaseURL())
				}
				if got := f.AuthParams(); !reflect.DeepEqual(got, []string{"basicAuth"}) {
					t.Errorf("AuthParams = %v", got)
				}
			},
		},
		{
			name: "Jigx accessToken of type string, a url path placeholder and OData query names",
			src: `url: https://graph.microsoft.com/v1.0/users/{userId}/events
method: GET
parameters:
  accessToken: {location: header, required: true, type: string, value: microsoft.OAuth}
  userId: {location: path, required: true, type: string}
  $top: {location: query, type: integer, value: 10}
  $filter: {location: query, type: string}
`,
			check: func(t *testing.T, f *function.Function) {
				if got := f.AuthParams(); !reflect.DeepEqual(got, []string{"accessToken"}) {
					t.Errorf("AuthParams = %v", got)
				}
				if v := f.Parameters["$top"].Value; v == nil || *v != "10" {
					t.Errorf("$top value = %v", v)
				}
			},
		},
		{
			name: "credential types in query, path and body; default locations",
			src: `connection: telegram
method: POST
path: /bot{token}/sendMessage
parameters:
  token: {location: path, type: secret, value: telegram.bot}
  key: {location: query, type: api_key, value: telegram.key}
  X-Api-Key: {type: api_key, value: other.key}
  client_secret: {location: body, type: credential, value: app.secret}
  chat_id: {required: true, type: integer}
`,
			check: func(t *testing.T, f *function.Function) {
				if got := f.AuthParams(); !reflect.DeepEqual(got, []string{"X-Api-Key", "client_secret", "key", "token"}) {
					t.Errorf("AuthParams = %v", got)
				}
				for name, loc := range map[string]string{"token": "path", "key": "query", "X-Api-Key": "header", "client_secret": "body", "chat_id": "query"} {
					if got := f.Parameters[name].Location; got != loc {
						t.Errorf("%s location = %q, want %q", name, got, loc)
					}
				}
			},
		},
		{
			name: "JSON is YAML",
			src:  `{"connection": "c", "method": "post", "parameters": {"q": {"location": "body", "type": "object"}}, "body": {"n": 1.5, "list": [true, null, "{{q}}"]}}`,
			check: func(t *testing.T, f *function.Function) {
				want := map[string]any{"n": 1.5, "list": []any{true, nil, "{{q}}"}}
				if !reflect.DeepEqual(f.Body, want) {
					t.Errorf("Body = %#v", f.Body)
				}
			},
		},
		{
			name: "url with a query and a path",
			src: `url: https://api.example.com/v2/?version=2&x=a%20b
path: /items
method: GET
`,
			check: func(t *testing.T, f *function.Function) {
				if f.BaseURL() != "https://api.example.com" {
					t.Errorf("BaseURL = %q", f.BaseURL())
				}
			},
		},
		{
			name: "minimal",
			src:  "connection: c\nmethod: DELETE\n",
			check: func(t *testing.T, f *function.Function) {
				if f.Method != "DELETE" || f.Path != "" || f.Parameters != nil || f.Body != nil {
					t.Errorf("got %+v", f)
				}
			},
		},
		{
			name: "name field matching, structured defaults, JSON:API query names",
			src: `name: fn
connection: c
method: GET
path: /a:b/@x/{id}.json
parameters:
  id: {type: string, value: main}
  filter[status]: {location: query, type: array, value: [open, closed]}
  opts: {location: body, type: object, value: {a: 1}}
`,
			check: func(t *testing.T, f *function.Function) {
				if v := f.Parameters["filter[status]"].Value; v == nil || *v != `["open","closed"]` {
					t.Errorf("array default = %v", v)
				}
				if f.Parameters["id"].Location != "path" {
					t.Errorf("id location = %q", f.Parameters["id"].Location)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "fn"
			f := mustParse(t, name, tt.src)
			if f.Name != name {
				t.Errorf("Name = %q", f.Name)
			}
			tt.check(t, f)
			// The JSON form parses back to the same function.
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			g := mustParse(t, name, string(b))
			if !reflect.DeepEqual(exported(f), exported(g)) {
				t.Errorf("JSON round trip changed the function:\n%+v\n%+v", exported(f), exported(g))
			}
		})
	}
}

// exported is f as JSON, to compare functions without their compiled parts.
func exported(f *function.Function) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func TestParseInvalid(t *testing.T) {
	const head = "connection: c\nmethod: GET\n" // lines 1 and 2
	tests := []struct {
		name string
		src  string
		code sesame.Code
		want string // the message contains it; "line N: field" where there is one
	}{
		{"not YAML", "a: [", sesame.CodeInvalidArgument, "not valid YAML"},
		{"a list", "- a\n- b\n", sesame.CodeInvalidArgument, "line 1: function definition must be a mapping"},
		{"empty", "", sesame.CodeInvalidArgument, "empty"},
		{"two documents", head + "---\n" + head, sesame.CodeInvalidArgument, "single YAML document"},
		{"unknown field", head + "nosuch: 1\n", sesame.CodeUnknownField, "line 3: nosuch: unknown field"},
		{"a Sesame field in a Jigx file", head + "provider: DATA_PROVIDER_REST\n", sesame.CodeUnknownField, "line 1: connection: unknown field of a Jigx function (a file with provider: is read as Jigx's)"},
		{"unknown parameter field", head + "parameters:\n  a:\n    where: query\n", sesame.CodeUnknownField, "line 5: parameters.a.where: unknown field"},
		{"duplicate field", head + "method: POST\n", sesame.CodeInvalidField, "line 3: method: is given more than once"},
		{"no connection or url", "method: GET\n", sesame.CodeMissingField, "line 1: connection: one of connection or url is required"},
		{"connection and url", head + "url: https://x.example\n", sesame.CodeInvalidField, "line 3: url: must not be given together"},
		{"bad connection name", "connection: 'a b'\nmethod: GET\n", sesame.CodeInvalidField, "line 1: connection:"},
		{"connection not a string", "connection: [a]\nmethod: GET\n", sesame.CodeInvalidField, "line 1: connection: must be a string"},
		{"no method", "connection: c\n", sesame.CodeMissingField, "line 1: method: is required"},
		{"unknown method", "connection: c\nmethod: FETCH\n", sesame.CodeInvalidField, "line 2: method: must be one of GET"},
		{"relative path", head + "path: items\n", sesame.CodeInvalidField, "line 3: path: must start with /"},
		{"path with ..", head + "path: /a/../b\n", sesame.CodeInvalidField, `line 3: path: must not hold a "." or ".." segment`},
		{"path with .", head + "path: /a/./b\n", sesame.CodeInvalidField, `line 3: path: must not hold a "." or ".." segment`},
		{"path with //", head + "path: /a//b\n", sesame.CodeInvalidField, "line 3: path: must not hold an empty segment"},
		{"path with a host", head + "path: //evil.example/x\n", sesame.CodeInvalidField, "line 3: path: must not start with //"},
		{"path with a scheme", head + "path: http://evil.example/x\n", sesame.CodeInvalidField, "line 3: path: must start with /"},
		{"path with a backslash", head + "path: '/a\\b'\n", sesame.CodeInvalidField, "line 3: path: must not hold a backslash"},
		{"path with a query", head + "path: /a?b=c\n", sesame.CodeInvalidField, "line 3: path: must not hold a query"},
		{"path with a fragment", head + "path: '/a#b'\n", sesame.CodeInvalidField, "line 3: path: must not hold a fragment"},
		{"path with escaped dots", head + "path: /a/%2e%2e/b\n", sesame.CodeInvalidField, "line 3: path: must not hold an escaped"},
		{"path with escaped slash", head + "path: /a%2Fb\n", sesame.CodeInvalidField, "line 3: path: must not hold an escaped"},
		{"path with a space", head + "path: /a b\n", sesame.CodeInvalidField, "line 3: path: holds a character that must be escaped"},
		{"unterminated placeholder", head + "path: /a/{id\n", sesame.CodeInvalidField, "line 3: path: has a { without"},
		{"undeclared placeholder", head + "path: /a/{id}\n", sesame.CodeInvalidField, "line 3: path: refers to {id}, which is not a declared parameter"},
		{"placeholder of a query parameter", head + "path: /a/{id}\nparameters:\n  id: {location: query, required: true}\n",
			sesame.CodeInvalidField, "line 5: parameters.id.location: must be path"},
		{"path parameter not in the path", head + "path: /a\nparameters:\n  id: {location: path, required: true}\n",
			sesame.CodeInvalidField, "line 5: parameters.id.location: is path but the path has no {id}"},
		{"optional path parameter without a default", head + "path: /a/{id}\nparameters:\n  id: {location: path}\n",
			sesame.CodeInvalidField, "line 5: parameters.id: a path parameter must be required or have a default value"},
		{"path parameter defaulting to ..", head + "path: /a/{id}\nparameters:\n  id: {value: '..'}\n",
			sesame.CodeInvalidField, "line 5: parameters.id.value:"},
		{"relative url", "url: /v1/x\nmethod: GET\n", sesame.CodeInvalidField, "line 1: url: must be an absolute http or https URL"},
		{"ftp url", "url: ftp://x.example/a\nmethod: GET\n", sesame.CodeInvalidField, "line 1: url: must be an absolute http or https URL"},
		{"url with user info", "url: https://user:pw@x.example/a\nmethod: GET\n", sesame.CodeInvalidField, "line 1: url: must not hold a user name"},
		{"url with a fragment", "url: 'https://x.example/a#f'\nmethod: GET\n", sesame.CodeInvalidField, "line 1: url: must not have a fragment"},
		{"url without a host", "url: 'https:///a'\nmethod: GET\n", sesame.CodeInvalidField, "line 1: url: must have a host"},
		{"url with a placeholder in the query", "url: 'https://x.example/a?q={q}'\nmethod: GET\nparameters:\n  q: {}\n", sesame.CodeInvalidField, "line 1: url: placeholders are only supported in the path"},
		{"url with .. in the path", "url: 'https://x.example/a/../b'\nmethod: GET\n", sesame.CodeInvalidField, "line 1: url: path must not hold"},
		{"query parameter set by the url", "url: 'https://x.example/a?q=1'\nmethod: GET\nparameters:\n  q: {}\n", sesame.CodeInvalidField, "line 4: parameters.q: the url's query already sets"},
		{"bad location", head + "path: /calendars/{calendarId}\nparameters:\n  accessToken: {type: oauth2, value: google.oauth}\n  calendarId:\n    location: where\n",
			sesame.CodeInvalidField, "line 7: parameters.calendarId.location: must be one of path, query, header, body"},
		{"bad type", head + "parameters:\n  a: {type: text}\n", sesame.CodeInvalidField, "line 4: parameters.a.type: must be one of string"},
		{"required not a boolean", head + "parameters:\n  a: {required: yes}\n", sesame.CodeInvalidField, "line 4: parameters.a.required: must be true or false"},
		{"parameter not a mapping", head + "parameters:\n  a: query\n", sesame.CodeInvalidField, "line 4: parameters.a: must be a mapping"},
		{"parameters not a mapping", head + "parameters: [a]\n", sesame.CodeInvalidField, "line 3: parameters: must be a mapping"},
		{"bad parameter name", head + "parameters:\n  'a b': {}\n", sesame.CodeInvalidField, "line 4: parameters.a b: parameter names must be"},
		{"brackets in a header name", head + "parameters:\n  'a[b]': {location: header}\n", sesame.CodeInvalidField, "line 4: parameters.a[b]: '[' and ']' are only allowed"},
		{"credential without a key", head + "parameters:\n  accessToken: {location: header}\n", sesame.CodeMissingField, "line 4: parameters.accessToken.value: must name the credential"},
		{"credential with a bad key", head + "parameters:\n  basicAuth:\n    type: basic\n    value: 'not a key'\n", sesame.CodeInvalidField, "line 6: parameters.basicAuth.value: must be a credential key"},
		{"reserved header", head + "parameters:\n  Host: {location: header, value: evil.example}\n", sesame.CodeInvalidField, "line 4: parameters.Host: header Host cannot be set"},
		{"same header twice", head + "parameters:\n  X-Key: {location: header}\n  x-key: {location: header}\n", sesame.CodeInvalidField, "line 5: parameters.x-key: is the same header as"},
		{"CR LF in a header default", head + "parameters:\n  X-Key:\n    location: header\n    value: \"a\\r\\nX-Evil: 1\"\n", sesame.CodeInvalidField, "line 6: parameters.X-Key.value: must not contain control characters"},
		{"number default not a number", head + "parameters:\n  n: {type: number, value: abc}\n", sesame.CodeInvalidField, "line 4: parameters.n.value: must be a number"},
		{"integer default not an integer", head + "parameters:\n  n: {type: integer, value: 1.5}\n", sesame.CodeInvalidField, "line 4: parameters.n.value: must be an integer"},
		{"boolean default not a boolean", head + "parameters:\n  n: {type: boolean, value: yes}\n", sesame.CodeInvalidField, "line 4: parameters.n.value: must be true or false"},
		{"array default not an array", head + "parameters:\n  n: {type: array, value: '{}'}\n", sesame.CodeInvalidField, "line 4: parameters.n.value: must be a JSON array"},
		{"body refers to an undeclared parameter", head + "body:\n  a: '{{nope}}'\n", sesame.CodeInvalidField, "line 3: body: refers to {{nope}}"},
		{"body refers to a query parameter", head + "parameters:\n  q: {location: query}\nbody:\n  a: 'x {{q}}'\n", sesame.CodeInvalidField, "line 4: parameters.q.location: must be body"},
		{"unused body parameter with a list template", head + "parameters:\n  b: {location: body}\nbody: [1, 2]\n", sesame.CodeInvalidField, "line 4: parameters.b: body parameters not used by the body template"},
		{"unused body parameter clashing with the template", head + "parameters:\n  b: {location: body}\nbody: {b: 1}\n", sesame.CodeInvalidField, "line 4: parameters.b: the body template already has a field"},
		{"body with an alias", head + "body:\n  a: &x {b: 1}\n  c: *x\n", sesame.CodeInvalidField, "line 5: body.c: aliases are not supported"},
		{"body with a merge key", head + "body:\n  <<: {b: 1}\n", sesame.CodeInvalidField, "line 4: body: merge keys"},
		{"body with NaN", head + "body: {a: .nan}\n", sesame.CodeInvalidField, "line 3: body.a: must be a finite number"},
		{"body with binary", head + "body: {a: !!binary aGVsbG8=}\n", sesame.CodeInvalidField, "line 3: body.a: tag"},
		{"body nested too deeply", head + "body: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n", sesame.CodeInvalidField, "line 3: body"},
		{"bad jq", head + "outputTransform: '.items['\n", sesame.CodeInvalidField, "line 3: outputTransform: is not a valid jq expression"},
		{"unknown jq function", head + "outputTransform: 'nosuchfn(1)'\n", sesame.CodeInvalidField, "line 3: outputTransform: is not a valid jq expression"},
		{"jq module import", head + "outputTransform: 'import \"a\" as a; .'\n", sesame.CodeInvalidField, "line 3: outputTransform: is not a valid jq expression"},
		{"bad response header", head + "responseHeaders: ['Bad Header']\n", sesame.CodeInvalidField, "line 3: responseHeaders: entry 0 is not a valid header name"},
		{"response headers not a list", head + "responseHeaders: Content-Type\n", sesame.CodeInvalidField, "line 3: responseHeaders: must be a list"},
		{"bad app ID", head + "allowedApps: [Com.Example]\n", sesame.CodeInvalidField, "line 3: allowedApps: entry 0 is not an app ID"},
		{"allowAnonymous not a boolean", head + "allowAnonymous: 'true'\n", sesame.CodeInvalidField, "line 3: allowAnonymous: must be true or false"},
		{"name mismatch", "name: other\n" + head, sesame.CodeInvalidField, "line 1: name: does not match"},
		{"too many parameters", head + "parameters:\n" + manyParams(function.MaxParameters+1), sesame.CodeInvalidField, "line 3: parameters: must have at most 256 parameters"},
		{"too large", head + "description: " + strings.Repeat("x", function.MaxSourceSize), sesame.CodePayloadTooLarge, "larger than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := function.Parse("fn", []byte(tt.src))
			assertError(t, err, tt.code, tt.want)
		})
	}
}

func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  p%d: {}\n", i)
	}
	return b.String()
}

func TestParseRefusesInvalidNames(t *testing.T) {
	for _, name := range []string{"", "-x", "a b", "a/b", strings.Repeat("a", 129)} {
		_, err := function.Parse(name, []byte("connection: c\nmethod: GET\n"))
		assertError(t, err, sesame.CodeInvalidName, "function name")
	}
}

func TestParseErrorsDoNotQuoteValues(t *testing.T) {
	// A definition is not secret, but a value pasted in the wrong place might be.
	for _, src := range []string{
		"connection: c\nmethod: " + canary + "\n",
		"connection: c\nmethod: GET\npath: /" + canary + "/..\n",
		"url: ftp://" + canary + "\nmethod: GET\n",
		"connection: c\nmethod: GET\nparameters:\n  accessToken: {value: '" + canary + " x'}\n",
		"connection: c\nmethod: GET\nparameters:\n  n: {type: number, value: " + canary + "}\n",
		"connection: c\nmethod: GET\nallowedApps: [" + canary + "]\n",
	} {
		_, err := function.Parse("fn", []byte(src))
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", src)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("error quotes a value: %v", err)
		}
	}
}

// assertError checks that err is a *sesame.Error with the code and a message holding want.
func assertError(t *testing.T, err error, code sesame.Code, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s %q", code, want)
	}
	var se *sesame.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *sesame.Error", err, err)
	}
	if se.Code != code || !strings.Contains(se.Message, want) {
		t.Errorf("error = %v\nwant code %s and a message holding %q", err, code, want)
	}
}
