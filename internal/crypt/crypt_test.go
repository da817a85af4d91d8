package crypt_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
)

// Blob layout, version 1 (see the package comment).
const (
	idStart     = 1
	idEnd       = 5
	headerSize  = 77 // version, key ID, wrap nonce, wrapped DEK + tag, data nonce
	minBlobSize = headerSize + 16
)

// testKey returns a master key with fixed bytes derived from seed, and those bytes.
func testKey(t testing.TB, seed byte) (*crypt.MasterKey, []byte) {
	t.Helper()
	raw := make([]byte, crypt.KeySize)
	for i := range raw {
		raw[i] = seed + byte(i)*7
	}
	k, err := crypt.NewMasterKey(bytes.Clone(raw))
	if err != nil {
		t.Fatal(err)
	}
	return k, raw
}

func seal(t testing.TB, kr *crypt.Keyring, plaintext string, identity ...string) []byte {
	t.Helper()
	blob, err := kr.Seal([]byte(plaintext), identity...)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return blob
}

func openOK(t testing.TB, kr *crypt.Keyring, blob []byte, want string, identity ...string) {
	t.Helper()
	got, err := kr.Open(blob, identity...)
	if err != nil {
		t.Fatalf("Open(%q): %v", identity, err)
	}
	if string(got) != want {
		t.Fatalf("Open(%q) = %q, want %q", identity, got, want)
	}
}

