package credential

import (
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/jwtbearer"
)

// JWTAlgorithms are the signature methods a jwt_bearer credential may use.
var JWTAlgorithms = jwtbearer.Algorithms

// jwtBearer signs a JWT per call, sent as a bearer token or exchanged at token_url
// (RFC 7523). Signing and key import are in internal/jwtbearer; saving a credential
// parses its key, checks that it fits alg and signs a test token (Verify).
//
// Beyond PRODUCT.md §3: secret_encoding ("text", the default, or "base64") says how to
// read an HMAC secret; lifetime_seconds (default 300) is the token lifetime; reuse lets
// a signed token serve calls until shortly before it expires; header_name (default
// Authorization) and scheme (default Bearer; empty for the bare token) say where it goes;
// scope is sent with the token_url exchange.
var jwtBearer = Kind{
	Name:   "jwt_bearer",
	Verify: jwtbearer.Verify,
	Fields: []Field{
		{Name: "alg", Type: String, Required: true, Enum: JWTAlgorithms, KeyParam: true},
		{Name: "secret", Secret: true},
		{Name: "private_key", Secret: true},
		{Name: "pkcs12", Secret: true},
		{Name: "pkcs12_password", Secret: true},
		{Name: "payload", Type: Object},
		{Name: "headers", Type: Object},
		{Name: "token_url", Type: URL},
		{Name: "secret_encoding", Type: String, Enum: []string{jwtbearer.EncodingText, jwtbearer.EncodingBase64}, KeyParam: true},
		{Name: "lifetime_seconds", Type: Integer},
		{Name: "reuse", Type: Bool},
		{Name: "scope", Type: String, MaxLen: 1024},
		{Name: "header_name", Type: String, MaxLen: 256},
		{Name: "scheme", Type: String, MaxLen: 64},
	},
	Check: func(public map[string]any, present func(string) bool) error {
		if err := checkJWTKeyFields(public, present); err != nil {
			return err
		}
		_, err := jwtbearer.ParseOptions(public)
		return err
	},
}

// checkJWTKeyFields checks that the key fields given are those alg needs.
func checkJWTKeyFields(public map[string]any, present func(string) bool) error {
	alg := public["alg"].(string)
	if strings.HasPrefix(alg, "HS") {
		if !present("secret") {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for %s", "secret", alg)
		}
		for _, f := range []string{"private_key", "pkcs12", "pkcs12_password"} {
			if present(f) {
				return sesame.Errorf(sesame.CodeInvalidField, "field %q does not apply to %s (HMAC uses %q)", f, alg, "secret")
			}
		}
		return nil
	}
	if present("secret") {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q applies only to HS256/384/512; %s needs %q or %q", "secret", alg, "private_key", "pkcs12")
	}
	switch {
	case present("private_key") && present("pkcs12"):
		return sesame.Errorf(sesame.CodeInvalidField, "give either %q or %q, not both", "private_key", "pkcs12")
	case !present("private_key") && !present("pkcs12"):
		return sesame.Errorf(sesame.CodeMissingField, "field %q (PEM) or %q (base64 PKCS#12) is required for %s", "private_key", "pkcs12", alg)
	case present("pkcs12_password") && !present("pkcs12"):
		return sesame.Errorf(sesame.CodeInvalidField, "field %q applies only with %q", "pkcs12_password", "pkcs12")
	}
	return nil
}
