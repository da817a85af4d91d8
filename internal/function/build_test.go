package function_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

// canary is every secret value in these tests; no error message may contain it.
const canary = "CANARY-7f3a"

const base = "https://api.example.com/v1"

// every places parameters at every location.
const every = `connection: api
method: POST
path: /items/{id}/sub
parameters:
  id: {location: path, required: true, type: string}
  q: {location: query, type: string}
  tags: {location: query, type: array}
  limit: {location: query, type: integer, value: "10"}
  X-Trace: {location: header, type: string}
  flags: {location: header, type: array}
  name: {location: body, type: string, required: true}
  count: {location: body, type: number}
  meta: {location: body, type: object}
  any: {location: body}
`

// withSecrets has credential parameters at every location.
const withSecrets = `connection: api
method: POST
path: /bot{token}/send
parameters:
  token: {location: path, type: secret, value: tg.token}
  api_key: {location: query, type: api_key, value: x.key}
  X-API-Key: {location: header, type: api_key, value: x.key2}
  client_secret: {location: body, type: secret, value: x.cs}
  accessToken: {type: string, value: google.oauth}
  text: {location: body, type: string}
`

func secrets(kv ...string) map[string]sesame.Secret {
	m := map[string]sesame.Secret{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = sesame.NewSecret([]byte(kv[i+1]))
	}
	return m
}

// decode decodes JSON args as the HTTP layer does.
func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBuildPlacesParameters(t *testing.T) {
	f := mustParse(t, "every", every)
	tests := []struct {
		name       string
		args       string
		wantPath   string
		wantQuery  url.Values
		wantHeader http.Header
		wantBody   string
	}{
		{
			name:       "required only, defaults apply",
			args:       `{"id": "42", "name": "n"}`,
			wantPath:   "/items/42/sub",
			wantQuery:  url.Values{"limit": {"10"}},
			wantHeader: http.Header{},
			wantBody:   `{"name":"n"}`,
		},
		{
			name:       "every location",
			args:       `{"id": "a b/c?d#e", "q": "x&y=z", "tags": ["t1", "t 2", 3], "limit": 5, "X-Trace": "abc", "flags": ["a", "b"], "name": "<n>", "count": 1.5e3, "meta": {"k": [1, 2]}, "any": null}`,
			wantPath:   "/items/a%20b%2Fc%3Fd%23e/sub",
			wantQuery:  url.Values{"q": {"x&y=z"}, "tags": {"t1", "t 2", "3"}, "limit": {"5"}},
			wantHeader: http.Header{"X-Trace": {"abc"}, "Flags": {"a,b"}},
			wantBody:   `{"count":1.5e3,"meta":{"k":[1,2]},"name":"<n>"}`,
		},
		{
			name:       "untyped body parameter keeps its JSON type",
			args:       `{"id": "1", "name": "n", "any": [true, {"a": null}]}`,
			wantPath:   "/items/1/sub",
			wantQuery:  url.Values{"limit": {"10"}},
			wantHeader: http.Header{},
			wantBody:   `{"any":[true,{"a":null}],"name":"n"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := f.Build(decode(t, tt.args), nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != "POST" || r.Path != tt.wantPath || !reflect.DeepEqual(r.Query, tt.wantQuery) ||
				!reflect.DeepEqual(r.Header, tt.wantHeader) || string(r.Body) != tt.wantBody || r.ContentType != "application/json" {
				t.Errorf("got %s %s %v %v %s %s\nwant %s %v %v %s", r.Method, r.Path, r.Query, r.Header, r.Body, r.ContentType,
					tt.wantPath, tt.wantQuery, tt.wantHeader, tt.wantBody)
			}
		})
	}
}

func TestBuildAcceptsDecodedNumbersOfEveryKind(t *testing.T) {
	f := mustParse(t, "every", every)
	for _, args := range []map[string]any{
		{"id": "1", "name": "n", "limit": float64(7), "count": float64(2.5)},
		{"id": "1", "name": "n", "limit": json.Number("7"), "count": json.Number("2.5")},
		{"id": "1", "name": "n", "limit": 7, "count": 2.5},
		{"id": "1", "name": "n", "limit": json.Number("7.0"), "count": int64(2)},
	} {
		r, err := f.Build(args, nil)
		if err != nil {
			t.Fatalf("Build(%v): %v", args, err)
		}
		if got := r.Query.Get("limit"); got != "7" && got != "7.0" {
			t.Errorf("limit = %q", got)
		}
	}
}

func TestBuildPlacesSecrets(t *testing.T) {
	f := mustParse(t, "tg", withSecrets)
	r, err := f.Build(map[string]any{"text": "hi"},
		secrets("token", "12:ab/c d", "api_key", "k&v=1", "X-API-Key", "hk", "client_secret", "cs\"x"))
	if err != nil {
		t.Fatal(err)
	}
	want := function.Request{
		Method:      "POST",
		Path:        "/bot12:ab%2Fc%20d/send",
		Query:       url.Values{"api_key": {"k&v=1"}},
		Header:      http.Header{"X-Api-Key": {"hk"}},
		Body:        []byte(`{"client_secret":"cs\"x","text":"hi"}`),
		ContentType: "application/json",
		Inputs:      map[string]any{"text": "hi"}, // never a credential value
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %s %v %v %s\nwant %s %v %v %s", r.Path, r.Query, r.Header, r.Body, want.Path, want.Query, want.Header, want.Body)
	}
	u, err := r.URL(base)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.String(); got != "https://api.example.com/v1/bot12:ab%2Fc%20d/send?api_key=k%26v%3D1" {
		t.Errorf("URL = %s", got)
	}
	// accessToken (OAuth2, given no secret) is the server's to turn into Authorization.
	if r.Header.Get("accessToken") != "" || r.Header.Get("Authorization") != "" {
		t.Errorf("header = %v", r.Header)
	}
}

func TestBuildBodyTemplate(t *testing.T) {
	f := mustParse(t, "cal", calendar)
	tests := []struct {
		name string
		args string
		want string
	}{
		{"whole placeholders keep their JSON type, embedded ones interpolate",
			`{"calendarId": "c", "title": "T", "attendees": ["a@x", {"email": "b@x"}], "name": "Bob"}`,
			`{"attendees":["a@x",{"email":"b@x"}],"note":"Hello Bob!","summary":"T"}`},
		{"absent parameters leave whole-placeholder fields out and interpolate as empty",
			`{"calendarId": "c"}`,
			`{"note":"Hello !"}`},
		{"non-string values interpolate as JSON",
			`{"calendarId": "c", "name": 12, "attendees": []}`,
			`{"attendees":[],"note":"Hello 12!"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := f.Build(decode(t, tt.args), nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Body) != tt.want {
				t.Errorf("Body = %s\nwant   %s", r.Body, tt.want)
			}
		})
	}
	if s, _ := f.Body.(map[string]any)["summary"].(string); s != "{{title}}" {
		t.Errorf("Build changed the template: %v", f.Body)
	}
}

