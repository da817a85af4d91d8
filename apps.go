package sesame

import (
	"strings"
	"time"
)

// App token modes (PRODUCT.md C7): a trial app (com.example.*) needs no signature; any
// other app presents a manifest signed under a developer certificate.
const (
	AppModeTrial  = "trial"
	AppModeSigned = "signed"
)

// AppCert is a developer certificate as storage holds it. Body is the certificate document
// exactly as issued (signed by the trust root); the other fields are copies for queries.
type AppCert struct {
	ID        string
	DevPubkey string // base64 of the developer's Ed25519 public key
	Domains   []string
	IssuedAt  time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
	Body      []byte
}

// AppToken is an issued app token as storage holds it: its claims, never the token itself
// (a token is a bearer credential, and its signature is what the server verifies).
type AppToken struct {
	ID        string     `json:"id"`
	AppID     string     `json:"app_id"`
	Version   string     `json:"version"`
	Mode      string     `json:"mode"`
	CertID    string     `json:"cert_id,omitempty"`
	Source    string     `json:"source,omitempty"` // the address that asked for it
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// AppTokenRevocation is one revoked, unexpired token. Seq orders revocations: every
// revocation commits with a sequence number greater than any committed before it, so a
// reader that has seen every revocation up to Seq n needs only those after n.
type AppTokenRevocation struct {
	Seq       int64
	TokenID   string
	ExpiresAt time.Time
}

// TrialAppDomain is the app-ID domain of trial apps, which need no signature.
const TrialAppDomain = "com.example"

// IsTrialAppID reports whether id is under com.example, the trial domain.
func IsTrialAppID(id string) bool {
	return len(id) > len(TrialAppDomain)+1 && strings.HasPrefix(id, TrialAppDomain+".")
}

// AppPatternMatches reports whether pattern, the app of a grant or an entry of a function's
// allowedApps (an app ID, or a prefix ending in "*" such as "com.acme.*"), covers appID.
//
// Anybody can claim an app ID under com.example (trial apps need no signature), so a
// pattern reaches one only when it names com.example itself: "com.example.*" does,
// "com.*" and "*", meant for signed apps, do not.
func AppPatternMatches(pattern, appID string) bool {
	prefix, ok := strings.CutSuffix(pattern, "*")
	if !ok {
		return pattern == appID
	}
	if !strings.HasPrefix(appID, prefix) || len(appID) <= len(prefix) {
		return false
	}
	return !IsTrialAppID(appID) || strings.HasPrefix(prefix+".", TrialAppDomain+".")
}

// AppRevocation revokes every token of an app issued before Before. Seq orders it among
// all revocations (see AppTokenRevocation).
type AppRevocation struct {
	Seq    int64
	AppID  string
	Before time.Time
}
