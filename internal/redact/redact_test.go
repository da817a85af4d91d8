package redact_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sesamehq/sesame/internal/redact"
)

func TestBytesReplacesEveryForm(t *testing.T) {
	const secret = "s3cr3t/+&<x> \"y\""
	s := redact.New(secret, "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:hunter2")))
	for _, form := range append(redact.Forms(secret), "hunter2", "bob:hunter2", base64.StdEncoding.EncodeToString([]byte("bob:hunter2"))) {
		in := []byte("before " + form + " after")
		got := string(s.Bytes(in))
		if strings.Contains(got, form) || !strings.Contains(got, redact.Marker) {
			t.Errorf("form %q: got %q", form, got)
		}
	}
	if got := string(s.Bytes([]byte("nothing here"))); got != "nothing here" {
		t.Errorf("got %q", got)
	}
}

func TestLongestFormWins(t *testing.T) {
	s := redact.New("ab", "abcd")
	if got := string(s.Bytes([]byte("xabcdyab"))); got != "x"+redact.Marker+"y"+redact.Marker {
		t.Errorf("got %q", got)
	}
}

func TestHeaderRedactsValuesAndNames(t *testing.T) {
	s := redact.New("tok123")
	h := http.Header{
		"Location":        {"https://other.example/cb?key=tok123"},
		"Set-Cookie":      {"k=tok123; Path=/"},
		"X-Echo-Tok123":   {"1"},
		"X-Echo-tok123-b": {"1"},
		"Content-Type":    {"text/plain"},
	}
	s.Header(h)
	for k, vs := range h {
		if strings.Contains(strings.ToLower(k), "tok123") {
			t.Errorf("header name %q kept", k)
		}
		for _, v := range vs {
			if strings.Contains(v, "tok123") {
				t.Errorf("%s: %q", k, v)
			}
		}
	}
	if h.Get("Content-Type") != "text/plain" {
		t.Error("unrelated header changed")
	}
}

// pool is shared by every chunked read, so that reuse of pooled buffers is exercised.
var pool = redact.NewBuffers()

// chunked reads data through the redacting reader in pieces of the given sizes.
func chunked(s *redact.Set, data []byte, sizes []byte) []byte {
	var parts [][]byte
	rest := data
	for i := 0; len(rest) > 0; i++ {
		n := 1
		if len(sizes) > 0 {
			n = int(sizes[i%len(sizes)])%7 + 1
		}
		n = min(n, len(rest))
		parts = append(parts, rest[:n])
		rest = rest[n:]
	}
	r := s.Reader(&piecesReader{parts: parts}, pool)
	out, err := io.ReadAll(iotest.OneByteReader(r))
	if err != nil {
		panic(err)
	}
	r.Close()
	r.Close() // twice: the buffers go back once
	if _, err := r.Read(make([]byte, 1)); err == nil {
		panic("read after Close succeeded")
	}
	return out
}

type piecesReader struct{ parts [][]byte }

func (p *piecesReader) Read(b []byte) (int, error) {
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	if p.parts[0] = p.parts[0][n:]; len(p.parts[0]) == 0 {
		p.parts = p.parts[1:]
	}
	return n, nil
}

func TestReaderSplitsAcrossChunks(t *testing.T) {
	const secret = "sk_live_0123456789"
	s := redact.New(secret)
	data := []byte(strings.Repeat("x", 5) + secret + "--" + secret + secret[:5])
	want := s.Bytes(data)
	if bytes.Contains(want, []byte(secret)) {
		t.Fatal("whole redaction kept the secret")
	}
	for _, sizes := range [][]byte{nil, {1}, {2, 5}, {6, 0, 3}} {
		if got := chunked(s, data, sizes); !bytes.Equal(got, want) {
			t.Errorf("sizes %v: got %q, want %q", sizes, got, want)
		}
	}
}

func FuzzReaderMatchesWhole(f *testing.F) {
	f.Add("abc", "xyz", []byte("..abcxyzab.c"), []byte{1, 2, 3})
	f.Add("a", "aa", []byte("aaaaa"), []byte{0})
	f.Add("tok en", "Basic Ym9iOnB3", []byte("tok+en tok%20en Ym9iOnB3 pw bob:pw"), []byte{4})
	f.Fuzz(func(t *testing.T, v1, v2 string, data, sizes []byte) {
		s := redact.New(v1, v2)
		whole := s.Bytes(data)
		if got := chunked(s, data, sizes); !bytes.Equal(got, whole) {
			t.Fatalf("chunked %q != whole %q", got, whole)
		}
		// Whatever the marker adds, the plain text between markers holds no form.
		for _, part := range bytes.Split(whole, []byte(redact.Marker)) {
			if s.Contains(part) {
				t.Fatalf("output still holds a form in %q: %q", part, whole)
			}
		}
	})
}

func BenchmarkReader(b *testing.B) {
	body := bytes.Repeat([]byte(`{"id": 12345, "name": "some item", "tags": ["a", "b"]},`), 20000) // ~1 MB
	for _, tc := range []struct {
		name string
		s    *redact.Set
	}{
		{"none", nil},
		{"bearer", redact.New("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig")},
		{"basic", redact.New("Basic Ym9iOmh1bnRlcjI=", "hunter2")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_, _ = io.Copy(io.Discard, tc.s.Reader(bytes.NewReader(body), nil))
			}
		})
	}
}

// TestManyFirstBytes covers sets with more distinct first bytes than are searched for
// with bytes.IndexByte.
func TestManyFirstBytes(t *testing.T) {
	var values []string
	var data []byte
	for c := byte('a'); c <= 'z'; c++ {
		v := string([]byte{c, c + 1 - 'a' + 'A', '9', c})
		values = append(values, v)
		data = append(data, "..."+v+"."+v[:2]...)
	}
	s := redact.New(values...)
	whole := s.Bytes(data)
	for _, v := range values {
		if bytes.Contains(whole, []byte(v)) {
			t.Fatalf("%q kept in %q", v, whole)
		}
	}
	for _, sizes := range [][]byte{nil, {3}, {1, 6}} {
		if got := chunked(s, data, sizes); !bytes.Equal(got, whole) {
			t.Errorf("sizes %v: got %q, want %q", sizes, got, whole)
		}
	}
}

func FuzzAppendJSONMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte("żółw € <a&b> \"q\" \\ \n\t\x00\x7f \u2028 \xff\xfe/"))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, _ := json.Marshal(string(p))
		if got := redact.AppendJSON(nil, p, true); string(got) != string(b[1:len(b)-1]) {
			t.Fatalf("html: got %q, want %s", got, b)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(string(p))
		want := bytes.TrimSpace(buf.Bytes())
		if got := redact.AppendJSON(nil, p, false); string(got) != string(want[1:len(want)-1]) {
			t.Fatalf("plain: got %q, want %s", got, want)
		}
	})
}
