package jwtbearer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sesamehq/sesame"
)

// jwk is an example key from the RFCs, as a JSON Web Key.
type jwk struct {
	Kty, Kid, Crv, K, N, E, D, P, Q, X, Y string
}

type rfcExample struct {
	Name         string `json:"name"`
	Alg          string `json:"alg"`
	Key          string `json:"key"`
	JWS          string `json:"jws"`
	Reproducible bool   `json:"reproducible"`
}

func loadVectors(t *testing.T) (map[string]jwk, []rfcExample) {
	t.Helper()
	b, err := os.ReadFile("testdata/rfc-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Keys     map[string]jwk `json:"keys"`
		Examples []rfcExample   `json:"examples"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.Keys, v.Examples
}

func b64u(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

func bigInt(t *testing.T, s string) *big.Int { return new(big.Int).SetBytes(b64u(t, s)) }

func curveOf(t *testing.T, crv string) elliptic.Curve {
	t.Helper()
	switch crv {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	t.Fatalf("curve %q", crv)
	return nil
}

// public returns the JWK's public key, built straight from its public members with the
// standard library (not through Sesame's import, nor go-jose).
func (k jwk) public(t *testing.T) any {
	t.Helper()
	switch k.Kty {
	case "oct":
		return b64u(t, k.K)
	case "RSA":
		return &rsa.PublicKey{N: bigInt(t, k.N), E: int(bigInt(t, k.E).Int64())}
	case "EC":
		pt := append([]byte{4}, append(b64u(t, k.X), b64u(t, k.Y)...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curveOf(t, k.Crv), pt)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	case "OKP":
		return ed25519.PublicKey(b64u(t, k.X))
	}
	t.Fatalf("kty %q", k.Kty)
	return nil
}

// private returns the JWK's private key.
func (k jwk) private(t *testing.T) crypto.Signer {
	t.Helper()
	switch k.Kty {
	case "RSA":
		key := &rsa.PrivateKey{PublicKey: *k.public(t).(*rsa.PublicKey), D: bigInt(t, k.D), Primes: []*big.Int{bigInt(t, k.P), bigInt(t, k.Q)}}
		if err := key.Validate(); err != nil {
			t.Fatal(err)
		}
		key.Precompute()
		return key
	case "EC":
		key, err := ecdsa.ParseRawPrivateKey(curveOf(t, k.Crv), b64u(t, k.D))
		if err != nil {
			t.Fatal(err)
		}
		if !key.PublicKey.Equal(k.public(t)) {
			t.Fatal("the RFC's EC private key does not match its x and y")
		}
		return key
	case "OKP":
		key := ed25519.NewKeyFromSeed(b64u(t, k.D))
		if !key.Public().(ed25519.PublicKey).Equal(k.public(t)) {
			t.Fatal("the RFC's Ed25519 private key does not match its x")
		}
		return key
	}
	t.Fatalf("kty %q has no private key", k.Kty)
	return nil
}

// pemForms returns the key in each PEM form users have it in.
func (k jwk) pemForms(t *testing.T) map[string]string {
	t.Helper()
	key := k.private(t)
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{"PKCS#8": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))}
	switch key := key.(type) {
	case *rsa.PrivateKey:
		forms["PKCS#1"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		forms["SEC1"] = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	}
	for name, p := range forms {
		forms[name+", pasted with literal \\n"] = strings.ReplaceAll(strings.TrimSpace(p), "\n", `\n`)
	}
	return forms
}

// verifyRaw checks a compact JWS with golang-jwt's signing methods, which share no code
// with go-jose.
func verifyRaw(t *testing.T, alg, compact string, key any) error {
	t.Helper()
	i := strings.LastIndexByte(compact, '.')
	return jwt.GetSigningMethod(alg).Verify(compact[:i], b64u(t, compact[i+1:]), key)
}

// TestRFCExampleKeys imports each example key of RFC 7515, RFC 7520 and RFC 8037 in every
// form, checks that the imported key verifies the RFC's own example signature, that Sesame
// reproduces the RFC's signature exactly where the algorithm is deterministic, and that a
// token Sesame signs with the key verifies against the RFC's public key in golang-jwt.
func TestRFCExampleKeys(t *testing.T) {
	keys, examples := loadVectors(t)
	if len(examples) != 9 {
		t.Fatalf("%d examples in testdata", len(examples))
	}
	for _, ex := range examples {
		t.Run(ex.Name, func(t *testing.T) {
			k, ok := keys[ex.Key]
			if !ok {
				t.Fatalf("no key %q", ex.Key)
			}
			inputs := map[string]KeyInput{}
			if k.Kty == "oct" {
				inputs["base64url secret"] = KeyInput{Alg: ex.Alg, Secret: []byte(k.K), SecretEncoding: EncodingBase64}
				inputs["base64url secret with padding and a line break"] = KeyInput{Alg: ex.Alg,
					Secret: []byte(base64.URLEncoding.EncodeToString(b64u(t, k.K))[:20] + "\n" + base64.URLEncoding.EncodeToString(b64u(t, k.K))[20:]), SecretEncoding: EncodingBase64}
			} else {
				for form, p := range k.pemForms(t) {
					inputs[form] = KeyInput{Alg: ex.Alg, PrivateKey: []byte(p)}
				}
			}
			parts := strings.Split(ex.JWS, ".")
			var header map[string]any
			if err := json.Unmarshal(b64u(t, parts[0]), &header); err != nil || header["alg"] != ex.Alg {
				t.Fatalf("example header %v (%v)", header, err)
			}
			for form, in := range inputs {
				key, err := ParseKey(in)
				if err != nil {
					t.Fatalf("%s: ParseKey: %v", form, err)
				}
				// The imported key is the RFC's: it verifies the RFC's signature.
				if err := verifyRaw(t, ex.Alg, ex.JWS, key.Public()); err != nil {
					t.Fatalf("%s: the RFC's example JWS does not verify with the imported key: %v", form, err)
				}
				if ex.Reproducible {
					headers := map[string]any{"typ": nil}
					for name, v := range header {
						if name != "alg" {
							headers[name] = v
						}
					}
					s, err := NewWithKey(key, Options{Alg: ex.Alg, Headers: headers}, "ws", "cred")
					if err != nil {
						t.Fatal(err)
					}
					jws, err := s.signer.Sign(b64u(t, parts[1]))
					if err != nil {
						t.Fatal(err)
					}
					got, _ := jws.CompactSerialize()
					if got != ex.JWS {
						t.Fatalf("%s: Sesame's signature differs from the RFC's:\n got %s\nwant %s", form, got, ex.JWS)
					}
				}
			}
			// A JWT signed by Sesame with the RFC key verifies, in golang-jwt, against the
			// RFC's public key built from the JWK's public members alone.
			secrets := map[string]sesame.Secret{}
			public := map[string]any{"alg": ex.Alg, "payload": map[string]any{"iss": "joe", "http://example.com/is_root": true}}
			if k.Kty == "oct" {
				secrets["secret"] = sesame.NewSecret([]byte(k.K))
				public["secret_encoding"] = "base64"
			} else {
				secrets["private_key"] = sesame.NewSecret([]byte(k.pemForms(t)["PKCS#8, pasted with literal \\n"]))
			}
			if k.Kid != "" {
				public["headers"] = map[string]any{"kid": k.Kid}
			}
			s, err := New(public, secrets, "ws", "cred")
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			tok, _, err := s.Sign(Vars{}, now)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return k.public(t), nil },
				jwt.WithValidMethods([]string{ex.Alg}), jwt.WithIssuer("joe"), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
			if err != nil {
				t.Fatalf("golang-jwt rejects Sesame's token: %v", err)
			}
			if k.Kid != "" && parsed.Header["kid"] != k.Kid {
				t.Errorf("kid header = %v", parsed.Header["kid"])
			}
			// And the signature is what makes it valid.
			bad := tok[:len(tok)-2] + flip(tok[len(tok)-2:])
			if _, err := jwt.Parse(bad, func(*jwt.Token) (any, error) { return k.public(t), nil }, jwt.WithValidMethods([]string{ex.Alg})); err == nil {
				t.Fatal("a token with a changed signature verified")
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// TestRFCKeysImportEqual checks that importing the RFC keys from PEM yields exactly the
// RFC's private keys.
func TestRFCKeysImportEqual(t *testing.T) {
	keys, _ := loadVectors(t)
	for name, k := range keys {
		if k.Kty == "oct" {
			continue
		}
		want := k.private(t)
		for form, p := range k.pemForms(t) {
			got, _, err := ParsePrivateKey([]byte(p))
			if err != nil {
				t.Fatalf("%s %s: %v", name, form, err)
			}
			eq, ok := got.(interface{ Equal(crypto.PrivateKey) bool })
			if !ok || !eq.Equal(want) {
				t.Errorf("%s %s: imported key differs from the RFC's", name, form)
			}
		}
	}
	if !bytes.Equal(b64u(t, keys["RFC 7520 3.5 HMAC key"].K)[:2], []byte{0x84, 0x9b}) {
		t.Fatal("testdata changed")
	}
}
