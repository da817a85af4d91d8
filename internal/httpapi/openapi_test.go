package httpapi

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
)

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

type apiDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func loadOpenAPI(t *testing.T) apiDoc {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(openapiDoc) {
		t.Fatal("the embedded document differs from openapi.json")
	}
	var doc apiDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf(`openapi.json has "openapi": %q, want "3.1.0"`, doc.OpenAPI)
	}
	return doc
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	routes := (&Server{}).routes()
	if len(routes) == 0 {
		t.Fatal("no routes")
	}
	registered := map[string]bool{}
	for _, rt := range routes {
		// OpenAPI path templates have no "{name...}": the doc writes "{name}".
		path := strings.ReplaceAll(rt.pattern, "...}", "}")
		item, ok := doc.Paths[path]
		if !ok {
			t.Errorf("route %s %s: path %s missing from openapi.json", rt.method, rt.pattern, path)
			continue
		}
		ops := []string{strings.ToLower(rt.method)}
		if rt.method == anyMethod {
			// A route for every method: the doc must describe at least one operation,
			// and may describe any.
			ops = nil
			for key := range item {
				if httpMethods[key] {
					registered[path+" "+key] = true
					ops = append(ops, key)
				}
			}
			if len(ops) == 0 {
				t.Errorf("route ANY %s: no operation in openapi.json", rt.pattern)
			}
		}
		for _, op := range ops {
			registered[path+" "+op] = true
			checkOperation(t, rt, op, item)
		}
	}
	// And nothing is documented that is not served.
	var extra []string
	for path, item := range doc.Paths {
		for key := range item {
			if !httpMethods[key] {
				continue // parameters, summary, ...
			}
			if !registered[path+" "+key] {
				extra = append(extra, strings.ToUpper(key)+" "+path)
			}
		}
	}
	sort.Strings(extra)
	for _, e := range extra {
		t.Errorf("openapi.json documents %s, which is not a registered route", e)
	}
}

func checkOperation(t *testing.T, rt route, op string, item map[string]json.RawMessage) {
	t.Helper()
	raw, ok := item[op]
	if !ok {
		t.Errorf("route %s %s: operation %q missing from openapi.json", rt.method, rt.pattern, op)
		return
	}
	var operation struct {
		OperationID string            `json:"operationId"`
		Responses   map[string]any    `json:"responses"`
		Security    *[]map[string]any `json:"security"`
	}
	if err := json.Unmarshal(raw, &operation); err != nil {
		t.Errorf("route %s %s: operation is not an object: %v", rt.method, rt.pattern, err)
		return
	}
	if operation.OperationID == "" || len(operation.Responses) == 0 {
		t.Errorf("route %s %s: operation lacks operationId or responses", rt.method, rt.pattern)
	}
	// Anonymous routes say so with an empty security list; others inherit the
	// document's security.
	anonymousInDoc := operation.Security != nil && len(*operation.Security) == 0
	if anonymousInDoc != rt.anonymous {
		t.Errorf("route %s %s: anonymous=%v but the document says anonymous=%v", op, rt.pattern, rt.anonymous, anonymousInDoc)
	}
}

func TestOpenAPIOperationIDsAreUnique(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[string]string{}
	for path, item := range doc.Paths {
		for key, raw := range item {
			if !httpMethods[key] {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			_ = json.Unmarshal(raw, &op)
			where := strings.ToUpper(key) + " " + path
			if prev, ok := seen[op.OperationID]; ok {
				t.Errorf("operationId %q used by %s and %s", op.OperationID, prev, where)
			}
			seen[op.OperationID] = where
		}
	}
}

func TestOpenAPIErrorCodesMatchStatusTable(t *testing.T) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, c := range doc.Components.Schemas.Error.Properties.Code.Enum {
		documented[c] = true
	}
	for code := range statusOf {
		if !documented[string(code)] {
			t.Errorf("error code %q is not in the document's Error.code enum", code)
		}
	}
	for c := range documented {
		if _, ok := statusOf[sesame.Code(c)]; !ok {
			t.Errorf("the document lists error code %q, which has no HTTP status", c)
		}
	}
}
