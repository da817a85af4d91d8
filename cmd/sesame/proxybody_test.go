package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestProxyRedactedBodyIsWholeOrBroken: a response whose injected values are redacted loses
// its length; when the upstream sent it with one and it is small, the proxy sends it whole
// with its new length (one write instead of a chunked stream). Attack: an upstream that
// declares a length and closes early must never turn into a complete-looking answer (the
// caller must see the body broken, as with streaming), and redaction must apply to both
// the buffered and the streamed path.
func TestProxyRedactedBodyIsWholeOrBroken(t *testing.T) {
	const token = "tok-bearer-CANARY-4711"
	large := strings.Repeat(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},`, 1200) // > 32 KiB
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			body := `{"echo":"Bearer ` + token + `"}`
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		case "/large":
			body := `[` + large + `{"echo":"` + token + `"}]`
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		case "/truncated":
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":")
			buf.Flush()
			conn.Close()
		}
	}))
	t.Cleanup(up.Close)
	s := startServer(t, nil, "--data", t.TempDir())
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/u.bearer", `{"type":"bearer","fields":{"token":"`+token+`"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/u?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"u.bearer","allow_private_networks":true}`, up.URL)), 201)

	get := func(path string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", s.URL+"/v1/workspaces/default/proxy/u/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	resp, body, err := get("small")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("small: %v %v", resp, err)
	}
	if strings.Contains(string(body), token) || !strings.Contains(string(body), `"echo":`) {
		t.Fatalf("small: the token came back, or the body is wrong: %s", body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Fatalf("small: Content-Length %d for a body of %d bytes", resp.ContentLength, len(body))
	}

	resp, body, err = get("large")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("large: %v %v", resp, err)
	}
	if strings.Contains(string(body), token) || !strings.HasSuffix(string(body), `"}]`) || len(body) < len(large) {
		t.Fatalf("large: the token came back, or the body is cut (%d bytes): …%s", len(body), body[max(0, len(body)-80):])
	}

	resp, body, err = get("truncated")
	if err == nil {
		t.Fatalf("truncated upstream body arrived as a complete answer: status %d, Content-Length %d, %q", resp.StatusCode, resp.ContentLength, body)
	}
}
