package jwtbearer_test

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/jwtbearer"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
)

// bodyOf returns the base64 body of a PEM, on one line.
func bodyOf(p string) string {
	var b strings.Builder
	for _, line := range strings.Split(p, "\n") {
		if !strings.HasPrefix(line, "-----") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestKeyImportForms feeds the same keys in every form users paste them in; each must
// import to the very same key.
func TestKeyImportForms(t *testing.T) {
	rsaKey := jwttest.RSA(t, 2048)
	ecKey := jwttest.EC(t, elliptic.P256())
	edKey := jwttest.Ed25519(t)
	pkcs8 := jwttest.PKCS8(t, rsaKey)
	oneLine := func(p string) string { return strings.ReplaceAll(strings.TrimSpace(p), "\n", "") }
	googleJSON, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "svc@p.iam.gserviceaccount.com", "private_key": pkcs8})
	cases := []struct {
		name string
		text string
		want crypto.Signer
	}{
		{"PKCS#1 RSA", jwttest.PKCS1(t, rsaKey), rsaKey},
		{"PKCS#8 RSA", pkcs8, rsaKey},
		{"PKCS#8 EC", jwttest.PKCS8(t, ecKey), ecKey},
		{"SEC1 EC", jwttest.SEC1(t, ecKey), ecKey},
		{"PKCS#8 Ed25519", jwttest.PKCS8(t, edKey), edKey},
		{"literal \\n (web form)", strings.ReplaceAll(pkcs8, "\n", `\n`), rsaKey},
		{"literal \\r\\n", strings.ReplaceAll(pkcs8, "\n", `\r\n`), rsaKey},
		{"double-escaped \\\\n", strings.ReplaceAll(pkcs8, "\n", `\\n`), rsaKey},
		{"literal \\n in a SEC1 EC key", strings.ReplaceAll(jwttest.SEC1(t, ecKey), "\n", `\n`), ecKey},
		{"CRLF line endings", strings.ReplaceAll(pkcs8, "\n", "\r\n"), rsaKey},
		{"old Mac CR line endings", strings.ReplaceAll(pkcs8, "\n", "\r"), rsaKey},
		{"surrounding whitespace", "\n\n   \t" + pkcs8 + "  \n\t ", rsaKey},
		{"indented lines", strings.ReplaceAll(pkcs8, "\n", "\n    "), rsaKey},
		{"header lines run into the body", oneLine(pkcs8), rsaKey},
		{"line breaks turned into spaces", strings.ReplaceAll(strings.TrimSpace(pkcs8), "\n", " "), rsaKey},
		{"BEGIN line glued, END line apart", strings.Replace(pkcs8, "-----\n", "-----", 1), rsaKey},
		{"in double quotes", `"` + strings.ReplaceAll(pkcs8, "\n", `\n`) + `"`, rsaKey},
		{"a whole Google service-account JSON file", string(googleJSON), rsaKey},
		{"one long body line", "-----BEGIN PRIVATE KEY-----\n" + bodyOf(pkcs8) + "\n-----END PRIVATE KEY-----\n", rsaKey},
		{"body without base64 padding", "-----BEGIN EC PRIVATE KEY-----\n" + strings.TrimRight(bodyOf(jwttest.SEC1(t, ecKey)), "=") + "\n-----END EC PRIVATE KEY-----", ecKey},
		{"PKCS#8 inside RSA PRIVATE KEY armor", strings.ReplaceAll(pkcs8, "PRIVATE KEY", "RSA PRIVATE KEY"), rsaKey},
		{"openssl ecparam output (EC PARAMETERS first)", "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + jwttest.SEC1(t, ecKey), ecKey},
		{"certificate before the key", jwttest.CertificatePEM(t, rsaKey) + pkcs8, rsaKey},
		{"openssl pkcs12 -nodes output (Bag Attributes)", "Bag Attributes\n    localKeyID: 01 00 00 00\nKey Attributes: <No Attributes>\n" + pkcs8, rsaKey},
		{"bare base64 DER, no armor", bodyOf(pkcs8), rsaKey},
		{"bare base64 SEC1 DER with line breaks", strings.Join(strings.Split(strings.TrimSpace(strings.Join(strings.Split(jwttest.SEC1(t, ecKey), "\n")[1:4], "\n")), "\n"), "\n"), ecKey},
		{"lowercase-insensitive spacing in label", strings.ReplaceAll(pkcs8, "PRIVATE KEY", "PRIVATE  KEY"), rsaKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := jwtbearer.ParsePrivateKey([]byte(c.text))
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !got.(interface{ Equal(crypto.PrivateKey) bool }).Equal(c.want) {
				t.Fatal("imported a different key")
			}
		})
	}
}

