//go:build benchprofile

// Package proxyprof profiles Sesame's proxy path in process: the HTTP API handler, wired
// as `sesame serve` wires it (SQLite store, vault, API-key auth, gateway), serves
// GET /v1/workspaces/default/proxy/up/hello against a loopback upstream, with no inbound
// network in the way. It is behind the benchprofile build tag so that `go test ./...`
// neither builds nor runs it (it follows the internal wiring, which moves):
//
//	go test -tags benchprofile -run '^$' -bench Proxy -benchmem -cpu 2 \
//	    -cpuprofile /tmp/proxy.cpu ./bench/proxyprof
//	go tool pprof -top -cum bench/proxyprof/proxyprof.test /tmp/proxy.cpu
package proxyprof

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

var upstreamBody = []byte(`{"id":42,"name":"bench","ok":true,"items":[1,2,3],"message":"hello from the loopback upstream"}` + "\n")

// largeBody is 64 KiB of JSON that quotes the credential once near the end, as an
// upstream that echoes request headers would: the proxy must redact it.
var largeBody = append(bytes.Repeat([]byte(`{"id":42,"name":"bench","ok":true,"items":[1,2,3]},`), 1300),
	[]byte(`{"echo":{"X-Api-Key":"bench-secret"}}`+"\n")...)

// setup returns the API handler with the credential and connection of bench/load, and
// the admin key.
func setup(b *testing.B) (http.Handler, string) {
	b.Helper()
	ctx := context.Background()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "bench-secret" {
			http.Error(w, "no credential", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/large" {
			_, _ = w.Write(largeBody)
			return
		}
		_, _ = w.Write(upstreamBody)
	}))
	b.Cleanup(up.Close)

	log := slog.New(slog.DiscardHandler)
	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "sesame.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	mk, err := crypt.GenerateMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	v := vault.New(st, crypt.NewKeyring(mk), time.Now, log)
	if err := v.Unlock(ctx); err != nil {
		b.Fatal(err)
	}
	pepper, err := v.ServerSecret(ctx, "api-key-hmac")
	if err != nil {
		b.Fatal(err)
	}
	hasher := auth.NewHasher(pepper)
	authn := auth.New(st, hasher, time.Now, log)
	acc := access.New(st, hasher, time.Now, log)
	acc.OnChange(authn.Invalidate)
	key, err := authn.Bootstrap(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	gw := gateway.New(gateway.Config{Store: st, Vault: v, Logger: log})
	api := httpapi.New(httpapi.Config{Vault: v, Auth: authn, Access: acc, Gateway: gw, Ready: st.Ping, Logger: log})
	bearer := "Bearer " + string(key.Reveal())

	put := func(path, body string) {
		req := httptest.NewRequest(http.MethodPut, path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", bearer)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			b.Fatalf("PUT %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	put("/v1/workspaces/default/credentials/up.key", `{"type":"api_key","fields":{"value":"bench-secret","name":"X-API-Key"}}`)
	put("/v1/workspaces/default/connections/up?test=false", `{"base_uri":"`+up.URL+`","credential":"up.key","allow_private_networks":true}`)
	return api, bearer
}

// discardWriter is a minimal http.ResponseWriter, cheaper than httptest.ResponseRecorder,
// so that the profile shows Sesame rather than the recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkProxy(b *testing.B) { benchmarkProxy(b, "hello") }

// BenchmarkProxyLarge proxies largeBody (64 KiB, the credential quoted once), so that the
// per-byte cost of scanning responses for injected values shows.
func BenchmarkProxyLarge(b *testing.B) { benchmarkProxy(b, "large") }

func benchmarkProxy(b *testing.B, path string) {
	api, bearer := setup(b)
	b.ReportAllocs()
	b.SetParallelism(8) // 8 × GOMAXPROCS goroutines: 16 at -cpu 2, as bench/load's default
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://sesame.test/v1/workspaces/default/proxy/up/"+path, nil)
			req.Header.Set("Authorization", bearer)
			clear(w.h)
			w.status = 0
			api.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}

// BenchmarkAuthenticatedNotFound is the same authenticated request to a route that does
// no outbound call, to separate the inbound cost (auth, middleware) from the proxying.
func BenchmarkAuthenticatedNotFound(b *testing.B) {
	api, bearer := setup(b)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://sesame.test/v1/workspaces/default/credentials/missing", nil)
			req.Header.Set("Authorization", bearer)
			clear(w.h)
			w.status = 0
			api.ServeHTTP(w, req)
			if w.status != http.StatusNotFound {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}
