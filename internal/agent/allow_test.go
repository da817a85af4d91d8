package agent

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// fakeResolver answers fixed addresses: the allowlist is a pure function of the rules and
// the resolver's answer, and a real resolver would make the test depend on the network.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestAllowlistDecides(t *testing.T) {
	a, err := ParseAllowlist([]string{"erp.corp:443", "10.1.0.0/16", "192.168.7.9", "metadata.corp:80", "169.254.170.2/32", "0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	r := fakeResolver{
		"erp.corp":      {netip.MustParseAddr("172.20.0.5")},
		"metadata.corp": {netip.MustParseAddr("169.254.169.254")},
		"rebind.corp":   {netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("10.1.2.3")},
	}
	cases := []struct {
		target string
		want   string // the address dialled, or "" for refused
	}{
		{"erp.corp:443", "172.20.0.5:443"},
		{"ERP.corp.:443", "172.20.0.5:443"},
		{"10.1.200.3:5432", "10.1.200.3:5432"},
		{"192.168.7.9:22", "192.168.7.9:22"},
		{"8.8.8.8:53", "8.8.8.8:53"}, // 0.0.0.0/0 covers it
		// Link-local and metadata: not by name, not by 0.0.0.0/0; only by a CIDR inside the range.
		{"169.254.169.254:80", ""},
		{"metadata.corp:80", ""},
		{"[::ffff:169.254.169.254]:80", ""},
		{"169.254.170.2:80", "169.254.170.2:80"},
		{"[fe80::1]:80", ""},
		{"0.0.0.0:80", ""},
		// A name that resolves to a refused and an allowed address dials the allowed one.
		{"rebind.corp:8080", "10.1.2.3:8080"},
		{"nowhere:1", ""},
		{"garbage", ""},
	}
	for _, c := range cases {
		got, err := a.Check(context.Background(), r, c.target)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s: allowed (%s), want refused", c.target, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%s: got %s, %v; want %s", c.target, got, err, c.want)
		}
	}

	narrow, _ := ParseAllowlist([]string{"127.0.0.1:8080"})
	for _, target := range []string{"127.0.0.1:8081", "localhost:8080", "10.0.0.1:8080"} {
		if _, err := narrow.Check(context.Background(), r, target); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", target, err)
		}
	}
	for _, bad := range []string{"host", "host:0", "host:99999", "10.0.0.0/33"} {
		if _, err := ParseAllowlist([]string{bad}); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
}

func TestTokenFormat(t *testing.T) {
	tok, err := newToken("acme", "plant-1.eu")
	if err != nil {
		t.Fatal(err)
	}
	ws, name, err := parseToken(tok)
	if err != nil || ws != "acme" || name != "plant-1.eu" {
		t.Fatalf("parseToken(%s) = %q %q %v", tok, ws, name, err)
	}
	flipped := []byte(tok)
	flipped[len(tok)-10] ^= 1
	if _, _, err := parseToken(string(flipped)); err == nil {
		t.Fatal("a token with a changed character passed the checksum")
	}
	if _, _, err := parseToken("sesame_" + tok[len(TokenPrefix):]); err == nil {
		t.Fatal("an API-key-prefixed token was accepted")
	}
}
