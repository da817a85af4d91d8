package main

import (
	"strings"
	"testing"
)

// TestValidKeyIsNeverRefusedByTheFailureLimiter: many callers share one address behind a
// NAT or a load balancer. One of them sending bad keys gets 429 once over the limit, but a
// valid key from the same address keeps working.
func TestValidKeyIsNeverRefusedByTheFailureLimiter(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--auth-failures-per-minute", "20")
	_, key := newCaller(t, s, "natted", "default")
	bad := withKey("sesame_0000000000000000000000000000000000000000")
	for range 25 {
		s.doWith("GET", "/v1/me", "", bad)
	}
	r := s.doWith("GET", "/v1/me", "", bad)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("bad key after 25 failures: %d %v", r.Status, r.Header)
	}
	mustStatus(t, s.doWith("GET", "/v1/me", "", withKey(key)), 200)
	mustStatus(t, s.do("GET", "/v1/me", ""), 200)
	// App manifests: a refused one counts, a good one from the same address still gets a token.
	tokenFrom(t, s.appAuth(manifestJSON("com.example.natted", "N", "1.0.0")))
	if r := s.appAuth(manifestJSON("com.acme.unsigned", "N", "1.0.0")); r.Status != 429 {
		t.Fatalf("refused manifest from a blocked source: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(s.Stderr.String(), `msg="auth blocked"`) {
		t.Fatal("no auth blocked event")
	}
}
