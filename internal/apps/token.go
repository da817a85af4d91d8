package apps

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

// An app token is a PASETO v4.public token (see paseto.go) signed by the server's token
// key, with no footer and the implicit assertion tokenAssertion, whose message is
//
//	{"iss":"sesame","sub":"<app ID>","ver":"<app version>","mode":"trial|signed",
//	 "cert":"<certificate ID, signed mode>","iat":"<RFC 3339>","exp":"<RFC 3339>","jti":"<token ID>"}

const (
	tokenIssuer   = "sesame"
	tokenIDPrefix = "tok_"
	// MaxTokenLen bounds what VerifyToken looks at; issued tokens are far shorter.
	MaxTokenLen = 4096
)

var tokenAssertion = []byte("sesame app token v1")

type tokenClaims struct {
	Issuer   string `json:"iss"`
	AppID    string `json:"sub"`
	Version  string `json:"ver"`
	Mode     string `json:"mode"`
	CertID   string `json:"cert,omitempty"`
	IssuedAt string `json:"iat"`
	Expires  string `json:"exp"`
	TokenID  string `json:"jti"`
}

// verifiedToken is what a token says once its signature checked out.
type verifiedToken struct {
	appID, version, mode, tokenID string
	issued, expires               time.Time
}

// newID returns prefix + 16 hex digits of the time (so IDs sort by creation) + 20 hex
// digits of randomness.
func newID(prefix string, now time.Time) string {
	var b [18]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:]) // crypto/rand.Read does not fail on supported platforms
	return prefix + hex.EncodeToString(b[:])
}

// validID reports whether s looks like an ID newID made with prefix.
func validID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidTokenID reports whether s is a well-formed token ID.
func ValidTokenID(s string) bool { return validID(s, tokenIDPrefix) }

// ValidCertID reports whether s is a well-formed certificate ID.
func ValidCertID(s string) bool { return validID(s, certIDPrefix) }

// mintToken signs a token for t.
func mintToken(key ed25519.PrivateKey, t sesame.AppToken) (string, error) {
	msg, err := json.Marshal(tokenClaims{
		Issuer:   tokenIssuer,
		AppID:    t.AppID,
		Version:  t.Version,
		Mode:     t.Mode,
		CertID:   t.CertID,
		IssuedAt: t.IssuedAt.UTC().Format(time.RFC3339Nano),
		Expires:  t.ExpiresAt.UTC().Format(time.RFC3339Nano),
		TokenID:  t.ID,
	})
	if err != nil {
		return "", err
	}
	return signV4Public(key, msg, nil, tokenAssertion), nil
}

var errBadClaims = errors.New("token claims are malformed")

// parseToken verifies a token's signature under key and decodes its claims. It does not
// look at expiry or revocation.
func parseToken(key ed25519.PublicKey, token string) (verifiedToken, error) {
	var v verifiedToken
	if len(token) > MaxTokenLen {
		return v, errMalformed
	}
	msg, footer, err := verifyV4Public(key, token, tokenAssertion)
	if err != nil {
		return v, err
	}
	if footer != nil {
		return v, errBadClaims // this server never writes a footer
	}
	var c tokenClaims
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || trailing(msg, dec.InputOffset()) {
		return v, errBadClaims
	}
	exp, err := time.Parse(time.RFC3339Nano, c.Expires)
	if err != nil {
		return v, errBadClaims
	}
	iat, err := time.Parse(time.RFC3339Nano, c.IssuedAt)
	if err != nil {
		return v, errBadClaims
	}
	if c.Issuer != tokenIssuer || !ValidAppID(c.AppID) || c.Version == "" || !ValidTokenID(c.TokenID) ||
		(c.Mode != sesame.AppModeTrial && c.Mode != sesame.AppModeSigned) {
		return v, errBadClaims
	}
	return verifiedToken{appID: c.AppID, version: c.Version, mode: c.Mode, tokenID: c.TokenID, issued: iat, expires: exp}, nil
}

// BearerToken takes the token out of an Authorization header value, with the Actyx error
// codes: ERR_MISSING_AUTH_HEADER when there is none, ERR_UNSUPPORTED_AUTH_TYPE for a scheme
// other than Bearer, ERR_TOKEN_INVALID for "Bearer" with nothing after it. The middleware
// can use it where a request must carry an app token.
func BearerToken(header string) (string, error) {
	h := strings.TrimSpace(header)
	if h == "" {
		return "", sesame.Errorf(sesame.CodeMissingAuthHeader, `"Authorization" header is missing.`)
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// The scheme is not echoed: without a space the "scheme" is the credential itself.
		return "", sesame.Errorf(sesame.CodeUnsupportedAuthType, `Unsupported authentication type. Only "Bearer" is supported.`)
	}
	token := strings.TrimSpace(rest)
	if token == "" {
		return "", errTokenInvalid
	}
	return token, nil
}

// The errors VerifyToken returns. None names the token.
var (
	errTokenInvalid      = &sesame.Error{Code: sesame.CodeTokenInvalid, Message: "Invalid token. Please provide a valid bearer token issued by POST /api/v2/auth."}
	errTokenExpired      = &sesame.Error{Code: sesame.CodeTokenExpired, Message: "Expired token. Request a new one from POST /api/v2/auth."}
	errTokenUnauthorized = &sesame.Error{Code: sesame.CodeTokenUnauthorized, Message: "Unauthorized token: it was revoked."}
)