func openFails(t testing.TB, kr *crypt.Keyring, blob []byte, want error, identity ...string) {
	t.Helper()
	got, err := kr.Open(blob, identity...)
	if !errors.Is(err, want) {
		t.Fatalf("Open(%q) = %q, %v; want error %v", identity, got, err, want)
	}
	if got != nil {
		t.Fatalf("Open(%q) returned plaintext %q with its error", identity, got)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	for _, tc := range []struct {
		name      string
		plaintext string
		identity  []string
	}{
		{"empty", "", []string{"ws", "cred", "token"}},
		{"one byte", "x", []string{"ws", "cred", "token"}},
		{"64 bytes", strings.Repeat("s", 64), []string{"default", "google.oauth", "client_secret"}},
		{"64 KiB", strings.Repeat("\x00\xff", 32<<10), []string{"ws", "cred", "token"}},
		{"no identity", "secret", nil},
		{"empty identity parts", "secret", []string{"", "", ""}},
		{"unicode", "pässwörd ✓", []string{"wş", "kéy", "fïeld"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob := seal(t, kr, tc.plaintext, tc.identity...)
			if want := minBlobSize + len(tc.plaintext); len(blob) != want {
				t.Errorf("blob is %d bytes, want %d", len(blob), want)
			}
			if len(tc.plaintext) >= 4 && bytes.Contains(blob, []byte(tc.plaintext)) {
				t.Error("blob holds the plaintext")
			}
			if id, err := crypt.KeyIDOf(blob); err != nil || id != k.ID() {
				t.Errorf("KeyIDOf = %v, %v; want %v", id, err, k.ID())
			}
			openOK(t, kr, blob, tc.plaintext, tc.identity...)
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	a := seal(t, kr, "same secret", "ws", "k", "f")
	b := seal(t, kr, "same secret", "ws", "k", "f")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same secret are identical")
	}
	if bytes.Equal(a[idEnd:headerSize], b[idEnd:headerSize]) {
		t.Fatal("two seals share nonces or data key")
	}
}

func TestOpenWithAnotherIdentityFails(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	blob := seal(t, kr, "hunter2", "ws", "cred", "token")
	for _, id := range [][]string{
		{"ws", "cred", "password"}, // another field
		{"ws", "other", "token"},   // another record
		{"other", "cred", "token"}, // another workspace
		{"ws", "cred"},
		{"ws", "cred", "token", ""},
		{"ws", "cred", "token", "x"},
		{"ws.cred", "token"},
		{"ws", "cred.token"},
		{"wscredtoken"},
		{"ws", "cred", "Token"},
		nil,
	} {
		openFails(t, kr, blob, crypt.ErrDecrypt, id...)
	}
	openOK(t, kr, blob, "hunter2", "ws", "cred", "token")
}

// Length framing keeps identities whose concatenations agree apart.
func TestIdentityPartsCannotShift(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	for _, tc := range []struct{ sealed, opened []string }{
		{[]string{"a.b", "c"}, []string{"a", "b.c"}},
		{[]string{"a", "b.c"}, []string{"a.b", "c"}},
		{[]string{"ab", "c"}, []string{"a", "bc"}},
		{[]string{"a", "b", "c"}, []string{"abc"}},
		{[]string{"abc"}, []string{"a", "b", "c"}},
		{[]string{"a", ""}, []string{"", "a"}},
		{[]string{"a"}, []string{"a", ""}},
		{[]string{"\x00\x00\x00\x01a"}, []string{"a"}},
		{[]string{"a", "b"}, []string{"a\x00\x00\x00\x01b"}},
	} {
		blob := seal(t, kr, "v", tc.sealed...)
		openFails(t, kr, blob, crypt.ErrDecrypt, tc.opened...)
		openOK(t, kr, blob, "v", tc.sealed...)
	}
}

// A blob copied, whole or in parts, from one record's field to another does not open there.
func TestBlobCopiedToAnotherIdentityFails(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	a := seal(t, kr, "secret-a", "ws", "k1", "token")
	b := seal(t, kr, "secret-b", "ws", "k2", "token")
	openFails(t, kr, a, crypt.ErrDecrypt, "ws", "k2", "token")
	openFails(t, kr, b, crypt.ErrDecrypt, "ws", "k1", "token")

	// a's wrapped data key with b's data: the data key does not fit.
	spliced := append(bytes.Clone(a[:headerSize]), b[headerSize:]...)
	for _, id := range [][]string{{"ws", "k1", "token"}, {"ws", "k2", "token"}} {
		openFails(t, kr, spliced, crypt.ErrDecrypt, id...)
	}
}

func TestFlippingAnyByteFails(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	identity := []string{"ws", "cred", "token"}
	blob := seal(t, kr, strings.Repeat("s", 64), identity...)
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(blob)
			bad[i] ^= mask
			var want error
			switch {
			case i == 0:
				want = crypt.ErrMalformed // format version
			case i < idEnd:
				want = crypt.ErrUnknownKey // key ID
			default:
				want = crypt.ErrDecrypt
			}
			got, err := kr.Open(bad, identity...)
			if !errors.Is(err, want) || got != nil {
				t.Fatalf("byte %d ^ %#02x: Open = %q, %v; want %v", i, mask, got, err, want)
			}
		}
	}
	openOK(t, kr, blob, strings.Repeat("s", 64), identity...)
}

func TestTruncatedOrExtendedBlobFails(t *testing.T) {
	k, _ := testKey(t, 1)
	kr := crypt.NewKeyring(k)
	blob := seal(t, kr, "secret", "ws", "k", "f")
	for n := 0; n < len(blob); n++ {
		want := crypt.ErrDecrypt
		if n < minBlobSize {
			want = crypt.ErrMalformed
		}
		openFails(t, kr, blob[:n], want, "ws", "k", "f")
	}
	openFails(t, kr, append(bytes.Clone(blob), 0), crypt.ErrDecrypt, "ws", "k", "f")
	openFails(t, kr, nil, crypt.ErrMalformed, "ws", "k", "f")
}

func TestOpenWithUnknownKey(t *testing.T) {
	k1, raw1 := testKey(t, 1)
	k2, _ := testKey(t, 2)
	blob := seal(t, crypt.NewKeyring(k1), "secret", "ws", "k", "f")
	_, err := crypt.NewKeyring(k2).Open(blob, "ws", "k", "f")
	if !errors.Is(err, crypt.ErrUnknownKey) {
		t.Fatalf("Open with another key: %v, want ErrUnknownKey", err)
	}
	if !strings.Contains(err.Error(), k1.ID().String()) {
		t.Errorf("error %q does not name the key ID %s", err, k1.ID())
	}
	assertNoKeyMaterial(t, err.Error(), raw1)
}

func TestRewrap(t *testing.T) {
	oldKey, _ := testKey(t, 1)
	newKey, _ := testKey(t, 2)
	kr := crypt.NewKeyring(oldKey)
	identity := []string{"ws", "cred", "token"}
	blob := seal(t, kr, "rotate me", identity...)
	orig := bytes.Clone(blob)

	// Nothing to do while the blob's key is the primary.
	out, changed, err := kr.Rewrap(blob)
	if err != nil || changed || !bytes.Equal(out, blob) {
		t.Fatalf("Rewrap under its own key = %x, %v, %v; want the blob unchanged", out, changed, err)
	}

	kr.Promote(newKey)
	if kr.Primary() != newKey.ID() {
		t.Fatalf("Primary = %v after Promote, want %v", kr.Primary(), newKey.ID())
	}
	out, changed, err = kr.Rewrap(blob)
	if err != nil || !changed {
		t.Fatalf("Rewrap after Promote = changed %v, err %v", changed, err)
	}
	if !bytes.Equal(blob, orig) {
		t.Fatal("Rewrap modified its input")
	}
	if id, err := crypt.KeyIDOf(out); err != nil || id != newKey.ID() {
		t.Fatalf("KeyIDOf(rewrapped) = %v, %v; want %v", id, err, newKey.ID())
	}
	if id, _ := crypt.KeyIDOf(blob); id != oldKey.ID() {
		t.Fatalf("KeyIDOf(original) = %v, want %v", id, oldKey.ID())
	}
	// The data nonce and ciphertext are copied, never re-encrypted.
	if !bytes.Equal(out[headerSize-12:], blob[headerSize-12:]) {
		t.Fatal("Rewrap changed the data nonce or ciphertext")
	}
	if bytes.Equal(out[idEnd:headerSize-12], blob[idEnd:headerSize-12]) {
		t.Fatal("Rewrap did not re-wrap the data key")
	}

	onlyNew := crypt.NewKeyring(newKey)
	openOK(t, onlyNew, out, "rotate me", identity...)
	openFails(t, onlyNew, blob, crypt.ErrUnknownKey, identity...)
	openFails(t, onlyNew, out, crypt.ErrDecrypt, "ws", "cred", "password")
	openOK(t, kr, blob, "rotate me", identity...) // old blobs open until Retire

	again, changed, err := kr.Rewrap(out)
	if err != nil || changed || !bytes.Equal(again, out) {
		t.Fatalf("Rewrap of a rewrapped blob = changed %v, err %v", changed, err)
	}
}

func TestRewrapRejectsBadBlobs(t *testing.T) {
	k1, _ := testKey(t, 1)
	k2, _ := testKey(t, 2)
	k3, _ := testKey(t, 3)
	blob := seal(t, crypt.NewKeyring(k1), "secret", "ws", "k", "f")
	kr := crypt.NewKeyring(k3, k2) // does not hold k1

	if _, _, err := kr.Rewrap(blob); !errors.Is(err, crypt.ErrUnknownKey) {
		t.Errorf("Rewrap under unknown key: %v, want ErrUnknownKey", err)
	}
	if _, _, err := kr.Rewrap(blob[:10]); !errors.Is(err, crypt.ErrMalformed) {
		t.Errorf("Rewrap of a short blob: %v, want ErrMalformed", err)
	}
	kr = crypt.NewKeyring(k2, k1)
	bad := bytes.Clone(blob)
	bad[idEnd+3] ^= 1 // inside the wrap nonce
	if _, _, err := kr.Rewrap(bad); !errors.Is(err, crypt.ErrDecrypt) {
		t.Errorf("Rewrap of a tampered blob: %v, want ErrDecrypt", err)
	}
}

func TestRetireDropsOldKeys(t *testing.T) {
	k0, _ := testKey(t, 0)
	k1, _ := testKey(t, 1)
	k2, _ := testKey(t, 2)
	kr := crypt.NewKeyring(k1, k0)
	old1 := seal(t, kr, "one", "ws", "k", "f")
	old0 := seal(t, crypt.NewKeyring(k0), "zero", "ws", "k", "f")
	kr.Promote(k2)

	keys := kr.Keys()
	if len(keys) != 3 || keys[0].ID() != k2.ID() {
		t.Fatalf("Keys after Promote = %v, want 3 keys, %v first", keys, k2)
	}
	openOK(t, kr, old1, "one", "ws", "k", "f")
	openOK(t, kr, old0, "zero", "ws", "k", "f")
	newBlob := seal(t, kr, "two", "ws", "k", "f")

	kr.Retire()
	keys = kr.Keys()
	if len(keys) != 1 || keys[0].ID() != k2.ID() {
		t.Fatalf("Keys after Retire = %v, want only %v", keys, k2)
	}
	openFails(t, kr, old1, crypt.ErrUnknownKey, "ws", "k", "f")
	openFails(t, kr, old0, crypt.ErrUnknownKey, "ws", "k", "f")
	openOK(t, kr, newBlob, "two", "ws", "k", "f")
	zero := base64.StdEncoding.EncodeToString(make([]byte, crypt.KeySize))
	for _, k := range []*crypt.MasterKey{k0, k1} {
		if k.Encode() != zero {
			t.Errorf("retired key %v was not wiped", k)
		}
	}
	if k2.Encode() == zero {
		t.Error("Retire wiped the primary key")
	}
}

// Seal, Open and Rewrap may run while a rotation promotes and retires keys.
func TestKeyringConcurrentUse(t *testing.T) {
	k1, _ := testKey(t, 1)
	k2, _ := testKey(t, 2)
	kr := crypt.NewKeyring(k1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprint(g, i)
				blob, err := kr.Seal([]byte(id), id)
				if err != nil {
					t.Error(err)
					return
				}
				if out, _, err := kr.Rewrap(blob); err != nil {
					t.Error(err)
					return
				} else if pt, err := kr.Open(out, id); err != nil || string(pt) != id {
					t.Errorf("Open = %q, %v", pt, err)
					return
				}
			}
		}()
	}
	kr.Promote(k2)
	wg.Wait()
	kr.Retire()
	if kr.Primary() != k2.ID() {
		t.Fatalf("Primary = %v, want %v", kr.Primary(), k2.ID())
	}
}

