package agent

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/outbound"
)

// tunnel is a hub behind a WebSocket endpoint and an agent connected to it, in this
// process, over real loopback TCP; upstream is a real HTTP server the agent may reach.
type tunnel struct {
	hub      *Hub
	upstream *httptest.Server
}

func newTunnel(tb testing.TB) *tunnel {
	tb.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(w, r.Body) // echo: as many bytes down as up
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	tb.Cleanup(up.Close)
	hub := NewHub(HubConfig{})
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		ctx := context.WithoutCancel(r.Context())
		hub.Serve(ctx, websocket.NetConn(ctx, c, websocket.MessageBinary), SessionInfo{Workspace: "w", Name: "a"}, nil)
	}))
	tb.Cleanup(ws.Close)
	allow, err := ParseAllowlist([]string{up.Listener.Addr().String()})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Servers: []string{ws.URL}, Token: sesame.NewSecret([]byte("t")), Allow: allow, Version: "bench"})
	}()
	tb.Cleanup(func() { cancel(); hub.Close(); <-done })
	for start := time.Now(); hub.Sessions() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			tb.Fatal("the agent did not connect")
		}
	}
	return &tunnel{hub: hub, upstream: up}
}

func (t *tunnel) client(throughAgent bool) *outbound.Client {
	p := outbound.Policy{AllowPrivate: true}
	if throughAgent {
		p.Dial = func(ctx context.Context, _, addr string) (net.Conn, error) { return t.hub.Dial(ctx, "w", "a", addr) }
	}
	return outbound.NewClient(p, nil)
}

func call(tb testing.TB, c *outbound.Client, method, url string, body []byte) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || (body != nil && n != int64(len(body))) {
		tb.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// BenchmarkSmallCall is the latency of a small GET (kept-alive connection), direct and
// through the agent.
func BenchmarkSmallCall(b *testing.B) {
	tn := newTunnel(b)
	for _, via := range []string{"direct", "agent"} {
		b.Run(via, func(b *testing.B) {
			c := tn.client(via == "agent")
			url := tn.upstream.URL + "/small"
			call(b, c, "GET", url, nil)
			for b.Loop() {
				call(b, c, "GET", url, nil)
			}
		})
	}
}

// BenchmarkSmallCallParallel is the same with concurrent callers (throughput in calls/s).
func BenchmarkSmallCallParallel(b *testing.B) {
	tn := newTunnel(b)
	for _, via := range []string{"direct", "agent"} {
		b.Run(via, func(b *testing.B) {
			c := tn.client(via == "agent")
			url := tn.upstream.URL + "/small"
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call(b, c, "GET", url, nil)
				}
			})
		})
	}
}

// BenchmarkEcho1MiB sends 1 MiB up and receives it back: throughput (MB/s counts both
// directions).
func BenchmarkEcho1MiB(b *testing.B) {
	tn := newTunnel(b)
	body := bytes.Repeat([]byte("x"), 1<<20)
	for _, via := range []string{"direct", "agent"} {
		b.Run(via, func(b *testing.B) {
			c := tn.client(via == "agent")
			url := tn.upstream.URL + "/echo"
			b.SetBytes(2 << 20)
			for b.Loop() {
				call(b, c, "POST", url, body)
			}
		})
	}
}

// TestTunnelCarriesCalls keeps the benchmark's rig honest under go test.
func TestTunnelCarriesCalls(t *testing.T) {
	tn := newTunnel(t)
	c := tn.client(true)
	call(t, c, "GET", tn.upstream.URL+"/small", nil)
	if tn.hub.StreamsInFlight() != 1 {
		t.Fatalf("%d streams counted while one pooled connection is open", tn.hub.StreamsInFlight())
	}
	call(t, c, "POST", tn.upstream.URL+"/echo", bytes.Repeat([]byte("y"), 3<<20))
}
