package jwtbearer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/sesamehq/sesame"
)

// Limits on key material.
const (
	MinRSABits = 2048
	MaxRSABits = 16384
	maxKeyText = 64 << 10 // as the credential's secret fields allow
)

// Key is a signing key that has been checked against its algorithm.
type Key struct {
	alg  jose.SignatureAlgorithm
	key  any               // []byte (HMAC), *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	cert *x509.Certificate // the certificate of the key, from PKCS#12 or a PEM bundle; may be nil
}

// Alg returns the key's JWS algorithm.
func (k *Key) Alg() string { return string(k.alg) }

// Public returns the public key, or for HMAC the secret itself (to verify a test token).
func (k *Key) Public() any {
	switch key := k.key.(type) {
	case []byte:
		return key
	case crypto.Signer:
		return key.Public()
	}
	return nil
}

// Thumbprints returns the base64url SHA-1 and SHA-256 thumbprints of the key's certificate
// (the JWS "x5t" and "x5t#S256" header values), and false when there is no certificate.
func (k *Key) Thumbprints() (x5t, x5tS256 string, ok bool) {
	if k.cert == nil {
		return "", "", false
	}
	s1 := sha1.Sum(k.cert.Raw)
	s256 := sha256.Sum256(k.cert.Raw)
	return base64.RawURLEncoding.EncodeToString(s1[:]), base64.RawURLEncoding.EncodeToString(s256[:]), true
}

// KeyInput is the key material of a jwt_bearer credential as stored: exactly one of
// Secret (HMAC), PrivateKey (PEM) or PKCS12 (base64) is set.
type KeyInput struct {
	Alg            string
	Secret         []byte
	SecretEncoding string // "text" (the default) or "base64"
	PrivateKey     []byte
	PKCS12         []byte
	PKCS12Password []byte
}

// ParseKey imports the key of in and checks that it fits in.Alg. Its errors are client
// errors (sesame.CodeInvalidField) that name the field and say what is wrong; they never
// quote key material.
func ParseKey(in KeyInput) (*Key, error) {
	alg, ok := algorithms[in.Alg]
	if !ok {
		return nil, fieldError(FieldAlg, "must be one of %s", strings.Join(Algorithms, ", "))
	}
	if alg.family == familyHMAC {
		secret, err := hmacSecret(in.Secret, in.SecretEncoding, alg)
		if err != nil {
			return nil, err
		}
		return &Key{alg: alg.name, key: secret}, nil
	}
	var (
		key   any
		certs []*x509.Certificate
		field = FieldPrivateKey
	)
	switch {
	case len(in.PrivateKey) > 0 && len(in.PKCS12) > 0:
		return nil, fieldError(FieldPKCS12, "give either %q or %q, not both", FieldPrivateKey, FieldPKCS12)
	case len(in.PrivateKey) > 0:
		var err error
		if key, certs, err = ParsePrivateKey(in.PrivateKey); err != nil {
			return nil, wrapField(FieldPrivateKey, err)
		}
	case len(in.PKCS12) > 0:
		field = FieldPKCS12
		var err error
		if key, certs, err = parsePKCS12(in.PKCS12, in.PKCS12Password); err != nil {
			return nil, err
		}
	default:
		return nil, sesame.Errorf(sesame.CodeMissingField, "field %q (PEM) or %q (base64 PKCS#12) is required for %s", FieldPrivateKey, FieldPKCS12, in.Alg)
	}
	if err := fits(alg, key); err != nil {
		return nil, wrapField(field, err)
	}
	return &Key{alg: alg.name, key: key, cert: matchingCert(key, certs)}, nil
}

type family int

const (
	familyHMAC family = iota
	familyRSA
	familyEC
	familyEdDSA
)

type algorithm struct {
	name   jose.SignatureAlgorithm
	family family
	size   int            // HMAC: minimum secret length in bytes (the hash size)
	curve  elliptic.Curve // EC
}

