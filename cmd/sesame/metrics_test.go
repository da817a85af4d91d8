package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/oauthtest"
)

// scrape GETs a metrics URL with the given headers and returns the text.
func scrape(t *testing.T, url string, h http.Header) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// sample is the value of the series name{labels…} (labels given as `k="v"` pairs, in any
// order) in a scrape, or -1 when it is not there.
func sample(text, name string, labels ...string) float64 {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		series, value, _ := strings.Cut(rest, " ")
		if strings.HasPrefix(rest, " ") {
			series, value = "", strings.TrimSpace(rest)
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if !all {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return -1
		}
		return f
	}
	return -1
}

// TestMetricsMoveWithTraffic sends traffic that passes every counter (requests by route,
// upstream calls by connection, every limiter that can be driven from outside, the caches)
// and checks that the series move, that routes are labelled by pattern and never by the
// path asked for, and that no secret, path or made-up method reaches the output.
func TestMetricsMoveWithTraffic(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--auth-failures-per-minute", "2", "--trial-tokens-per-minute", "1",
		"--max-anonymous-requests", "1")
	up := newUpstream(t)
	metricsURL := s.URL + "/metrics"
	before := scrape(t, metricsURL, nil)
	for _, l := range []string{"auth_failures", "trial", "connection", "anonymous"} {
		if v := sample(before, "sesame_rate_limit_refusals_total", `limiter="`+l+`"`); v != 0 {
			t.Errorf("refusals by %s before any traffic = %v, want a series at 0", l, v)
		}
	}
	for _, c := range []string{"unavailable", "storage_full"} {
		if v := sample(before, "sesame_store_errors_total", `class="`+c+`"`); v != 0 {
			t.Errorf("store errors %s = %v, want a series at 0", c, v)
		}
	}

	const secret = "CANARY-metrics-secret-5d1e"
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/up.key", `{"type":"api_key","fields":{"value":"`+secret+`","name":"X-Key"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"up.key","allow_private_networks":true,"rate_limit":{"requests":2,"per_seconds":3600,"burst":2}}`, up.URL)), 201)
	// Two calls pass, the third finds the connection's bucket empty.
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/up/RAWPATH-one?q=RAWQUERY", ""), 200)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/up/RAWPATH-two", ""), 200)
	mustStatus(t, s.doWith("FOOBAR", "/v1/workspaces/default/proxy/up/RAWPATH-three", "", nil), 429)
	mustStatus(t, s.do("GET", "/no/such/RAWPATH-four", ""), 404)
	mustStatus(t, s.do("DELETE", "/healthz", ""), 405)
	for range 3 { // the third bad key from this address is refused by the failure limiter
		s.doWith("GET", "/v1/me", "", http.Header{"Authorization": {"Bearer sesame_bad_RAWKEY"}})
	}
	mustStatus(t, s.appAuth(manifestJSON("com.example.metrics", "M", "1.0.0")), 200)
	mustStatus(t, s.appAuth(manifestJSON("com.example.metrics", "M", "1.0.0")), 429)
	holdAnonymousSlot(t, s)

	after := scrape(t, metricsURL, nil)
	for _, forbidden := range []string{secret, "RAWPATH", "RAWQUERY", "RAWKEY", "FOOBAR", s.AdminKey} {
		if strings.Contains(after, forbidden) {
			t.Errorf("/metrics holds %q", forbidden)
		}
	}
	checks := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"sesame_http_requests_total", []string{`route="/v1/workspaces/{ws}/proxy/{conn}/{path...}"`, `method="GET"`, `status="200"`}, 2},
		{"sesame_http_requests_total", []string{`route="/v1/workspaces/{ws}/proxy/{conn}/{path...}"`, `method="OTHER"`, `status="429"`}, 1},
		{"sesame_http_requests_total", []string{`route="/v1/workspaces/{ws}/credentials/{key}"`, `method="PUT"`, `status="201"`}, 1},
		{"sesame_http_requests_total", []string{`route="unmatched"`, `method="GET"`, `status="404"`}, 1},
		{"sesame_http_requests_total", []string{`route="/healthz"`, `method="DELETE"`, `status="405"`}, 1},
		{"sesame_http_requests_total", []string{`route="/v1/me"`, `status="401"`}, 2},
		{"sesame_http_request_duration_seconds_count", []string{`route="/v1/workspaces/{ws}/proxy/{conn}/{path...}"`, `method="GET"`}, 2},
		{"sesame_upstream_calls_total", []string{`workspace="default"`, `connection="up"`, `status="200"`}, 2},
		{"sesame_upstream_calls_total", []string{`workspace="default"`, `connection="up"`, `status="error"`}, 1},
		{"sesame_upstream_call_duration_seconds_count", []string{`connection="up"`}, 3},
		{"sesame_rate_limit_refusals_total", []string{`limiter="connection"`}, 1},
		{"sesame_rate_limit_refusals_total", []string{`limiter="auth_failures"`}, 1},
		{"sesame_rate_limit_refusals_total", []string{`limiter="trial"`}, 1},
		{"sesame_rate_limit_refusals_total", []string{`limiter="anonymous"`}, 1},
		{"sesame_key_cache_hits_total", nil, 3},
		{"sesame_key_cache_misses_total", nil, 1},
		{"sesame_decision_cache_hits_total", nil, 5},
		{"sesame_decision_cache_misses_total", nil, 1},
	}
	for _, c := range checks {
		if v := sample(after, c.name, c.labels...); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if got, was := sample(after, "sesame_key_cache_hits_total"), sample(before, "sesame_key_cache_hits_total"); got <= was {
		t.Errorf("key cache hits did not move: %v -> %v", was, got)
	}
	// Only route patterns label requests: every route label is one of the table's patterns.
	routes := map[string]bool{}
	for _, m := range regexp.MustCompile(`route="([^"]*)"`).FindAllStringSubmatch(after, -1) {
		routes[m[1]] = true
	}
	for r := range routes {
		if r != httpapi.RouteUnmatched && !strings.HasPrefix(r, "/") {
			t.Errorf("route label %q is not a pattern", r)
		}
	}
}

