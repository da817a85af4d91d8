package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned (wrapped) when a dial would reach an address that
// Forbidden refuses and the connection does not allow private networks.
var ErrForbiddenAddress = errors.New("outbound: address not allowed (private, loopback, link-local or reserved)")

// forbiddenV4 are the IPv4 ranges that are not on the public internet.
var forbiddenV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", includes 0.0.0.0
	netip.MustParsePrefix("10.0.0.0/8"),     // private
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata 169.254.169.254
	netip.MustParsePrefix("172.16.0.0/12"),  // private
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments (DS-Lite, NAT64 discovery)
	netip.MustParsePrefix("192.168.0.0/16"), // private
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, includes broadcast 255.255.255.255
}

// forbiddenV6 are the IPv6 ranges that are not on the public internet. Ranges that embed
// an IPv4 address (mapped, NAT64, 6to4, Teredo) are handled by embeddedV4 instead.
var forbiddenV6 = []netip.Prefix{
	netip.MustParsePrefix("::/96"),          // unspecified, loopback, deprecated IPv4-compatible
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("fc00::/7"),       // unique local, includes AWS metadata fd00:ec2::254
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052 well-known prefix
	siitPrefix   = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 IPv4-translated
	sixToFour    = netip.MustParsePrefix("2002::/16")       // 6to4
	teredoPrefix = netip.MustParsePrefix("2001::/32")       // Teredo
)

// Forbidden reports whether ip may not be reached unless the connection allows private
// networks: loopback, unspecified, link-local (including cloud metadata addresses),
// private and unique-local, carrier-grade NAT, multicast, broadcast and reserved ranges,
// and IPv6 forms that embed any of these (IPv4-mapped, NAT64, 6to4, Teredo). An invalid
// address is forbidden.
func Forbidden(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return inAny(ip, forbiddenV4)
	}
	if inAny(ip, forbiddenV6) {
		return true
	}
	if v4, ok := embeddedV4(ip); ok {
		for _, a := range v4 {
			if inAny(a, forbiddenV4) {
				return true
			}
		}
	}
	return false
}

func inAny(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// embeddedV4 returns the IPv4 addresses that an IPv6 transition address routes to.
func embeddedV4(ip netip.Addr) ([]netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip), siitPrefix.Contains(ip):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[12:16]))}, true
	case sixToFour.Contains(ip):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}, true
	case teredoPrefix.Contains(ip):
		server := netip.AddrFrom4([4]byte(b[4:8]))
		client := netip.AddrFrom4([4]byte{b[12] ^ 0xff, b[13] ^ 0xff, b[14] ^ 0xff, b[15] ^ 0xff})
		return []netip.Addr{server, client}, true
	}
	return nil, false
}

// checkDial is the dialer's ControlContext: it sees the resolved address of each
// connection attempt, after DNS, just before connect.
func checkDial(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable %s address %q", ErrForbiddenAddress, network, address)
	}
	if Forbidden(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr().Unmap())
	}
	return nil
}

// NewTransport returns a transport for one connection. Unless allowPrivate, its dialer
// refuses (with ErrForbiddenAddress) any resolved address that Forbidden reports, so
// names that resolve to private addresses and DNS rebinding are caught at dial time.
// It never uses proxies from the environment. The time to the response headers is
// bounded per request by Client, not here.
func NewTransport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.ControlContext = checkDial
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}