// Algorithms are the supported JWS algorithms, in the order errors list them.
var Algorithms = []string{
	"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

var algorithms = map[string]algorithm{
	"HS256": {jose.HS256, familyHMAC, 32, nil},
	"HS384": {jose.HS384, familyHMAC, 48, nil},
	"HS512": {jose.HS512, familyHMAC, 64, nil},
	"RS256": {jose.RS256, familyRSA, 0, nil},
	"RS384": {jose.RS384, familyRSA, 0, nil},
	"RS512": {jose.RS512, familyRSA, 0, nil},
	"PS256": {jose.PS256, familyRSA, 0, nil},
	"PS384": {jose.PS384, familyRSA, 0, nil},
	"PS512": {jose.PS512, familyRSA, 0, nil},
	"ES256": {jose.ES256, familyEC, 0, elliptic.P256()},
	"ES384": {jose.ES384, familyEC, 0, elliptic.P384()},
	"ES512": {jose.ES512, familyEC, 0, elliptic.P521()},
	"EdDSA": {jose.EdDSA, familyEdDSA, 0, nil},
}

// keyError is what is wrong with key material, without naming the field (the caller
// knows which field it came from). Its text never holds key material.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

func keyErrorf(format string, args ...any) error {
	return &keyError{msg: fmt.Sprintf(format, args...)}
}

func fieldError(field, format string, args ...any) error {
	return sesame.Errorf(sesame.CodeInvalidField, "field %q %s", field, fmt.Sprintf(format, args...))
}

func wrapField(field string, err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return fieldError(field, "%s", ke.msg)
	}
	return err
}

// hmacSecret decodes an HMAC secret and checks its length against RFC 7518 §3.2: a key of
// at least the hash size.
func hmacSecret(secret []byte, encoding string, alg algorithm) ([]byte, error) {
	if len(secret) == 0 {
		return nil, sesame.Errorf(sesame.CodeMissingField, "field %q is required for %s", FieldSecret, alg.name)
	}
	key := secret
	switch encoding {
	case "", EncodingText:
	case EncodingBase64:
		var ok bool
		if key, ok = decodeBase64(secret); !ok {
			return nil, fieldError(FieldSecret, "is not valid base64 (standard or URL alphabet, padding optional), as %q %q says", FieldSecretEncoding, EncodingBase64)
		}
	default:
		return nil, fieldError(FieldSecretEncoding, "must be %q or %q", EncodingText, EncodingBase64)
	}
	if len(key) < alg.size {
		hint := ""
		if encoding != EncodingBase64 {
			hint = fmt.Sprintf("; if the secret is base64, set %q to %q", FieldSecretEncoding, EncodingBase64)
		}
		return nil, fieldError(FieldSecret, "is %d bytes long; %s needs at least %d (RFC 7518 section 3.2)%s", len(key), alg.name, alg.size, hint)
	}
	return bytes.Clone(key), nil
}

// fits checks that key is the kind of key alg signs with.
func fits(alg algorithm, key any) error {
	switch alg.family {
	case familyRSA:
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return keyErrorf("holds %s; %s needs an RSA key", describe(key), alg.name)
		}
		if bits := k.N.BitLen(); bits < MinRSABits {
			return keyErrorf("holds an RSA key of %d bits; %s needs at least %d", bits, alg.name, MinRSABits)
		} else if bits > MaxRSABits {
			return keyErrorf("holds an RSA key of %d bits; at most %d are supported", bits, MaxRSABits)
		}
	case familyEC:
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return keyErrorf("holds %s; %s needs an EC key on curve %s", describe(key), alg.name, alg.curve.Params().Name)
		}
		if k.Curve != alg.curve {
			return keyErrorf("holds %s; %s needs curve %s", describe(key), alg.name, alg.curve.Params().Name)
		}
	case familyEdDSA:
		if _, ok := key.(ed25519.PrivateKey); !ok {
			return keyErrorf("holds %s; EdDSA needs an Ed25519 key", describe(key))
		}
	}
	return nil
}

func describe(key any) string {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("an RSA key (%d bits)", k.N.BitLen())
	case *ecdsa.PrivateKey:
		return "an EC key on curve " + k.Curve.Params().Name
	case ed25519.PrivateKey:
		return "an Ed25519 key"
	}
	return "a key of an unsupported type"
}

