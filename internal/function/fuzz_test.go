package function_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		calendar,
		every,
		withSecrets,
		"connection: c\nmethod: GET\n",
		"url: https://x.example:8443/a/{id}?v=1\nmethod: post\nparameters:\n  id: {required: true}\n  basicAuth: {type: string, value: x.basicAuth}\n",
		`{"connection": "c", "method": "PUT", "parameters": {"d": {"type": "object", "location": "body"}}, "body": "{{d}}"}`,
		"connection: c\nmethod: GET\nparameters:\n  a: {type: array, value: [1, {b: c}]}\n  n: {type: number, value: -1.5e3}\n",
		"connection: c\nmethod: GET\nbody: {a: &x [1], b: *x}\n",
		"connection: c\nmethod: GET\npath: /a/%2e%2e\n",
		"connection: c\nmethod: GET\noutputTransform: '.a | map(.b) | add'\n",
		"a: [",
		// Values whose JSON form is easy to get wrong.
		"connection: c\nmethod: POST\nparameters:\n  q: {value: \"a\\0b\\u2028<>&\"}\n" +
			"body: {\"~\": 1, \"1\": null, \"null\": ~, t: 2001-12-14, big: 123456789012345678901234567890, " +
			"u: 18446744073709551615, neg: -9223372036854775808, f: 1e-7, h: 0x1F, o: 0o17, s: \"\\t\\\"'\"}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		fn, err := function.Parse("fn", []byte(src))
		if err != nil {
			if sesame.ErrorCode(err) == sesame.CodeInternal {
				t.Fatalf("Parse gave an internal error: %v", err)
			}
			return
		}
		_, _ = fn.Build(nil, nil) // must not panic
		b, err := json.Marshal(fn)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if len(b) > function.MaxSourceSize {
			return // JSON can be longer than the YAML it came from
		}
		again, err := function.Parse("fn", b)
		if err != nil {
			t.Fatalf("the JSON form of a valid function does not parse: %v\nYAML:\n%s\nJSON:\n%s", err, src, b)
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Fatalf("JSON round trip changed the function:\n%s\n%s", b, b2)
		}
	})
}

// fuzzed places one caller value at each location, and a credential in the path.
const fuzzed = `connection: api
method: POST
path: /items/{id}/x{key}/{tail}.json
parameters:
  id: {location: path, required: true, type: string}
  tail: {location: path, type: string, value: end}
  key: {location: path, type: secret, value: api.key}
  q: {location: query, type: string}
  X-Value: {location: header, type: string}
  b: {location: body, type: string}
`

func FuzzBuild(f *testing.F) {
	fn := mustParse(f, "fuzzed", fuzzed)
	for _, v := range []string{
		"42", "//evil.example/", "../admin", "..", ".", "a/../../b", "%2e%2e", "http://evil.example/x",
		"@evil.example", "\\\\evil\\x", "a\r\nX-Evil: 1", "\x00", "é", "?#&=+;,", "",
	} {
		f.Add(v, v, v, v, v, "k")
		f.Add("1", v, v, v, v, v)
	}
	base, _ := url.Parse("https://api.example.com:8443/v1")
	f.Fuzz(func(t *testing.T, id, tail, q, h, b, key string) {
		args := map[string]any{"id": id, "tail": tail, "q": q, "X-Value": h, "b": b}
		r, err := fn.Build(args, map[string]sesame.Secret{"key": sesame.NewSecret([]byte(key))})
		if err != nil {
			if sesame.ErrorCode(err) == sesame.CodeInternal {
				t.Fatalf("internal error: %v", err)
			}
			for _, v := range []string{id, tail, q, h, b, key} {
				if len(v) >= 16 && strings.Contains(err.Error(), v) {
					t.Fatalf("error %q holds a value", err)
				}
			}
			return
		}
		u, err := r.URL(base.String())
		if err != nil {
			t.Fatalf("URL: %v", err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.Port() != "8443" || u.User != nil || u.Fragment != "" {
			t.Fatalf("joined URL %s leaves the base", u)
		}
		if !strings.HasPrefix(u.EscapedPath(), "/v1/items/") || !strings.HasPrefix(u.Path, "/v1/items/") {
			t.Fatalf("joined URL %s leaves the base path", u)
		}
		if n := strings.Count(r.Path, "/"); n != 4 {
			t.Fatalf("path %s has %d slashes, want 4", r.Path, n)
		}
		for _, seg := range strings.Split(r.Path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("path %s has a dot segment", r.Path)
			}
		}
		if got := u.Query().Get("q"); got != q {
			t.Fatalf("query q = %q, want %q", got, q)
		}
		for name, vs := range r.Header {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s holds CR, LF or NUL", name)
				}
			}
		}
		if h != "" && r.Header.Get("X-Value") != h {
			t.Fatalf("header X-Value = %q, want %q", r.Header.Get("X-Value"), h)
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil || !json.Valid(r.Body) {
			t.Fatalf("body %q is not JSON: %v", r.Body, err)
		}
		if utf8.ValidString(b) && body["b"] != b {
			t.Fatalf("body b = %q, want %q", body["b"], b)
		}
	})
}
