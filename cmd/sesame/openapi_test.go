package main

import (
	"encoding/json"
	"testing"
)

// TestOpenAPIServerIsThisServer: the served API description names the address it was
// fetched from, or --public-url when set; never a fixed address.
func TestOpenAPIServerIsThisServer(t *testing.T) {
	servers := func(s *testServer) []string {
		r := s.do("GET", "/v1/openapi.json", "")
		var doc struct {
			Servers []struct {
				URL string `json:"url"`
			} `json:"servers"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &doc) != nil {
			t.Fatalf("GET /v1/openapi.json: %d %s", r.Status, r.Body)
		}
		var urls []string
		for _, s := range doc.Servers {
			urls = append(urls, s.URL)
		}
		return urls
	}
	s := startServer(t, nil, "--data", t.TempDir())
	if got := servers(s); len(got) != 1 || got[0] != s.URL {
		t.Errorf("servers %v, want [%s]", got, s.URL)
	}
	p := startServer(t, nil, "--data", t.TempDir(), "--public-url", "https://sesame.example.com/")
	if got := servers(p); len(got) != 1 || got[0] != "https://sesame.example.com" {
		t.Errorf("with --public-url: servers %v", got)
	}
}
