// Package jwtbearer signs the JWTs of jwt_bearer credentials (PRODUCT.md C4): it imports
// keys the way users have them (PEM in PKCS#1, PKCS#8 or SEC1 form, repaired when pasted
// badly; PKCS#12 with a password; HMAC secrets as text or base64), checks that each key
// fits its algorithm, and fills a payload template with iat, nbf, exp, jti and per-call
// variables. Signing is done by go-jose.
//
// It depends only on the root package, so that internal/credential can call Verify when
// a credential is saved; the call-time injector (token reuse, the RFC 7523 exchange) is
// in the jwtinject subpackage.
package jwtbearer

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sesamehq/sesame"
)

// Signer signs JWTs for one jwt_bearer credential. It is safe for concurrent use.
type Signer struct {
	key    *Key
	opts   Options
	signer jose.Signer
}

// New builds the signer of a credential from its public fields and opened secrets.
// workspace and credential are the values of {{workspace}} and {{credential}}. New does
// not keep secrets: it copies what it needs. Errors are client errors naming the field.
func New(public map[string]any, secrets map[string]sesame.Secret, workspace, credential string) (*Signer, error) {
	opts, err := ParseOptions(public)
	if err != nil {
		return nil, err
	}
	enc, _ := public[FieldSecretEncoding].(string)
	key, err := ParseKey(KeyInput{
		Alg:            opts.Alg,
		Secret:         secrets[FieldSecret].Reveal(),
		SecretEncoding: enc,
		PrivateKey:     secrets[FieldPrivateKey].Reveal(),
		PKCS12:         secrets[FieldPKCS12].Reveal(),
		PKCS12Password: secrets[FieldPKCS12Password].Reveal(),
	})
	if err != nil {
		return nil, err
	}
	return NewWithKey(key, opts, workspace, credential)
}

// NewWithKey builds a signer from a parsed key and options.
func NewWithKey(key *Key, opts Options, workspace, credential string) (*Signer, error) {
	x5t, x5tS256, hasCert := key.Thumbprints()
	headers, err := render(opts.Headers, func(name string) (string, bool) {
		switch name {
		case VarWorkspace:
			return workspace, true
		case VarCredential:
			return credential, true
		case VarX5t:
			return x5t, hasCert
		case VarX5tS256:
			return x5tS256, hasCert
		}
		return "", false
	})
	if err != nil {
		return nil, fieldError(FieldHeaders, "uses %s, but the key comes with no certificate that matches it (give a PKCS#12 file, or the certificate beside the PEM key)", err.Error())
	}
	so := (&jose.SignerOptions{}).WithType("JWT")
	for name, v := range headers {
		if v == nil {
			delete(so.ExtraHeaders, jose.HeaderKey(name))
			continue
		}
		so = so.WithHeader(jose.HeaderKey(name), v)
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: key.key}, so)
	if err != nil {
		return nil, fmt.Errorf("jwtbearer: signer for %s: %w", key.alg, err)
	}
	return &Signer{key: key, opts: opts, signer: js}, nil
}

// Options returns the credential's settings.
func (s *Signer) Options() Options { return s.opts }

// Key returns the signing key.
func (s *Signer) Key() *Key { return s.key }

// Sign returns a fresh JWT for one call at time now, and its expiry (zero if the template
// leaves "exp" out). iat, nbf and exp (now + lifetime) and a random jti are filled in
// unless the template fixes them; a template value of null leaves the claim out.
func (s *Signer) Sign(v Vars, now time.Time) (string, time.Time, error) {
	claims, err := render(s.opts.Payload, func(name string) (string, bool) {
		val := v.lookup(name)
		return val, val != ""
	})
	if err != nil {
		return "", time.Time{}, missingVar(err, v.Credential)
	}
	t := now.Unix()
	for name, val := range map[string]any{"iat": t, "nbf": t, "exp": now.Add(s.opts.Lifetime).Unix()} {
		if _, fixed := claims[name]; !fixed {
			claims[name] = val
		}
	}
	if _, fixed := claims["jti"]; !fixed {
		claims["jti"] = newJTI()
	}
	for _, name := range []string{"iat", "nbf", "exp", "jti"} {
		if claims[name] == nil {
			delete(claims, name)
		}
	}
	var payload bytes.Buffer
	enc := json.NewEncoder(&payload)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(claims); err != nil {
		return "", time.Time{}, sesame.Errorf(sesame.CodeInvalidField, "field %q does not encode as JSON", FieldPayload)
	}
	jws, err := s.signer.Sign(bytes.TrimSuffix(payload.Bytes(), []byte("\n")))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jwtbearer: sign %s: %w", s.key.alg, err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jwtbearer: serialize: %w", err)
	}
	var exp time.Time
	switch e := claims["exp"].(type) {
	case int64:
		exp = time.Unix(e, 0)
	case float64:
		exp = time.Unix(int64(e), 0)
	}
	return token, exp, nil
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Verify checks a jwt_bearer credential as it is saved: the templates and settings are
// valid, the key parses and fits the algorithm, and a test token signs and verifies with
// the key's own public half. It is the credential kind's Verify hook; its errors name the
// field and never quote a secret.
func Verify(public map[string]any, secrets map[string]sesame.Secret) error {
	s, err := New(public, secrets, "workspace", "credential")
	if err != nil {
		return err
	}
	token, _, err := s.Sign(Vars{User: "verify-user", Caller: "verify-caller", Workspace: "workspace", Credential: "credential"}, time.Now())
	if err != nil {
		return err
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{s.key.alg})
	if err == nil {
		_, err = jws.Verify(s.key.Public())
	}
	if err != nil {
		field := FieldPrivateKey
		switch {
		case len(secrets[FieldPKCS12].Reveal()) > 0:
			field = FieldPKCS12
		case len(secrets[FieldSecret].Reveal()) > 0:
			field = FieldSecret
		}
		return fieldError(field, "signs a test token that does not verify with the key's own public half; the key is damaged")
	}
	return nil
}