// holdAnonymousSlot fills the only slot for unauthenticated requests with a manifest
// whose body never comes, and checks that the next one is refused by the anonymous cap.
func holdAnonymousSlot(t *testing.T, s *testServer) {
	t.Helper()
	hold := func() net.Conn {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /api/v2/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		return c
	}
	c := hold()
	defer func() { c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1)
	for {
		r := s.appAuth(manifestJSON("com.example.other", "O", "1.0.0"))
		if r.Status == 503 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the anonymous cap never refused: %d %s", r.Status, r.Body)
		}
		// The holder raced one of these requests for the only slot and was answered (503):
		// hold the slot again.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _ := c.Read(buf); n > 0 {
			c.Close()
			c = hold()
		}
	}
}

// TestMetricsCountOAuthRefreshesAndReauthorizations: a refresh, then a provider that
// refuses the refresh token (invalid_grant), move the OAuth counters.
func TestMetricsCountOAuthRefreshesAndReauthorizations(t *testing.T) {
	o := newOAuthSetup(t, oauthtest.Options{Rotate: true, CodeTokenExp: -time.Hour}, nil)
	o.createCredentialAndConnection(t, "authorization_code", "")
	o.authorize(t, "bob", "https://app.example/done")
	bob := http.Header{"X-Sesame-User": {"bob"}}
	mustStatus(t, o.s.doWith("GET", "/v1/workspaces/default/proxy/api/me", "", bob), 200) // expired: refreshed
	text := scrape(t, o.s.URL+"/metrics", nil)
	if v := sample(text, "sesame_oauth_refreshes_total"); v != 1 {
		t.Errorf("refreshes = %v, want 1", v)
	}
	o.p.RevokeRefreshTokens()
	o.p.RevokeAccessTokens()
	mustStatus(t, o.s.doWith("GET", "/v1/workspaces/default/proxy/api/me", "", bob), http.StatusConflict)
	text = scrape(t, o.s.URL+"/metrics", nil)
	if f, r := sample(text, "sesame_oauth_refresh_failures_total"), sample(text, "sesame_oauth_reauthorizations_total"); f < 1 || r != 1 {
		t.Errorf("refresh failures = %v, reauthorizations = %v; want >= 1 and 1", f, r)
	}
	if strings.Contains(text, oauthClientSecret) {
		t.Error("/metrics holds the client secret")
	}
}

// TestMetricsAddrServesOnlyMetrics: --metrics-addr serves /metrics without a key and
// nothing else; the API listener's /metrics then needs a key (read_audit) unless
// --metrics-anonymous says otherwise.
func TestMetricsAddrServesOnlyMetrics(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--metrics-addr", "127.0.0.1:0")
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	addr := ""
	sc := bufio.NewScanner(strings.NewReader(s.Stderr.String()))
	for sc.Scan() {
		if m := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no metrics listener in the log:\n%s", s.Stderr.String())
	}
	mustStatus(t, s.do("GET", "/v1/me", ""), 200)
	text := scrape(t, addr, nil)
	if sample(text, "sesame_http_requests_total", `route="/v1/me"`) < 1 {
		t.Fatalf("the metrics listener does not count API requests:\n%s", text)
	}
	base := strings.TrimSuffix(addr, "/metrics")
	for _, path := range []string{"/v1/me", "/healthz", "/v1/workspaces", "/"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("metrics listener GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if r := s.doWith("GET", "/metrics", "", http.Header{"Authorization": {"Bearer "}}); r.Status != 401 {
		t.Errorf("API listener /metrics without a key while --metrics-addr is set: %d", r.Status)
	}
	mustStatus(t, s.do("GET", "/metrics", ""), 200)

	open := startServer(t, nil, "--data", t.TempDir(), "--metrics-addr", "127.0.0.1:0", "--metrics-anonymous")
	if r := open.doWith("GET", "/metrics", "", http.Header{"Authorization": {"Bearer "}}); r.Status != 200 {
		t.Errorf("explicit --metrics-anonymous with --metrics-addr: %d", r.Status)
	}
	taken := startServer(t, nil, "--data", t.TempDir(), "--metrics-addr", strings.TrimPrefix(s.URL, "http://"))
	if !taken.stopped || !strings.Contains(taken.Stderr.String(), "--metrics-addr") {
		t.Errorf("a metrics address in use: stopped %v, stderr %s", taken.stopped, taken.Stderr.String())
	}
}

// Store faults are counted by class from the error code a request was answered with.
func TestMetricsCountStoreFaultsByClass(t *testing.T) {
	m := newMetrics(nil)
	for _, code := range []sesame.Code{sesame.CodeStoreUnavailable, sesame.CodeStoreUnavailable, sesame.CodeStorageFull, sesame.CodeNotFound} {
		m.observe(httpapi.Observation{Route: "/v1/me", Method: "GET", Status: 503, Code: code})
	}
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	if u, f := sample(text, "sesame_store_errors_total", `class="unavailable"`), sample(text, "sesame_store_errors_total", `class="storage_full"`); u != 2 || f != 1 {
		t.Fatalf("store errors: unavailable %v, storage_full %v; want 2 and 1", u, f)
	}
}
