package auth_test

import (
	"bytes"
	"context"
	"database/sql"
	"github.com/sesamehq/sesame/internal/testclock"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/store"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// keyLen is "sesame_" + 32 random + 6 checksum characters.
const keyLen = 7 + 32 + 6

func newKey(t testing.TB) string {
	t.Helper()
	k, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return string(k.Reveal())
}

func TestGenerateKeyFormat(t *testing.T) {
	seen := make(map[string]bool, 1000)
	for range 1000 {
		k := newKey(t)
		if !strings.HasPrefix(k, auth.KeyPrefix) || auth.KeyPrefix != "sesame_" {
			t.Fatalf("key %q lacks the prefix sesame_", k)
		}
		if len(k) != keyLen {
			t.Fatalf("key %q is %d characters, want %d", k, len(k), keyLen)
		}
		for _, c := range k[len(auth.KeyPrefix):] {
			if !strings.ContainsRune(base62, c) {
				t.Fatalf("key %q has a non-base62 character %q", k, c)
			}
		}
		if err := auth.CheckKeyFormat([]byte(k)); err != nil {
			t.Fatalf("CheckKeyFormat(%q) = %v", k, err)
		}
		if seen[k] {
			t.Fatalf("key %q generated twice", k)
		}
		seen[k] = true
	}
}

func TestGenerateKeyUsesTheWholeAlphabet(t *testing.T) {
	// 32 characters × 200 keys: every base62 character shows up in the random part
	// unless the generator is biased or truncated (the chance of a miss is ~e^-100).
	count := map[rune]int{}
	for range 200 {
		k := newKey(t)
		for _, c := range k[len(auth.KeyPrefix) : len(auth.KeyPrefix)+32] {
			count[c]++
		}
	}
	for _, c := range base62 {
		if count[c] == 0 {
			t.Errorf("character %q never appears in 6400 random characters", c)
		}
	}
}

func TestCheckKeyFormatRejectsEverySingleCharacterChange(t *testing.T) {
	k := []byte(newKey(t))
	replacements := base62 + "_-+/=. \x00\xff"
	for i := range k {
		for j := 0; j < len(replacements); j++ {
			c := replacements[j]
			if c == k[i] {
				continue
			}
			bad := bytes.Clone(k)
			bad[i] = c
			if auth.CheckKeyFormat(bad) == nil {
				t.Fatalf("CheckKeyFormat accepted %q (position %d changed to %q)", bad, i, c)
			}
		}
	}
	// Two adjacent characters swapped.
	for i := len(auth.KeyPrefix); i+1 < len(k); i++ {
		if k[i] == k[i+1] {
			continue
		}
		bad := bytes.Clone(k)
		bad[i], bad[i+1] = bad[i+1], bad[i]
		if auth.CheckKeyFormat(bad) == nil {
			t.Fatalf("CheckKeyFormat accepted %q (positions %d and %d swapped)", bad, i, i+1)
		}
	}
}

func TestCheckKeyFormatRejectsMalformed(t *testing.T) {
	k := newKey(t)
	body := k[len(auth.KeyPrefix):]
	tests := map[string]string{
		"empty":              "",
		"prefix only":        auth.KeyPrefix,
		"wrong prefix":       "sesamf_" + body,
		"uppercase prefix":   "SESAME_" + body,
		"other vendor":       "ghp_abc" + body,
		"no prefix":          body,
		"one char short":     k[:len(k)-1],
		"one char long":      k + "0",
		"doubled":            k + k,
		"leading space":      " " + k[:len(k)-1],
		"trailing newline":   k + "\n",
		"bearer scheme kept": "Bearer " + k,
	}
	for name, s := range tests {
		if err := auth.CheckKeyFormat([]byte(s)); err == nil {
			t.Errorf("%s: CheckKeyFormat(%q) accepted it", name, s)
		} else if err != auth.ErrMalformedKey {
			t.Errorf("%s: error %v, want ErrMalformedKey", name, err)
		}
	}
}

func TestKeyFromRequest(t *testing.T) {
	k := newKey(t)
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"bearer", map[string]string{"Authorization": "Bearer " + k}, k},
		{"bearer lowercase scheme", map[string]string{"Authorization": "bearer " + k}, k},
		{"bearer extra spaces", map[string]string{"Authorization": "  Bearer   " + k + "  "}, k},
		{"bare key", map[string]string{"Authorization": k}, k},
		{"x-api-key", map[string]string{"X-API-Key": k}, k},
		{"x-api-key any case", map[string]string{"x-api-key": " " + k + " "}, k},
		{"x-api-key wins", map[string]string{"X-API-Key": k, "Authorization": "Bearer other"}, k},
		{"none", map[string]string{}, ""},
		{"basic scheme is not stripped", map[string]string{"Authorization": "Basic " + k}, "Basic " + k},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for h, v := range tt.headers {
				r.Header.Set(h, v)
			}
			if got := auth.KeyFromRequest(r); got != tt.want {
				t.Errorf("KeyFromRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHasher(t *testing.T) {
	h1 := auth.NewHasher(sesame.NewSecret([]byte("server secret one")))
	h1again := auth.NewHasher(sesame.NewSecret([]byte("server secret one")))
	h2 := auth.NewHasher(sesame.NewSecret([]byte("server secret two")))
	k1, k2 := []byte(newKey(t)), []byte(newKey(t))

	a, b := h1.Hash(k1), h1.Hash(k1)
	if !bytes.Equal(a, b) || !bytes.Equal(a, h1again.Hash(k1)) {
		t.Fatal("Hash is not deterministic")
	}
	if len(a) != 32 {
		t.Fatalf("hash is %d bytes, want 32 (HMAC-SHA256)", len(a))
	}
	if bytes.Equal(a, h2.Hash(k1)) {
		t.Fatal("two server secrets give the same hash")
	}
	if bytes.Equal(a, h1.Hash(k2)) {
		t.Fatal("two keys give the same hash")
	}
	if bytes.Contains(a, k1) || bytes.Contains(a, []byte("server secret one")) {
		t.Fatal("hash contains its input")
	}
}

// env is an authenticator over a real SQLite store, with a second database handle on
// the same file for setting up states the API does not offer yet.
type env struct {
	st    *store.Store
	db    *sql.DB
	authn *auth.Authenticator
	clock *clock
}

type clock = testclock.Clock

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := auth.NewHasher(sesame.NewSecret([]byte("test server secret")))
	return &env{st: st, db: db, clock: c, authn: auth.New(st, h, c.Now, slog.New(slog.DiscardHandler))}
}

func (e *env) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) bootstrap(t testing.TB) string {
	t.Helper()
	k, err := e.authn.Bootstrap(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if k.IsZero() {
		t.Fatal("Bootstrap on an empty store returned no key")
	}
	return string(k.Reveal())
}

func TestBootstrapCreatesAdminOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	key := e.bootstrap(t)
	if err := auth.CheckKeyFormat([]byte(key)); err != nil {
		t.Fatalf("bootstrap key is malformed: %v", err)
	}
	p, err := e.authn.Authenticate(ctx, key)
	if err != nil {
		t.Fatalf("Authenticate(bootstrap key) = %v", err)
	}
	if p.UserName != "admin" || !strings.HasPrefix(p.UserID, "usr_") || !strings.HasPrefix(p.KeyID, "key_") {
		t.Fatalf("principal = %+v", p)
	}

	var users, keys int
	var hash []byte
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRow(`SELECT COUNT(*), MAX(hash) FROM api_keys`).Scan(&keys, &hash); err != nil {
		t.Fatal(err)
	}
	if users != 1 || keys != 1 {
		t.Fatalf("after bootstrap: %d users, %d keys; want 1 and 1", users, keys)
	}
	if bytes.Contains(hash, []byte(key)) || len(hash) != 32 {
		t.Fatalf("stored hash %x is not an HMAC of the key", hash)
	}

	again, err := e.authn.Bootstrap(ctx, "")
	if err != nil || !again.IsZero() {
		t.Fatalf("second Bootstrap = %v, %v; want a zero Secret", again.IsZero(), err)
	}
	again, err = e.authn.Bootstrap(ctx, newKey(t))
	if err != nil || !again.IsZero() {
		t.Fatalf("second Bootstrap with a key = %v, %v; want a zero Secret", again.IsZero(), err)
	}
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&users); err != nil || users != 1 {
		t.Fatalf("users after a second bootstrap: %d, %v", users, err)
	}
}

func TestBootstrapWithGivenKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	given := newKey(t)
	k, err := e.authn.Bootstrap(ctx, given)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.Reveal()) != given {
		t.Fatal("Bootstrap did not use the given key")
	}
	if _, err := e.authn.Authenticate(ctx, given); err != nil {
		t.Fatalf("Authenticate(given key) = %v", err)
	}
}

func TestBootstrapRefusesMalformedKey(t *testing.T) {
	ctx := context.Background()
	good := newKey(t)
	for _, bad := range []string{"admin", "password123", good[:len(good)-1] + otherChar(good[len(good)-1]), strings.ToUpper(good), "sesame_" + strings.Repeat("a", 38)} {
		e := newEnv(t)
		k, err := e.authn.Bootstrap(ctx, bad)
		if err == nil || !k.IsZero() {
			t.Fatalf("Bootstrap(%q) = %v; want an error", bad, err)
		}
		if strings.Contains(err.Error(), bad) {
			t.Fatalf("error %q quotes the key", err)
		}
		var users int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&users); err != nil || users != 0 {
			t.Fatalf("a refused bootstrap left %d users (%v)", users, err)
		}
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin := e.bootstrap(t)
	adminP, err := e.authn.Authenticate(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}

	// More keys for the admin, to be revoked and expired, and a second user to disable.
	h := auth.NewHasher(sesame.NewSecret([]byte("test server secret")))
	add := func(userID, name string, expires *time.Time) string {
		t.Helper()
		k := newKey(t)
		err := e.st.CreateAPIKey(ctx, sesame.APIKey{
			ID: auth.NewID("key_"), UserID: userID, Name: name, Hash: h.Hash([]byte(k)),
			CreatedAt: e.clock.Now(), ExpiresAt: expires,
		})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	revoked := add(adminP.UserID, "revoked", nil)
	e.exec(t, `UPDATE api_keys SET revoked_at = ? WHERE name = 'revoked'`, e.clock.Now().UnixNano())
	expiry := e.clock.Now().Add(time.Hour)
	expiring := add(adminP.UserID, "expiring", &expiry)

	bob := sesame.User{ID: auth.NewID("usr_"), Name: "bob", CreatedAt: e.clock.Now()}
	bobKey := newKey(t)
	if err := e.st.CreateUserWithKey(ctx, bob, sesame.APIKey{ID: auth.NewID("key_"), UserID: bob.ID, Name: "bob", Hash: h.Hash([]byte(bobKey)), CreatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.authn.Authenticate(ctx, bobKey); err != nil {
		t.Fatalf("bob before being disabled: %v", err)
	}
	e.exec(t, `UPDATE users SET disabled = 1 WHERE id = ?`, bob.ID)
	// Verified keys are cached; the access service invalidates on every change (here and,
	// by notification, on other replicas). Until then the cache answers.
	if _, err := e.authn.Authenticate(ctx, bobKey); err != nil {
		t.Fatalf("bob before the cache was told: %v", err)
	}
	e.authn.Invalidate()

	if _, err := e.authn.Authenticate(ctx, expiring); err != nil {
		t.Fatalf("a key before its expiry: %v", err)
	}
	e.clock.Add(time.Hour - time.Nanosecond)
	if _, err := e.authn.Authenticate(ctx, expiring); err != nil {
		t.Fatalf("a key 1ns before its expiry: %v", err)
	}
	e.clock.Add(time.Nanosecond)

	// A well-formed key that was never issued, and one issued under another server secret.
	unknown := newKey(t)
	other := auth.New(e.st, auth.NewHasher(sesame.NewSecret([]byte("another secret"))), e.clock.Now, slog.New(slog.DiscardHandler))

	tests := []struct {
		name  string
		authn *auth.Authenticator
		key   string
		want  error
	}{
		{"no key", e.authn, "", auth.ErrNoCredentials},
		{"malformed", e.authn, "hunter2", auth.ErrInvalidKey},
		{"bad checksum", e.authn, admin[:len(admin)-1] + string("01"[boolInt(admin[len(admin)-1] == '0')]), auth.ErrInvalidKey},
		{"unknown", e.authn, unknown, auth.ErrInvalidKey},
		{"revoked", e.authn, revoked, auth.ErrInvalidKey},
		{"expired at the instant", e.authn, expiring, auth.ErrInvalidKey},
		{"disabled user", e.authn, bobKey, auth.ErrInvalidKey},
		{"other server secret", other, admin, auth.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.authn.Authenticate(ctx, tt.key)
			if err == nil {
				t.Fatalf("authenticated as %+v", p)
			}
			if sesame.ErrorCode(err) != sesame.CodeUnauthenticated {
				t.Fatalf("code = %s, want unauthenticated (%v)", sesame.ErrorCode(err), err)
			}
			if err != tt.want {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if p != (sesame.Principal{}) {
				t.Fatalf("principal %+v returned with an error", p)
			}
			if tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %q quotes the key", err)
			}
		})
	}
	e.clock.Add(24 * time.Hour)
	if _, err := e.authn.Authenticate(ctx, expiring); err != auth.ErrInvalidKey {
		t.Fatalf("a key a day after expiry: %v", err)
	}
	// The admin key still works throughout.
	if _, err := e.authn.Authenticate(ctx, admin); err != nil {
		t.Fatalf("admin key: %v", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLastUseRecordedOnFlush(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	key := e.bootstrap(t)
	lastUsed := func() sql.NullInt64 {
		t.Helper()
		var n sql.NullInt64
		if err := e.db.QueryRow(`SELECT last_used_at FROM api_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if lastUsed().Valid {
		t.Fatal("a new key has a last use")
	}
	if err := e.authn.Flush(ctx); err != nil {
		t.Fatalf("Flush with nothing recorded: %v", err)
	}

	first := e.clock.Now()
	if _, err := e.authn.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if lastUsed().Valid {
		t.Fatal("Authenticate wrote last use before Flush")
	}
	e.clock.Add(time.Minute)
	second := e.clock.Now()
	if _, err := e.authn.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if lastUsed().Valid {
		t.Fatal("Authenticate wrote last use before Flush")
	}
	if err := e.authn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Valid || got.Int64 != second.UnixNano() {
		t.Fatalf("last_used_at = %v, want %d (the latest use, not %d)", got, second.UnixNano(), first.UnixNano())
	}
	k, _, err := e.st.APIKeyByHash(ctx, auth.NewHasher(sesame.NewSecret([]byte("test server secret"))).Hash([]byte(key)))
	if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(second) {
		t.Fatalf("APIKeyByHash last use = %v, %v", k.LastUsedAt, err)
	}

	// A flush with nothing new changes nothing; an older time never overwrites a newer one.
	if err := e.authn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); got.Int64 != second.UnixNano() {
		t.Fatalf("an empty flush changed last_used_at to %v", got)
	}
	if err := e.st.TouchAPIKeys(ctx, map[string]time.Time{k.ID: first}); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); got.Int64 != second.UnixNano() {
		t.Fatalf("an older use overwrote last_used_at: %v", got)
	}

	// Failed attempts are not uses.
	if _, err := e.authn.Authenticate(ctx, newKey(t)); err == nil {
		t.Fatal("unknown key authenticated")
	}
	e.clock.Add(time.Minute)
	if err := e.authn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); got.Int64 != second.UnixNano() {
		t.Fatalf("a failed attempt changed last_used_at: %v", got)
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	key := e.bootstrap(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := e.authn.Authenticate(ctx, key); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := e.authn.Flush(ctx); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := e.authn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var n sql.NullInt64
	if err := e.db.QueryRow(`SELECT last_used_at FROM api_keys`).Scan(&n); err != nil || !n.Valid {
		t.Fatalf("last_used_at after concurrent use = %v, %v", n, err)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	key := e.bootstrap(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.authn.Authenticate(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCachedKeyHealsAfterMaxAge: a key disabled on another replica whose notification was
// lost is refused here once its cache entry is older than the maximum age.
func TestCachedKeyHealsAfterMaxAge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.authn.SetMaxAge(30 * time.Second)
	admin := e.bootstrap(t)
	if _, err := e.authn.Authenticate(ctx, admin); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE users SET disabled = 1`) // another replica; no notification reaches this one
	e.clock.Add(29 * time.Second)
	if _, err := e.authn.Authenticate(ctx, admin); err != nil {
		t.Fatalf("within the maximum age the cache answers: %v", err)
	}
	e.clock.Add(time.Second)
	if _, err := e.authn.Authenticate(ctx, admin); sesame.ErrorCode(err) != sesame.CodeUnauthenticated {
		t.Fatalf("after the maximum age: %v", err)
	}
}

// otherChar returns a base62 character other than c, to spoil a key's checksum.
func otherChar(c byte) string {
	if c == 'x' {
		return "y"
	}
	return "x"
}
