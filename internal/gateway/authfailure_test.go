package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAuthFailureMatches(t *testing.T) {
	bodies := map[*http.Response]string{}
	resp := func(status int, ct, body string) *http.Response {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		r := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
		bodies[r] = body
		return r
	}
	slack := &AuthFailure{JSONPath: "error", Values: []string{"token_expired"}}
	if err := slack.check(); err != nil {
		t.Fatal(err)
	}
	nested := &AuthFailure{Statuses: []int{}, JSONPath: "errors.0.code", Values: []string{"401", "true", "null"}}
	if err := nested.check(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		a    *AuthFailure
		resp *http.Response
		want bool
	}{
		{"default is 401", nil, resp(401, "", ""), true},
		{"default is only 401", nil, resp(403, "", ""), false},
		{"statuses default to 401 with a json path", slack, resp(401, "", ""), true},
		{"json value matches", slack, resp(200, "application/json", `{"ok":false,"error":"token_expired"}`), true},
		{"json value differs", slack, resp(200, "application/json", `{"ok":false,"error":"ratelimited"}`), false},
		{"json+suffix media type", slack, resp(200, "application/problem+json; charset=utf-8", `{"error":"token_expired"}`), true},
		{"not json", slack, resp(200, "text/plain", `{"error":"token_expired"}`), false},
		{"broken json", slack, resp(200, "application/json", `{"error":`), false},
		{"array index and number", nested, resp(200, "application/json", `{"errors":[{"code":401}]}`), true},
		{"boolean", nested, resp(200, "application/json", `{"errors":[{"code":true}]}`), true},
		{"null", nested, resp(200, "application/json", `{"errors":[{"code":null}]}`), true},
		{"index out of range", nested, resp(200, "application/json", `{"errors":[]}`), false},
		{"object is not a value", nested, resp(200, "application/json", `{"errors":[{"code":{}}]}`), false},
		{"empty statuses mean none", nested, resp(401, "", ""), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.matches(c.resp); got != c.want {
				t.Fatalf("matches = %v, want %v", got, c.want)
			}
			// Whatever was read to look is still there for the caller.
			if b, _ := io.ReadAll(c.resp.Body); string(b) != bodies[c.resp] {
				t.Fatalf("the body reads %q after matching, want %q", b, bodies[c.resp])
			}
		})
	}
}