func TestParseMasterKeyAcceptsBase64Forms(t *testing.T) {
	// Bytes whose base64 uses '+' and '/' in the standard alphabet and needs padding.
	raw := make([]byte, crypt.KeySize)
	for i := range raw {
		raw[i] = []byte{0xfb, 0xff, 0xbf}[i%3]
	}
	want, err := crypt.NewMasterKey(bytes.Clone(raw))
	if err != nil {
		t.Fatal(err)
	}
	std := base64.StdEncoding.EncodeToString(raw)
	if !strings.ContainsAny(std, "+/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("fixture %q does not exercise the alphabets and padding", std)
	}
	for name, text := range map[string]string{
		"std":            std,
		"std raw":        base64.RawStdEncoding.EncodeToString(raw),
		"url":            base64.URLEncoding.EncodeToString(raw),
		"url raw":        base64.RawURLEncoding.EncodeToString(raw),
		"surrounding ws": "  " + std + "\n",
		"Encode":         want.Encode(),
	} {
		k, err := crypt.ParseMasterKey(text)
		if err != nil {
			t.Errorf("%s %q: %v", name, text, err)
			continue
		}
		if k.ID() != want.ID() || k.Encode() != std {
			t.Errorf("%s: parsed key %v (%s), want %v", name, k, k.Encode(), want)
		}
	}
}

