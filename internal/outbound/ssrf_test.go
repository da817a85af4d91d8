package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestForbidden(t *testing.T) {
	tests := []struct {
		addr      string
		forbidden bool
	}{
		// IPv4 loopback, unspecified, "this network"
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		// link-local and cloud metadata
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		// private
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		// carrier-grade NAT
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		// multicast, broadcast, reserved, benchmarking, protocol assignments
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"255.255.255.255", true},
		{"240.0.0.1", true},
		{"198.18.0.1", true},
		{"192.0.0.170", true},
		// IPv6 loopback, unspecified, link-local, unique local, multicast
		{"::1", true},
		{"::", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fd00:ec2::254", true}, // AWS IPv6 metadata
		{"ff02::1", true},
		{"fec0::1", true},
		{"100::1", true},
		{"::127.0.0.1", true}, // deprecated IPv4-compatible
		// IPv4-mapped IPv6
		{"::ffff:127.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:0.0.0.0", true},
		{"::ffff:0:127.0.0.1", true}, // IPv4-translated (SIIT)
		// NAT64 embedding forbidden addresses
		{"64:ff9b::7f00:1", true},          // 127.0.0.1
		{"64:ff9b::169.254.169.254", true}, // metadata
		{"64:ff9b::10.1.2.3", true},
		{"64:ff9b:1::1", true}, // local-use NAT64
		// 6to4 and Teredo embedding forbidden addresses
		{"2002:7f00:1::1", true},
		{"2002:a9fe:a9fe::1", true},
		{"2001:0:7f00:1::1", true},            // Teredo server 127.0.0.1
		{"2001:0:5db8:d822::80ff:fffe", true}, // Teredo client (obfuscated) 127.0.0.1
		// allowed public addresses
		{"93.184.216.34", false},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"172.32.0.1", false},
		{"100.128.0.1", false},
		{"169.253.255.255", false},
		{"192.169.0.1", false},
		{"2606:4700::1", false},
		{"2a00:1450:4001:80b::200e", false},
		{"::ffff:93.184.216.34", false},
		{"64:ff9b::93.184.216.34", false},
		{"2002:5db8:d822::1", false},
		{"2001:0:5db8:d822::a247:27dd", false}, // Teredo, server and client both public
	}
	for _, tt := range tests {
		ip, err := netip.ParseAddr(tt.addr)
		if err != nil {
			t.Fatalf("ParseAddr(%q): %v", tt.addr, err)
		}
		if got := Forbidden(ip); got != tt.forbidden {
			t.Errorf("Forbidden(%s) = %v, want %v", tt.addr, got, tt.forbidden)
		}
	}
	if !Forbidden(netip.Addr{}) {
		t.Error("the zero Addr is not forbidden")
	}
}

// countingServer is an httptest server that counts the connections it accepts and the
// requests it serves.
type countingServer struct {
	*httptest.Server
	conns, reqs atomic.Int64
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	return startCountingServer(t, h, false)
}

func newCountingTLSServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	return startCountingServer(t, h, true)
}

func startCountingServer(t *testing.T, h http.HandlerFunc, useTLS bool) *countingServer {
	t.Helper()
	cs := &countingServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.reqs.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	cs.Server = srv
	return cs
}

func (cs *countingServer) port() string {
	_, p, _ := net.SplitHostPort(cs.Listener.Addr().String())
	return p
}

func get(t *testing.T, rt http.RoundTripper, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return (&http.Client{Transport: rt}).Do(req)
}

func TestTransportRefusesPrivateAddressesAtDial(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	urls := map[string]string{
		"loopback literal":  srv.URL,
		"name to loopback":  "http://localhost:" + srv.port() + "/",
		"IPv4-mapped IPv6":  "http://[::ffff:127.0.0.1]:" + srv.port() + "/",
		"unspecified":       "http://0.0.0.0:" + srv.port() + "/",
		"metadata":          "http://169.254.169.254/latest/meta-data/",
		"NAT64 of loopback": "http://[64:ff9b::7f00:1]:" + srv.port() + "/",
	}
	tr := NewTransport(false)
	defer tr.CloseIdleConnections()
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			resp, err := get(t, tr, u)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded, want ErrForbiddenAddress", u)
			}
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("GET %s: %v, want ErrForbiddenAddress", u, err)
			}
		})
	}
	if n, c := srv.reqs.Load(), srv.conns.Load(); n != 0 || c != 0 {
		t.Errorf("server saw %d requests over %d connections, want none", n, c)
	}
}

func TestTransportAllowPrivate(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	tr := NewTransport(true)
	defer tr.CloseIdleConnections()
	for _, u := range []string{srv.URL, "http://localhost:" + srv.port() + "/", "http://[::ffff:127.0.0.1]:" + srv.port() + "/"} {
		resp, err := get(t, tr, u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Errorf("GET %s: body %q", u, b)
		}
	}
	if srv.reqs.Load() != 3 {
		t.Errorf("server saw %d requests, want 3", srv.reqs.Load())
	}
}

func TestTransportSettings(t *testing.T) {
	tr := NewTransport(false)
	if tr.Proxy != nil {
		t.Error("transport uses a proxy")
	}
	if tr.MaxIdleConnsPerHost != 256 || !tr.ForceAttemptHTTP2 || tr.IdleConnTimeout == 0 || tr.TLSHandshakeTimeout == 0 {
		t.Errorf("pooling settings: %+v", tr)
	}
}

func TestClientRefusesForbiddenAddressWithoutRetry(t *testing.T) {
	srv := newCountingServer(t, nil)
	clock := newFakeClock()
	c := NewClient(Policy{}, clock)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/path?api_key=SECRETVALUE", nil)
	req.Header.Set("Authorization", "Bearer SECRETTOKEN")
	_, err := c.Do(req)
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Do: %v, want ErrForbiddenAddress", err)
	}
	if len(clock.Sleeps()) != 0 {
		t.Errorf("forbidden address retried: sleeps %v", clock.Sleeps())
	}
	for _, s := range []string{"SECRET", "api_key", "/path"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
	if srv.conns.Load() != 0 {
		t.Errorf("server saw %d connections", srv.conns.Load())
	}
}
