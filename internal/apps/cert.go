package apps

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sesamehq/sesame"
)

// A developer certificate is a JSON document the server issues and the developer keeps
// next to their private key:
//
//	{"v":1,"id":"cert_…","devPubkey":"<base64>","domains":["com.acme.*"],
//	 "issued":"2026-01-02T03:04:05Z","expires":"…","root":"<base64>","signature":"<base64>"}
//
// The trust root signs the PAE encoding (see pae) of a fixed label and every field in a
// fixed order, so the signature does not depend on JSON key order or spacing. Each field
// has one accepted text form (canonical base64, UTC times in whole seconds), and unknown
// fields are refused, so nothing in a certificate is unsigned.
//
// A manifest signature is the standard base64 of the JSON document
//
//	{"v":1,"cert":{…the certificate…},"sig":"<base64 Ed25519 signature by the developer key>"}
//
// where the developer key signs the PAE encoding of a label, the app ID, the display name
// and the version: changing any of them breaks it.

const (
	certFormat        = 1
	signatureFormat   = 1
	maxDomains        = 100
	certLabel         = "sesame developer certificate v1"
	manifestSigLabel  = "sesame app manifest signature v1"
	certTimeLayout    = "2006-01-02T15:04:05Z"
	certIDPrefix      = "cert_"
	maxCertificateLen = 10 << 10
)

var std64 = base64.StdEncoding.Strict()

// Certificate is a developer certificate document.
type Certificate struct {
	Format    int      `json:"v"`
	ID        string   `json:"id"`
	DevPubkey string   `json:"devPubkey"`
	Domains   []string `json:"domains"`
	Issued    string   `json:"issued"`
	Expires   string   `json:"expires,omitempty"`
	Root      string   `json:"root"`
	Signature string   `json:"signature"`
}

// certFacts are a certificate's fields decoded.
type certFacts struct {
	devKey  ed25519.PublicKey
	root    ed25519.PublicKey
	issued  time.Time
	expires time.Time // zero: no expiry
	sig     []byte
}

func (c *Certificate) signingBytes() []byte {
	domains := make([][]byte, len(c.Domains))
	for i, d := range c.Domains {
		domains[i] = []byte(d)
	}
	return pae([]byte(certLabel), []byte(strconv.Itoa(c.Format)), []byte(c.ID), []byte(c.DevPubkey),
		pae(domains...), []byte(c.Issued), []byte(c.Expires), []byte(c.Root))
}

