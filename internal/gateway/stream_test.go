package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzStreamedTextIsJSONString: a text body streamed in any pieces decodes to what
// encoding/json gives for the whole body.
func FuzzStreamedTextIsJSONString(f *testing.F) {
	f.Add([]byte("żółw € <a&b> \"q\" \\ \n\t\x00\x7f \u2028 \xff\xfe"), uint8(3))
	f.Add([]byte(strings.Repeat("€", 100)), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		n := int(step%16) + 1
		var pieces [][]byte
		for i := 0; i < len(body); i += n {
			pieces = append(pieces, body[i:min(i+n, len(body))])
		}
		s := &BodyStream{head: nil, rest: io.NopCloser(&piecesReader{pieces}), limit: 1 << 30}
		var out bytes.Buffer
		if err := s.WriteResult(&out, CallResult{Status: 200}, nil); err != nil {
			t.Fatal(err)
		}
		var got struct{ Body string }
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("not JSON: %v: %q", err, out.Bytes())
		}
		want := strings.ToValidUTF8(string(body), "\uFFFD")
		if !utf8.ValidString(string(body)) {
			b, _ := json.Marshal(string(body))
			_ = json.Unmarshal(b, &want)
		}
		if got.Body != want {
			t.Fatalf("got %q, want %q", got.Body, want)
		}
	})
}

type piecesReader struct{ p [][]byte }

func (r *piecesReader) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.p[0])
	if r.p[0] = r.p[0][n:]; len(r.p[0]) == 0 {
		r.p = r.p[1:]
	}
	return n, nil
}
