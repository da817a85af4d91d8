package oauth_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/oauthtest"
)

// recordingDial is a credential.DialFunc standing in for an agent: it notes every address
// and dials it, or answers err without dialling.
type recordingDial struct {
	mu    sync.Mutex
	addrs []string
	err   error
}

func (d *recordingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *recordingDial) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.addrs)
}

// TestTokenRequestsGoThroughMaterialDial: a credential injected with Material.Dial (the
// connection's agent) fetches and force-refreshes its client-credentials token through
// it, even though the manager's own transport refuses the loopback token endpoint; the
// token is the credential's one grant (no second fetch for a direct caller).
func TestTokenRequestsGoThroughMaterialDial(t *testing.T) {
	e := newEnv(t, envOptions{ssrfSafe: true})
	e.putCredential("svc", "client_credentials", map[string]any{"auth_url": nil})
	d := &recordingDial{}
	m := e.material("svc")
	m.Dial = d.dial
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.p.ResourceURL()+"/me", nil)
	if err := e.m.Inject(e.ctx, req, m, credential.Target{}); err != nil {
		t.Fatalf("inject through the dial: %v", err)
	}
	host := strings.TrimPrefix(e.p.URL, "http://")
	if d.count() != 1 || d.addrs[0] != host || e.p.ClientCredentials() != 1 {
		t.Fatalf("dialled %v, %d token requests; want one dial of %s", d.addrs, e.p.ClientCredentials(), host)
	}
	first := req.Header.Get("Authorization")
	// The same grant for a caller without the dial: the stored token, no request.
	req2, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.p.ResourceURL()+"/me", nil)
	if err := e.m.Inject(e.ctx, req2, e.material("svc"), credential.Target{}); err != nil || req2.Header.Get("Authorization") != first {
		t.Fatalf("direct caller after the fetch: %v, %q", err, req2.Header.Get("Authorization"))
	}
	// A forced refresh goes through the dial too.
	if err := e.m.ForceRefresh(e.ctx, m); err != nil {
		t.Fatalf("forced refresh through the dial: %v", err)
	}
	if d.count() != 2 || e.p.ClientCredentials() != 2 {
		t.Fatalf("after a forced refresh: %d dials, %d token requests", d.count(), e.p.ClientCredentials())
	}
	// Without the dial the manager's own rule applies: loopback is refused.
	e.putCredential("svc2", "client_credentials", map[string]any{"auth_url": nil})
	_, err := tryCall(e, "svc2")
	wantCode(t, err, sesame.CodeForbiddenAddress)
	e.assertNoSecrets("logs", e.logs.String())
}

// TestTokenRefreshThroughMaterialDial: an authorization-code grant's refresh goes through
// the dial (the code exchange at the callback has no connection and goes direct).
func TestTokenRefreshThroughMaterialDial(t *testing.T) {
	e := newEnv(t, envOptions{provider: oauthtest.Options{CodeTokenExp: -time.Hour}})
	e.putCredential("gh", "authorization_code", nil)
	if _, err := e.m.Callback(e.ctx, e.authorize("gh", "", "")); err != nil {
		t.Fatal(err)
	}
	d := &recordingDial{}
	m := e.material("gh")
	m.Dial = d.dial
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.p.ResourceURL()+"/me", nil)
	if err := e.m.Inject(e.ctx, req, m, credential.Target{}); err != nil {
		t.Fatal(err)
	}
	if e.p.Refreshes() != 1 || d.count() != 1 {
		t.Fatalf("%d refreshes, %d dials; want the expired token refreshed through the dial", e.p.Refreshes(), d.count())
	}
}

// TestAgentRefusalOfTokenEndpoint: when the agent refuses the token endpoint (outside its
// allowlist) or is offline, the caller gets that code, the token endpoint is tried once
// (not retried as a network failure), and the grant is left as it is.
func TestAgentRefusalOfTokenEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putCredential("svc", "client_credentials", map[string]any{"auth_url": nil})
	for _, tc := range []struct {
		err  error
		code sesame.Code
	}{
		{sesame.Errorf(sesame.CodeAgentTargetRefused, "the agent refused it"), sesame.CodeAgentTargetRefused},
		{&sesame.Error{Code: sesame.CodeAgentUnavailable, Message: "no agent", RetryAfter: 2 * time.Second}, sesame.CodeAgentUnavailable},
	} {
		d := &recordingDial{err: tc.err}
		m := e.material("svc")
		m.Dial = d.dial
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.p.ResourceURL()+"/me", nil)
		err := e.m.Inject(e.ctx, req, m, credential.Target{})
		se := wantCode(t, err, tc.code)
		if !strings.Contains(se.Message, "token endpoint") || d.count() != 1 || e.p.ClientCredentials() != 0 {
			t.Fatalf("%s: %q after %d dials, %d token requests", tc.code, se.Message, d.count(), e.p.ClientCredentials())
		}
		if tc.code == sesame.CodeAgentUnavailable && se.RetryAfter <= 0 {
			t.Fatalf("agent_unavailable without Retry-After")
		}
		if g := e.grant("svc", ""); g.Status != sesame.GrantValid {
			t.Fatalf("grant status %s after an agent refusal", g.Status)
		}
	}
}
