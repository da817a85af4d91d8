package jwtbearer_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/jwtbearer"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
)

const canary = "CANARY-5e2b-jwt"

// credentialFor returns the secrets of a credential for alg with a fresh key, and the key
// golang-jwt verifies with.
func credentialFor(t testing.TB, alg string) (map[string]sesame.Secret, any) {
	if strings.HasPrefix(alg, "HS") {
		secret := make([]byte, map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}[alg])
		_, _ = rand.Read(secret)
		return map[string]sesame.Secret{"secret": sesame.NewSecret(append([]byte(nil), secret...))}, secret
	}
	key := jwttest.KeyFor(t, alg)
	return map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(jwttest.PKCS8(t, key)))}, key.Public()
}

// TestEveryAlgorithmVerifiesInGolangJWT signs with each algorithm and verifies the token
// with golang-jwt (a JOSE implementation that shares no code with go-jose, the signer),
// checking the claims and headers Sesame fills in.
func TestEveryAlgorithmVerifiesInGolangJWT(t *testing.T) {
	if len(jwtbearer.Algorithms) != 13 {
		t.Fatalf("algorithms: %v", jwtbearer.Algorithms)
	}
	now := time.Now().Truncate(time.Second)
	for _, alg := range jwtbearer.Algorithms {
		t.Run(alg, func(t *testing.T) {
			secrets, pub := credentialFor(t, alg)
			public := map[string]any{
				"alg": alg,
				"payload": map[string]any{
					"iss": "svc@example.iam", "sub": "{{user}}", "aud": "https://api.example.com/token",
					"scope": "read write", "by": "{{caller}}",
					"ctx": map[string]any{"ws": "{{workspace}}", "list": []any{"cred={{credential}}", 1.0, true}},
				},
				"headers":          map[string]any{"kid": "key-1"},
				"lifetime_seconds": 600.0,
			}
			s, err := jwtbearer.New(public, secrets, "acme", "svc.jwt")
			if err != nil {
				t.Fatal(err)
			}
			tok, exp, err := s.Sign(jwtbearer.Vars{User: "alice@example.com", Caller: "ops", Workspace: "acme", Credential: "svc.jwt"}, now)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(now.Add(600 * time.Second)) {
				t.Errorf("expiry %v, want %v", exp, now.Add(600*time.Second))
			}
			claims := jwt.MapClaims{}
			parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil },
				jwt.WithValidMethods([]string{alg}), jwt.WithIssuer("svc@example.iam"), jwt.WithAudience("https://api.example.com/token"),
				jwt.WithSubject("alice@example.com"), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(func() time.Time { return now }))
			if err != nil {
				t.Fatalf("golang-jwt rejects the token: %v", err)
			}
			if parsed.Header["alg"] != alg || parsed.Header["typ"] != "JWT" || parsed.Header["kid"] != "key-1" {
				t.Errorf("header = %v", parsed.Header)
			}
			iat, nbf, exp2 := claims["iat"].(float64), claims["nbf"].(float64), claims["exp"].(float64)
			if iat != float64(now.Unix()) || nbf != iat || exp2-iat != 600 {
				t.Errorf("iat %v nbf %v exp %v", iat, nbf, exp2)
			}
			if jti, _ := claims["jti"].(string); len(jti) != 22 {
				t.Errorf("jti = %q", jti)
			}
			ctx := claims["ctx"].(map[string]any)
			if claims["scope"] != "read write" || claims["by"] != "ops" || ctx["ws"] != "acme" || ctx["list"].([]any)[0] != "cred=svc.jwt" || ctx["list"].([]any)[2] != true {
				t.Errorf("claims = %v", claims)
			}
			// A token signed with another key of the same kind does not verify.
			_, other := credentialFor(t, alg)
			if alg[0] == 'R' || alg[0] == 'P' {
				other = jwttest.RSA(t, 3072).Public() // jwttest shares one 2048-bit key
			}
			if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return other, nil }, jwt.WithValidMethods([]string{alg})); err == nil {
				t.Error("the token verifies with another key")
			}
		})
	}
}

