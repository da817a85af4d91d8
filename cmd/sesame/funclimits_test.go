package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestFunctionResponseBuffering: a function buffers at most maxResponseBytes of the
// upstream response. Larger than that, a transformed response is a clear error and an
// untransformed one is streamed, whole and still redacted.
func TestFunctionResponseBuffering(t *testing.T) {
	rs := newReflectionSetup(t)
	s := rs.s
	jsonBody := `{"items":[` + strings.Repeat(`{"id":1,"name":"żółw €"},`, 2000) + `{"id":2}]}` // ~50 KB, multi-byte UTF-8
	textBody := strings.Repeat("żółw € line\n", 4000)
	rs.up.setHandler(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("mode") {
		case "json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, jsonBody)
		case "text":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rc := http.NewResponseController(w)
			for i := 0; i < len(textBody); i += 7 { // flushes split runes
				fmt.Fprint(w, textBody[i:min(i+7, len(textBody))])
				rc.Flush()
			}
		default:
			echo(w, r)
		}
	})
	caller := withKey(rs.callerKey)
	put := func(name, extra string) {
		t.Helper()
		mustStatus(t, putYAML(s, "default", name, "connection: bearer\nmethod: GET\npath: /data\nmaxResponseBytes: 1024\nparameters:\n  mode: {location: query, type: string}\n"+extra), 201)
	}
	call := func(name, mode string) response {
		t.Helper()
		return s.doWith("POST", "/v1/workspaces/default/functions/"+name+"/call", `{"parameters":{"mode":"`+mode+`"}}`, caller)
	}

	t.Run("transformed and too large", func(t *testing.T) {
		put("big-transformed", "outputTransform: '.items | length'\n")
		r := call("big-transformed", "json")
		if r.Status != http.StatusBadGateway || r.json(t)["code"] != "upstream_response_too_large" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})

	t.Run("untransformed JSON streams", func(t *testing.T) {
		put("big-json", "")
		r := mustStatus(t, call("big-json", "json"), 200)
		var got struct {
			Status  int
			Headers map[string]string
			Body    json.RawMessage
		}
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if got.Status != 200 || string(got.Body) != jsonBody || got.Headers["Content-Type"] != "application/json" {
			t.Fatalf("status %d, headers %v, body of %d bytes", got.Status, got.Headers, len(got.Body))
		}
	})

	t.Run("untransformed text streams as a string", func(t *testing.T) {
		put("big-text", "")
		r := mustStatus(t, call("big-text", "text"), 200)
		var got struct{ Body string }
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if got.Body != textBody {
			t.Fatalf("body of %d bytes differs from the upstream's %d", len(got.Body), len(textBody))
		}
	})

	t.Run("small responses are as before", func(t *testing.T) {
		mustStatus(t, putYAML(s, "default", "small", "connection: bearer\nmethod: GET\npath: /data\nparameters:\n  mode: {location: query, type: string}\noutputTransform: '.items | length'\n"), 201)
		r := mustStatus(t, call("small", "json"), 200)
		if b := r.json(t)["body"]; b != 2001.0 {
			t.Fatalf("body = %v", b)
		}
	})

	t.Run("streamed echo is redacted", func(t *testing.T) {
		put("big-echo", "")
		r := mustStatus(t, call("big-echo", "plain"), 200)
		if !strings.Contains(string(r.Body), "[redacted]") {
			t.Fatalf("no redaction in %s", r.Body)
		}
		rs.assertNothingReflected(t, "streamed function", r, injectedValues(rs.up.last(t)))
	})

	t.Run("bad maxResponseBytes", func(t *testing.T) {
		r := putYAML(s, "default", "bad", "connection: bearer\nmethod: GET\nmaxResponseBytes: -1\n")
		if r.Status != 400 || !strings.Contains(string(r.Body), "maxResponseBytes") {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
}

// TestFunctionStreams64MBWithFlatMemory: an untransformed function response far above its
// buffer (maxResponseBytes, here 1 MiB) streams through with heap in use bounded by the
// buffer, not the body; with a transform it is refused without being read whole.
func TestFunctionStreams64MBWithFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 64 MB")
	}
	const size = 64 << 20
	s := startServer(t, nil, "--data", t.TempDir())
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/big.key", `{"type":"api_key","fields":{"value":"big-key-CANARY"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/big?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"big.key","allow_private_networks":true}`, up.URL)), 201)
	mustStatus(t, putYAML(s, "default", "file", "connection: big\nmethod: GET\npath: /file\nmaxResponseBytes: 1048576\n"), 201)
	mustStatus(t, putYAML(s, "default", "file-t", "connection: big\nmethod: GET\npath: /file\nmaxResponseBytes: 1048576\noutputTransform: length\n"), 201)

	heapPeak := watchHeap()
	for range 3 {
		req, _ := http.NewRequest("POST", s.URL+"/v1/workspaces/default/functions/file/call", nil)
		req.Header.Set("Authorization", "Bearer "+s.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n < size {
			t.Fatalf("read %d bytes, err %v", n, err)
		}
	}
	r := s.do("POST", "/v1/workspaces/default/functions/file-t/call", "")
	peak := heapPeak()
	if r.Status != http.StatusBadGateway || r.json(t)["code"] != "upstream_response_too_large" {
		t.Fatalf("transformed: %d %s", r.Status, r.Body)
	}
	if p := peak; p > 32<<20 {
		t.Fatalf("heap in use peaked at %d MiB over three 64 MiB function calls", p>>20)
	}
	t.Logf("heap in use peaked at %d MiB", peak>>20)
}
