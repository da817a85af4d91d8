package jwtbearer_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sesamehq/sesame/internal/jwtbearer"
)

// base64Run finds stretches of input that could be key material.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/=_-]{16,}`)

// FuzzParsePrivateKey feeds the key parser arbitrary text. The seed corpus
// (testdata/fuzz/FuzzParsePrivateKey) holds keys made by OpenSSL in each PEM form, pasted
// in the broken ways the parser repairs, and broken keys. Invariants:
//   - it never panics;
//   - an error message is short, valid UTF-8, and quotes no stretch of the input that
//     could be key material;
//   - a key it returns is of a supported type, and the same key comes back when it is
//     written out as a clean PKCS#8 PEM and parsed again, and when the input is pasted
//     again with literal "\n" sequences.
func FuzzParsePrivateKey(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----"))
	f.Add([]byte(`-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n`))
	f.Fuzz(func(t *testing.T, in []byte) {
		key, _, err := jwtbearer.ParsePrivateKey(in)
		if err != nil {
			msg := err.Error()
			if len(msg) > 400 || !utf8.ValidString(msg) {
				t.Fatalf("bad message %q", msg)
			}
			for _, run := range base64Run.FindAllString(string(in), -1) {
				for i := 0; i+16 <= len(run); i++ {
					w := run[i : i+16]
					if strings.Contains(msg, w) && strings.ToUpper(w) != w { // labels are capitals
						t.Fatalf("message %q quotes the input %q", msg, w)
					}
				}
			}
			return
		}
		switch key.(type) {
		case crypto.Signer:
		default:
			t.Fatalf("returned a %T", key)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("returned a key that does not marshal: %v", err)
		}
		again, _, err := jwtbearer.ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err != nil || !again.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
			t.Fatalf("a clean PKCS#8 of the key does not give it back: %v", err)
		}
		if !strings.Contains(string(in), `\`) {
			escaped, _, err := jwtbearer.ParsePrivateKey([]byte(strings.ReplaceAll(string(in), "\n", `\n`)))
			if err != nil || !escaped.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
				t.Fatalf("the same input pasted with literal \\n does not give the key back: %v", err)
			}
		}
	})
}
