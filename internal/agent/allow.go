package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrRefused is wrapped by the error of a target that the agent's allowlist refuses.
var ErrRefused = errors.New("agent: target not in the allowlist")

// Allowlist is the agent's own, local bound on what it will dial for the server: rules
// of the form HOST:PORT (a DNS name or an IP address and one port) or a CIDR (every port of
// the addresses in it; a bare IP address is a /32 or /128). The server cannot widen it.
//
// Link-local addresses (which include the cloud metadata endpoints 169.254.169.254 and
// fd00:ec2::254), the unspecified address and multicast are refused even when a name rule
// or a wide CIDR covers them; only a CIDR that lies inside such a range (for example
// 169.254.169.254/32) allows them.
type Allowlist struct {
	hosts []hostRule
	nets  []netip.Prefix
}

type hostRule struct {
	host string // lower case, no trailing dot; an IP literal in its canonical form
	port uint16
}

// sensitive are ranges dialled only when a CIDR inside them is listed.
var sensitive = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),     // IPv4 link-local, cloud metadata
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("fe80::/10"),         // IPv6 link-local
	netip.MustParsePrefix("fd00:ec2::254/128"), // AWS metadata over IPv6
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("ff00::/8"),
}

// ParseAllowlist parses rules; an empty list refuses everything.
func ParseAllowlist(rules []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, r := range rules {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if p, err := netip.ParsePrefix(r); err == nil {
			a.nets = append(a.nets, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(r); err == nil {
			ip = ip.Unmap()
			a.nets = append(a.nets, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		host, port, err := net.SplitHostPort(r)
		if err != nil || host == "" {
			return nil, fmt.Errorf("allow rule %q: want HOST:PORT, an IP address or a CIDR", r)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("allow rule %q: the port must be a number from 1 to 65535", r)
		}
		a.hosts = append(a.hosts, hostRule{host: canonicalHost(host), port: uint16(n)})
	}
	return a, nil
}

// Empty reports whether the list allows nothing.
func (a *Allowlist) Empty() bool { return len(a.hosts) == 0 && len(a.nets) == 0 }

// String lists the rules, for logs.
func (a *Allowlist) String() string {
	var parts []string
	for _, h := range a.hosts {
		parts = append(parts, net.JoinHostPort(h.host, strconv.Itoa(int(h.port))))
	}
	for _, n := range a.nets {
		parts = append(parts, n.String())
	}
	return strings.Join(parts, ",")
}

func canonicalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// Resolver looks up a name's addresses (net.DefaultResolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Check decides whether target (host:port) may be dialled and returns the one address to
// dial: the name is resolved here, once, and the address checked is the address dialled, so
// a name that changes its answer between check and dial (DNS rebinding) gains nothing.
func (a *Allowlist) Check(ctx context.Context, r Resolver, target string) (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return netip.AddrPort{}, fmt.Errorf("%w: %q is not host:port", ErrRefused, target)
	}
	n, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || n == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: bad port in %q", ErrRefused, target)
	}
	port := uint16(n)
	host = canonicalHost(host)
	byName := false
	for _, h := range a.hosts {
		if h.host == host && h.port == port {
			byName = true
			break
		}
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		if !byName && len(a.nets) == 0 {
			return netip.AddrPort{}, fmt.Errorf("%w: %s", ErrRefused, target)
		}
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("agent: resolve %s: %w", host, err)
		}
	}
	for _, ip := range addrs {
		ip = ip.WithZone("").Unmap()
		if a.allows(ip, byName) {
			return netip.AddrPortFrom(ip, port), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w: %s", ErrRefused, target)
}

// allows reports whether ip may be dialled, byName saying whether a HOST:PORT rule named it.
func (a *Allowlist) allows(ip netip.Addr, byName bool) bool {
	for _, s := range sensitive {
		if s.Contains(ip) {
			// Only a CIDR inside the sensitive range itself lets it through.
			for _, n := range a.nets {
				if n.Contains(ip) && n.Bits() >= s.Bits() {
					return true
				}
			}
			return false
		}
	}
	if byName {
		return true
	}
	for _, n := range a.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