func TestParseMasterKeyRejects(t *testing.T) {
	k, raw := testKey(t, 9)
	valid := k.Encode()
	for name, text := range map[string]string{
		"empty":                "",
		"blank":                "   ",
		"31 bytes":             base64.StdEncoding.EncodeToString(raw[:31]),
		"33 bytes":             base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 1)),
		"16 bytes url raw":     base64.RawURLEncoding.EncodeToString(raw[:16]),
		"64 bytes":             base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), raw...)),
		"hex":                  hex.EncodeToString(raw),
		"not base64":           "this is not a key!",
		"bad character":        valid[:20] + "*" + valid[21:],
		"mixed alphabets":      "+-" + valid[2:],
		"bad padding":          strings.TrimRight(valid, "=") + "===",
		"inner space":          valid[:22] + " " + valid[22:],
		"raw bytes as text":    string(raw),
		"key with trailing ID": valid + ":" + k.ID().String(),
	} {
		got, err := crypt.ParseMasterKey(text)
		if err == nil {
			t.Errorf("%s: %q parsed as %v", name, text, got)
			continue
		}
		if got != nil {
			t.Errorf("%s: returned a key with the error", name)
		}
		msg := err.Error()
		if strings.TrimSpace(text) != "" && strings.Contains(msg, strings.TrimSpace(text)) {
			t.Errorf("%s: error %q contains the input", name, msg)
		}
		assertNoKeyMaterial(t, msg, raw)
		// No long run of the input either (say, its first or last 12 characters).
		if len(text) >= 12 && (strings.Contains(msg, text[:12]) || strings.Contains(msg, text[len(text)-12:])) {
			t.Errorf("%s: error %q quotes part of the input", name, msg)
		}
	}
}

func TestNewMasterKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if k, err := crypt.NewMasterKey(make([]byte, n)); err == nil {
			t.Errorf("NewMasterKey(%d bytes) = %v, want an error", n, k)
		}
	}
	a, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() || a.Encode() == b.Encode() {
		t.Fatal("two generated keys are the same")
	}
}

// assertNoKeyMaterial fails if s holds raw in any common printed form.
func assertNoKeyMaterial(t *testing.T, s string, raw []byte) {
	t.Helper()
	forms := map[string]string{
		"hex":        hex.EncodeToString(raw),
		"HEX":        strings.ToUpper(hex.EncodeToString(raw)),
		"base64":     base64.StdEncoding.EncodeToString(raw),
		"base64 raw": base64.RawURLEncoding.EncodeToString(raw),
		"decimal":    strings.Trim(fmt.Sprint(raw), "[]"),
		"bytes":      string(raw),
	}
	for name, f := range forms {
		// Any quarter of the key is already too much.
		for _, part := range []string{f[:len(f)/4], f[len(f)/4 : len(f)/2], f[len(f)*3/4:]} {
			if strings.Contains(s, part) {
				t.Fatalf("%q holds key material (%s form)", s, name)
			}
		}
	}
}

func TestMasterKeyNeverPrintsKeyMaterial(t *testing.T) {
	k, raw := testKey(t, 0x41) // printable bytes, so a %s leak would show
	if got, want := k.String(), "master-key:"+k.ID().String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if k.GoString() != k.String() {
		t.Errorf("GoString = %q, want %q", k.GoString(), k.String())
	}
	type holder struct {
		Key *crypt.MasterKey
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for name, arg := range map[string]any{"key": k, "struct": holder{k}, "slice": []*crypt.MasterKey{k}} {
			s := fmt.Sprintf(verb, arg)
			assertNoKeyMaterial(t, s, raw)
			if verb == "%v" && !strings.Contains(s, k.ID().String()) {
				t.Errorf("%s of %s = %q, want the key ID", verb, name, s)
			}
		}
	}
	assertNoKeyMaterial(t, fmt.Sprint(k), raw)
	assertNoKeyMaterial(t, fmt.Sprintln(k), raw)

	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("key", "key", k)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "key", k)
	assertNoKeyMaterial(t, buf.String(), raw)
	j, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	assertNoKeyMaterial(t, string(j), raw)
}

