package outbound

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRedirectSameOriginFollowedWithCredentials(t *testing.T) {
	var gotAuth, gotKey atomic.Value
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, "/end", http.StatusFound)
		case "/abs":
			http.Redirect(w, r, "http://"+r.Host+"/end", http.StatusMovedPermanently)
		case "/end":
			gotAuth.Store(r.Header.Get("Authorization"))
			gotKey.Store(r.Header.Get("X-API-Key"))
			io.WriteString(w, "done")
		}
	})
	c := NewClient(Policy{AllowPrivate: true}, newFakeClock())
	for _, path := range []string{"/start", "/abs"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("X-API-Key", "key")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "done" {
			t.Fatalf("%s: %d %q, want the redirect followed", path, resp.StatusCode, b)
		}
		if gotAuth.Load() != "Bearer tok" || gotKey.Load() != "key" {
			t.Errorf("%s: same-origin redirect lost headers: %v %v", path, gotAuth.Load(), gotKey.Load())
		}
	}
}

func TestRedirectToOtherOriginNotFollowed(t *testing.T) {
	other := newCountingServer(t, nil)
	otherTLS := newCountingTLSServer(t, nil)
	var target atomic.Value
	var ended atomic.Int64
	origin := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/end" {
			ended.Add(1)
			return
		}
		w.Header().Set("Location", target.Load().(string))
		w.WriteHeader(http.StatusTemporaryRedirect)
		io.WriteString(w, "moved")
	})
	targets := map[string]string{
		"other server":                    other.URL + "/steal",
		"same host, other port":           "http://127.0.0.1:" + other.port() + "/steal",
		"other host name, same port":      "http://localhost:" + origin.port() + "/end",
		"https, same host and port":       "https://127.0.0.1:" + origin.port() + "/end",
		"https server":                    otherTLS.URL + "/steal",
		"protocol-relative to other port": "//127.0.0.1:" + other.port() + "/steal",
		"userinfo trick":                  "http://127.0.0.1:" + origin.port() + "@127.0.0.1:" + other.port() + "/steal",
	}
	c := NewClient(Policy{AllowPrivate: true}, newFakeClock())
	for name, loc := range targets {
		t.Run(name, func(t *testing.T) {
			target.Store(loc)
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/start?api_key=qs-secret", nil)
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("X-Custom-Secret", "custom")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusTemporaryRedirect || string(b) != "moved" {
				t.Fatalf("got %d %q, want the 307 as is", resp.StatusCode, b)
			}
			if resp.Header.Get("Location") != loc {
				t.Errorf("Location = %q", resp.Header.Get("Location"))
			}
		})
	}
	if n := other.conns.Load() + otherTLS.conns.Load(); n != 0 {
		t.Errorf("other servers saw %d connections, want none", n)
	}
	if n := ended.Load(); n != 0 {
		t.Errorf("origin's /end was reached %d times through another origin", n)
	}
}

func TestRedirectLoopStops(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	})
	c := NewClient(Policy{AllowPrivate: true}, newFakeClock())
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	_, err := c.Do(req)
	if !errors.Is(err, errTooManyRedirects) {
		t.Fatalf("Do = %v, want too many redirects", err)
	}
	if n := srv.reqs.Load(); n != 11 {
		t.Errorf("server saw %d requests, want 11 (first + 10 redirects)", n)
	}
}

func TestRedirectSameOriginKeepsBody(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(b))
	})
	c := NewClient(Policy{AllowPrivate: true}, newFakeClock())
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/old", strings.NewReader("payload"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST payload" {
		t.Errorf("body after 308 = %q", b)
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"http://example.com/a", "http://example.com/b?x=1", true},
		{"http://example.com/", "http://EXAMPLE.com:80/", true},
		{"https://example.com/", "https://example.com:443/", true},
		{"http://example.com/", "https://example.com/", false},
		{"http://example.com/", "http://example.com:8080/", false},
		{"http://example.com/", "http://api.example.com/", false},
		{"http://example.com/", "http://example.com.evil.net/", false},
		{"http://[::1]:80/", "http://[::1]/", true},
	}
	for _, tt := range tests {
		a, _ := urlParse(tt.a)
		b, _ := urlParse(tt.b)
		if got := sameOrigin(a, b); got != tt.same {
			t.Errorf("sameOrigin(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
}
