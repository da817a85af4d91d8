// Package jwttest makes keys for tests of jwt_bearer credentials: generated at run time
// (no key material lives in the source), in the forms users give them (PEM in PKCS#1,
// PKCS#8 and SEC1 form, base64 PKCS#12 with a self-signed certificate).
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

var rsaKeys sync.Map // bits → *rsa.PrivateKey: RSA generation is slow, so tests share keys

// RSA returns an RSA key of the given size, the same one for every call in a process.
func RSA(tb testing.TB, bits int) *rsa.PrivateKey {
	tb.Helper()
	if k, ok := rsaKeys.Load(bits); ok {
		return k.(*rsa.PrivateKey)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	actual, _ := rsaKeys.LoadOrStore(bits, k)
	return actual.(*rsa.PrivateKey)
}

// EC returns a new EC key on curve c.
func EC(tb testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Ed25519 returns a new Ed25519 key.
func Ed25519(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// KeyFor returns a new key fit for alg (RSA 2048 for RS and PS).
func KeyFor(tb testing.TB, alg string) crypto.Signer {
	tb.Helper()
	switch alg[:2] {
	case "RS", "PS":
		return RSA(tb, 2048)
	case "ES":
		return EC(tb, map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg])
	case "Ed":
		return Ed25519(tb)
	}
	tb.Fatalf("jwttest: no key for %s", alg)
	return nil
}

// PKCS8 returns key as a "PRIVATE KEY" PEM.
func PKCS8(tb testing.TB, key crypto.Signer) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// PKCS1 returns an RSA key as an "RSA PRIVATE KEY" PEM.
func PKCS1(tb testing.TB, key *rsa.PrivateKey) string {
	tb.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

// SEC1 returns an EC key as an "EC PRIVATE KEY" PEM.
func SEC1(tb testing.TB, key *ecdsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// Certificate returns a self-signed certificate for key.
func Certificate(tb testing.TB, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "sesame test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// CertificatePEM returns a self-signed certificate for key as a "CERTIFICATE" PEM.
func CertificatePEM(tb testing.TB, key crypto.Signer) string {
	tb.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: Certificate(tb, key).Raw}))
}

// PKCS12 returns the base64 of a PKCS#12 file holding key and a self-signed certificate,
// protected by password (modern encryption: AES-256 and PBKDF2).
func PKCS12(tb testing.TB, key crypto.Signer, password string) string {
	tb.Helper()
	pfx, err := pkcs12.Modern.WithIterations(2048).Encode(key, Certificate(tb, key), nil, password)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pfx)
}

// LegacyPKCS12 is PKCS12 with the legacy (3DES) encryption older tools produce.
func LegacyPKCS12(tb testing.TB, key crypto.Signer, password string) string {
	tb.Helper()
	pfx, err := pkcs12.LegacyDES.Encode(key, Certificate(tb, key), nil, password)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pfx)
}