// EncodePublicKey is the text form of an Ed25519 public key: standard base64.
func EncodePublicKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// ParsePublicKey reads the text form of an Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := std64.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize || std64.EncodeToString(b) != s {
		return nil, errors.New("not the base64 of a 32-byte Ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}

func parseCertTime(s string) (time.Time, bool) {
	t, err := time.Parse(certTimeLayout, s)
	return t, err == nil && t.Format(certTimeLayout) == s
}

// ParseCertificate decodes a certificate document and checks that every field is well
// formed. It does not check the signature.
func ParseCertificate(b []byte) (Certificate, error) {
	var c Certificate
	if _, err := parseCertificate(b, &c); err != nil {
		return c, err
	}
	return c, nil
}

func parseCertificate(b []byte, c *Certificate) (certFacts, error) {
	var f certFacts
	if len(b) > maxCertificateLen {
		return f, fmt.Errorf("certificate is larger than %d bytes", maxCertificateLen)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil || trailing(b, dec.InputOffset()) {
		return f, errors.New("certificate is not a certificate document")
	}
	if c.Format != certFormat {
		return f, fmt.Errorf("certificate format %d is not supported", c.Format)
	}
	if !validID(c.ID, certIDPrefix) {
		return f, errors.New("certificate id is malformed")
	}
	var err error
	if f.devKey, err = ParsePublicKey(c.DevPubkey); err != nil {
		return f, fmt.Errorf("certificate devPubkey: %v", err)
	}
	if f.root, err = ParsePublicKey(c.Root); err != nil {
		return f, fmt.Errorf("certificate root: %v", err)
	}
	if err := checkDomains(c.Domains); err != nil {
		return f, err
	}
	var ok bool
	if f.issued, ok = parseCertTime(c.Issued); !ok {
		return f, errors.New("certificate issued is not a UTC time like 2026-01-02T03:04:05Z")
	}
	if c.Expires != "" {
		if f.expires, ok = parseCertTime(c.Expires); !ok {
			return f, errors.New("certificate expires is not a UTC time like 2026-01-02T03:04:05Z")
		}
	}
	if f.sig, err = std64.DecodeString(c.Signature); err != nil || len(f.sig) != ed25519.SignatureSize {
		return f, errors.New("certificate signature is malformed")
	}
	return f, nil
}

func checkDomains(ds []string) error {
	if len(ds) == 0 || len(ds) > maxDomains {
		return fmt.Errorf("certificate must list 1 to %d domains", maxDomains)
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if !ValidDomain(d) {
			return fmt.Errorf("domain %q is not an app ID (com.acme.app) or an app ID followed by .* (com.acme.*)", truncate(d, 80))
		}
		if seen[d] {
			return fmt.Errorf("domain %q is listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

// covers reports whether the certificate's domains cover app ID id.
func (c *Certificate) covers(id string) bool {
	for _, d := range c.Domains {
		if DomainCovers(d, id) {
			return true
		}
	}
	return false
}

// signCertificate fills in c's root and signature.
func signCertificate(root ed25519.PrivateKey, c *Certificate) {
	c.Root = EncodePublicKey(root.Public().(ed25519.PublicKey))
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(root, c.signingBytes()))
}

// verifyCertificate checks that c, with decoded fields f, is signed by root and valid at now.
func verifyCertificate(root ed25519.PublicKey, c *Certificate, f certFacts, now time.Time) error {
	if !ed25519.Verify(root, c.signingBytes(), f.sig) {
		if subtle.ConstantTimeCompare(f.root, root) != 1 {
			return fmt.Errorf("certificate %s was issued by another server's trust root (%s), not by this server's (%s)", c.ID, c.Root, EncodePublicKey(root))
		}
		return fmt.Errorf("certificate %s is not validly signed by this server's trust root", c.ID)
	}
	if !f.expires.IsZero() && !now.Before(f.expires) {
		return fmt.Errorf("certificate %s expired at %s", c.ID, c.Expires)
	}
	return nil
}

// --- manifest signatures ---

type manifestSignature struct {
	Format int             `json:"v"`
	Cert   json.RawMessage `json:"cert"`
	Sig    string          `json:"sig"`
}

func manifestSigningBytes(appID, displayName, version string) []byte {
	return pae([]byte(manifestSigLabel), []byte(appID), []byte(displayName), []byte(version))
}

// SignManifest returns the signature property for a manifest: appID, displayName and
// version signed with the developer key, carrying the certificate. It refuses a key that
// is not the certificate's and an app ID the certificate does not cover.
func SignManifest(m Manifest, certJSON []byte, key ed25519.PrivateKey) (string, error) {
	var c Certificate
	f, err := parseCertificate(certJSON, &c)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare(key.Public().(ed25519.PublicKey), f.devKey) != 1 {
		return "", errors.New("the key is not the one the certificate was issued for (its public key differs from devPubkey)")
	}
	if !c.covers(m.AppID) {
		return "", fmt.Errorf("the certificate's domains %q do not cover app ID %q", c.Domains, m.AppID)
	}
	compact, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sig := ed25519.Sign(key, manifestSigningBytes(m.AppID, m.DisplayName, m.Version))
	doc, err := json.Marshal(manifestSignature{Format: signatureFormat, Cert: compact, Sig: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(doc), nil
}

// signedManifest is a manifest signature taken apart.
type signedManifest struct {
	cert  Certificate
	facts certFacts
	sig   []byte
}

// parseSignature decodes a signature property. Errors are ERR_MANIFEST_INVALID.
func parseSignature(s string) (signedManifest, error) {
	var sm signedManifest
	doc, err := std64.DecodeString(s)
	if err != nil {
		return sm, invalidManifest("signature is not base64")
	}
	var ms manifestSignature
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ms); err != nil || trailing(doc, dec.InputOffset()) {
		return sm, invalidManifest("signature is not a Sesame manifest signature (make one with sesame app sign)")
	}
	if ms.Format != signatureFormat {
		return sm, invalidManifest("signature format %d is not supported", ms.Format)
	}
	if sm.facts, err = parseCertificate(ms.Cert, &sm.cert); err != nil {
		return sm, invalidManifest("signature: %v", err)
	}
	if sm.sig, err = std64.DecodeString(ms.Sig); err != nil || len(sm.sig) != ed25519.SignatureSize {
		return sm, invalidManifest("signature: sig is not a base64 Ed25519 signature")
	}
	return sm, nil
}

// verifyManifest checks a signed manifest against this server's trust root at now: the
// certificate is signed by root and unexpired, covers the app ID, and the developer
// signature covers the app ID, display name and version. Errors are ERR_APP_UNAUTHORIZED.
// It returns the certificate, whose revocation the caller checks.
func verifyManifest(root ed25519.PublicKey, m Manifest, sm signedManifest, now time.Time) error {
	if err := verifyCertificate(root, &sm.cert, sm.facts, now); err != nil {
		return appUnauthorized(m.AppID, err.Error())
	}
	if !sm.cert.covers(m.AppID) {
		return appUnauthorized(m.AppID, fmt.Sprintf("certificate %s covers %q, not this app ID", sm.cert.ID, sm.cert.Domains))
	}
	if !ed25519.Verify(sm.facts.devKey, manifestSigningBytes(m.AppID, m.DisplayName, m.Version), sm.sig) {
		return appUnauthorized(m.AppID, "the signature does not match the manifest's appId, displayName and version")
	}
	return nil
}

func appUnauthorized(appID, why string) error {
	return sesame.Errorf(sesame.CodeAppUnauthorized, "'%s' is not authorized: %s.", appID, why)
}
