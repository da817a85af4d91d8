package credential_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

// TestJWTBearerSettings: the settings jwt_bearer adds parse to the JSON types they are
// stored as, and bad values are refused naming the field.
func TestJWTBearerSettings(t *testing.T) {
	in, err := credential.Parse([]byte(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"` + canary + `",
		"secret_encoding":"base64","lifetime_seconds":600,"reuse":true,"header_name":"X-Token","scheme":"",
		"token_url":"https://oauth2.example.com/token","scope":"a b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"alg": "HS256", "secret_encoding": "base64", "lifetime_seconds": 600.0, "reuse": true,
		"header_name": "X-Token", "scheme": "", "token_url": "https://oauth2.example.com/token", "scope": "a b"}
	if !reflect.DeepEqual(in.Public, want) {
		t.Fatalf("public = %#v", in.Public)
	}
	if kind, _ := credential.Lookup("jwt_bearer"); kind.Verify == nil {
		t.Fatal("jwt_bearer has no Verify hook: keys would not be checked on save")
	}
	bad := []struct{ fields, field string }{
		{`"lifetime_seconds":"600"`, "lifetime_seconds"},
		{`"lifetime_seconds":60.5`, "lifetime_seconds"},
		{`"lifetime_seconds":5`, "lifetime_seconds"},
		{`"lifetime_seconds":1e300`, "lifetime_seconds"},
		{`"reuse":"yes"`, "reuse"},
		{`"reuse":1`, "reuse"},
		{`"secret_encoding":"hex"`, "secret_encoding"},
		{`"header_name":"X Token"`, "header_name"},
		{`"scheme":"Bear er"`, "scheme"},
		{`"scope":"a"`, "scope"},
		{`"payload":{"sub":"{{secret}}"}`, "payload"},
		{`"headers":{"alg":"none"}`, "headers"},
	}
	for _, b := range bad {
		_, err := credential.Parse([]byte(`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"` + canary + `",` + b.fields + `}}`))
		if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), `"`+b.field+`"`) || strings.Contains(err.Error(), canary) {
			t.Errorf("%s: %v", b.fields, err)
		}
	}
}
