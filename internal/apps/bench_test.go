package apps_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/apps"
)

// Benchmarks for PRODUCT.md §5 ("issue app tokens in the tens of thousands per second"),
// and the issue's targets: ≥ 20,000 issues/s and ≥ 50,000 verifies/s per core. Run with
// -cpu 1 for per-core figures.

// quiet logs as a production server does: at info level, so debug lines cost nothing.
func quiet(c *apps.Config) {
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// BenchmarkIssueTrial is the whole of Issue for a trial manifest: parse and check the
// manifest, sign the token (Ed25519), and record it in SQLite.
func BenchmarkIssueTrial(b *testing.B) {
	f := newFixture(b, quiet)
	body := manifest("com.example.bench", "Bench", "1.0", "")
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := f.svc.Issue(ctx, body, "192.0.2.1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueTrialConcurrent is Issue from 32 goroutines per CPU, as a server sees
// concurrent requests: their records share transactions (group commit).
func BenchmarkIssueTrialConcurrent(b *testing.B) {
	f := newFixture(b, quiet)
	body := manifest("com.example.bench", "Bench", "1.0", "")
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.svc.Issue(ctx, body, "192.0.2.1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIssueSigned adds the signed-manifest checks: two Ed25519 verifications
// (certificate, manifest) and the certificate's revocation lookup.
func BenchmarkIssueSigned(b *testing.B) {
	f := newFixture(b, quiet)
	key := randomKey(b)
	cert, err := f.svc.IssueCert(ctx, apps.CertRequest{DevPubkey: apps.EncodePublicKey(key.Public().(ed25519.PublicKey)), Domains: []string{"com.acme.*"}})
	if err != nil {
		b.Fatal(err)
	}
	sig, err := apps.SignManifest(apps.Manifest{AppID: "com.acme.bench", DisplayName: "Bench", Version: "1.0"}, cert.Certificate, key)
	if err != nil {
		b.Fatal(err)
	}
	body := manifest("com.acme.bench", "Bench", "1.0", sig)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := f.svc.Issue(ctx, body, "192.0.2.1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueSignedConcurrent is signed issuance from 32 goroutines per CPU: the
// token records share transactions (and, on SQLite, fsyncs).
func BenchmarkIssueSignedConcurrent(b *testing.B) {
	f := newFixture(b, quiet)
	key := randomKey(b)
	cert, err := f.svc.IssueCert(ctx, apps.CertRequest{DevPubkey: apps.EncodePublicKey(key.Public().(ed25519.PublicKey)), Domains: []string{"com.acme.*"}})
	if err != nil {
		b.Fatal(err)
	}
	sig, err := apps.SignManifest(apps.Manifest{AppID: "com.acme.bench", DisplayName: "Bench", Version: "1.0"}, cert.Certificate, key)
	if err != nil {
		b.Fatal(err)
	}
	body := manifest("com.acme.bench", "Bench", "1.0", sig)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.svc.Issue(ctx, body, "192.0.2.1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyToken is VerifyToken as the middleware calls it on every request: an app
// presents the same token each time, so after the first call the Ed25519 check is cached
// and only expiry and revocation are checked.
func BenchmarkVerifyToken(b *testing.B) {
	f := newFixture(b, quiet)
	tok, err := f.svc.Issue(ctx, manifest("com.example.bench", "Bench", "1.0", ""), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := f.svc.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := f.svc.VerifyToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyTokenFirstUse is VerifyToken on tokens never seen before: the full
// PASETO v4.public verification (Ed25519) and claims decoding, every time.
func BenchmarkVerifyTokenFirstUse(b *testing.B) {
	f := newFixture(b, quiet, func(c *apps.Config) { c.MaxStale = time.Hour })
	const n = 2048
	toks := make([]string, n)
	for i := range toks {
		var err error
		if toks[i], err = f.svc.Issue(ctx, manifest(fmt.Sprintf("com.example.b%d", i), "Bench", "1.0", ""), ""); err != nil {
			b.Fatal(err)
		}
	}
	// Fresh services with the same keys see each token for the first time.
	b.ReportAllocs()
	defer reportCPU(b)()
	i := 0
	var svc *apps.Service
	for b.Loop() {
		if i%n == 0 {
			b.StopTimer()
			svc = f.sameKeys(b)
			b.StartTimer()
		}
		if _, err := svc.VerifyToken(ctx, toks[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyTokenParallel is the cached path from many goroutines.
func BenchmarkVerifyTokenParallel(b *testing.B) {
	f := newFixture(b, quiet)
	tok, err := f.svc.Issue(ctx, manifest("com.example.bench", "Bench", "1.0", ""), "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.svc.VerifyToken(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