func TestEveryTokenHasItsOwnJTI(t *testing.T) {
	secrets, _ := credentialFor(t, "HS256")
	s, err := jwtbearer.New(map[string]any{"alg": "HS256"}, secrets, "w", "c")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 1000 {
		tok, _, err := s.Sign(jwtbearer.Vars{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
			t.Fatal(err)
		}
		jti := claims["jti"].(string)
		if seen[jti] {
			t.Fatal("a jti repeated")
		}
		seen[jti] = true
	}
}

func claimsOf(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, claims)
	if err != nil {
		t.Fatal(err)
	}
	return claims, parsed.Header
}

func TestTemplateFixesAndOmitsClaims(t *testing.T) {
	secrets, _ := credentialFor(t, "ES256")
	public := map[string]any{"alg": "ES256",
		"payload": map[string]any{"iat": 1000.0, "exp": 2000.0, "jti": "fixed-id", "nbf": nil, "iss": "me"},
		"headers": map[string]any{"typ": nil, "cty": "x"},
	}
	s, err := jwtbearer.New(public, secrets, "w", "c")
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := s.Sign(jwtbearer.Vars{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	claims, header := claimsOf(t, tok)
	if claims["iat"] != 1000.0 || claims["exp"] != 2000.0 || claims["jti"] != "fixed-id" || claims["iss"] != "me" {
		t.Errorf("claims = %v", claims)
	}
	if _, ok := claims["nbf"]; ok {
		t.Error("nbf: null did not leave the claim out")
	}
	if _, ok := header["typ"]; ok || header["cty"] != "x" {
		t.Errorf("header = %v", header)
	}
	if exp.Unix() != 2000 {
		t.Errorf("expiry = %v", exp)
	}
	// exp: null gives a token without expiry.
	public["payload"] = map[string]any{"exp": nil}
	s, err = jwtbearer.New(public, secrets, "w", "c")
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, _ = s.Sign(jwtbearer.Vars{}, time.Now())
	if claims, _ := claimsOf(t, tok); claims["exp"] != nil || !exp.IsZero() {
		t.Errorf("exp: null gave %v, %v", claims, exp)
	}
	// The template is not changed by signing.
	if public["payload"].(map[string]any)["exp"] != nil {
		t.Error("signing changed the template")
	}
}

func TestTemplateVariables(t *testing.T) {
	secrets, _ := credentialFor(t, "HS256")
	s, err := jwtbearer.New(map[string]any{"alg": "HS256", "payload": map[string]any{"sub": "user:{{ user }}"}}, secrets, "w", "svc")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Options().UsesUser() || s.Options().UsesCaller() {
		t.Errorf("uses user %v, caller %v", s.Options().UsesUser(), s.Options().UsesCaller())
	}
	tok, _, err := s.Sign(jwtbearer.Vars{User: "bob", Credential: "svc"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if claims, _ := claimsOf(t, tok); claims["sub"] != "user:bob" {
		t.Errorf("sub = %v", claims["sub"])
	}
	// No end user: refused rather than signed with an empty subject.
	_, _, err = s.Sign(jwtbearer.Vars{Credential: "svc"}, time.Now())
	if sesame.ErrorCode(err) != sesame.CodeInvalidArgument || !strings.Contains(err.Error(), "{{user}}") {
		t.Errorf("sign without a user: %v", err)
	}
}

func TestOptionErrorsNameTheField(t *testing.T) {
	hs := func(extra map[string]any) map[string]any {
		m := map[string]any{"alg": "HS256"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		public map[string]any
		field  string
	}{
		{"unknown alg", map[string]any{"alg": "none"}, "alg"},
		{"unknown payload variable", hs(map[string]any{"payload": map[string]any{"sub": "{{password}}"}}), "payload"},
		{"nested unknown variable", hs(map[string]any{"payload": map[string]any{"a": []any{map[string]any{"b": "{{x5t}}"}}}}), "payload"},
		{"user in headers", hs(map[string]any{"headers": map[string]any{"kid": "{{user}}"}}), "headers"},
		{"alg in headers", hs(map[string]any{"headers": map[string]any{"alg": "none"}}), "headers"},
		{"crit in headers", hs(map[string]any{"headers": map[string]any{"crit": []any{"exp"}}}), "headers"},
		{"kid not a string", hs(map[string]any{"headers": map[string]any{"kid": 5.0}}), "headers"},
		{"lifetime too short", hs(map[string]any{"lifetime_seconds": 1.0}), "lifetime_seconds"},
		{"lifetime too long", hs(map[string]any{"lifetime_seconds": 90000.0}), "lifetime_seconds"},
		{"lifetime fractional", hs(map[string]any{"lifetime_seconds": 60.5}), "lifetime_seconds"},
		{"lifetime a string", hs(map[string]any{"lifetime_seconds": "60"}), "lifetime_seconds"},
		{"reuse a string", hs(map[string]any{"reuse": "yes"}), "reuse"},
		{"reuse without exp", hs(map[string]any{"reuse": true, "payload": map[string]any{"exp": nil}}), "reuse"},
		{"header_name with a space", hs(map[string]any{"header_name": "X Token"}), "header_name"},
		{"scheme with a colon", hs(map[string]any{"scheme": "Bearer:"}), "scheme"},
		{"scope without token_url", hs(map[string]any{"scope": "a b"}), "scope"},
		{"token_url with user info", hs(map[string]any{"token_url": "https://u:p@a.example/t"}), "token_url"},
		{"token_url ftp", hs(map[string]any{"token_url": "ftp://a.example/t"}), "token_url"},
		{"secret_encoding for RSA", map[string]any{"alg": "RS256", "secret_encoding": "base64"}, "secret_encoding"},
		{"secret_encoding unknown", hs(map[string]any{"secret_encoding": "hex"}), "secret_encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := jwtbearer.ParseOptions(c.public)
			if err == nil {
				t.Fatal("accepted")
			}
			if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), `"`+c.field+`"`) {
				t.Errorf("error %v does not name %q", err, c.field)
			}
		})
	}
	o, err := jwtbearer.ParseOptions(map[string]any{"alg": "PS256", "lifetime_seconds": int64(3600), "reuse": true,
		"token_url": "https://oauth2.example.com/token", "scope": "a b", "header_name": "X-Token", "scheme": ""})
	if err != nil {
		t.Fatal(err)
	}
	if o.Lifetime != time.Hour || !o.Reuse || o.TokenURL == "" || o.Scope != "a b" || o.HeaderName != "X-Token" || o.Scheme != "" {
		t.Errorf("options = %+v", o)
	}
}

// TestCertificateThumbprintHeaders: x5t and x5t#S256 come from the key's certificate
// (PKCS#12, or a CERTIFICATE block beside the PEM key), as Microsoft Entra asks.
func TestCertificateThumbprintHeaders(t *testing.T) {
	key := jwttest.KeyFor(t, "RS256")
	public := map[string]any{"alg": "RS256", "headers": map[string]any{"x5t": "{{x5t}}", "x5t#S256": "{{x5t#S256}}"}}
	p12 := jwttest.PKCS12(t, key, "pw")
	s, err := jwtbearer.New(public, map[string]sesame.Secret{"pkcs12": sesame.NewSecret([]byte(p12)), "pkcs12_password": sesame.NewSecret([]byte("pw"))}, "w", "c")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := s.Sign(jwtbearer.Vars{}, time.Now())
	_, header := claimsOf(t, tok)
	if x, _ := header["x5t"].(string); len(x) != 27 || len(header["x5t#S256"].(string)) != 43 {
		t.Errorf("header = %v", header)
	}

	// PEM with the certificate beside the key.
	certPEM := jwttest.CertificatePEM(t, key)
	block, _ := pem.Decode([]byte(certPEM))
	sum := sha1.Sum(block.Bytes)
	s, err = jwtbearer.New(public, map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(certPEM + jwttest.PKCS8(t, key)))}, "w", "c")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ = s.Sign(jwtbearer.Vars{}, time.Now())
	if _, header := claimsOf(t, tok); header["x5t"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Errorf("x5t = %v", header["x5t"])
	}

	// A certificate of another key does not count; without one, the header is refused.
	other := jwttest.CertificatePEM(t, jwttest.KeyFor(t, "ES256"))
	for _, pemText := range []string{jwttest.PKCS8(t, key), other + jwttest.PKCS8(t, key)} {
		_, err = jwtbearer.New(public, map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(pemText))}, "w", "c")
		if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), `"headers"`) {
			t.Errorf("x5t without a matching certificate: %v", err)
		}
	}
}

