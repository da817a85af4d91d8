package jwtinject_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwtinject"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// BenchmarkProxy measures a proxied call in process (gateway, vault on SQLite, the
// jwt_bearer injector, a loopback upstream) per way of injecting: an API key as the
// baseline, a cached signed JWT (reuse), a cached exchanged access token, and a JWT
// signed per call.
func BenchmarkProxy(b *testing.B) {
	ctx := context.Background()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && r.Header.Get("X-API-Key") == "" {
			http.Error(w, "no credential", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"access_token":"at-bench-0123456789","token_type":"Bearer","expires_in":3600}`)
	}))
	defer tokens.Close()

	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	mk, _ := crypt.GenerateMasterKey()
	kr := crypt.NewKeyring(mk)
	v := vault.New(st, kr, time.Now, slog.New(slog.DiscardHandler))
	if err := v.Unlock(ctx); err != nil {
		b.Fatal(err)
	}
	inj := jwtinject.New(jwtinject.Options{Sealer: kr, AllowPrivate: true})
	gw := gateway.New(gateway.Config{Store: st, Vault: v, Injectors: map[string]gateway.Injector{"jwt_bearer": inj},
		Recorder: nopRecorder{}})

	ec := jwttest.PKCS8(b, jwttest.KeyFor(b, "ES256"))
	rsa := jwttest.PKCS8(b, jwttest.KeyFor(b, "RS256"))
	payload := map[string]any{"iss": "svc@project.iam", "aud": "https://api.example.com", "scope": "read"}
	creds := []struct {
		name string
		body map[string]any
	}{
		{"api_key", map[string]any{"type": "api_key", "fields": map[string]any{"value": "bench-secret"}}},
		{"jwt-reuse-ES256", map[string]any{"type": "jwt_bearer", "fields": map[string]any{"alg": "ES256", "private_key": ec, "payload": payload, "reuse": true}}},
		{"jwt-exchanged-token", map[string]any{"type": "jwt_bearer", "fields": map[string]any{"alg": "ES256", "private_key": ec, "payload": payload, "token_url": tokens.URL}}},
		{"jwt-fresh-ES256", map[string]any{"type": "jwt_bearer", "fields": map[string]any{"alg": "ES256", "private_key": ec, "payload": payload}}},
		{"jwt-fresh-RS256", map[string]any{"type": "jwt_bearer", "fields": map[string]any{"alg": "RS256", "private_key": rsa, "payload": payload}}},
	}
	for _, c := range creds {
		body, _ := json.Marshal(c.body)
		if _, _, err := v.PutCredential(ctx, "default", c.name, body, vault.Actor{Admin: true}); err != nil {
			b.Fatal(err)
		}
		conn := fmt.Sprintf(`{"base_uri":%q,"credential":%q,"allow_private_networks":true}`, up.URL, c.name)
		if _, _, _, err := gw.PutConnection(ctx, "default", c.name, []byte(conn), false, vault.Actor{Admin: true}); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			call := func() {
				req := httptest.NewRequest("GET", "/", nil)
				resp, _, err := gw.Proxy(ctx, "default", c.name, req, "hello")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			call() // warm the caches: the signer, the token
			b.ReportAllocs()
			for b.Loop() {
				call()
			}
		})
	}
}

type nopRecorder struct{}

func (nopRecorder) RecordCall(context.Context, gateway.CallRecord) {}
