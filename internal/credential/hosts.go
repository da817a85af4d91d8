package credential

import (
	"net"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

// checkHosts validates a "hosts" list: each entry is a host name or IP, optionally with a
// port, or a wildcard "*.example.com" that matches any subdomain.
func checkHosts(hosts []any) error {
	for _, h := range hosts {
		if !validHostPattern(h.(string)) {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q: entries must be host names (api.example.com), host:port, or *.example.com", "hosts")
		}
	}
	return nil
}

func validHostPattern(p string) bool {
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		host, port = p, ""
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	host = strings.TrimPrefix(host, "*.")
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
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// HostAllowed reports whether a credential whose public fields are public may be sent to
// the URL host hostport ("host" or "host:port"). A credential without "hosts" may go
// anywhere its connection points.
func HostAllowed(public map[string]any, hostport string) bool {
	list, ok := public["hosts"].([]any)
	if !ok || len(list) == 0 {
		return true
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, e := range list {
		p, _ := e.(string)
		ph, pp, err := net.SplitHostPort(p)
		if err != nil {
			ph, pp = p, ""
		}
		if pp != "" && pp != port {
			continue
		}
		ph = strings.ToLower(ph)
		if suffix, ok := strings.CutPrefix(ph, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == ph {
			return true
		}
	}
	return false
}