// TestVerifyOnSave is the credential kind's hook: good credentials pass, bad keys get an
// error naming the field that never holds the key.
func TestVerifyOnSave(t *testing.T) {
	for _, alg := range jwtbearer.Algorithms {
		secrets, _ := credentialFor(t, alg)
		if err := jwtbearer.Verify(map[string]any{"alg": alg, "payload": map[string]any{"sub": "{{user}}"}}, secrets); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	rsaPEM := jwttest.PKCS8(t, jwttest.KeyFor(t, "RS256"))
	cases := []struct {
		name    string
		public  map[string]any
		secrets map[string]string
		code    sesame.Code
		field   string
	}{
		{"canary as PEM", map[string]any{"alg": "RS256"}, map[string]string{"private_key": canary}, sesame.CodeInvalidField, "private_key"},
		{"RSA key for ES256", map[string]any{"alg": "ES256"}, map[string]string{"private_key": rsaPEM}, sesame.CodeInvalidField, "private_key"},
		{"short HMAC secret", map[string]any{"alg": "HS512"}, map[string]string{"secret": canary}, sesame.CodeInvalidField, "secret"},
		{"canary as PKCS#12", map[string]any{"alg": "ES256"}, map[string]string{"pkcs12": canary, "pkcs12_password": canary}, sesame.CodeInvalidField, "pkcs12"},
		{"base64 secret that is not", map[string]any{"alg": "HS256", "secret_encoding": "base64"}, map[string]string{"secret": canary + "!" + strings.Repeat("x", 40)}, sesame.CodeInvalidField, "secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			secrets := map[string]sesame.Secret{}
			for k, v := range c.secrets {
				secrets[k] = sesame.NewSecret([]byte(v))
			}
			err := jwtbearer.Verify(c.public, secrets)
			if sesame.ErrorCode(err) != c.code || !strings.Contains(err.Error(), `"`+c.field+`"`) {
				t.Fatalf("error %v, want %s naming %q", err, c.code, c.field)
			}
			for _, v := range c.secrets {
				assertNoKeyMaterial(t, err.Error(), v)
			}
		})
	}
}

// assertNoKeyMaterial fails if msg holds any 12-byte stretch of material (or the canary).
func assertNoKeyMaterial(t *testing.T, msg, material string) {
	t.Helper()
	if strings.Contains(msg, canary) {
		t.Fatalf("message holds the canary: %q", msg)
	}
	for _, line := range strings.Fields(material) {
		if strings.HasPrefix(line, "-----") || strings.HasSuffix(line, "-----") {
			continue
		}
		for i := 0; i+12 <= len(line); i++ {
			if strings.Contains(msg, line[i:i+12]) {
				t.Fatalf("message holds key material %q: %q", line[i:i+12], msg)
			}
		}
	}
}

// publicOf returns the public key of a PEM private key, with the standard library.
func publicOf(t *testing.T, pemText string) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer).Public()
}
