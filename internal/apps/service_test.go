package apps_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/sesamehq/sesame/internal/testclock"
	"github.com/sesamehq/sesame/internal/testlog"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/apps"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
)

// clock is a settable test clock.
type clock = testclock.Clock

// auditLog records audit events.
type auditLog struct {
	mu     sync.Mutex
	events []string
}

func (a *auditLog) Record(_ context.Context, action, target, result string) {
	a.mu.Lock()
	a.events = append(a.events, action+" "+target+" "+result)
	a.mu.Unlock()
}

func (a *auditLog) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.events...)
}

// syncBuffer collects output written from many goroutines.
type syncBuffer = testlog.Buffer

type fixture struct {
	cfg   apps.Config
	svc   *apps.Service
	st    *store.Store
	clock *clock
	audit *auditLog
	logs  *syncBuffer
}

type option func(*apps.Config)

func randomKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openSQLite(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "apps.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newFixture returns a service over a fresh SQLite store, with its own random keys.
func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	return newFixtureOn(t, openSQLite(t), opts...)
}

func newFixtureOn(t testing.TB, st *store.Store, opts ...option) *fixture {
	t.Helper()
	f := &fixture{st: st, clock: testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), audit: &auditLog{}, logs: &syncBuffer{}}
	cfg := apps.Config{
		Store: st, TrustRoot: randomKey(t), TokenKey: randomKey(t), Now: f.clock.Now, Audit: f.audit,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := apps.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg, f.svc = cfg, svc
	return f
}