func TestKeyIDOf(t *testing.T) {
	k1, raw1 := testKey(t, 1)
	k2, _ := testKey(t, 2)
	again, err := crypt.NewMasterKey(bytes.Clone(raw1))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != k1.ID() {
		t.Error("the same key bytes give different IDs")
	}
	if k1.ID() == k2.ID() {
		t.Error("different keys share an ID")
	}
	if s := k1.ID().String(); len(s) != 8 || strings.Trim(s, "0123456789abcdef") != "" {
		t.Errorf("KeyID.String = %q, want 8 lowercase hex digits", s)
	}
	if crypt.KeyID(0xab).String() != "000000ab" {
		t.Errorf("KeyID(0xab).String = %q", crypt.KeyID(0xab).String())
	}
	for _, k := range []*crypt.MasterKey{k1, k2} {
		blob := seal(t, crypt.NewKeyring(k), "x", "a")
		if id, err := crypt.KeyIDOf(blob); err != nil || id != k.ID() {
			t.Errorf("KeyIDOf = %v, %v; want %v", id, err, k.ID())
		}
	}
	blob := seal(t, crypt.NewKeyring(k1), "x", "a")
	wrongVersion := bytes.Clone(blob)
	wrongVersion[0] = 0x02
	for name, b := range map[string][]byte{
		"nil":           nil,
		"short":         blob[:minBlobSize-1],
		"header only":   blob[:headerSize],
		"wrong version": wrongVersion,
	} {
		if id, err := crypt.KeyIDOf(b); !errors.Is(err, crypt.ErrMalformed) {
			t.Errorf("KeyIDOf(%s) = %v, %v; want ErrMalformed", name, id, err)
		}
	}
}

var secret64 = bytes.Repeat([]byte("s"), 64)

func BenchmarkSeal(b *testing.B) {
	k, _ := testKey(b, 1)
	kr := crypt.NewKeyring(k)
	b.SetBytes(int64(len(secret64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Seal(secret64, "default", "google.oauth", "client_secret"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k, _ := testKey(b, 1)
	kr := crypt.NewKeyring(k)
	blob, err := kr.Seal(secret64, "default", "google.oauth", "client_secret")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(secret64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(blob, "default", "google.oauth", "client_secret"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKeyringWithoutItsPrimaryRefuses: when the primary (decided by the store) is a key the
// keyring lacks, sealing is refused with a retryable master_key_unavailable client error
// naming the key, never done under another key; adding the key lifts it.
func TestKeyringWithoutItsPrimaryRefuses(t *testing.T) {
	oldK, newK := mustKey(t), mustKey(t)
	kr := crypt.NewKeyring(oldK)
	blob, err := kr.Seal([]byte("v"), "id")
	if err != nil {
		t.Fatal(err)
	}
	if kr.SetPrimary(newK.ID()) {
		t.Fatal("SetPrimary reported a key the ring lacks as held")
	}
	if id, missing := kr.Missing(); !missing || id != newK.ID() {
		t.Fatalf("Missing = %s, %v", id, missing)
	}
	_, err = kr.Seal([]byte("v"), "id")
	var se *sesame.Error
	if !errors.Is(err, crypt.ErrUnknownKey) || !errors.As(err, &se) || se.Code != sesame.CodeMasterKeyUnavailable ||
		se.RetryAfter == 0 || !strings.Contains(se.Message, newK.ID().String()) {
		t.Fatalf("Seal without the primary: %v", err)
	}
	if _, _, err := kr.Rewrap(blob); !errors.Is(err, crypt.ErrUnknownKey) {
		t.Fatalf("Rewrap without the primary: %v", err)
	}
	if _, err := kr.Open(blob, "id"); err != nil {
		t.Fatalf("values under a held key still open: %v", err)
	}
	kr.Replace([]*crypt.MasterKey{mustKey(t)}) // a reloaded key file without either key
	_, err = kr.Open(blob, "id")
	if !errors.As(err, &se) || se.Code != sesame.CodeMasterKeyUnavailable || !strings.Contains(se.Message, oldK.ID().String()) {
		t.Fatalf("Open under a dropped key: %v", err)
	}
	kr.Add(newK)
	if _, missing := kr.Missing(); missing {
		t.Fatal("still missing after Add")
	}
	b2, err := kr.Seal([]byte("v"), "id")
	if id, _ := crypt.KeyIDOf(b2); err != nil || id != newK.ID() {
		t.Fatalf("Seal after Add: %s, %v", id, err)
	}
}

func mustKey(t *testing.T) *crypt.MasterKey {
	t.Helper()
	k, err := crypt.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