func TestBuildBodyTemplateShapes(t *testing.T) {
	tests := []struct {
		name string
		src  string
		args string
		want string
	}{
		{"numbers, booleans and objects keep their type; unused body parameters are added",
			`connection: c
method: POST
parameters:
  n: {type: number}
  b: {type: boolean}
  o: {type: object}
  missing: {location: body}
  extra: {location: body, type: integer, value: 3}
  s: {location: body, type: string, value: "{{n}}"}
body:
  nested: {n: "{{n}}", list: ["{{b}}", "{{missing}}", "x{{o}}"]}
  o: "{{ o }}"
  fixed: 1
`,
			`{"n": 1.25, "b": false, "o": {"k": "v"}}`,
			`{"extra":3,"fixed":1,"nested":{"list":[false,null,"x{\"k\":\"v\"}"],"n":1.25},"o":{"k":"v"},"s":"{{n}}"}`},
		{"a template that is one placeholder",
			"connection: c\nmethod: PUT\nparameters:\n  doc: {type: object, required: true}\nbody: '{{doc}}'\n",
			`{"doc": {"a": [1]}}`,
			`{"a":[1]}`},
		{"no template: body parameters form an object",
			"connection: c\nmethod: POST\nparameters:\n  a: {location: body}\n  b: {location: body}\n",
			`{"a": "x"}`,
			`{"a":"x"}`},
		{"no template and no body value: no body",
			"connection: c\nmethod: POST\nparameters:\n  a: {location: body}\n",
			`{}`,
			``},
		{"a content-type header parameter sets the content type",
			"connection: c\nmethod: POST\nparameters:\n  a: {location: body}\n  Content-Type: {location: header, value: application/vnd.api+json}\n",
			`{"a": 1}`,
			`{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, "fn", tt.src)
			r, err := f.Build(decode(t, tt.args), nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Body) != tt.want {
				t.Errorf("Body = %s\nwant   %s", r.Body, tt.want)
			}
			switch {
			case r.Body == nil && r.ContentType != "":
				t.Errorf("ContentType %q without a body", r.ContentType)
			case r.Body != nil && f.Parameters["Content-Type"].Value != nil && r.ContentType != "application/vnd.api+json":
				t.Errorf("ContentType = %q", r.ContentType)
			case r.Body != nil && f.Parameters["Content-Type"].Value == nil && r.ContentType != "application/json":
				t.Errorf("ContentType = %q", r.ContentType)
			}
		})
	}
}

func TestBuildURLFunction(t *testing.T) {
	f := mustParse(t, "graph", `url: https://graph.example.com:8443/v1.0/users/{userId}/events?api-version=2
method: GET
parameters:
  userId: {required: true}
  $top: {location: query, type: integer, value: 10}
`)
	r, err := f.Build(map[string]any{"userId": "me@x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != "/v1.0/users/me@x/events" || !reflect.DeepEqual(r.Query, url.Values{"api-version": {"2"}, "$top": {"10"}}) {
		t.Errorf("got %s %v", r.Path, r.Query)
	}
	u, err := r.URL(f.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	if got := u.String(); got != "https://graph.example.com:8443/v1.0/users/me@x/events?%24top=10&api-version=2" {
		t.Errorf("URL = %s", got)
	}
	// Build does not share the function's query.
	r.Query.Set("api-version", "changed")
	if r2, _ := f.Build(map[string]any{"userId": "x"}, nil); r2.Query.Get("api-version") != "2" {
		t.Error("Build shares the url's query between requests")
	}
}

func TestBuildRefuses(t *testing.T) {
	f := mustParse(t, "tg", withSecrets)
	g := mustParse(t, "every", every)
	tests := []struct {
		name    string
		f       *function.Function
		args    map[string]any
		secrets map[string]sesame.Secret
		code    sesame.Code
		want    string
	}{
		{"a value for a credential parameter", f, map[string]any{"api_key": canary}, nil,
			sesame.CodeInvalidArgument, `parameter "api_key" is a credential reference; credentials cannot be passed by callers`},
		{"a value for an accessToken parameter", f, map[string]any{"accessToken": canary}, nil,
			sesame.CodeInvalidArgument, `parameter "accessToken" is a credential reference`},
		{"unknown parameters", g, map[string]any{"id": "1", "name": "n", "zz": canary, "aa": 1}, nil,
			sesame.CodeInvalidArgument, `unknown parameters "aa", "zz"`},
		{"missing required parameters", g, map[string]any{"q": canary}, nil,
			sesame.CodeMissingField, `missing required parameters "id", "name"`},
		{"a number for a string", g, map[string]any{"id": 1, "name": "n"}, nil,
			sesame.CodeInvalidField, `parameter "id" must be a string`},
		{"a string for an integer", g, map[string]any{"id": "1", "name": "n", "limit": canary}, nil,
			sesame.CodeInvalidField, `parameter "limit" must be an integer`},
		{"a fraction for an integer", g, map[string]any{"id": "1", "name": "n", "limit": 1.5}, nil,
			sesame.CodeInvalidField, `parameter "limit" must be an integer`},
		{"a string for a number", g, map[string]any{"id": "1", "name": "n", "count": canary}, nil,
			sesame.CodeInvalidField, `parameter "count" must be a number`},
		{"a bad json.Number", g, map[string]any{"id": "1", "name": "n", "count": json.Number(canary)}, nil,
			sesame.CodeInvalidField, `parameter "count" must be a number`},
		{"an array for an object", g, map[string]any{"id": "1", "name": "n", "meta": []any{canary}}, nil,
			sesame.CodeInvalidField, `parameter "meta" must be an object`},
		{"an object for an array", g, map[string]any{"id": "1", "name": "n", "tags": map[string]any{"a": canary}}, nil,
			sesame.CodeInvalidField, `parameter "tags" must be an array`},
		{"a Go type that is not JSON", g, map[string]any{"id": "1", "name": "n", "any": struct{ A string }{canary}}, nil,
			sesame.CodeInvalidField, `parameter "any" must be a JSON value`},
		{"CR LF in a header", g, map[string]any{"id": "1", "name": "n", "X-Trace": canary + "\r\nX-Evil: 1"}, nil,
			sesame.CodeInvalidField, `parameter "X-Trace" must not contain control characters`},
		{"LF in a header", g, map[string]any{"id": "1", "name": "n", "X-Trace": canary + "\nx"}, nil,
			sesame.CodeInvalidField, `parameter "X-Trace"`},
		{"NUL in a header", g, map[string]any{"id": "1", "name": "n", "X-Trace": canary + "\x00"}, nil,
			sesame.CodeInvalidField, `parameter "X-Trace"`},
		{"CR LF in a header list", g, map[string]any{"id": "1", "name": "n", "flags": []any{canary, "\r\n"}}, nil,
			sesame.CodeInvalidField, `parameter "flags"`},
		{"CR LF in a header credential", f, nil, secrets("token", "t", "X-API-Key", canary+"\r\nX-Evil: 1"),
			sesame.CodeInvalidField, `the credential for parameter "X-API-Key" holds characters that are not allowed in a header`},
		{"a dot credential in the path", f, nil, secrets("token", ".."),
			sesame.CodeInvalidField, `the credential for path parameter "token" cannot be placed in a path`},
		{"a dot-segment credential in the path", f, nil, secrets("token", canary+"/../x"),
			sesame.CodeInvalidField, `the credential for path parameter "token" cannot be placed in a path`},
		{"no credential for a path parameter", f, nil, nil,
			sesame.CodeInvalidArgument, `parameter "token" is in the path but has no credential value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.f.Build(tt.args, tt.secrets)
			assertError(t, err, tt.code, tt.want)
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds a value: %v", err)
			}
		})
	}
}

