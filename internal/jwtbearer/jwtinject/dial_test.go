package jwtinject

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/crypt"
)

// TestExchangeThroughMaterialDial: a credential injected with Material.Dial (the
// connection's agent) exchanges its JWT through it, although the injector itself refuses
// the loopback token endpoint; an agent that refuses the endpoint or is offline gives
// that code, and the endpoint is not reached.
func TestExchangeThroughMaterialDial(t *testing.T) {
	f := newFixture(t)
	ts := newTokenServer(t, f)
	mk, _ := crypt.GenerateMasterKey()
	strict := New(Options{Sealer: crypt.NewKeyring(mk), Now: f.clock.Now})
	var mu sync.Mutex
	var dialled []string
	var refuse error
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		err := refuse
		mu.Unlock()
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	inject := func(m credential.Material) (string, error) {
		req := httptest.NewRequest("GET", "https://api.example.com/", nil)
		err := strict.Inject(context.Background(), req, m, credential.Target{})
		return req.Header.Get("Authorization"), err
	}

	m := f.material(map[string]any{"token_url": ts.URL + "/token"})
	m.Dial = dial
	auth, err := inject(m)
	if err != nil || auth != "Bearer at-1" || len(dialled) != 1 || dialled[0] != strings.TrimPrefix(ts.URL, "http://") {
		t.Fatalf("through the dial: %q, %v, dialled %v", auth, err, dialled)
	}
	// Without the dial the injector's own rule applies.
	other := f.material(map[string]any{"token_url": ts.URL + "/token", "scope": "other"})
	if _, err := inject(other); sesame.ErrorCode(err) != sesame.CodeForbiddenAddress {
		t.Fatalf("without the dial: %v", err)
	}

	for _, tc := range []struct {
		err  error
		code sesame.Code
	}{
		{sesame.Errorf(sesame.CodeAgentTargetRefused, "the agent refused it"), sesame.CodeAgentTargetRefused},
		{&sesame.Error{Code: sesame.CodeAgentUnavailable, Message: "no agent", RetryAfter: 2 * time.Second}, sesame.CodeAgentUnavailable},
	} {
		mu.Lock()
		refuse = tc.err
		mu.Unlock()
		m := f.material(map[string]any{"token_url": ts.URL + "/token", "scope": string(tc.code)})
		m.Dial = dial
		_, err := inject(m)
		var se *sesame.Error
		if sesame.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), "token_url") {
			t.Fatalf("agent answering %s: %v", tc.code, err)
		}
		if tc.code == sesame.CodeAgentUnavailable {
			if !errors.As(err, &se) || se.RetryAfter <= 0 {
				t.Fatalf("agent_unavailable without Retry-After: %v", err)
			}
		}
	}
	if ts.n.Load() != 1 {
		t.Fatalf("the token endpoint saw %d exchanges, want 1", ts.n.Load())
	}
}