// TestKeyImportErrors: each broken or unfit key gets an error that names the field, says
// what is wrong, and holds no key material.
func TestKeyImportErrors(t *testing.T) {
	rsaKey := jwttest.RSA(t, 2048)
	rsaPEM := jwttest.PKCS8(t, rsaKey)
	ecPEM := jwttest.SEC1(t, jwttest.EC(t, elliptic.P256()))
	p384PEM := jwttest.PKCS8(t, jwttest.EC(t, elliptic.P384()))
	p224PEM := jwttest.SEC1(t, jwttest.EC(t, elliptic.P224()))
	edPEM := jwttest.PKCS8(t, jwttest.Ed25519(t))
	small := jwttest.PKCS1(t, jwttest.RSA(t, 1024))
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	body := bodyOf(rsaPEM)
	lines := strings.Split(strings.TrimSpace(rsaPEM), "\n")
	truncated := strings.Join(lines[:len(lines)/2], "\n")
	corrupt := strings.Replace(rsaPEM, body[40:44], "!!!!", 1)
	garbled := "-----BEGIN PRIVATE KEY-----\n" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("not a key ", 20))) + "\n-----END PRIVATE KEY-----"
	encrypted := "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + body + "\n-----END ENCRYPTED PRIVATE KEY-----\n"
	legacyEncrypted := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF\n\n" + body + "\n-----END RSA PRIVATE KEY-----\n"
	openssh := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + body + "\n-----END OPENSSH PRIVATE KEY-----\n"
	mismatched := strings.Replace(rsaPEM, "END PRIVATE KEY", "END RSA PRIVATE KEY", 1)

	cases := []struct {
		name, alg, pem string
		want           string // in the message
	}{
		{"RSA key of 1024 bits", "RS256", small, "1024 bits; RS256 needs at least 2048"},
		{"RSA key for ES256", "ES256", rsaPEM, "needs an EC key on curve P-256"},
		{"P-384 key for ES256", "ES256", p384PEM, "curve P-384; ES256 needs curve P-256"},
		{"P-256 key for ES512", "ES512", ecPEM, "ES512 needs curve P-521"},
		{"P-224 key", "ES256", p224PEM, "curve P-224"},
		{"EC key for PS256", "PS256", ecPEM, "PS256 needs an RSA key"},
		{"EC key for EdDSA", "EdDSA", ecPEM, "EdDSA needs an Ed25519 key"},
		{"Ed25519 key for RS512", "RS512", edPEM, "RS512 needs an RSA key"},
		{"public key only", "RS256", pubPEM, "public key, not the private key"},
		{"certificate only", "RS256", jwttest.CertificatePEM(t, rsaKey), "certificate, not the private key"},
		{"cut short", "RS256", truncated, "without its -----END line"},
		{"corrupt base64", "RS256", corrupt, "not valid base64"},
		{"not a key", "RS256", garbled, "not a valid PKCS#1, PKCS#8 or SEC1 private key"},
		{"encrypted PKCS#8", "RS256", encrypted, "encrypted PKCS#8 key"},
		{"encrypted legacy PEM", "RS256", legacyEncrypted, "encrypted PEM key"},
		{"OpenSSH key", "RS256", openssh, "ssh-keygen"},
		{"two private keys", "RS256", rsaPEM + rsaPEM, "more than one private key"},
		{"BEGIN and END differ", "RS256", mismatched, "does not match"},
		{"no PEM, no base64", "RS256", "my key is " + strings.Repeat("secret ", 10), "no -----BEGIN line"},
		{"base64 that is no key", "RS256", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 100))), "does not hold a PKCS#1, PKCS#8 or SEC1 key"},
		{"BEGIN line never closed", "RS256", "-----BEGIN PRIVATE KEY" + body, "does not end in -----"},
		{"label with odd characters", "RS256", "-----BEGIN pr1vate<key>-----\n" + body + "\n-----END pr1vate<key>-----", "without a recognisable label"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: c.alg, PrivateKey: []byte(c.pem)})
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(msg, `field "private_key"`) || !strings.Contains(msg, c.want) {
				t.Fatalf("error %q: want invalid_field naming private_key and saying %q", msg, c.want)
			}
			assertNoKeyMaterial(t, msg, c.pem)
			if len(msg) > 400 {
				t.Errorf("message is %d bytes", len(msg))
			}
		})
	}
}