// TestBuildSecretsForOrdinaryParameters: the server gives a secret for an ordinary
// parameter whose default names a stored api_key, bearer or secret credential (Jigx
// writes them so); that parameter is then a credential parameter: the secret goes in
// its location and a caller cannot set it. A secret for an undeclared name is a
// programming error, reported without the secret.
func TestBuildSecretsForOrdinaryParameters(t *testing.T) {
	f := mustParse(t, "every", every)
	r, err := f.Build(map[string]any{"id": "1", "name": "n"}, secrets("q", canary))
	if err != nil || r.Query.Get("q") != canary {
		t.Fatalf("err = %v, query %v; want the secret in q", err, r.Query)
	}
	_, err = f.Build(map[string]any{"id": "1", "name": "n", "q": "mine"}, secrets("q", canary))
	if sesame.ErrorCode(err) != sesame.CodeInvalidArgument || strings.Contains(err.Error(), canary) {
		t.Errorf("a caller's value for a credential parameter: err = %v, want invalid_argument", err)
	}
	_, err = f.Build(map[string]any{"id": "1", "name": "n"}, secrets("nosuch", canary))
	if err == nil || sesame.ErrorCode(err) != sesame.CodeInternal || strings.Contains(err.Error(), canary) {
		t.Errorf("err = %v, want an internal error without the secret", err)
	}
}