// sameKeys returns another service with f's keys and store: a replica, or a restart.
func (f *fixture) sameKeys(t testing.TB) *apps.Service {
	t.Helper()
	svc, err := apps.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

var ctx = context.Background()

func wantCode(t *testing.T, err error, code sesame.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if got := sesame.ErrorCode(err); got != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func manifest(appID, name, version, signature string) []byte {
	m := map[string]any{"appId": appID, "displayName": name, "version": version}
	if signature != "" {
		m["signature"] = signature
	}
	b, _ := json.Marshal(m)
	return b
}

// developer is a developer key with a certificate from a fixture's server.
type developer struct {
	key  ed25519.PrivateKey
	cert apps.CertView
}

func (f *fixture) developer(t *testing.T, domains ...string) developer {
	t.Helper()
	key := randomKey(t)
	cert, err := f.svc.IssueCert(ctx, apps.CertRequest{DevPubkey: apps.EncodePublicKey(key.Public().(ed25519.PublicKey)), Domains: domains})
	if err != nil {
		t.Fatal(err)
	}
	return developer{key: key, cert: cert}
}

// signedToken issues a token for appID under a new developer certificate: a token with a
// record, which can be listed and revoked by its ID.
func (f *fixture) signedToken(t *testing.T, appID string) string {
	t.Helper()
	d := f.developer(t, appID)
	tok, err := f.svc.Issue(ctx, manifest(appID, "X", "1", d.sign(t, appID, "X", "1")), "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (d developer) sign(t *testing.T, appID, name, version string) string {
	t.Helper()
	sig, err := apps.SignManifest(apps.Manifest{AppID: appID, DisplayName: name, Version: version}, d.cert.Certificate, d.key)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestTrialManifestGetsTokenNamingTheApp(t *testing.T) {
	f := newFixture(t)
	token, err := f.svc.Issue(ctx, manifest("com.example.app", "Example", "1.2.3", ""), "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "v4.public.") {
		t.Fatalf("token %q is not PASETO v4.public", token[:12])
	}
	p, err := f.svc.VerifyToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != sesame.PrincipalApp || p.AppID != "com.example.app" || p.AppVersion != "1.2.3" || !apps.ValidTokenID(p.TokenID) {
		t.Fatalf("principal %+v", p)
	}
	// Trial tokens are not recorded: anybody may ask for them, and a row each would let
	// anonymous callers grow the store.
	ts, err := f.svc.ListTokens(ctx, "com.example.app", "", 10)
	if err != nil || len(ts) != 0 {
		t.Fatalf("listed %+v, %v; want no record of a trial token", ts, err)
	}
	// The token states what it claims, readably (it is signed, not encrypted).
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "v4.public."))
	var claims map[string]string
	if err := json.Unmarshal(raw[:len(raw)-64], &claims); err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "com.example.app" || claims["ver"] != "1.2.3" || claims["mode"] != "trial" || claims["jti"] != p.TokenID ||
		claims["iat"] != "2026-03-01T12:00:00Z" || claims["exp"] != "2026-03-02T12:00:00Z" {
		t.Fatalf("claims %v", claims)
	}
	if got := f.audit.all(); len(got) != 1 || got[0] != "app.token.issue com.example.app ok" {
		t.Fatalf("audit %v", got)
	}
	if strings.Contains(f.logs.String(), token) || strings.Contains(f.logs.String(), token[20:60]) {
		t.Fatal("the token reached the log")
	}
}

func TestTrialModeOffAndUnsignedAppsAreRefused(t *testing.T) {
	f := newFixture(t, func(c *apps.Config) { c.NoTrial = true })
	_, err := f.svc.Issue(ctx, manifest("com.example.app", "Example", "1", ""), "")
	wantCode(t, err, sesame.CodeAppUnauthorized)
	if !strings.Contains(err.Error(), "trial mode is off") {
		t.Fatalf("message %q", err)
	}
	_, err = newFixture(t).svc.Issue(ctx, manifest("com.acme.app", "Acme", "1", ""), "")
	wantCode(t, err, sesame.CodeAppUnauthorized)

	// With trial mode off a com.example app can still be signed.
	d := f.developer(t, "com.example.*")
	if _, err := f.svc.Issue(ctx, manifest("com.example.app", "Example", "1", d.sign(t, "com.example.app", "Example", "1")), ""); err != nil {
		t.Fatal(err)
	}
}

func TestSignedManifestGetsSignedToken(t *testing.T) {
	f := newFixture(t)
	d := f.developer(t, "com.acme.*")
	token, err := f.svc.Issue(ctx, manifest("com.acme.app", "Acme App", "2.0", d.sign(t, "com.acme.app", "Acme App", "2.0")), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.VerifyToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := f.svc.ListTokens(ctx, "", "", 10)
	if p.AppID != "com.acme.app" || len(ts) != 1 || ts[0].Mode != sesame.AppModeSigned || ts[0].CertID != d.cert.ID {
		t.Fatalf("principal %+v, tokens %+v", p, ts)
	}
	// Extra manifest properties are ignored, whatever their type.
	body := `{"appId":"com.acme.app","displayName":"Acme App","version":"2.0","icon":"x.png","extra":{"a":[1,2]},"signature":"` +
		d.sign(t, "com.acme.app", "Acme App", "2.0") + `"}`
	if _, err := f.svc.Issue(ctx, []byte(body), ""); err != nil {
		t.Fatal(err)
	}
}

func TestSignedManifestRefusals(t *testing.T) {
	f := newFixture(t)
	acme := f.developer(t, "com.acme.*")
	good := acme.sign(t, "com.acme.app", "Acme", "1.0")

	// A certificate from another server, for the same domains.
	elsewhere := newFixture(t).developer(t, "com.acme.*")
	// A certificate whose domains were widened after issue.
	forged := func() string {
		var c map[string]any
		_ = json.Unmarshal(acme.cert.Certificate, &c)
		c["domains"] = []string{"com.acme.*", "com.other.*"}
		b, _ := json.Marshal(c)
		sig, err := apps.SignManifest(apps.Manifest{AppID: "com.other.app", DisplayName: "Acme", Version: "1.0"}, b, acme.key)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}()
	// A signature made with a key that is not the certificate's.
	wrongKey := func() string {
		if _, err := apps.SignManifest(apps.Manifest{AppID: "com.acme.app", DisplayName: "Acme", Version: "1.0"}, acme.cert.Certificate, randomKey(t)); err == nil {
			t.Fatal("SignManifest signed with a key that is not the certificate's")
		}
		// Build it by hand: swap the sig inside a valid signature document.
		other := developer{key: randomKey(t), cert: acme.cert}
		doc := decodeSig(t, good)
		doc["sig"] = base64.StdEncoding.EncodeToString(ed25519.Sign(other.key, []byte("anything")))
		return encodeSig(t, doc)
	}()
	revoked := f.developer(t, "com.acme.*")
	revokedSig := revoked.sign(t, "com.acme.app", "Acme", "1.0")
	if _, err := f.svc.RevokeCert(ctx, revoked.cert.ID); err != nil {
		t.Fatal(err)
	}
	expiring := func() developer {
		key := randomKey(t)
		exp := f.clock.Now().Add(time.Hour)
		cert, err := f.svc.IssueCert(ctx, apps.CertRequest{DevPubkey: apps.EncodePublicKey(key.Public().(ed25519.PublicKey)), Domains: []string{"com.acme.*"}, ExpiresAt: &exp})
		if err != nil {
			t.Fatal(err)
		}
		return developer{key: key, cert: cert}
	}()
	expiringSig := expiring.sign(t, "com.acme.app", "Acme", "1.0")

	cases := []struct {
		name     string
		body     []byte
		code     sesame.Code
		contains string
	}{
		{"same signature on another app", manifest("com.other.app", "Acme", "1.0", good), sesame.CodeAppUnauthorized, "covers"},
		{"same signature on a sibling app", manifest("com.acme.app2", "Acme", "1.0", good), sesame.CodeAppUnauthorized, "does not match"},
		{"tampered display name", manifest("com.acme.app", "Acme Pro", "1.0", good), sesame.CodeAppUnauthorized, "does not match"},
		{"tampered version", manifest("com.acme.app", "Acme", "1.1", good), sesame.CodeAppUnauthorized, "does not match"},
		{"another server's certificate", manifest("com.acme.app", "Acme", "1.0", elsewhere.sign(t, "com.acme.app", "Acme", "1.0")), sesame.CodeAppUnauthorized, "another server's trust root"},
		{"widened domains", manifest("com.other.app", "Acme", "1.0", forged), sesame.CodeAppUnauthorized, "not validly signed"},
		{"signed with another key", manifest("com.acme.app", "Acme", "1.0", wrongKey), sesame.CodeAppUnauthorized, "does not match"},
		{"revoked certificate", manifest("com.acme.app", "Acme", "1.0", revokedSig), sesame.CodeAppUnauthorized, "revoked"},
		{"signature not base64", manifest("com.acme.app", "Acme", "1.0", "!!!"), sesame.CodeManifestInvalid, "base64"},
		{"signature not a document", manifest("com.acme.app", "Acme", "1.0", base64.StdEncoding.EncodeToString([]byte(`{"x":1}`))), sesame.CodeManifestInvalid, "not a Sesame manifest signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.svc.Issue(ctx, c.body, "")
			wantCode(t, err, c.code)
			if !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("message %q does not say %q", err, c.contains)
			}
		})
	}
	t.Run("expired certificate", func(t *testing.T) {
		tok, err := f.svc.Issue(ctx, manifest("com.acme.app", "Acme", "1.0", expiringSig), "")
		if err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		// The token is cut to the certificate's expiry, an hour, not the usual 24 h.
		f.clock.Add(time.Hour)
		_, err = f.svc.VerifyToken(ctx, tok)
		wantCode(t, err, sesame.CodeTokenExpired)
		_, err = f.svc.Issue(ctx, manifest("com.acme.app", "Acme", "1.0", expiringSig), "")
		wantCode(t, err, sesame.CodeAppUnauthorized)
	})
	// Each refusal is an audit event naming the app and the code.
	found := false
	for _, e := range f.audit.all() {
		if e == "app.token.issue com.other.app ERR_APP_UNAUTHORIZED" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no refusal event in %v", f.audit.all())
	}
}

func decodeSig(t *testing.T, sig string) map[string]any {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encodeSig(t *testing.T, m map[string]any) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestCertificateRequestsAreChecked(t *testing.T) {
	f := newFixture(t)
	pk := apps.EncodePublicKey(randomKey(t).Public().(ed25519.PublicKey))
	past := f.clock.Now().Add(-time.Second)
	cases := []struct {
		name string
		req  apps.CertRequest
		code sesame.Code
	}{
		{"no key", apps.CertRequest{Domains: []string{"com.acme.*"}}, sesame.CodeMissingField},
		{"key not base64", apps.CertRequest{DevPubkey: "nope", Domains: []string{"com.acme.*"}}, sesame.CodeInvalidField},
		{"key too short", apps.CertRequest{DevPubkey: base64.StdEncoding.EncodeToString(make([]byte, 31)), Domains: []string{"com.acme.*"}}, sesame.CodeInvalidField},
		{"key unpadded", apps.CertRequest{DevPubkey: strings.TrimRight(pk, "="), Domains: []string{"com.acme.*"}}, sesame.CodeInvalidField},
		{"no domains", apps.CertRequest{DevPubkey: pk}, sesame.CodeMissingField},
		{"bare star", apps.CertRequest{DevPubkey: pk, Domains: []string{"*"}}, sesame.CodeInvalidField},
		{"top-level star", apps.CertRequest{DevPubkey: pk, Domains: []string{"com.*"}}, sesame.CodeInvalidField},
		{"uppercase", apps.CertRequest{DevPubkey: pk, Domains: []string{"com.Acme.*"}}, sesame.CodeInvalidField},
		{"star inside", apps.CertRequest{DevPubkey: pk, Domains: []string{"com.*.app"}}, sesame.CodeInvalidField},
		{"twice", apps.CertRequest{DevPubkey: pk, Domains: []string{"com.acme.*", "com.acme.*"}}, sesame.CodeInvalidField},
		{"expired", apps.CertRequest{DevPubkey: pk, Domains: []string{"com.acme.*"}, ExpiresAt: &past}, sesame.CodeInvalidField},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.svc.IssueCert(ctx, c.req)
			wantCode(t, err, c.code)
		})
	}
	if cs, _ := f.svc.ListCerts(ctx, "", 10); len(cs) != 0 {
		t.Fatalf("a refused request stored a certificate: %+v", cs)
	}
	c, err := f.svc.IssueCert(ctx, apps.CertRequest{DevPubkey: pk, Domains: []string{"com.acme.*", "org.acme.tool"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.GetCert(ctx, c.ID)
	if err != nil || got.ID != c.ID || string(got.Certificate) != string(c.Certificate) {
		t.Fatalf("get: %+v %v", got, err)
	}
	parsed, err := apps.ParseCertificate(c.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Root != apps.EncodePublicKey(f.svc.TrustRoot()) || parsed.DevPubkey != pk || parsed.Issued != "2026-03-01T12:00:00Z" {
		t.Fatalf("certificate %+v", parsed)
	}
	_, err = f.svc.GetCert(ctx, "cert_nope")
	wantCode(t, err, sesame.CodeNotFound)
	_, err = f.svc.RevokeCert(ctx, "cert_nope")
	wantCode(t, err, sesame.CodeNotFound)
}

func TestTokenRefusals(t *testing.T) {
	f := newFixture(t)
	issue := func(app string) string {
		t.Helper()
		tok, err := f.svc.Issue(ctx, manifest(app, "X", "1", ""), "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := issue("com.example.good")
	other := newFixture(t) // another server: other token key
	foreign, err := other.svc.Issue(ctx, manifest("com.example.good", "X", "1", ""), "")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	invalid := map[string]string{
		"tampered claims":    flip(good, len("v4.public.")+20),
		"tampered signature": flip(good, len(good)-3),
		"another server":     foreign,
		"truncated":          good[:len(good)-10],
		"with a footer":      good + ".e30",
		"not a token":        "v4.public.hello",
		"an API key":         "sesame_0123456789abcdefghijABCDEFGHIJ012345",
		"empty":              "",
		"huge":               "v4.public." + strings.Repeat("A", 5000),
		"v4.local":           "v4.local." + strings.TrimPrefix(good, "v4.public."),
	}
	for name, tok := range invalid {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.VerifyToken(ctx, tok)
			wantCode(t, err, sesame.CodeTokenInvalid)
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Fatal("the error echoes the token")
			}
		})
	}

	t.Run("revoked", func(t *testing.T) {
		tok := f.signedToken(t, "com.acme.revoked")
		p, err := f.svc.VerifyToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.svc.RevokeToken(ctx, p.TokenID); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.VerifyToken(ctx, tok)
		wantCode(t, err, sesame.CodeTokenUnauthorized)
		if err := f.svc.RevokeToken(ctx, p.TokenID); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		wantCode(t, f.svc.RevokeToken(ctx, "tok_000000000000000000000000000000000000"), sesame.CodeNotFound)
		wantCode(t, f.svc.RevokeToken(ctx, "nonsense"), sesame.CodeNotFound)
	})

	t.Run("revoked per app", func(t *testing.T) {
		a1, a2, b := issue("com.example.a"), issue("com.example.a"), issue("com.example.b")
		f.clock.Add(time.Millisecond)
		// Trial tokens have no record: none is counted, all are revoked.
		n, err := f.svc.RevokeAppTokens(ctx, "com.example.a")
		if err != nil || n != 0 {
			t.Fatalf("revoked %d: %v", n, err)
		}
		for _, tok := range []string{a1, a2} {
			_, err := f.svc.VerifyToken(ctx, tok)
			wantCode(t, err, sesame.CodeTokenUnauthorized)
		}
		if _, err := f.svc.VerifyToken(ctx, b); err != nil {
			t.Fatalf("another app's token: %v", err)
		}
		// The app can get a new token.
		f.clock.Add(time.Millisecond)
		if _, err := f.svc.VerifyToken(ctx, issue("com.example.a")); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.RevokeAppTokens(ctx, "Not An App")
		wantCode(t, err, sesame.CodeInvalidField)
	})

	t.Run("revoked with its certificate", func(t *testing.T) {
		d := f.developer(t, "com.acme.*")
		tok, err := f.svc.Issue(ctx, manifest("com.acme.app", "A", "1", d.sign(t, "com.acme.app", "A", "1")), "")
		if err != nil {
			t.Fatal(err)
		}
		n, err := f.svc.RevokeCert(ctx, d.cert.ID)
		if err != nil || n != 1 {
			t.Fatalf("revoked %d tokens: %v", n, err)
		}
		_, err = f.svc.VerifyToken(ctx, tok)
		wantCode(t, err, sesame.CodeTokenUnauthorized)
	})

	t.Run("expired", func(t *testing.T) {
		tok := issue("com.example.expiring")
		f.clock.Add(24*time.Hour - time.Nanosecond)
		if _, err := f.svc.VerifyToken(ctx, tok); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		f.clock.Add(time.Nanosecond)
		_, err := f.svc.VerifyToken(ctx, tok)
		wantCode(t, err, sesame.CodeTokenExpired)
	})

	events := strings.Join(f.audit.all(), "\n")
	for _, want := range []string{"app.token.revoke tok_", "app.tokens.revoke com.example.a ok", "app.cert.revoke cert_", "app.token.revoke nonsense not_found"} {
		if !strings.Contains(events, want) {
			t.Errorf("no audit event %q in\n%s", want, events)
		}
	}
}

func TestConfiguredTokenValidity(t *testing.T) {
	f := newFixture(t, func(c *apps.Config) { c.TokenTTL = 10 * time.Minute })
	tok, err := f.svc.Issue(ctx, manifest("com.example.app", "X", "1", ""), "")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(10 * time.Minute)
	_, err = f.svc.VerifyToken(ctx, tok)
	wantCode(t, err, sesame.CodeTokenExpired)
	if _, err := apps.New(apps.Config{Store: f.st, TrustRoot: randomKey(t), TokenKey: randomKey(t), TokenTTL: time.Millisecond}); err == nil {
		t.Fatal("a sub-second validity was accepted")
	}
}

// replicas are two services over one database, with the same keys, as two processes
// sharing a PostgreSQL server (or one SQLite file) would be.
func replicas(t *testing.T, a, b *store.Store, maxStale time.Duration) (*fixture, *fixture) {
	t.Helper()
	root, key := randomKey(t), randomKey(t)
	same := func(c *apps.Config) { c.TrustRoot, c.TokenKey, c.MaxStale = root, key, maxStale }
	return newFixtureOn(t, a, same), newFixtureOn(t, b, same)
}

func revocationBackends(t *testing.T) map[string]func(t *testing.T) (*store.Store, *store.Store) {
	return map[string]func(t *testing.T) (*store.Store, *store.Store){
		"sqlite": func(t *testing.T) (*store.Store, *store.Store) {
			st := openSQLite(t)
			return st, st
		},
		"postgres": func(t *testing.T) (*store.Store, *store.Store) {
			url := testpg.URL(t)
			open := func() *store.Store {
				st, err := store.OpenPostgres(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
			return open(), open()
		},
	}
}

// A revocation on one replica is refused by another as soon as that one's view is older
// than MaxStale: it syncs before accepting the token. With MaxStale at a nanosecond every
// check syncs, so the test needs no clock and no sleep.
func TestRevocationReachesOtherReplica(t *testing.T) {
	for name, open := range revocationBackends(t) {
		t.Run(name, func(t *testing.T) {
			sa, sb := open(t)
			a, b := replicas(t, sa, sb, time.Nanosecond)
			tok := a.signedToken(t, "com.acme.app")
			p, err := b.svc.VerifyToken(ctx, tok)
			if err != nil {
				t.Fatalf("replica b refuses a token from a: %v", err)
			}
			if err := a.svc.RevokeToken(ctx, p.TokenID); err != nil {
				t.Fatal(err)
			}
			_, err = b.svc.VerifyToken(ctx, tok)
			wantCode(t, err, sesame.CodeTokenUnauthorized)

			// And per app, the other way round.
			tok2, err := b.svc.Issue(ctx, manifest("com.example.other", "X", "1", ""), "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.svc.VerifyToken(ctx, tok2); err != nil {
				t.Fatal(err)
			}
			b.clock.Add(time.Millisecond)
			if _, err := b.svc.RevokeAppTokens(ctx, "com.example.other"); err != nil {
				t.Fatal(err)
			}
			_, err = a.svc.VerifyToken(ctx, tok2)
			wantCode(t, err, sesame.CodeTokenUnauthorized)
		})
	}
}

// With the default MaxStale, a replica that has synced accepts from its view without a
// store round trip, and Sync makes another replica's revocation visible.
func TestSyncBringsRevocationsIn(t *testing.T) {
	st := openSQLite(t)
	a, b := replicas(t, st, st, time.Hour)
	tok := a.signedToken(t, "com.acme.app")
	p, err := b.svc.VerifyToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.svc.RevokeToken(ctx, p.TokenID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.VerifyToken(ctx, tok); err != nil {
		t.Fatalf("within MaxStale b answers from its view: %v", err)
	}
	if err := b.svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.svc.VerifyToken(ctx, tok)
	wantCode(t, err, sesame.CodeTokenUnauthorized)
}

// A replica that cannot bring its view up to date refuses tokens rather than accept one
// that may have been revoked.
func TestStaleViewWithoutStoreRefuses(t *testing.T) {
	f := newFixture(t, func(c *apps.Config) { c.MaxStale = time.Nanosecond })
	tok, _ := f.svc.Issue(ctx, manifest("com.example.app", "X", "1", ""), "")
	if _, err := f.svc.VerifyToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.st.Close()
	_, err := f.svc.VerifyToken(ctx, tok)
	wantCode(t, err, sesame.CodeUnavailable)
}

func TestBearerTokenHeader(t *testing.T) {
	cases := []struct {
		header string
		token  string
		code   sesame.Code
	}{
		{"", "", sesame.CodeMissingAuthHeader},
		{"   ", "", sesame.CodeMissingAuthHeader},
		{"Basic dXNlcjpwYXNz", "", sesame.CodeUnsupportedAuthType},
		{"Token v4.public.abc", "", sesame.CodeUnsupportedAuthType},
		{"v4.public.abc", "", sesame.CodeUnsupportedAuthType},
		{"Bearer", "", sesame.CodeTokenInvalid},
		{"Bearer   ", "", sesame.CodeTokenInvalid},
		{"Bearer v4.public.abc", "v4.public.abc", ""},
		{"bearer  v4.public.abc ", "v4.public.abc", ""},
	}
	for _, c := range cases {
		tok, err := apps.BearerToken(c.header)
		if c.code == "" {
			if err != nil || tok != c.token {
				t.Errorf("%q: %q, %v", c.header, tok, err)
			}
			continue
		}
		if sesame.ErrorCode(err) != c.code {
			t.Errorf("%q: %v, want %s", c.header, err, c.code)
		}
		if err != nil && strings.Contains(err.Error(), "abc") {
			t.Errorf("%q: the error echoes the credential: %v", c.header, err)
		}
	}
}

func TestKeyFromSecretIsStableAndPerPurpose(t *testing.T) {
	s := sesame.NewSecret([]byte("0123456789abcdef0123456789abcdef"))
	a, b := apps.KeyFromSecret(s, "trust-root"), apps.KeyFromSecret(s, "trust-root")
	c := apps.KeyFromSecret(s, "token-key")
	if !a.Equal(b) || a.Equal(c) {
		t.Fatal("keys are not derived per purpose and deterministically")
	}
	if a.Equal(apps.KeyFromSecret(sesame.NewSecret([]byte("another secret")), "trust-root")) {
		t.Fatal("the key does not depend on the secret")
	}
}

func TestIssueAfterStoreFailureReturnsNoToken(t *testing.T) {
	f := newFixture(t)
	d := f.developer(t, "com.acme.app")
	f.st.Close()
	tok, err := f.svc.Issue(ctx, manifest("com.acme.app", "X", "1", d.sign(t, "com.acme.app", "X", "1")), "")
	if err == nil || tok != "" {
		t.Fatalf("token %q, err %v", tok, err)
	}
	// Not a client error (the manifest is fine): the retryable store fault, 503 for clients.
	if code := sesame.ErrorCode(err); code != sesame.CodeStoreUnavailable {
		t.Fatalf("a store failure became %q, not store_unavailable: %v", code, err)
	}
}

// TestTrialTokensAreLimitedPerSource: past the limit a source gets rate_limited with a
// wait; other sources, and signed apps from the same source, are not limited.
func TestTrialTokensAreLimitedPerSource(t *testing.T) {
	var f *fixture
	f = newFixture(t, func(c *apps.Config) {
		c.TrialLimit = auth.NewFailureLimiter(2, time.Minute, func() time.Time { return f.clock.Now() })
	})
	for range 2 {
		if _, err := f.svc.Issue(ctx, manifest("com.example.app", "X", "1", ""), "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.svc.Issue(ctx, manifest("com.example.app", "X", "1", ""), "192.0.2.1")
	wantCode(t, err, sesame.CodeRateLimited)
	var se *sesame.Error
	if !errors.As(err, &se) || se.RetryAfter <= 0 || se.RetryAfter > time.Minute {
		t.Fatalf("retry after: %+v", se)
	}
	if _, err := f.svc.Issue(ctx, manifest("com.example.app", "X", "1", ""), "192.0.2.2"); err != nil {
		t.Fatalf("another source: %v", err)
	}
	d := f.developer(t, "com.acme.app")
	if _, err := f.svc.Issue(ctx, manifest("com.acme.app", "X", "1", d.sign(t, "com.acme.app", "X", "1")), "192.0.2.1"); err != nil {
		t.Fatalf("a signed app from the limited source: %v", err)
	}
	f.clock.Add(time.Minute)
	if _, err := f.svc.Issue(ctx, manifest("com.example.app", "X", "1", ""), "192.0.2.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