// ParsePrivateKey reads a private key the way users have it: PEM (PKCS#1, PKCS#8 or SEC1,
// with any certificates or EC parameters beside it), repaired when pasted with literal
// "\n" sequences, Windows line endings, surrounding whitespace or quotes, or with the
// BEGIN and END lines run into the body; or the bare base64 of the DER. It returns the key
// and any certificates found. Errors say what is wrong and never hold key material.
func ParsePrivateKey(text []byte) (any, []*x509.Certificate, error) {
	if len(text) > maxKeyText {
		return nil, nil, keyErrorf("is longer than %d bytes", maxKeyText)
	}
	s := repairText(string(text))
	if !strings.Contains(s, beginMarker) {
		der, ok := decodeBase64([]byte(s))
		if !ok || len(der) == 0 {
			return nil, nil, keyErrorf("is not a PEM private key: there is no -----BEGIN line, and it is not the base64 of a DER key either")
		}
		key, err := parseDER("", der)
		if err != nil {
			return nil, nil, keyErrorf("is not a PEM private key: there is no -----BEGIN line, and the base64 does not hold a PKCS#1, PKCS#8 or SEC1 key")
		}
		return key, nil, nil
	}
	blocks, err := pemBlocks(s)
	if err != nil {
		return nil, nil, err
	}
	var (
		key         any
		certs       []*x509.Certificate
		sawPublic   bool
		sawUnknown  bool
		privateSeen int
	)
	for _, b := range blocks {
		switch b.label {
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			privateSeen++
			if privateSeen > 1 {
				return nil, nil, keyErrorf("holds more than one private key; give only the one to sign with")
			}
			k, err := parseDER(b.label, b.der)
			if err != nil {
				return nil, nil, err
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, keyErrorf("holds an encrypted PKCS#8 key; decrypt it first (openssl pkcs8 -topk8 -nocrypt) or give it as %q with %q", FieldPKCS12, FieldPKCS12Password)
		case "OPENSSH PRIVATE KEY":
			return nil, nil, keyErrorf("holds an OpenSSH private key; convert it to PKCS#8 first (ssh-keygen -p -m PKCS8 -f KEYFILE)")
		case "CERTIFICATE":
			if c, err := x509.ParseCertificate(b.der); err == nil {
				certs = append(certs, c)
			}
		case "PUBLIC KEY", "RSA PUBLIC KEY":
			sawPublic = true
		case "EC PARAMETERS":
		default:
			sawUnknown = true
		}
	}
	if key == nil {
		switch {
		case sawPublic:
			return nil, nil, keyErrorf("holds a public key, not the private key")
		case len(certs) > 0:
			return nil, nil, keyErrorf("holds a certificate, not the private key")
		case sawUnknown:
			return nil, nil, keyErrorf("holds no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block")
		}
		return nil, nil, keyErrorf("holds no private key")
	}
	return key, certs, nil
}

const (
	beginMarker = "-----BEGIN "
	endMarker   = "-----END "
	dashes      = "-----"
)

// repairText undoes what web forms, JSON files and shells do to a pasted PEM: literal
// "\n" (and "\r\n", "\r", "\t") escapes, Windows and old-Mac line endings, and surrounding
// whitespace. Quotes and other text around the PEM blocks are skipped later.
func repairText(s string) string {
	if strings.Contains(s, `\`) {
		s = strings.NewReplacer(`\r\n`, "\n", `\n`, "\n", `\r`, "\n", `\t`, " ", `\/`, "/").Replace(s)
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.TrimSpace(s)
}

type pemBlock struct {
	label string
	der   []byte
}

// pemBlocks splits text into PEM blocks. Unlike encoding/pem it finds the BEGIN and END
// lines by their dashes, not by line breaks, so a PEM whose line breaks became spaces or
// vanished still reads; the body between them is base64 with any whitespace.
func pemBlocks(s string) ([]pemBlock, error) {
	var out []pemBlock
	for {
		i := strings.Index(s, beginMarker)
		if i < 0 {
			return out, nil
		}
		s = s[i+len(beginMarker):]
		j := strings.Index(s, dashes)
		if j < 0 {
			return nil, keyErrorf("has a -----BEGIN line that does not end in -----")
		}
		label := normalizeLabel(s[:j])
		if label == "" {
			return nil, keyErrorf("has a -----BEGIN line without a recognisable label")
		}
		s = s[j+len(dashes):]
		k := strings.Index(s, endMarker)
		if k < 0 {
			return nil, keyErrorf("has a -----BEGIN %s----- line without its -----END line; the key may be cut short", label)
		}
		body := s[:k]
		s = s[k+len(endMarker):]
		m := strings.Index(s, dashes)
		if m < 0 || normalizeLabel(s[:m]) != label {
			return nil, keyErrorf("has a -----BEGIN %s----- line whose -----END line does not match", label)
		}
		s = s[m+len(dashes):]
		if strings.Contains(body, "Proc-Type:") || strings.Contains(body, "DEK-Info:") {
			return nil, keyErrorf("holds an encrypted PEM key (Proc-Type: ENCRYPTED); decrypt it first (openssl pkey -in KEY -out PLAIN) or give it as %q with %q", FieldPKCS12, FieldPKCS12Password)
		}
		der, ok := decodeBase64([]byte(body))
		if !ok {
			return nil, keyErrorf("has a %s block whose body is not valid base64", label)
		}
		out = append(out, pemBlock{label: label, der: der})
	}
}

// normalizeLabel returns the PEM label with its spacing normalized, or "" if it is not
// made of capital letters, digits and spaces (so that a message can safely quote it).
func normalizeLabel(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" || len(s) > 40 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return ""
		}
	}
	return s
}

// decodeBase64 decodes standard or URL-alphabet base64, padded or not, ignoring whitespace
// and stray backslashes (the remains of escaped line breaks).
func decodeBase64(b []byte) ([]byte, bool) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r', '\v', '\f', '\\':
			continue
		}
		clean = append(clean, c)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out := make([]byte, enc.DecodedLen(len(clean)))
		n, err := enc.Decode(out, clean)
		if err == nil {
			clear(clean)
			return out[:n], true
		}
		clear(out)
	}
	clear(clean)
	return nil, false
}

// parseDER parses a DER private key, trying the form its PEM label names first and then
// the others (labels are often wrong: "RSA PRIVATE KEY" around a PKCS#8 key).
func parseDER(label string, der []byte) (any, error) {
	parsers := []func([]byte) (any, error){
		func(b []byte) (any, error) { return x509.ParsePKCS8PrivateKey(b) },
		func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) },
		func(b []byte) (any, error) { return x509.ParseECPrivateKey(b) },
	}
	switch label {
	case "RSA PRIVATE KEY":
		parsers[0], parsers[1] = parsers[1], parsers[0]
	case "EC PRIVATE KEY":
		parsers[0], parsers[2] = parsers[2], parsers[0]
	}
	var first error
	for _, p := range parsers {
		key, err := p(der)
		if err == nil {
			return supported(key)
		}
		if first == nil {
			first = err
		}
	}
	// Only the kind of failure is told: x509's own words are not passed on.
	switch msg := first.Error(); {
	case strings.Contains(msg, "elliptic curve"):
		return nil, keyErrorf("holds an EC key on a curve Sesame does not support; ES256, ES384 and ES512 need P-256, P-384 and P-521")
	case strings.Contains(msg, "unknown private key type"), strings.Contains(msg, "unknown algorithm"):
		return nil, keyErrorf("holds a private key of a type Sesame does not support (RSA, EC P-256/P-384/P-521 and Ed25519 are)")
	}
	if label == "" {
		return nil, keyErrorf("is not a PKCS#1, PKCS#8 or SEC1 private key")
	}
	return nil, keyErrorf("has a %s block that is not a valid PKCS#1, PKCS#8 or SEC1 private key", label)
}

// supported narrows a parsed key to the types that sign JWTs.
func supported(key any) (any, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey, ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, keyErrorf("holds an EC key on curve %s; ES256, ES384 and ES512 need P-256, P-384 and P-521", k.Curve.Params().Name)
	}
	return nil, keyErrorf("holds a private key of a type Sesame does not support (RSA, EC P-256/P-384/P-521 and Ed25519 are)")
}

// parsePKCS12 reads a base64 PKCS#12 (PFX) file with its password.
func parsePKCS12(b64, password []byte) (any, []*x509.Certificate, error) {
	der, ok := decodeBase64(b64)
	if !ok || len(der) == 0 {
		return nil, nil, fieldError(FieldPKCS12, "must be the base64 of a PKCS#12 (.p12 or .pfx) file")
	}
	defer clear(der)
	key, cert, chain, err := pkcs12.DecodeChain(der, string(password))
	if err != nil {
		var ni pkcs12.NotImplementedError
		switch {
		case errors.Is(err, pkcs12.ErrIncorrectPassword) && len(password) == 0:
			return nil, nil, sesame.Errorf(sesame.CodeMissingField, "field %q is required: the PKCS#12 file is protected by a password", FieldPKCS12Password)
		case errors.Is(err, pkcs12.ErrIncorrectPassword):
			return nil, nil, fieldError(FieldPKCS12Password, "does not open the PKCS#12 file (wrong password)")
		case errors.As(err, &ni):
			return nil, nil, fieldError(FieldPKCS12, "uses a PKCS#12 feature Sesame does not support; export it again with AES and PBKDF2 (openssl pkcs12 -export)")
		case strings.Contains(err.Error(), "certificate missing"):
			return nil, nil, fieldError(FieldPKCS12, "holds no certificate; a PKCS#12 file needs the certificate beside its key (or give the key as %q)", FieldPrivateKey)
		case strings.Contains(err.Error(), "private key missing"):
			return nil, nil, fieldError(FieldPKCS12, "holds no private key, only certificates")
		}
		return nil, nil, fieldError(FieldPKCS12, "is not a valid PKCS#12 (.p12 or .pfx) file")
	}
	key, err = supported(key)
	if err != nil {
		return nil, nil, wrapField(FieldPKCS12, err)
	}
	return key, append([]*x509.Certificate{cert}, chain...), nil
}

// matchingCert returns the certificate whose public key is key's, if any.
func matchingCert(key any, certs []*x509.Certificate) *x509.Certificate {
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := s.Public().(equaler)
	if !ok {
		return nil
	}
	for _, c := range certs {
		if pub.Equal(c.PublicKey) {
			return c
		}
	}
	return nil
}