// TestBuildPathAttacks checks that no path value can leave the base URL's host or
// path prefix: each is escaped into its segment or refused.
func TestBuildPathAttacks(t *testing.T) {
	templates := []string{"/items/{id}", "/{id}", "/files/{id}.json", "/{id}/x"}
	values := []string{
		"//evil.example/", "../admin", "..", ".", "a/../../b", "%2e%2e", "%2E%2E%2F", ".%2e",
		"http://evil.example/x", "@evil.example", "\\\\evil.example\\x", "..\\..\\x", "..;/admin",
		"?q=1", "#frag", "a b", "\r\nHost: evil", "\x00", "évil", "%00", ":8080", "x/..", "./x",
	}
	for _, tmpl := range templates {
		f := mustParse(t, "fn", "connection: c\nmethod: GET\npath: "+tmpl+"\nparameters:\n  id: {required: true}\n")
		for _, v := range values {
			r, err := f.Build(map[string]any{"id": v}, nil)
			if err != nil {
				if sesame.ErrorCode(err) != sesame.CodeInvalidField || (len(v) > 2 && strings.Contains(err.Error(), v)) {
					t.Errorf("%s with %q: err = %v", tmpl, v, err)
				}
				continue
			}
			checkJoined(t, r, fmt.Sprintf("%s with %q", tmpl, v))
			// The value stays one segment: the path has as many slashes as the template.
			if strings.Count(r.Path, "/") != strings.Count(tmpl, "/") {
				t.Errorf("%s with %q: path %s has another segment", tmpl, v, r.Path)
			}
		}
	}
	// A value next to a literal or another value cannot make a dot segment either.
	f := mustParse(t, "fn", "connection: c\nmethod: GET\npath: /a/{x}{y}.\nparameters:\n  x: {required: true}\n  y: {required: true}\n")
	for _, args := range []map[string]any{{"x": ".", "y": "a"}, {"x": "a", "y": "."}, {"x": "", "y": "."}} {
		_, err := f.Build(args, nil)
		assertError(t, err, sesame.CodeInvalidField, "path parameter")
	}
}

