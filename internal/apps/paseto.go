package apps

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// PASETO v4.public (https://github.com/paseto-standard/paseto-spec, Version4.md), written
// against the standard library: Ed25519 over the pre-authentication encoding (PAE) of the
// header, the message, the footer and an implicit assertion. The version and purpose are
// fixed by the code, never read from the token: a token that does not start with exactly
// "v4.public." is refused before anything else is looked at.

const v4PublicHeader = "v4.public."

// b64 is unpadded base64url that also refuses non-zero trailing bits, so that one token
// has exactly one text form.
var b64 = base64.RawURLEncoding.Strict()

// errMalformed and errBadSignature are what verifyV4Public returns; callers map them to
// client errors.
var (
	errMalformed    = errors.New("paseto: malformed v4.public token")
	errBadSignature = errors.New("paseto: signature does not verify")
)

// pae is PASETO's pre-authentication encoding: the number of pieces, then each piece
// prefixed by its length, all as little-endian 64-bit integers with the top bit clear.
func pae(pieces ...[]byte) []byte {
	n := 8
	for _, p := range pieces {
		n += 8 + len(p)
	}
	out := make([]byte, 0, n)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(pieces))&^(1<<63))
	for _, p := range pieces {
		out = binary.LittleEndian.AppendUint64(out, uint64(len(p))&^(1<<63))
		out = append(out, p...)
	}
	return out
}

// signV4Public returns the v4.public token carrying message, signed with key.
func signV4Public(key ed25519.PrivateKey, message, footer, implicit []byte) string {
	sig := ed25519.Sign(key, pae([]byte(v4PublicHeader), message, footer, implicit))
	body := make([]byte, 0, len(message)+ed25519.SignatureSize)
	body = append(append(body, message...), sig...)
	var sb strings.Builder
	sb.Grow(len(v4PublicHeader) + b64.EncodedLen(len(body)) + 1 + b64.EncodedLen(len(footer)))
	sb.WriteString(v4PublicHeader)
	sb.WriteString(b64.EncodeToString(body))
	if len(footer) > 0 {
		sb.WriteByte('.')
		sb.WriteString(b64.EncodeToString(footer))
	}
	return sb.String()
}

// verifyV4Public checks token's signature under key and returns its message and footer.
func verifyV4Public(key ed25519.PublicKey, token string, implicit []byte) (message, footer []byte, err error) {
	rest, ok := strings.CutPrefix(token, v4PublicHeader)
	if !ok {
		return nil, nil, errMalformed
	}
	body, foot, hasFooter := strings.Cut(rest, ".")
	if !base64URL(body) || (hasFooter && (foot == "" || !base64URL(foot))) {
		return nil, nil, errMalformed
	}
	raw, err := b64.DecodeString(body)
	if err != nil || len(raw) < ed25519.SignatureSize {
		return nil, nil, errMalformed
	}
	if hasFooter {
		if footer, err = b64.DecodeString(foot); err != nil {
			return nil, nil, errMalformed
		}
	}
	message, sig := raw[:len(raw)-ed25519.SignatureSize], raw[len(raw)-ed25519.SignatureSize:]
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, pae([]byte(v4PublicHeader), message, footer, implicit), sig) {
		return nil, nil, errBadSignature
	}
	return message, footer, nil
}

// base64URL reports whether s is non-empty and only base64url characters. The decoder
// alone would skip CR and LF.
func base64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
