package credential

import (
	"strings"

	"github.com/sesamehq/sesame"
)

// JWTAlgorithms are the signature methods a jwt_bearer credential may use.
var JWTAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// jwtBearer signs a JWT per call, sent as a bearer token or exchanged at token_url
// (RFC 7523).
var jwtBearer = Kind{
	Name: "jwt_bearer",
	Fields: []Field{
		{Name: "alg", Type: String, Required: true, Enum: JWTAlgorithms},
		{Name: "secret", Secret: true},
		{Name: "private_key", Secret: true},
		{Name: "pkcs12", Secret: true},
		{Name: "pkcs12_password", Secret: true},
		{Name: "payload", Type: Object},
		{Name: "headers", Type: Object},
		{Name: "token_url", Type: URL},
	},
	Check: func(public map[string]any, present func(string) bool) error {
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
	},
}
