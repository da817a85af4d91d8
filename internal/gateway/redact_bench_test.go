package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/sesamehq/sesame/internal/redact"
)

// BenchmarkResponseRedaction is the work the redaction of injected values adds to one
// proxied request with an api_key credential: the snapshot and diff around injection, the
// set of forms, the header pass and the streaming scan of the body. "off" is the same
// request and response without it.
func BenchmarkResponseRedaction(b *testing.B) {
	small := []byte(`{"id":42,"name":"bench","ok":true,"items":[1,2,3],"message":"hello from the loopback upstream"}` + "\n")
	large := append(bytes.Repeat([]byte(`{"id":42,"name":"bench","ok":true,"items":[1,2,3]},`), 1300),
		[]byte(`{"echo":{"X-Api-Key":"bench-secret"}}`+"\n")...)
	bufs := redact.NewBuffers()
	for _, tc := range []struct {
		name string
		on   bool
		body []byte
	}{
		{"off/100B", false, small}, {"on/100B", true, small},
		{"off/64KiB", false, large}, {"on/64KiB", true, large},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, "http://up.example/hello?x=1", nil)
				req.Header.Set("Accept", "application/json")
				seen := &injected{}
				var before snapshot
				if tc.on {
					before = snapshotOf(req)
				}
				req.Header.Set("X-Api-Key", "bench-secret")
				if tc.on {
					seen.diff(before, req)
					seen.add("bench-secret")
				}
				resp := &http.Response{StatusCode: 200, ContentLength: int64(len(tc.body)),
					Header: http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(tc.body))}, "Date": {"Sun, 29 Nov 2026 04:00:00 GMT"}},
					Body:   io.NopCloser(bytes.NewReader(tc.body))}
				if err := redactResponse(resp, seen.redactor(), bufs); err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
