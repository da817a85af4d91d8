package credential

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

// A "hosts" entry says where a credential may be sent. It is "host", "host:port" or
// "scheme://host[:port]"; the host may be "*.example.com" (any subdomain). Without a
// scheme it means https, and without a port the scheme's default port: "api.example.com"
// allows https://api.example.com:443 only, never plain http. When a credential saved
// without hosts is first used, it is bound to the origin of that use, written in full
// ("http://127.0.0.1:8080").

// hostEntry is a parsed "hosts" entry.
type hostEntry struct {
	scheme   string // "http" or "https"
	host     string // lower case, without brackets or a trailing dot; "*.x" for wildcards
	port     string // always set
	wildcard bool
}

// parseHostEntry parses one entry; ok is false if it is not a valid entry.
func parseHostEntry(s string) (hostEntry, bool) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "https://" + s
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(u.Host, ":") {
		return hostEntry{}, false
	}
	e := hostEntry{scheme: u.Scheme, host: normalHost(u.Hostname()), port: u.Port()}
	if e.port == "" {
		e.port = defaultPort(e.scheme)
	} else if n, err := strconv.Atoi(e.port); err != nil || n < 1 || n > 65535 {
		return hostEntry{}, false
	}
	name := e.host
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		e.wildcard, name = true, rest
	}
	if !validHostName(name) || (e.wildcard && net.ParseIP(name) != nil) {
		return hostEntry{}, false
	}
	return e, true
}

// String is the entry's canonical form: "https://api.example.com", "http://10.0.0.5:8080".
func (e hostEntry) String() string {
	h := e.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if e.port != defaultPort(e.scheme) {
		h += ":" + e.port
	}
	return e.scheme + "://" + h
}

// allows reports whether the entry covers the origin (scheme, host, port) of u.
func (e hostEntry) allows(scheme, host, port string) bool {
	if scheme != e.scheme || port != e.port {
		return false
	}
	if e.wildcard {
		return strings.HasSuffix(host, e.host[1:]) // ".example.com": a subdomain, not the apex
	}
	return host == e.host
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

func normalHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

func validHostName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkHosts validates a "hosts" list.
func checkHosts(hosts []any) error {
	for _, h := range hosts {
		if _, ok := parseHostEntry(h.(string)); !ok {
			return sesame.Errorf(sesame.CodeInvalidField,
				"field %q: entries must be host (https on 443), host:port (https) or scheme://host[:port]; the host may be *.example.com", "hosts")
		}
	}
	return nil
}

// Hosts returns a credential's "hosts" entries; none means it is not bound yet.
func Hosts(public map[string]any) []string {
	list, _ := public["hosts"].([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// HostsAllow reports whether hosts allows sending a credential to u. Entries that do not
// parse allow nothing. No entries allow nothing either: callers bind an unbound
// credential before they ask.
func HostsAllow(hosts []string, u *url.URL) bool {
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host, port := normalHost(u.Hostname()), u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	for _, s := range hosts {
		if e, ok := parseHostEntry(s); ok && e.allows(u.Scheme, host, port) {
			return true
		}
	}
	return false
}

// Origin returns the "hosts" entry that binds a credential to u's origin exactly:
// scheme, host and port.
func Origin(u *url.URL) string {
	e := hostEntry{scheme: u.Scheme, host: normalHost(u.Hostname()), port: u.Port()}
	if e.port == "" {
		e.port = defaultPort(e.scheme)
	}
	return e.String()
}

// canonicalHosts returns the canonical, sorted, de-duplicated form of hosts entries.
func canonicalHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, s := range hosts {
		if e, ok := parseHostEntry(s); ok {
			out = append(out, e.String())
		} else {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