func TestHMACSecrets(t *testing.T) {
	raw := make([]byte, 64)
	_, _ = rand.Read(raw)
	cases := []struct {
		name, alg, secret, encoding string
		wantLen                     int
		wantErr                     string
	}{
		{"text, exactly the hash size", "HS256", strings.Repeat("k", 32), "", 32, ""},
		{"text, explicit", "HS384", strings.Repeat("k", 48), "text", 48, ""},
		{"text kept as given, spaces and all", "HS256", " " + strings.Repeat("k", 31) + " ", "text", 33, ""},
		{"base64 standard, padded", "HS512", base64.StdEncoding.EncodeToString(raw), "base64", 64, ""},
		{"base64url without padding", "HS512", base64.RawURLEncoding.EncodeToString(raw), "base64", 64, ""},
		{"base64 with line breaks", "HS256", base64.StdEncoding.EncodeToString(raw[:40])[:20] + "\n" + base64.StdEncoding.EncodeToString(raw[:40])[20:], "base64", 40, ""},
		{"text too short", "HS256", canary, "", 0, "15 bytes long; HS256 needs at least 32"},
		{"too short hints at base64", "HS512", base64.StdEncoding.EncodeToString(raw[:40]), "", 0, `set "secret_encoding" to "base64"`},
		{"base64 too short once decoded", "HS256", base64.StdEncoding.EncodeToString(raw[:31]), "base64", 0, "31 bytes long"},
		{"not base64", "HS256", canary + "!!" + strings.Repeat("a", 40), "base64", 0, "not valid base64"},
		{"unknown encoding", "HS256", strings.Repeat("k", 32), "hex", 0, "secret_encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: c.alg, Secret: []byte(c.secret), SecretEncoding: c.encoding})
			if c.wantErr != "" {
				if err == nil || sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
				assertNoKeyMaterial(t, err.Error(), c.secret)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(k.Public().([]byte)); got != c.wantLen {
				t.Errorf("key is %d bytes, want %d", got, c.wantLen)
			}
		})
	}
	if _, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: "HS256"}); sesame.ErrorCode(err) != sesame.CodeMissingField {
		t.Errorf("no secret: %v", err)
	}
}

