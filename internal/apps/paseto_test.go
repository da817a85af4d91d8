package apps

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type pasetoVector struct {
	Name       string  `json:"name"`
	ExpectFail bool    `json:"expect-fail"`
	PublicKey  string  `json:"public-key"`
	SecretKey  string  `json:"secret-key"`
	Seed       string  `json:"secret-key-seed"`
	Token      string  `json:"token"`
	Payload    *string `json:"payload"`
	Footer     string  `json:"footer"`
	Implicit   string  `json:"implicit-assertion"`
}

func loadVectors(t *testing.T) []pasetoVector {
	t.Helper()
	b, err := os.ReadFile("testdata/paseto-v4-public.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []pasetoVector `json:"tests"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tests) != 7 {
		t.Fatalf("%d vectors, want 7", len(doc.Tests))
	}
	return doc.Tests
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The official v4.public vectors: each token verifies with the public key to its payload
// and footer, and signing the payload reproduces the token byte for byte (Ed25519 is
// deterministic). Every expect-fail vector is refused.
func TestPASETOv4PublicOfficialVectors(t *testing.T) {
	vectors := loadVectors(t)
	var pub ed25519.PublicKey
	for _, v := range vectors {
		if v.PublicKey != "" {
			pub = mustHex(t, v.PublicKey)
			break
		}
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			if v.ExpectFail {
				if _, _, err := verifyV4Public(pub, v.Token, []byte(v.Implicit)); err == nil {
					t.Fatal("an expect-fail vector verified")
				}
				return
			}
			seed := mustHex(t, v.Seed)
			sk := ed25519.NewKeyFromSeed(seed)
			if !bytes.Equal(sk, mustHex(t, v.SecretKey)) || !bytes.Equal(sk.Public().(ed25519.PublicKey), mustHex(t, v.PublicKey)) {
				t.Fatal("the vector's keys do not match its seed")
			}
			msg, footer, err := verifyV4Public(mustHex(t, v.PublicKey), v.Token, []byte(v.Implicit))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if string(msg) != *v.Payload || string(footer) != v.Footer {
				t.Fatalf("got payload %q footer %q", msg, footer)
			}
			if got := signV4Public(sk, []byte(*v.Payload), []byte(v.Footer), []byte(v.Implicit)); got != v.Token {
				t.Fatalf("sign:\n got %s\nwant %s", got, v.Token)
			}
			// The implicit assertion is bound: another one fails.
			if _, _, err := verifyV4Public(pub, v.Token, []byte("other")); err == nil {
				t.Fatal("verified under another implicit assertion")
			}
		})
	}
}

// The examples of PAE in the PASETO specification.
func TestPAESpecificationExamples(t *testing.T) {
	cases := []struct {
		in   [][]byte
		want string
	}{
		{nil, "\x00\x00\x00\x00\x00\x00\x00\x00"},
		{[][]byte{{}}, "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{[][]byte{{}, {}}, "\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{[][]byte{[]byte("Paragon")}, "\x01\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00Paragon"},
		{[][]byte{[]byte("Paragon"), []byte("Initiative")}, "\x02\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00Paragon\x0a\x00\x00\x00\x00\x00\x00\x00Initiative"},
	}
	for _, c := range cases {
		if got := string(pae(c.in...)); got != c.want {
			t.Errorf("pae(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Anything but one exact text form of a token signed by the key is refused.
func TestPASETOv4PublicRefusesMalformedTokens(t *testing.T) {
	_, sk, _ := ed25519.GenerateKey(nil)
	pub := sk.Public().(ed25519.PublicKey)
	good := signV4Public(sk, []byte(`{"a":1}`), nil, nil)
	if _, _, err := verifyV4Public(pub, good, nil); err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	body := strings.TrimPrefix(good, v4PublicHeader)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	bad := map[string]string{
		"empty":                 "",
		"header only":           v4PublicHeader,
		"v4.local":              "v4.local." + body,
		"v3.public":             "v3.public." + body,
		"uppercase header":      "V4.PUBLIC." + body,
		"no header":             body,
		"newline inside":        v4PublicHeader + body[:10] + "\n" + body[10:],
		"CR inside":             v4PublicHeader + body[:10] + "\r" + body[10:],
		"padding":               good + "==",
		"standard alphabet":     v4PublicHeader + strings.NewReplacer("-", "+", "_", "/").Replace(body) + "+",
		"empty footer":          good + ".",
		"too short":             v4PublicHeader + b64.EncodeToString(make([]byte, 63)),
		"tampered message":      flip(good, len(v4PublicHeader)+2),
		"tampered signature":    flip(good, len(good)-5),
		"extra segment":         good + ".e30.e30",
		"trailing space":        good + " ",
		"signed by another key": signV4Public(func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(nil); return k }(), []byte(`{"a":1}`), nil, nil),
	}
	for name, tok := range bad {
		if _, _, err := verifyV4Public(pub, tok, nil); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, _, err := verifyV4Public(otherPub, good, nil); err == nil {
		t.Error("verified under another public key")
	}
	// Non-canonical trailing bits: the last character of a 2-byte remainder carries 2
	// unused bits; setting them must not give a second valid form.
	raw, _ := b64.DecodeString(body)
	if len(raw)%3 != 0 {
		last := body[len(body)-1]
		alt := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last) + 1
		tok := v4PublicHeader + body[:len(body)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[alt%64])
		if _, _, err := verifyV4Public(pub, tok, nil); err == nil {
			t.Error("a second text form of the same token verified")
		}
	}
}
