package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/testpg"
)

// limitedKey creates a user with the caller role in default and a key for it with the
// given limits (JSON fields of the key create body).
func limitedKey(t *testing.T, s *testServer, name, limits string) (userID, key string) {
	t.Helper()
	u := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"`+name+`"}`), 201))
	mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"caller","user":%q,"workspace":"default"}`, u.ID)), 201)
	body := `{"name":"limited"`
	if limits != "" {
		body += "," + limits
	}
	k := decode[struct{ Key string }](t, mustStatus(t, s.do("POST", "/v1/users/"+u.ID+"/keys", body+"}"), 201))
	return u.ID, k.Key
}

func header(t *testing.T, r response, name string) int {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get(name))
	if err != nil {
		t.Fatalf("%s: %q", name, r.Header.Get(name))
	}
	return n
}

// TestKeyRateLimit: a key with a rate limit gets the RateLimit headers on every answer and
// 429 rate_limited with Retry-After once the period's requests are used; keys without
// limits are not touched; bad limits are refused and create nothing.
func TestKeyRateLimit(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	userID, key := limitedKey(t, s, "rl", `"rate_limit":{"requests":3,"per_seconds":3600}`)
	for i := 1; i <= 3; i++ {
		r := mustStatus(t, s.as(key, "GET", "/v1/me", ""), 200)
		if header(t, r, "X-RateLimit-Limit") != 3 || header(t, r, "X-RateLimit-Remaining") != 3-i || header(t, r, "X-RateLimit-Reset") < 1 {
			t.Fatalf("request %d: headers %v", i, r.Header)
		}
	}
	r := s.as(key, "GET", "/v1/me", "")
	if r.Status != 429 || !strings.Contains(string(r.Body), `"rate_limited"`) || header(t, r, "Retry-After") < 1 ||
		header(t, r, "X-RateLimit-Remaining") != 0 {
		t.Fatalf("4th request: %d %v %s", r.Status, r.Header, r.Body)
	}
	// The admin's key has no limits: no headers, no refusals.
	if r := s.do("GET", "/v1/me", ""); r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "" {
		t.Fatalf("a key without limits: %d %v", r.Status, r.Header)
	}
	for _, bad := range []string{
		`{"rate_limit":{"requests":0,"per_seconds":60}}`,
		`{"rate_limit":{"requests":5,"per_seconds":0}}`,
		`{"quota":{"calls":-1,"per_seconds":60}}`,
		`{"quota":{"calls":5,"per_seconds":99999999999}}`,
		`{"quota":{"calls":5,"per_seconds":60,"extra":1}}`,
	} {
		r := s.do("POST", "/v1/users/"+userID+"/keys", bad)
		if r.Status != 400 {
			t.Errorf("key with %s: %d %s", bad, r.Status, r.Body)
		}
	}
	// Nothing was created, and the list shows the limits.
	keys := decode[struct {
		Items []struct {
			RateLimit *struct {
				Requests   int64 `json:"requests"`
				PerSeconds int64 `json:"per_seconds"`
			} `json:"rate_limit"`
		}
	}](t, mustStatus(t, s.do("GET", "/v1/users/"+userID+"/keys", ""), 200))
	if len(keys.Items) != 1 || keys.Items[0].RateLimit == nil || keys.Items[0].RateLimit.Requests != 3 || keys.Items[0].RateLimit.PerSeconds != 3600 {
		t.Fatalf("keys: %+v", keys.Items)
	}
}

// TestLimitedKeyCannotEscapeItsLimits: the holder of a limited key cannot mint an
// unlimited (or any) key with it, for itself or anyone; nothing is created.
func TestLimitedKeyCannotEscapeItsLimits(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	userID, key := limitedKey(t, s, "esc", `"quota":{"calls":1000,"per_seconds":86400}`)
	for _, body := range []string{`{"name":"free"}`, `{"name":"free","quota":{"calls":999999,"per_seconds":60}}`} {
		r := s.as(key, "POST", "/v1/users/"+userID+"/keys", body)
		if r.Status != 403 || !strings.Contains(string(r.Body), "limits") {
			t.Fatalf("a limited key minting %s: %d %s", body, r.Status, r.Body)
		}
	}
	keys := decode[struct {
		Items []struct {
			Name  string
			Quota *struct{ Calls int64 }
		}
	}](t, mustStatus(t, s.do("GET", "/v1/users/"+userID+"/keys", ""), 200))
	if len(keys.Items) != 1 || keys.Items[0].Quota == nil || keys.Items[0].Quota.Calls != 1000 {
		t.Fatalf("keys after the refused mints: %+v", keys.Items)
	}
}