func TestPKCS12(t *testing.T) {
	rsaKey := jwttest.RSA(t, 2048)
	ecKey := jwttest.EC(t, elliptic.P384())
	edKey := jwttest.Ed25519(t)
	good := []struct {
		name, alg, p12, password string
		want                     crypto.Signer
	}{
		{"RSA, modern encryption", "PS256", jwttest.PKCS12(t, rsaKey, "correct horse"), "correct horse", rsaKey},
		{"RSA, legacy 3DES", "RS512", jwttest.LegacyPKCS12(t, rsaKey, "pw"), "pw", rsaKey},
		{"EC P-384", "ES384", jwttest.PKCS12(t, ecKey, "pw"), "pw", ecKey},
		{"Ed25519", "EdDSA", jwttest.PKCS12(t, edKey, "pw"), "pw", edKey},
		{"empty password", "ES384", jwttest.PKCS12(t, ecKey, ""), "", ecKey},
		{"non-ASCII password", "ES384", jwttest.PKCS12(t, ecKey, "pässwörd✓"), "pässwörd✓", ecKey},
		{"base64 wrapped at 64 columns", "ES384", wrap(jwttest.PKCS12(t, ecKey, "pw"), 64), "pw", ecKey},
		{"base64url", "ES384", base64.RawURLEncoding.EncodeToString(mustB64(t, jwttest.PKCS12(t, ecKey, "pw"))), "pw", ecKey},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			k, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: c.alg, PKCS12: []byte(c.p12), PKCS12Password: []byte(c.password)})
			if err != nil {
				t.Fatal(err)
			}
			if !c.want.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
				t.Error("imported another key")
			}
			if _, _, ok := k.Thumbprints(); !ok {
				t.Error("the certificate was not kept")
			}
		})
	}
	p12 := jwttest.PKCS12(t, rsaKey, "right")
	bad := []struct {
		name, alg, p12, password string
		code                     sesame.Code
		field, want              string
	}{
		{"wrong password", "RS256", p12, canary, sesame.CodeInvalidField, "pkcs12_password", "wrong password"},
		{"no password", "RS256", p12, "", sesame.CodeMissingField, "pkcs12_password", "protected by a password"},
		{"not base64", "RS256", "%%%" + canary, "pw", sesame.CodeInvalidField, "pkcs12", "base64 of a PKCS#12"},
		{"base64 of something else", "RS256", base64.StdEncoding.EncodeToString([]byte(canary + strings.Repeat("z", 64))), "pw", sesame.CodeInvalidField, "pkcs12", "not a valid PKCS#12"},
		{"RSA key for ES256", "ES256", p12, "right", sesame.CodeInvalidField, "pkcs12", "needs an EC key"},
		{"EC key for EdDSA", "EdDSA", jwttest.PKCS12(t, ecKey, "pw"), "pw", sesame.CodeInvalidField, "pkcs12", "needs an Ed25519 key"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: c.alg, PKCS12: []byte(c.p12), PKCS12Password: []byte(c.password)})
			if sesame.ErrorCode(err) != c.code || !strings.Contains(err.Error(), `"`+c.field+`"`) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v: want %s naming %q saying %q", err, c.code, c.field, c.want)
			}
			assertNoKeyMaterial(t, err.Error(), c.p12)
			assertNoKeyMaterial(t, err.Error(), c.password)
		})
	}
	if _, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: "RS256", PKCS12: []byte(p12), PrivateKey: []byte(jwttest.PKCS8(t, rsaKey))}); sesame.ErrorCode(err) != sesame.CodeInvalidField {
		t.Errorf("both key fields: %v", err)
	}
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	return b.String() + s
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenSSLKeys imports keys and PKCS#12 files made by OpenSSL (testdata/openssl), so
// that import is checked against another implementation's output, not only Go's.
func TestOpenSSLKeys(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "openssl", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	pems := map[string]string{
		"rsa2048.pkcs8.pem": "PS512", "rsa2048.pkcs1.pem": "RS256", "ec256.ecparam.pem": "ES256",
		"ec384.pkcs8.pem": "ES384", "ec521.pkcs8.pem": "ES512", "ed25519.pkcs8.pem": "EdDSA",
	}
	for file, alg := range pems {
		pemText := read(file)
		for form, text := range map[string]string{"as written": pemText, "pasted with literal \\n": strings.ReplaceAll(pemText, "\n", `\n`)} {
			err := jwtbearer.Verify(map[string]any{"alg": alg}, map[string]sesame.Secret{"private_key": sesame.NewSecret([]byte(text))})
			if err != nil {
				t.Errorf("%s %s: %v", file, form, err)
			}
		}
	}
	p12s := map[string]string{
		"rsa2048.pkcs8.p12": "RS384", "rsa2048.legacy.p12": "PS256", "ec256.ecparam.p12": "ES256", "ed25519.pkcs8.p12": "EdDSA",
	}
	for file, alg := range p12s {
		b64 := base64.StdEncoding.EncodeToString([]byte(read(file)))
		public := map[string]any{"alg": alg, "headers": map[string]any{"x5t#S256": "{{x5t#S256}}"}}
		err := jwtbearer.Verify(public, map[string]sesame.Secret{"pkcs12": sesame.NewSecret([]byte(b64)), "pkcs12_password": sesame.NewSecret([]byte("sesame-test"))})
		if err != nil {
			t.Errorf("%s: %v", file, err)
		}
		err = jwtbearer.Verify(public, map[string]sesame.Secret{"pkcs12": sesame.NewSecret([]byte(b64)), "pkcs12_password": sesame.NewSecret([]byte(canary))})
		if !strings.Contains(fmt.Sprint(err), `"pkcs12_password"`) {
			t.Errorf("%s with a wrong password: %v", file, err)
		}
	}
	_, err := jwtbearer.ParseKey(jwtbearer.KeyInput{Alg: "ES384", PrivateKey: []byte(read("ec384.encrypted.pem"))})
	if !strings.Contains(fmt.Sprint(err), "encrypted PKCS#8") {
		t.Errorf("encrypted key: %v", err)
	}
}
