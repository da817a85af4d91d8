package apps

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sesamehq/sesame"
)

// Limits on what an app sends. The manifest limit leaves room for a signature carrying a
// certificate with many domains.
const (
	MaxManifestSize    = 16 << 10
	maxAppIDLen        = 253 // a DNS name
	maxDisplayNameLen  = 256
	maxVersionLen      = 128
	maxSignatureLen    = 12 << 10
	trialDomainPattern = "com.example.*"
)

// Manifest is an app manifest in the Actyx Auth API's shape. Properties beyond these are
// allowed and ignored.
type Manifest struct {
	AppID       string
	DisplayName string
	Version     string
	Signature   string // empty when unsigned
}

// ParseManifest reads and checks a manifest. A body that is not a JSON object is
// ERR_BAD_REQUEST; an object with a missing or malformed field is ERR_MANIFEST_INVALID.
// It does not check the signature.
func ParseManifest(b []byte) (Manifest, error) {
	if len(b) > MaxManifestSize {
		return Manifest{}, sesame.Errorf(sesame.CodeAppPayloadTooLarge, "the manifest is larger than %d bytes", MaxManifestSize)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || raw == nil || dec.More() || trailing(b, dec.InputOffset()) {
		return Manifest{}, sesame.Errorf(sesame.CodeBadRequest, "Invalid request. The body must be a JSON object: the app manifest")
	}
	var m Manifest
	var err error
	if m.AppID, err = stringField(raw, "appId", true); err != nil {
		return m, err
	}
	if m.DisplayName, err = stringField(raw, "displayName", true); err != nil {
		return m, err
	}
	if m.Version, err = stringField(raw, "version", true); err != nil {
		return m, err
	}
	if m.Signature, err = stringField(raw, "signature", false); err != nil {
		return m, err
	}
	if err := CheckAppID(m.AppID); err != nil {
		return m, err
	}
	if err := checkText("displayName", m.DisplayName, maxDisplayNameLen); err != nil {
		return m, err
	}
	if err := checkText("version", m.Version, maxVersionLen); err != nil {
		return m, err
	}
	if len(m.Signature) > maxSignatureLen {
		return m, invalidManifest("signature is longer than %d bytes", maxSignatureLen)
	}
	return m, nil
}

func trailing(b []byte, off int64) bool {
	return len(bytes.TrimLeft(b[off:], " \t\r\n")) != 0
}

func invalidManifest(format string, args ...any) error {
	return sesame.Errorf(sesame.CodeManifestInvalid, "Invalid manifest. "+format, args...)
}

// stringField returns the string property name; a property of another JSON type is
// refused, and so is a required one that is missing or empty. A JSON null counts as missing.
func stringField(raw map[string]json.RawMessage, name string, required bool) (string, error) {
	v, ok := raw[name]
	if !ok || string(v) == "null" {
		if required {
			return "", invalidManifest("property %q is required", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", invalidManifest("property %q must be a string", name)
	}
	if required && s == "" {
		return "", invalidManifest("property %q must not be empty", name)
	}
	return s, nil
}

// checkText accepts non-empty UTF-8 text without control characters, up to max bytes.
func checkText(name, s string, max int) error {
	if len(s) > max {
		return invalidManifest("%s is longer than %d bytes", name, max)
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalidManifest("%s must be text without control characters", name)
	}
	return nil
}

// CheckAppID accepts a lowercase reverse-domain name whose labels are valid DNS labels:
// at least two labels, each 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'.
func CheckAppID(id string) error {
	if !ValidAppID(id) {
		return invalidManifest("appId %q is not a lowercase reverse-domain name such as com.example.app (labels of a-z, 0-9 and '-', at most 63 characters each)", truncate(id, 80))
	}
	return nil
}

// ValidAppID reports whether id is a valid app ID (see CheckAppID).
func ValidAppID(id string) bool {
	if len(id) > maxAppIDLen {
		return false
	}
	labels := 0
	for id != "" {
		label, rest, more := strings.Cut(id, ".")
		if !validLabel(label) || (more && rest == "") {
			return false
		}
		labels++
		id = rest
	}
	return labels >= 2
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidDomain reports whether d is a certificate domain: an app ID ("com.acme.app", that
// app only) or an app ID followed by ".*" ("com.acme.*", every app below it).
func ValidDomain(d string) bool {
	if prefix, ok := strings.CutSuffix(d, ".*"); ok {
		return ValidAppID(prefix)
	}
	return ValidAppID(d)
}

// DomainCovers reports whether domain d covers app ID id.
func DomainCovers(d, id string) bool {
	if prefix, ok := strings.CutSuffix(d, "*"); ok {
		return strings.HasPrefix(id, prefix) && len(id) > len(prefix)
	}
	return d == id
}

// IsTrialAppID reports whether id is under com.example.*, the trial domain.
func IsTrialAppID(id string) bool { return DomainCovers(trialDomainPattern, id) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
