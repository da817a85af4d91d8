package credential_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

// canary is every secret value in these tests; no error message may contain it.
const canary = "CANARY-7f3a"

// body builds a credential body {"type": typ, "fields": fields}.
func body(t *testing.T, typ any, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "fields": fields})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseValid(t *testing.T) {
	keep := map[string]any{"keep": true}
	tests := []struct {
		name        string
		typ         string
		fields      map[string]any
		wantPublic  map[string]any
		wantSecrets []string // secret fields given a value
		wantKept    []string // secret fields given {"keep": true}
	}{
		{
			name:        "api_key defaults",
			typ:         "api_key",
			fields:      map[string]any{"value": canary},
			wantPublic:  map[string]any{"name": "X-API-Key", "in": "header"},
			wantSecrets: []string{"value"},
		},
		{
			name:        "api_key in query with a custom name",
			typ:         "api_key",
			fields:      map[string]any{"value": canary, "name": "api_key", "in": "query"},
			wantPublic:  map[string]any{"name": "api_key", "in": "query"},
			wantSecrets: []string{"value"},
		},
		{
			name:        "api_key null public field takes the default",
			typ:         "api_key",
			fields:      map[string]any{"value": canary, "name": nil},
			wantPublic:  map[string]any{"name": "X-API-Key", "in": "header"},
			wantSecrets: []string{"value"},
		},
		{
			name:        "basic",
			typ:         "basic",
			fields:      map[string]any{"username": "alice", "password": canary},
			wantPublic:  map[string]any{"username": "alice"},
			wantSecrets: []string{"password"},
		},
		{
			name:        "bearer default scheme",
			typ:         "bearer",
			fields:      map[string]any{"token": canary},
			wantPublic:  map[string]any{"scheme": "Bearer"},
			wantSecrets: []string{"token"},
		},
		{
			name:        "bearer custom scheme",
			typ:         "bearer",
			fields:      map[string]any{"token": canary, "scheme": "Token"},
			wantPublic:  map[string]any{"scheme": "Token"},
			wantSecrets: []string{"token"},
		},
		{
			name:        "secret",
			typ:         "secret",
			fields:      map[string]any{"value": canary},
			wantPublic:  map[string]any{},
			wantSecrets: []string{"value"},
		},
		{
			name:     "secret keep",
			typ:      "secret",
			fields:   map[string]any{"value": keep},
			wantKept: []string{"value"},
		},
		{
			name: "oauth2 client_credentials",
			typ:  "oauth2",
			fields: map[string]any{
				"grant": "client_credentials", "client_id": "cid", "client_secret": canary,
				"token_url": "https://auth.example.com/token", "scopes": []string{"read", "write"},
			},
			wantPublic: map[string]any{
				"grant": "client_credentials", "client_id": "cid",
				"token_url": "https://auth.example.com/token", "scopes": []any{"read", "write"},
			},
			wantSecrets: []string{"client_secret"},
		},
		{
			name: "oauth2 client_credentials with provider template",
			typ:  "oauth2",
			fields: map[string]any{
				"grant": "client_credentials", "client_id": "cid", "client_secret": canary, "provider": "google",
			},
			wantPublic:  map[string]any{"grant": "client_credentials", "client_id": "cid", "provider": "google"},
			wantSecrets: []string{"client_secret"},
		},
		{
			name: "oauth2 authorization_code without a client secret (public client)",
			typ:  "oauth2",
			fields: map[string]any{
				"grant": "authorization_code", "client_id": "cid",
				"auth_url": "https://auth.example.com/authorize", "token_url": "http://localhost:8080/token",
				"scopes": "openid profile,email",
			},
			wantPublic: map[string]any{
				"grant": "authorization_code", "client_id": "cid",
				"auth_url": "https://auth.example.com/authorize", "token_url": "http://localhost:8080/token",
				"scopes": []any{"openid", "profile", "email"},
			},
		},
		{
			name: "oauth2 scopes as a comma string",
			typ:  "oauth2",
			fields: map[string]any{
				"grant": "authorization_code", "client_id": "cid", "provider": "github", "scopes": "repo,,user , gist",
			},
			wantPublic: map[string]any{
				"grant": "authorization_code", "client_id": "cid", "provider": "github",
				"scopes": []any{"repo", "user", "gist"},
			},
		},
		{
			name: "oauth2 keep client secret",
			typ:  "oauth2",
			fields: map[string]any{
				"grant": "client_credentials", "client_id": "cid", "client_secret": keep, "provider": "xero",
			},
			wantPublic: map[string]any{"grant": "client_credentials", "client_id": "cid", "provider": "xero"},
			wantKept:   []string{"client_secret"},
		},
		{
			name:        "jwt_bearer HS256",
			typ:         "jwt_bearer",
			fields:      map[string]any{"alg": "HS256", "secret": canary, "payload": map[string]any{"iss": "me", "aud": "you"}},
			wantPublic:  map[string]any{"alg": "HS256", "payload": map[string]any{"iss": "me", "aud": "you"}},
			wantSecrets: []string{"secret"},
		},
		{
			name: "jwt_bearer RS256 PEM with exchange",
			typ:  "jwt_bearer",
			fields: map[string]any{
				"alg": "RS256", "private_key": canary, "headers": map[string]any{"kid": "k1"},
				"token_url": "https://oauth2.googleapis.com/token",
			},
			wantPublic: map[string]any{
				"alg": "RS256", "headers": map[string]any{"kid": "k1"}, "token_url": "https://oauth2.googleapis.com/token",
			},
			wantSecrets: []string{"private_key"},
		},
		{
			name:        "jwt_bearer ES256 PKCS#12 with password",
			typ:         "jwt_bearer",
			fields:      map[string]any{"alg": "ES256", "pkcs12": canary, "pkcs12_password": canary},
			wantPublic:  map[string]any{"alg": "ES256"},
			wantSecrets: []string{"pkcs12", "pkcs12_password"},
		},
		{
			name:        "jwt_bearer EdDSA PKCS#12 without password",
			typ:         "jwt_bearer",
			fields:      map[string]any{"alg": "EdDSA", "pkcs12": canary},
			wantPublic:  map[string]any{"alg": "EdDSA"},
			wantSecrets: []string{"pkcs12"},
		},
		{
			name:       "jwt_bearer PS512 keep private key",
			typ:        "jwt_bearer",
			fields:     map[string]any{"alg": "PS512", "private_key": keep},
			wantPublic: map[string]any{"alg": "PS512"},
			wantKept:   []string{"private_key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := credential.Parse(body(t, tt.typ, tt.fields))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if in.Kind == nil || in.Kind.Name != tt.typ {
				t.Fatalf("kind = %v, want %s", in.Kind, tt.typ)
			}
			want := tt.wantPublic
			if want == nil {
				want = map[string]any{}
			}
			if !reflect.DeepEqual(in.Public, want) {
				t.Errorf("public = %#v, want %#v", in.Public, want)
			}
			var gotSecrets, gotKept []string
			for name, s := range in.Secrets {
				if s.Keep {
					gotKept = append(gotKept, name)
					if !s.Value.IsZero() {
						t.Errorf("kept field %q carries a value", name)
					}
					continue
				}
				gotSecrets = append(gotSecrets, name)
				if string(s.Value.Reveal()) != canary {
					t.Errorf("secret %q did not round-trip", name)
				}
			}
			slices.Sort(gotSecrets)
			slices.Sort(gotKept)
			if !slices.Equal(gotSecrets, tt.wantSecrets) || !slices.Equal(gotKept, tt.wantKept) {
				t.Errorf("secrets = %v kept = %v, want %v and %v", gotSecrets, gotKept, tt.wantSecrets, tt.wantKept)
			}
			for _, name := range in.Kind.SecretFields() {
				if _, ok := in.Public[name]; ok {
					t.Errorf("secret field %q is in Public", name)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("a", 5000)
	tests := []struct {
		name  string
		body  string
		code  sesame.Code
		field string // the message must name it (quoted); empty for body-level errors
	}{
		// Body shape.
		{"empty body", ``, sesame.CodeInvalidJSON, ""},
		{"malformed JSON", `{"type": "secret", "fields": {"value": "` + canary + `"}`, sesame.CodeInvalidJSON, ""},
		{"not JSON", `type=secret&value=` + canary, sesame.CodeInvalidJSON, ""},
		{"trailing garbage", `{"type":"secret","fields":{"value":"` + canary + `"}} {"x":1}`, sesame.CodeInvalidJSON, ""},
		{"trailing garbage word", `{"type":"secret","fields":{"value":"` + canary + `"}} ` + canary, sesame.CodeInvalidJSON, ""},
		{"trailing close brace", `{"type":"secret","fields":{"value":"` + canary + `"}}}`, sesame.CodeInvalidJSON, ""},
		{"trailing close bracket", `{"type":"secret","fields":{"value":"` + canary + `"}}]`, sesame.CodeInvalidJSON, ""},
		{"array body", `[{"type":"secret"}]`, sesame.CodeInvalidJSON, ""},
		{"type wrong JSON type", `{"type": 5, "fields": {"value": "` + canary + `"}}`, sesame.CodeInvalidJSON, "type"},
		{"fields wrong JSON type", `{"type": "secret", "fields": ["` + canary + `"]}`, sesame.CodeInvalidJSON, "fields"},
		{"unknown top-level field", `{"type": "secret", "fields": {"value": "` + canary + `"}, "fieldz": {}}`, sesame.CodeUnknownField, "fieldz"},
		{"missing type", `{"fields": {"value": "` + canary + `"}}`, sesame.CodeMissingField, "type"},
		{"empty type", `{"type": "", "fields": {"value": "` + canary + `"}}`, sesame.CodeMissingField, "type"},
		{"unknown type", `{"type": "kerberos", "fields": {"value": "` + canary + `"}}`, sesame.CodeUnknownType, "type"},
		{"secret pasted as the type", `{"type": "` + canary + `", "fields": {}}`, sesame.CodeUnknownType, "type"},

		// Fields common to every kind.
		{"unknown field", `{"type": "secret", "fields": {"value": "` + canary + `", "valu": "` + canary + `"}}`, sesame.CodeUnknownField, "valu"},
		{"missing required secret", `{"type": "secret", "fields": {}}`, sesame.CodeMissingField, "value"},
		{"missing fields object", `{"type": "secret"}`, sesame.CodeMissingField, "value"},
		{"null required secret", `{"type": "secret", "fields": {"value": null}}`, sesame.CodeMissingField, "value"},
		{"empty secret", `{"type": "secret", "fields": {"value": ""}}`, sesame.CodeInvalidField, "value"},
		{"secret as number", `{"type": "secret", "fields": {"value": 7}}`, sesame.CodeInvalidField, "value"},
		{"secret as array", `{"type": "secret", "fields": {"value": ["` + canary + `"]}}`, sesame.CodeInvalidField, "value"},
		{"secret too long", `{"type": "secret", "fields": {"value": "` + strings.Repeat(canary, 7000) + `"}}`, sesame.CodeInvalidField, "value"},
		{"keep false", `{"type": "secret", "fields": {"value": {"keep": false}}}`, sesame.CodeInvalidField, "value"},
		{"keep with extra key", `{"type": "secret", "fields": {"value": {"keep": true, "value": "` + canary + `"}}}`, sesame.CodeInvalidField, "value"},
		{"keep as string", `{"type": "secret", "fields": {"value": {"keep": "` + canary + `"}}}`, sesame.CodeInvalidField, "value"},

		// api_key
		{"api_key missing value", `{"type": "api_key", "fields": {"name": "X-Key"}}`, sesame.CodeMissingField, "value"},
		{"api_key bad in", `{"type": "api_key", "fields": {"value": "` + canary + `", "in": "cookie"}}`, sesame.CodeInvalidField, "in"},
		{"api_key name not a token", `{"type": "api_key", "fields": {"value": "` + canary + `", "name": "X Key"}}`, sesame.CodeInvalidField, "name"},
		{"api_key empty name", `{"type": "api_key", "fields": {"value": "` + canary + `", "name": ""}}`, sesame.CodeInvalidField, "name"},
		{"api_key name with LF", `{"type": "api_key", "fields": {"value": "` + canary + `", "name": "X-Key\nX-Evil: 1"}}`, sesame.CodeInvalidField, "name"},
		{"api_key name too long", `{"type": "api_key", "fields": {"value": "` + canary + `", "name": "` + strings.Repeat("a", 257) + `"}}`, sesame.CodeInvalidField, "name"},
		{"api_key name wrong type", `{"type": "api_key", "fields": {"value": "` + canary + `", "name": 5}}`, sesame.CodeInvalidField, "name"},
		{"api_key secret in a public field's place", `{"type": "api_key", "fields": {"value": "` + canary + `", "in": "` + canary + `"}}`, sesame.CodeInvalidField, "in"},

		// basic
		{"basic missing password", `{"type": "basic", "fields": {"username": "alice"}}`, sesame.CodeMissingField, "password"},
		{"basic missing username", `{"type": "basic", "fields": {"password": "` + canary + `"}}`, sesame.CodeMissingField, "username"},
		{"basic username with colon", `{"type": "basic", "fields": {"username": "a:b", "password": "` + canary + `"}}`, sesame.CodeInvalidField, "username"},
		{"basic username with CR", `{"type": "basic", "fields": {"username": "a\rb", "password": "` + canary + `"}}`, sesame.CodeInvalidField, "username"},
		{"basic username with NUL", `{"type": "basic", "fields": {"username": "a\u0000b", "password": "` + canary + `"}}`, sesame.CodeInvalidField, "username"},
		{"basic username too long", `{"type": "basic", "fields": {"username": "` + strings.Repeat("u", 1025) + `", "password": "` + canary + `"}}`, sesame.CodeInvalidField, "username"},
		{"basic username as object", `{"type": "basic", "fields": {"username": {"a": 1}, "password": "` + canary + `"}}`, sesame.CodeInvalidField, "username"},

		// bearer
		{"bearer missing token", `{"type": "bearer", "fields": {"scheme": "Bearer"}}`, sesame.CodeMissingField, "token"},
		{"bearer scheme with space", `{"type": "bearer", "fields": {"token": "` + canary + `", "scheme": "Bearer x"}}`, sesame.CodeInvalidField, "scheme"},
		{"bearer scheme with CRLF", `{"type": "bearer", "fields": {"token": "` + canary + `", "scheme": "Bearer\r\nX-Evil: 1"}}`, sesame.CodeInvalidField, "scheme"},
		{"bearer empty scheme", `{"type": "bearer", "fields": {"token": "` + canary + `", "scheme": ""}}`, sesame.CodeInvalidField, "scheme"},
		{"bearer unknown field", `{"type": "bearer", "fields": {"token": "` + canary + `", "value": "` + canary + `"}}`, sesame.CodeUnknownField, "value"},

		// oauth2
		{"oauth2 missing grant", `{"type": "oauth2", "fields": {"client_id": "c", "client_secret": "` + canary + `", "provider": "google"}}`, sesame.CodeMissingField, "grant"},
		{"oauth2 unknown grant", `{"type": "oauth2", "fields": {"grant": "password", "client_id": "c", "client_secret": "` + canary + `", "provider": "google"}}`, sesame.CodeInvalidField, "grant"},
		{"oauth2 missing client_id", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_secret": "` + canary + `", "provider": "google"}}`, sesame.CodeMissingField, "client_id"},
		{"oauth2 client_credentials without client_secret", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "token_url": "https://a.example/token"}}`, sesame.CodeMissingField, "client_secret"},
		{"oauth2 client_credentials with provider but no client_secret", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "provider": "google"}}`, sesame.CodeMissingField, "client_secret"},
		{"oauth2 client_credentials without token_url", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `"}}`, sesame.CodeMissingField, "token_url"},
		{"oauth2 authorization_code without auth_url", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "token_url": "https://a.example/token"}}`, sesame.CodeMissingField, "auth_url"},
		{"oauth2 relative token_url", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "/token"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 token_url without host", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "https:///token"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 ftp token_url", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "ftp://a.example/token"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 javascript auth_url", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "auth_url": "javascript:alert(1)", "token_url": "https://a.example/token"}}`, sesame.CodeInvalidField, "auth_url"},
		{"oauth2 token_url with user info", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "https://user:` + canary + `@a.example/token"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 token_url with user only", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "https://` + canary + `@a.example/token"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 unparseable token_url", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "https://a.example:port/"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 token_url with LF", `{"type": "oauth2", "fields": {"grant": "client_credentials", "client_id": "c", "client_secret": "` + canary + `", "token_url": "https://a.example/\ntoken"}}`, sesame.CodeInvalidField, "token_url"},
		{"oauth2 scopes as number", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "g", "scopes": 5}}`, sesame.CodeInvalidField, "scopes"},
		{"oauth2 scopes with empty entry", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "g", "scopes": ["a", ""]}}`, sesame.CodeInvalidField, "scopes"},
		{"oauth2 scopes with LF entry", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "g", "scopes": ["a\nb"]}}`, sesame.CodeInvalidField, "scopes"},
		{"oauth2 scopes with mixed array", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "g", "scopes": ["a", 1]}}`, sesame.CodeInvalidField, "scopes"},
		{"oauth2 too many scopes", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "g", "scopes": "` + strings.Repeat("s ", 101) + `"}}`, sesame.CodeInvalidField, "scopes"},
		{"oauth2 provider too long", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "` + strings.Repeat("p", 65) + `"}}`, sesame.CodeInvalidField, "provider"},
		{"oauth2 client_id too long", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "` + long + `", "provider": "g"}}`, sesame.CodeInvalidField, "client_id"},
		{"oauth2 access_token is not a field", `{"type": "oauth2", "fields": {"grant": "authorization_code", "client_id": "c", "provider": "g", "access_token": "` + canary + `"}}`, sesame.CodeUnknownField, "access_token"},

		// jwt_bearer
		{"jwt missing alg", `{"type": "jwt_bearer", "fields": {"secret": "` + canary + `"}}`, sesame.CodeMissingField, "alg"},
		{"jwt unknown alg", `{"type": "jwt_bearer", "fields": {"alg": "none", "secret": "` + canary + `"}}`, sesame.CodeInvalidField, "alg"},
		{"jwt lowercase alg", `{"type": "jwt_bearer", "fields": {"alg": "hs256", "secret": "` + canary + `"}}`, sesame.CodeInvalidField, "alg"},
		{"jwt HS256 without secret", `{"type": "jwt_bearer", "fields": {"alg": "HS256"}}`, sesame.CodeMissingField, "secret"},
		{"jwt HS384 with private_key", `{"type": "jwt_bearer", "fields": {"alg": "HS384", "secret": "` + canary + `", "private_key": "` + canary + `"}}`, sesame.CodeInvalidField, "private_key"},
		{"jwt HS512 with pkcs12", `{"type": "jwt_bearer", "fields": {"alg": "HS512", "secret": "` + canary + `", "pkcs12": "` + canary + `"}}`, sesame.CodeInvalidField, "pkcs12"},
		{"jwt HS256 with pkcs12_password", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "pkcs12_password": "` + canary + `"}}`, sesame.CodeInvalidField, "pkcs12_password"},
		{"jwt RS256 with secret", `{"type": "jwt_bearer", "fields": {"alg": "RS256", "secret": "` + canary + `", "private_key": "` + canary + `"}}`, sesame.CodeInvalidField, "secret"},
		{"jwt RS256 without key", `{"type": "jwt_bearer", "fields": {"alg": "RS256"}}`, sesame.CodeMissingField, "private_key"},
		{"jwt RS256 with only pkcs12_password", `{"type": "jwt_bearer", "fields": {"alg": "RS256", "pkcs12_password": "` + canary + `"}}`, sesame.CodeMissingField, "pkcs12"},
		{"jwt RS256 with both keys", `{"type": "jwt_bearer", "fields": {"alg": "RS256", "private_key": "` + canary + `", "pkcs12": "` + canary + `"}}`, sesame.CodeInvalidField, "pkcs12"},
		{"jwt ES256 pkcs12_password with PEM", `{"type": "jwt_bearer", "fields": {"alg": "ES256", "private_key": "` + canary + `", "pkcs12_password": "` + canary + `"}}`, sesame.CodeInvalidField, "pkcs12_password"},
		{"jwt payload not an object", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "payload": "iss=me"}}`, sesame.CodeInvalidField, "payload"},
		{"jwt payload array", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "payload": [1]}}`, sesame.CodeInvalidField, "payload"},
		{"jwt payload too large", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "payload": {"x": "` + strings.Repeat("p", 17<<10) + `"}}}`, sesame.CodeInvalidField, "payload"},
		{"jwt headers not an object", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "headers": true}}`, sesame.CodeInvalidField, "headers"},
		{"jwt token_url with user info", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "token_url": "https://me:` + canary + `@a.example/"}}`, sesame.CodeInvalidField, "token_url"},
		{"jwt token_url relative", `{"type": "jwt_bearer", "fields": {"alg": "HS256", "secret": "` + canary + `", "token_url": "a.example/token"}}`, sesame.CodeInvalidField, "token_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := credential.Parse([]byte(tt.body))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", in.Public)
			}
			if got := sesame.ErrorCode(err); got != tt.code {
				t.Errorf("code = %s, want %s (%v)", got, tt.code, err)
			}
			msg := err.Error()
			if tt.field != "" && !strings.Contains(msg, `"`+tt.field+`"`) {
				t.Errorf("message %q does not name %q", msg, tt.field)
			}
			if strings.Contains(msg, canary) {
				t.Errorf("message leaks a secret value: %q", msg)
			}
			if len(msg) > 512 {
				t.Errorf("message is %d bytes long; it should not echo input", len(msg))
			}
		})
	}
}

// TestParseNeverReportsSecretRequired: secret_required is the vault's decision (it needs
// the stored record); Parse accepts {"keep": true} wherever a secret may go.
func TestParseNeverReportsSecretRequired(t *testing.T) {
	for _, typ := range credential.Types() {
		kind, _ := credential.Lookup(typ)
		fields := map[string]any{}
		for _, f := range kind.Fields {
			if f.Secret {
				fields[f.Name] = map[string]any{"keep": true}
			}
		}
		_, err := credential.Parse(body(t, typ, fields))
		if sesame.ErrorCode(err) == sesame.CodeSecretRequired {
			t.Errorf("%s: Parse returned secret_required: %v", typ, err)
		}
	}
}

func TestTypesAndLookup(t *testing.T) {
	want := []string{"api_key", "basic", "bearer", "jwt_bearer", "oauth2", "secret"}
	if got := credential.Types(); !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	wantSecret := map[string][]string{
		"api_key":    {"value"},
		"basic":      {"password"},
		"bearer":     {"token"},
		"secret":     {"value"},
		"oauth2":     {"client_secret"},
		"jwt_bearer": {"secret", "private_key", "pkcs12", "pkcs12_password"},
	}
	for _, typ := range want {
		k, ok := credential.Lookup(typ)
		if !ok || k.Name != typ {
			t.Fatalf("Lookup(%q) = %v, %v", typ, k, ok)
		}
		if got := k.SecretFields(); !slices.Equal(got, wantSecret[typ]) {
			t.Errorf("%s secret fields = %v, want %v", typ, got, wantSecret[typ])
		}
		for _, f := range k.Fields {
			if f.Secret && (f.Default != "" || len(f.Enum) > 0) {
				t.Errorf("%s.%s is secret but has a default or enum that errors could echo", typ, f.Name)
			}
		}
	}
	if _, ok := credential.Lookup("nope"); ok {
		t.Fatal("Lookup of an unknown type succeeded")
	}
}

// TestParseErrorsNameTheFieldNotTheValue runs every kind with each field in turn given
// a wrong JSON type, and checks that the error names that field and not the canary.
func TestParseErrorsNameTheFieldNotTheValue(t *testing.T) {
	for _, typ := range credential.Types() {
		kind, _ := credential.Lookup(typ)
		for _, f := range kind.Fields {
			fields := map[string]any{}
			for _, g := range kind.Fields {
				if g.Secret {
					fields[g.Name] = canary
				}
			}
			if f.Secret {
				fields[f.Name] = []string{canary}
			} else if f.Type == credential.Object {
				fields[f.Name] = canary
			} else {
				fields[f.Name] = map[string]string{"x": canary}
			}
			_, err := credential.Parse(body(t, typ, fields))
			if err == nil {
				t.Errorf("%s.%s: wrong JSON type accepted", typ, f.Name)
				continue
			}
			if code := sesame.ErrorCode(err); code != sesame.CodeInvalidField {
				t.Errorf("%s.%s: code %s, want invalid_field (%v)", typ, f.Name, code, err)
			}
			if !strings.Contains(err.Error(), `"`+f.Name+`"`) {
				t.Errorf("%s.%s: message %q does not name the field", typ, f.Name, err)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("%s.%s: message leaks a value: %q", typ, f.Name, err)
			}
		}
	}
}
