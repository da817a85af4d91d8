package apps

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sesamehq/sesame"
)

// FuzzParseManifest: any body either parses into a manifest whose fields are valid, or
// gives one of the manifest codes. It never panics.
func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		`{"appId":"com.example.app","displayName":"Example","version":"1.0"}`,
		`{"appId":"com.acme.app","displayName":"x","version":"1","signature":"eyJ2IjoxfQ==","extra":[1,{"a":null}]}`,
		`{"appId":"com.example.app","displayName":"x","version":"1","appId":"com.acme.app"}`,
		`{"appId":null}`, `[]`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			switch sesame.ErrorCode(err) {
			case sesame.CodeBadRequest, sesame.CodeManifestInvalid, sesame.CodeAppPayloadTooLarge:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !ValidAppID(m.AppID) || m.DisplayName == "" || m.Version == "" || !utf8.ValidString(m.DisplayName) || len(m.Signature) > maxSignatureLen {
			t.Fatalf("accepted an invalid manifest %+v", m)
		}
		// A signature property, whatever it holds, is refused or verified, never a panic.
		if m.Signature != "" {
			if sm, err := parseSignature(m.Signature); err == nil {
				_ = verifyManifest(make(ed25519.PublicKey, 32), m, sm, time.Now())
			}
		}
	})
}

var fuzzTokenKey = ed25519.NewKeyFromSeed(make([]byte, 32))

// FuzzParseToken: the one token signed here (Ed25519 is deterministic, so it is the same
// on every run) verifies; any other string, however close, is refused without a panic.
func FuzzParseToken(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	valid, err := mintToken(fuzzTokenKey, sesame.AppToken{ID: "tok_0123456789abcdef0123456789abcdef0123", AppID: "com.example.app", Version: "1",
		Mode: sesame.AppModeTrial, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{valid, valid + ".e30", "v4.public.", "v4.public.AAAA", "v4.local." + valid[10:], "Bearer " + valid, strings.ToUpper(valid)} {
		f.Add(s)
	}
	pub := fuzzTokenKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseToken(pub, s)
		if err != nil {
			return
		}
		if s != valid {
			t.Fatalf("a token other than the one signed verified: %q", s)
		}
		if v.appID != "com.example.app" {
			t.Fatalf("claims %+v", v)
		}
	})
}
