package outbound

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkClientDo measures one call through a connection's client (limiter, attempt
// timeout, redirect policy, retry bookkeeping) to a loopback server; compare with
// BenchmarkBareTransport for the overhead over net/http alone.
func BenchmarkClientDo(b *testing.B) {
	srv := benchServer(b)
	c := NewClient(Policy{AllowPrivate: true, Limits: Limits{Requests: 1e9, Per: time.Second}}, nil)
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/items?limit=10", nil)
		req.Header.Set("Authorization", "Bearer token")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkClientDoParallel(b *testing.B) {
	srv := benchServer(b)
	c := NewClient(Policy{AllowPrivate: true}, nil)
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/items?limit=10", nil)
			req.Header.Set("Authorization", "Bearer token")
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkBareTransport is the baseline: the same call with net/http and nothing else.
func BenchmarkBareTransport(b *testing.B) {
	srv := benchServer(b)
	hc := &http.Client{Transport: NewTransport(true)}
	defer hc.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/items?limit=10", nil)
		req.Header.Set("Authorization", "Bearer token")
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkLimiterWait(b *testing.B) {
	l := NewLimiter(Limits{Requests: 1e9, Per: time.Second}, nil)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
