package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// lint loads and validates an OpenAPI document with a maintained library (kin-openapi), then
// applies our own rules: every operation documents its error answers, as Error objects.
func lint(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("the document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	errorSchema := doc.Components.Schemas["Error"]
	if errorSchema == nil || errorSchema.Value == nil {
		t.Fatal("no Error schema")
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.Summary == "" {
				t.Errorf("%s: no summary", where)
			}
			if op.Responses.Default() == nil {
				t.Errorf("%s: no default (error) response", where)
			}
			n4xx := 0
			for code, ref := range op.Responses.Map() {
				if code == "default" || (code[0] != '4' && code[0] != '5') {
					continue
				}
				if code[0] == '4' {
					n4xx++
				}
				if ref.Value == nil || ref.Value.Content["application/json"] == nil ||
					ref.Value.Content["application/json"].Schema.Value != errorSchema.Value {
					t.Errorf("%s: response %s is not an Error object", where, code)
				}
				if (code == "429" || code == "503") && ref.Value.Headers["Retry-After"] == nil {
					t.Errorf("%s: response %s does not document Retry-After", where, code)
				}
			}
			// /healthz answers whenever the process runs; everything else can be refused.
			if n4xx == 0 && path != "/healthz" && path != "/readyz" {
				t.Errorf("%s: no 4xx answer documented", where)
			}
		}
	}
	return doc
}

func TestOpenAPILint(t *testing.T) {
	lint(t, openapiDoc)
}

// TestOpenAPINamesThisServer: the served document names the public URL, or the origin
// the request came to, never a fixed address; a Host header that is not a plain
// host[:port] is not reflected.
func TestOpenAPINamesThisServer(t *testing.T) {
	cases := []struct {
		public, host string
		tls          bool
		want         string
	}{
		{"", "sesame.internal:9000", false, "http://sesame.internal:9000"},
		{"", "sesame.example.com", true, "https://sesame.example.com"},
		{"https://api.example.com/sesame", "other:1", false, "https://api.example.com/sesame"},
		{"", "evil.example@x", false, "/"},
		{"", "x/../y", false, "/"},
	}
	for _, c := range cases {
		s := New(Config{PublicURL: c.public})
		req := httptest.NewRequest("GET", "/v1/openapi.json", nil)
		req.Host = c.host
		if c.tls {
			req.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		if err := s.openapi(w, req); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Servers []struct {
				URL string `json:"url"`
			} `json:"servers"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != c.want {
			t.Errorf("public %q, host %q: servers %+v, want %s", c.public, c.host, doc.Servers, c.want)
		}
		if strings.Contains(w.Body.String(), "127.0.0.1:8420") {
			t.Errorf("host %q: the served document still names 127.0.0.1:8420", c.host)
		}
		lint(t, w.Body.Bytes())
	}
}