// TestKeyQuotaAcrossReplicas: a quota holds across restarts (SQLite) and across replicas
// sharing PostgreSQL: together they allow exactly the quota, then 429 quota_exceeded with
// Retry-After on every replica.
func TestKeyQuotaAcrossReplicas(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		data := t.TempDir()
		s := startServer(t, nil, "--data", data)
		_, key := limitedKey(t, s, "q", `"quota":{"calls":5,"per_seconds":86400}`)
		for i := 0; i < 3; i++ {
			mustStatus(t, s.as(key, "GET", "/v1/me", ""), 200)
		}
		admin := s.AdminKey
		s.Stop()
		s = startServer(t, nil, "--data", data)
		s.AdminKey = admin
		r := mustStatus(t, s.as(key, "GET", "/v1/me", ""), 200)
		if header(t, r, "X-RateLimit-Limit") != 5 || header(t, r, "X-RateLimit-Remaining") != 1 {
			t.Fatalf("after a restart: %v", r.Header)
		}
		mustStatus(t, s.as(key, "GET", "/v1/me", ""), 200)
		r = s.as(key, "GET", "/v1/me", "")
		if r.Status != 429 || !strings.Contains(string(r.Body), `"quota_exceeded"`) || header(t, r, "Retry-After") < 1 {
			t.Fatalf("6th call: %d %v %s", r.Status, r.Header, r.Body)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		pg := testpg.URL(t)
		k, _ := crypt.GenerateMasterKey()
		env := map[string]string{"SESAME_MASTER_KEY": k.Encode()}
		a := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
		b := startServer(t, env, "--data", t.TempDir(), "--postgres", pg)
		if a.stopped || b.stopped {
			t.Fatalf("replicas did not start: %s %s", a.Stderr.String(), b.Stderr.String())
		}
		b.AdminKey = a.AdminKey
		for _, quota := range []int{7, 200} {
			_, key := limitedKey(t, a, fmt.Sprintf("q%d", quota), fmt.Sprintf(`"quota":{"calls":%d,"per_seconds":86400}`, quota))
			ok, refusedA, refusedB := 0, false, false
			for i := 0; !(refusedA && refusedB); i++ {
				if i > 3*quota {
					t.Fatalf("quota %d: still answering after %d calls (%d allowed)", quota, i, ok)
				}
				s, refused := a, &refusedA
				if i%2 == 1 {
					s, refused = b, &refusedB
				}
				r := s.as(key, "GET", "/v1/me", "")
				switch r.Status {
				case 200:
					if *refused {
						t.Fatalf("quota %d: a replica allowed a call after refusing one", quota)
					}
					ok++
				case 429:
					if !strings.Contains(string(r.Body), `"quota_exceeded"`) || header(t, r, "Retry-After") < 1 {
						t.Fatalf("refusal: %v %s", r.Header, r.Body)
					}
					*refused = true
				default:
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
			}
			if ok != quota {
				t.Errorf("quota %d: the replicas allowed %d calls together", quota, ok)
			}
		}
	})
}

// TestKeyLimitsFromTheCLI: sesame key create --rate/--quota, and key list shows them.
func TestKeyLimitsFromTheCLI(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	userID, _ := limitedKey(t, s, "cli", "")
	code, out, errOut := s.cli("", "key", "create", userID, "--name", "lim", "--rate", "100/60", "--quota", "10000/86400", "--json")
	if code != 0 || !strings.Contains(out, `"requests": 100`) || !strings.Contains(out, `"calls": 10000`) {
		t.Fatalf("key create: %d %s %s", code, out, errOut)
	}
	code, out, _ = s.cli("", "key", "list", userID)
	if code != 0 || !strings.Contains(out, "rate 100/60s, quota 10000/86400s") {
		t.Fatalf("key list: %d %s", code, out)
	}
	if code, _, errOut := s.cli("", "key", "create", userID, "--rate", "100"); code != 2 || !strings.Contains(errOut, "N/SECONDS") {
		t.Fatalf("--rate 100: %d %s", code, errOut)
	}
}