// checkJoined joins r to base and checks that it stays on base's host and under its path.
func checkJoined(t *testing.T, r function.Request, what string) {
	t.Helper()
	u, err := r.URL(base)
	if err != nil {
		t.Errorf("%s: URL: %v", what, err)
		return
	}
	if u.Scheme != "https" || u.Host != "api.example.com" || u.User != nil || !strings.HasPrefix(u.EscapedPath(), "/v1/") ||
		!strings.HasPrefix(u.Path, "/v1/") || u.Fragment != "" {
		t.Errorf("%s: joined URL %s leaves the base", what, u)
	}
	// Independently of Request.URL: plain concatenation, as a naive caller would do.
	b, _ := url.Parse(base)
	v, err := url.Parse(b.String() + r.Path)
	if err != nil || v.Host != "api.example.com" || !strings.HasPrefix(v.EscapedPath(), "/v1/") {
		t.Errorf("%s: %s+%s = %v (%v)", what, base, r.Path, v, err)
	}
	if ref := b.ResolveReference(&url.URL{Path: "x"}); ref.Host != "api.example.com" {
		t.Errorf("%s: resolving changed the host", what)
	}
}

func TestRequestURL(t *testing.T) {
	r := function.Request{Path: "/a%2Fb/c", Query: url.Values{"x": {"1 2"}}}
	tests := []struct{ base, want string }{
		{"https://api.example.com/v1", "https://api.example.com/v1/a%2Fb/c?x=1+2"},
		{"https://api.example.com/v1/", "https://api.example.com/v1/a%2Fb/c?x=1+2"},
		{"https://api.example.com", "https://api.example.com/a%2Fb/c?x=1+2"},
		{"http://127.0.0.1:8080/base?k=v", "http://127.0.0.1:8080/base/a%2Fb/c?k=v&x=1+2"},
	}
	for _, tt := range tests {
		u, err := r.URL(tt.base)
		if err != nil || u.String() != tt.want {
			t.Errorf("URL(%s) = %v, %v; want %s", tt.base, u, err, tt.want)
		}
	}
	for _, bad := range []string{"", "/v1", "ftp://x.example", "https://u:p@x.example", "mailto:x@example.com"} {
		if _, err := r.URL(bad); err == nil {
			t.Errorf("URL(%q) succeeded", bad)
		}
	}
}

func TestRequestDoesNotPrintItself(t *testing.T) {
	f := mustParse(t, "tg", withSecrets)
	r, err := f.Build(nil, secrets("token", canary, "X-API-Key", canary))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), r.LogValue().String()} {
		if strings.Contains(s, canary) {
			t.Errorf("Request printed a secret: %s", s)
		}
	}
}

func TestBuildChangesNeitherArgumentsNorDefaults(t *testing.T) {
	f := mustParse(t, "fn", `connection: c
method: POST
parameters:
  doc: {type: object, value: '{"a": 1}'}
  list: {location: query, type: array, value: [x, y]}
body: "{{doc}}"
`)
	args := map[string]any{"list": []any{"a"}}
	for range 2 {
		r, err := f.Build(args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Body) != `{"a":1}` {
			t.Errorf("Body = %s", r.Body)
		}
	}
	if !reflect.DeepEqual(args, map[string]any{"list": []any{"a"}}) {
		t.Errorf("args changed: %v", args)
	}
	r, _ := f.Build(nil, nil)
	if !reflect.DeepEqual(r.Query["list"], []string{"x", "y"}) {
		t.Errorf("default list = %v", r.Query)
	}
}

func TestBuildIsSafeForConcurrentUse(t *testing.T) {
	f := mustParse(t, "cal", calendar)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if _, err := f.Build(map[string]any{"calendarId": "c", "title": "t", "attendees": []any{"a"}}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
