package credential_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

func TestHostsPinSchemeAndPort(t *testing.T) {
	cases := []struct {
		entry string
		allow []string
		deny  []string
	}{
		{"api.example.com",
			[]string{"https://api.example.com/v1", "https://API.example.com.:443/x", "https://api.example.com:443"},
			[]string{"http://api.example.com", "http://api.example.com:443", "https://api.example.com:8443", "https://x.api.example.com", "https://api.example.com.evil.io", "https://evil.io/api.example.com"}},
		{"api.example.com:8443",
			[]string{"https://api.example.com:8443/x"},
			[]string{"https://api.example.com", "http://api.example.com:8443"}},
		{"http://10.0.0.5:8080",
			[]string{"http://10.0.0.5:8080/x"},
			[]string{"https://10.0.0.5:8080", "http://10.0.0.5", "http://10.0.0.6:8080"}},
		{"http://legacy.example.com",
			[]string{"http://legacy.example.com/x", "http://legacy.example.com:80"},
			[]string{"https://legacy.example.com", "http://legacy.example.com:8080"}},
		{"https://api.example.com:443/",
			[]string{"https://api.example.com"},
			[]string{"http://api.example.com"}},
		{"*.example.com",
			[]string{"https://a.example.com", "https://a.b.example.com"},
			[]string{"https://example.com", "https://a.example.com:8443", "http://a.example.com", "https://aexample.com"}},
		{"http://*.corp.test:8080",
			[]string{"http://x.corp.test:8080"},
			[]string{"http://x.corp.test", "https://x.corp.test:8080"}},
		{"[::1]:8443",
			[]string{"https://[::1]:8443/x"},
			[]string{"http://[::1]:8443", "https://[::1]"}},
	}
	for _, c := range cases {
		for _, raw := range c.allow {
			if !credential.HostsAllow([]string{c.entry}, mustURL(t, raw)) {
				t.Errorf("%q should allow %s", c.entry, raw)
			}
		}
		for _, raw := range c.deny {
			if credential.HostsAllow([]string{c.entry}, mustURL(t, raw)) {
				t.Errorf("%q should refuse %s", c.entry, raw)
			}
		}
	}
	if credential.HostsAllow(nil, mustURL(t, "https://api.example.com")) {
		t.Error("no hosts allowed a destination: an unbound credential must be bound first")
	}
}

func TestOriginIsTheExactBinding(t *testing.T) {
	for raw, want := range map[string]string{
		"https://API.example.com/v1?q=1": "https://api.example.com",
		"https://api.example.com:443/":   "https://api.example.com",
		"https://api.example.com:8443":   "https://api.example.com:8443",
		"http://127.0.0.1:5555/base":     "http://127.0.0.1:5555",
		"http://example.com:80":          "http://example.com",
		"https://[2001:db8::1]:9000/x":   "https://[2001:db8::1]:9000",
	} {
		u := mustURL(t, raw)
		got := credential.Origin(u)
		if got != want {
			t.Errorf("Origin(%s) = %s, want %s", raw, got, want)
		}
		if !credential.HostsAllow([]string{got}, u) {
			t.Errorf("the binding %s does not allow %s", got, raw)
		}
	}
}

func TestHostsEntriesAreChecked(t *testing.T) {
	for _, bad := range []string{"ftp://api.example.com", "https://user@api.example.com", "https://api.example.com/path",
		"api.example.com:0", "api.example.com:99999", "https://api.example.com?x=1", "*.1.2.3.4", "exa mple.com", "*", "https://", "api.example.com:"} {
		_, err := credential.Parse([]byte(fmt.Sprintf(`{"type":"bearer","fields":{"token":"t","hosts":[%q]}}`, bad)))
		if sesame.ErrorCode(err) != sesame.CodeInvalidField {
			t.Errorf("hosts entry %q: %v", bad, err)
		}
	}
	for _, good := range []string{"api.example.com", "API.Example.com", "api.example.com:8443", "http://10.0.0.5:8080", "https://*.example.com", "[::1]:8443", "10.0.0.5"} {
		if _, err := credential.Parse([]byte(fmt.Sprintf(`{"type":"bearer","fields":{"token":"t","hosts":[%q]}}`, good))); err != nil {
			t.Errorf("hosts entry %q: %v", good, err)
		}
	}
}

func TestDestinationChange(t *testing.T) {
	parse := func(b string) credential.Input {
		t.Helper()
		in, err := credential.Parse([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	old := parse(`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","token_url":"https://login.example.com/token","hosts":["api.example.com","b.example.com"]}}`)
	cases := map[string]struct{ body, want string }{
		"nothing":            {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c2","client_secret":"s","token_url":"https://login.example.com/token","hosts":["b.example.com","https://API.example.com:443"]}}`, ""},
		"narrowed hosts":     {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","token_url":"https://login.example.com/token","hosts":["api.example.com"]}}`, ""},
		"widened hosts":      {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","token_url":"https://login.example.com/token","hosts":["api.example.com","http://api.example.com"]}}`, "hosts"},
		"cleared hosts":      {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","token_url":"https://login.example.com/token"}}`, "hosts"},
		"token_url":          {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","token_url":"https://evil.example.com/token","hosts":["api.example.com"]}}`, "token_url"},
		"provider":           {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","provider":"github","hosts":["api.example.com"]}}`, "auth_url"},
		"same URL, template": {`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"s","token_url":"https://login.example.com/token","revocation_url":"https://login.example.com/revoke","hosts":["api.example.com"]}}`, "revocation_url"},
		"type":               {`{"type":"bearer","fields":{"token":"t","hosts":["api.example.com"]}}`, "type"},
	}
	for name, c := range cases {
		if got := credential.DestinationChange(old.Kind.Name, old.Public, parse(c.body)); got != c.want {
			t.Errorf("%s: change %q, want %q", name, got, c.want)
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
