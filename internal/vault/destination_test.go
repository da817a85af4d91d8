package vault_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
	"github.com/sesamehq/sesame/internal/vault"
)

// TestFirstUseBindsTheCredential: a credential saved without hosts is bound to the origin
// of its first destination, on both stores, however many callers race for it.
func TestFirstUseBindsTheCredential(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			v := newVault(t, b.open(t), newKey(t))
			putSecret(t, v, "k", "v")
			origins := []string{"https://api.example.com/v1", "https://evil.example.com/x"}
			var wg sync.WaitGroup
			errs := make([]error, 20)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					u, _ := url.Parse(origins[i%2])
					errs[i] = v.AllowDestination(ctx, "default", "k", u)
				}()
			}
			wg.Wait()
			allowed := map[bool]int{}
			for _, err := range errs {
				allowed[err == nil]++
				if err != nil && sesame.ErrorCode(err) != sesame.CodeDestinationLocked {
					t.Fatalf("refusal: %v", err)
				}
			}
			if allowed[true] != 10 || allowed[false] != 10 {
				t.Fatalf("one origin must win: %v", allowed)
			}
			view, err := v.GetCredential(ctx, "default", "k")
			if err != nil {
				t.Fatal(err)
			}
			hosts := fmt.Sprint(view.Fields["hosts"])
			if hosts != "[https://api.example.com]" && hosts != "[https://evil.example.com]" {
				t.Fatalf("read view hosts %s", hosts)
			}
			// The binding survives a keep update that does not mention hosts.
			if _, _, err := v.PutCredential(ctx, "default", "k", []byte(`{"type":"secret","fields":{"value":{"keep":true}}}`), vault.Actor{}); err != nil {
				t.Fatal(err)
			}
			if view, _ = v.GetCredential(ctx, "default", "k"); fmt.Sprint(view.Fields["hosts"]) != hosts {
				t.Fatalf("hosts after keep: %v", view.Fields["hosts"])
			}
			// Same host, other port or scheme: refused.
			for _, raw := range []string{"http://api.example.com", "https://api.example.com:8443", "http://evil.example.com", "https://evil.example.com:8443"} {
				u, _ := url.Parse(raw)
				if err := v.AllowDestination(ctx, "default", "k", u); sesame.ErrorCode(err) != sesame.CodeDestinationLocked {
					t.Errorf("%s: %v", raw, err)
				}
			}
			u, _ := url.Parse("https://api.example.com")
			if err := v.AllowDestination(ctx, "default", "missing", u); sesame.ErrorCode(err) != sesame.CodeNotFound {
				t.Errorf("missing credential: %v", err)
			}
		})
	}
}

// TestKeptSecretFailingVerificationIsNotDescribed: when a check sees a stored secret, its
// error says only that the stored value does not fit, never why.
func TestKeptSecretFailingVerificationIsNotDescribed(t *testing.T) {
	ctx := context.Background()
	v := newVault(t, backends()[0].open(t), newKey(t))
	p12 := jwttest.PKCS12(t, jwttest.KeyFor(t, "ES256"), "pw")
	if _, _, err := v.PutCredential(ctx, "default", "jwt", []byte(`{"type":"jwt_bearer","fields":{"alg":"ES256","pkcs12":"`+p12+`","pkcs12_password":"pw"}}`), vault.Actor{Admin: true}); err != nil {
		t.Fatal(err)
	}
	other := jwttest.PKCS12(t, jwttest.KeyFor(t, "ES256"), "another-password")
	_, _, err := v.PutCredential(ctx, "default", "jwt", []byte(`{"type":"jwt_bearer","fields":{"alg":"ES256","pkcs12":"`+other+`","pkcs12_password":{"keep":true}}}`), vault.Actor{Admin: true})
	if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), `stored value of "pkcs12_password"`) {
		t.Fatalf("got %v", err)
	}
	for _, word := range []string{"password is", "incorrect", "wrong", "decrypt"} {
		if strings.Contains(strings.ToLower(err.Error()), word) {
			t.Errorf("the error describes the stored secret: %v", err)
		}
	}
}
