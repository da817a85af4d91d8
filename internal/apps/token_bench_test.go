package apps

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
)

// BenchmarkMintToken is the token format alone: claims to JSON, PASETO v4.public
// (Ed25519 over PAE), base64url.
func BenchmarkMintToken(b *testing.B) {
	now := time.Now()
	t := sesame.AppToken{ID: newID(tokenIDPrefix, now), AppID: "com.example.bench", Version: "1.0", Mode: sesame.AppModeTrial, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mintToken(fuzzTokenKey, t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseToken is the full check of a token never seen before: strict decoding,
// Ed25519 verification, claims.
func BenchmarkParseToken(b *testing.B) {
	now := time.Now()
	tok, _ := mintToken(fuzzTokenKey, sesame.AppToken{ID: newID(tokenIDPrefix, now), AppID: "com.example.bench", Version: "1.0", Mode: sesame.AppModeTrial, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	pub := fuzzTokenKey.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseToken(pub, tok); err != nil {
			b.Fatal(err)
		}
	}
}
