package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

type fixture struct {
	gw    *gateway.Gateway
	v     *vault.Vault
	calls []gateway.CallRecord
}

func (f *fixture) RecordCall(_ context.Context, r gateway.CallRecord) { f.calls = append(f.calls, r) }

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "g.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	k, _ := crypt.GenerateMasterKey()
	v := vault.New(st, crypt.NewKeyring(k), time.Now, slog.New(slog.DiscardHandler))
	if err := v.Unlock(ctx); err != nil {
		tb.Fatal(err)
	}
	f := &fixture{v: v}
	f.gw = gateway.New(gateway.Config{Store: st, Vault: v, Recorder: f})
	return f
}

func (f *fixture) setup(tb testing.TB, upstreamURL string) {
	tb.Helper()
	ctx := context.Background()
	if _, _, err := f.v.PutCredential(ctx, "default", "up.key", []byte(`{"type":"api_key","fields":{"value":"bench-secret"}}`), vault.Actor{Admin: true}); err != nil {
		tb.Fatal(err)
	}
	body := fmt.Sprintf(`{"base_uri":%q,"credential":"up.key","allow_private_networks":true}`, upstreamURL)
	if _, _, _, err := f.gw.PutConnection(ctx, "default", "up", []byte(body), false, vault.Actor{Admin: true}); err != nil {
		tb.Fatal(err)
	}
}

func TestConnectionValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := map[string]struct {
		body string
		code sesame.Code
	}{
		"no base":         {`{}`, sesame.CodeMissingField},
		"ftp":             {`{"base_uri":"ftp://x.example"}`, sesame.CodeInvalidField},
		"userinfo":        {`{"base_uri":"https://u:p@x.example"}`, sesame.CodeInvalidField},
		"query":           {`{"base_uri":"https://x.example/?a=1"}`, sesame.CodeInvalidField},
		"unknown field":   {`{"base_uri":"https://x.example","bogus":1}`, sesame.CodeUnknownField},
		"hop header":      {`{"base_uri":"https://x.example","headers":{"Connection":"close"}}`, sesame.CodeInvalidField},
		"crlf header":     {`{"base_uri":"https://x.example","headers":{"X-A":"a\nb"}}`, sesame.CodeInvalidField},
		"bad test path":   {`{"base_uri":"https://x.example","test":{"path":"/../admin"}}`, sesame.CodeInvalidField},
		"encoded dotdot":  {`{"base_uri":"https://x.example","test":{"path":"/a/%2e%2e/b"}}`, sesame.CodeInvalidField},
		"rate limit":      {`{"base_uri":"https://x.example","rate_limit":{"requests":5}}`, sesame.CodeInvalidField},
		"missing cred":    {`{"base_uri":"https://x.example","credential":"nope"}`, sesame.CodeInvalidField},
		"auth in":         {`{"base_uri":"https://x.example","auth":{"in":"cookie","name":"a"}}`, sesame.CodeInvalidField},
		"retry too large": {`{"base_uri":"https://x.example","retry":{"max_attempts":99}}`, sesame.CodeInvalidField},
		"wrong type":      {`{"base_uri":5}`, sesame.CodeInvalidJSON},
	}
	for name, c := range cases {
		_, _, _, err := f.gw.PutConnection(ctx, "default", "c", []byte(c.body), false, vault.Actor{Admin: true})
		if sesame.ErrorCode(err) != c.code {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	if _, err := f.gw.GetConnection(ctx, "default", "c"); sesame.ErrorCode(err) != sesame.CodeNotFound {
		t.Fatalf("a refused connection was stored: %v", err)
	}
}

func TestProxyRecordsCallsWithoutSecrets(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "bench-secret" {
			w.WriteHeader(401)
		}
	}))
	defer up.Close()
	f := newFixture(t)
	f.setup(t, up.URL)
	req := httptest.NewRequest("GET", "/v1/workspaces/default/proxy/up/x", nil)
	resp, _, err := f.gw.Proxy(sesame.WithPrincipal(context.Background(), sesame.Principal{UserID: "u1", KeyID: "k1"}), "default", "up", req, "x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(f.calls) != 1 {
		t.Fatalf("status %d, %d records", resp.StatusCode, len(f.calls))
	}
	c := f.calls[0]
	if c.Workspace != "default" || c.UserID != "u1" || c.KeyID != "k1" || c.Kind != "proxy" || c.Connection != "up" || c.Status != 200 || c.Latency <= 0 {
		t.Fatalf("record %+v", c)
	}
	if strings.Contains(fmt.Sprintf("%+v", c), "bench-secret") {
		t.Fatal("the record holds the secret")
	}
}

// FuzzProxyPath: whatever path a caller sends, the upstream request stays on the
// connection's scheme, host and port, under its base path.
func FuzzProxyPath(f *testing.F) {
	for _, s := range []string{"x", "a/b", "..", "%2e%2e/x", "//evil.example/", "@evil.example", "a%2F..%2F..%2Fb", "http://evil.example", "..%5c..", "%zz", "a?b#c", ""} {
		f.Add(s)
	}
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.EscapedPath())
	}))
	defer up.Close()
	fx := newFixture(f)
	fx.setup(f, up.URL+"/base")
	f.Fuzz(func(t *testing.T, p string) {
		seen = seen[:0]
		req := httptest.NewRequest("GET", "/", nil)
		resp, _, err := fx.gw.Proxy(context.Background(), "default", "up", req, p)
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, got := range seen {
			if !strings.HasPrefix(got, "/base") {
				t.Fatalf("path %q reached the upstream as %q", p, got)
			}
			for _, seg := range strings.Split(got, "/") {
				if seg == ".." || strings.EqualFold(seg, "%2e%2e") {
					t.Fatalf("path %q reached the upstream with a dot segment: %q", p, got)
				}
			}
		}
	})
}

func BenchmarkProxyAPIKey(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	f := newFixture(b)
	f.setup(b, up.URL)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/", nil)
		resp, _, err := f.gw.Proxy(ctx, "default", "up", req, "hello")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
