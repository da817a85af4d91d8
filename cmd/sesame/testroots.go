package main

import (
	"context"
	"crypto/x509"
)

// testRootsKey is the context key under which this package's tests hand run the TLS
// roots that outbound calls trust instead of the system's (the certificate of an
// httptest TLS upstream). The key is unexported and main passes context.Background(),
// so nothing a user controls (flag, variable, file) reaches it: production always
// uses the system's roots.
type testRootsKey struct{}

// testRootCAs returns the roots a test put in ctx, or nil.
func testRootCAs(ctx context.Context) *x509.CertPool {
	p, _ := ctx.Value(testRootsKey{}).(*x509.CertPool)
	return p
}
