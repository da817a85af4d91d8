package gateway

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/redact"
)

// injected collects the values the injectors put into one outbound request, so that none
// of them comes back to the caller (PRODUCT.md §4.7). It never leaves the gateway.
type injected struct {
	values []string
	set    *redact.Set // of values, built on first use
}

func (in *injected) add(vs ...string) {
	for _, v := range vs {
		if v != "" && !slices.Contains(in.values, v) {
			in.values = append(in.values, v)
			in.set = nil
		}
	}
}

// snapshot is what a request carried before an injector ran. The header map is a shallow
// copy: http.Header's Set and Del replace or drop a value slice, never write into one, and
// Add appends past the copy's length.
type snapshot struct {
	header   http.Header
	rawQuery string
}

func snapshotOf(req *http.Request) snapshot {
	return snapshot{header: maps.Clone(req.Header), rawQuery: req.URL.RawQuery}
}

// diff adds every header and query value of req that was not there at snapshot s.
func (in *injected) diff(s snapshot, req *http.Request) {
	for k, vs := range req.Header {
		for _, v := range vs {
			if !slices.Contains(s.header[k], v) {
				in.add(v)
			}
		}
	}
	if req.URL.RawQuery == s.rawQuery {
		return
	}
	before, _ := url.ParseQuery(s.rawQuery)
	for k, vs := range req.URL.Query() {
		for _, v := range vs {
			if !slices.Contains(before[k], v) {
				in.add(v)
			}
		}
	}
}

// redactor returns the redaction set of the collected values.
func (in *injected) redactor() *redact.Set {
	if in == nil || len(in.values) == 0 {
		return nil
	}
	if in.set == nil {
		in.set = redact.New(in.values...)
	}
	return in.set
}

// askIdentity makes the upstream answer uncompressed, so that the response can be scanned.
// Go's transport then no longer asks for gzip on its own either.
func askIdentity(req *http.Request) {
	req.Header.Set("Accept-Encoding", "identity")
}

// redactResponse makes resp safe to return: every header value, and the body as it
// streams, lose the injected values in all their forms. A gzip or deflate body is
// decoded first (still streaming; the caller's body limit counts decoded bytes); any other
// content encoding cannot be scanned and is refused. Content-Length goes, since redaction
// can change the length.
func redactResponse(resp *http.Response, s *redact.Set, bufs *redact.Buffers) error {
	if s.Empty() {
		return nil
	}
	declared := resp.ContentLength
	if err := decodeBody(resp); err != nil {
		return err
	}
	s.Header(resp.Header)
	s.Header(resp.Trailer)
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	rr := s.Reader(resp.Body, bufs)
	resp.Body = &RedactedBody{Reader: rr, Closer: closers{rr, resp.Body}, declared: declared}
	return nil
}

// RedactedBody is a response body that is redacted as it is read. Its length is not known
// before it is read to the end (a replacement may change it), but whether the upstream
// declared one is: such a body is finite, so a caller may read it to the end without
// waiting on a stream (and then send it with its length, in one write).
type RedactedBody struct {
	io.Reader
	io.Closer
	declared int64
}

// Finite reports whether the upstream sent the body with a Content-Length (before any
// decoding): reading it to the end does not wait on a stream.
func (b *RedactedBody) Finite() bool { return b.declared >= 0 }

// decodeBody removes a gzip or deflate content encoding from resp.
func decodeBody(resp *http.Response) error {
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	var r io.Reader
	switch enc {
	case "", "identity":
		resp.Header.Del("Content-Encoding")
		return nil
	case "gzip", "x-gzip":
		r = &lazyGzip{src: resp.Body}
	case "deflate":
		r = &lazyDeflate{src: resp.Body}
	default:
		resp.Body.Close()
		return sesame.Errorf(sesame.CodeUpstreamEncoding,
			"the upstream answered with content encoding %q, which cannot be checked for credential values (Sesame asks for identity and decodes only gzip and deflate)", truncate(enc, 32))
	}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
	resp.Body = readCloser{r, resp.Body}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// lazyGzip opens the gzip stream on first read, so that a bad header is a read error
// (after the status line), not a failed call.
type lazyGzip struct {
	src io.Reader
	zr  *gzip.Reader
}

func (l *lazyGzip) Read(p []byte) (int, error) {
	if l.zr == nil {
		zr, err := gzip.NewReader(l.src)
		if err != nil {
			return 0, err
		}
		l.zr = zr
	}
	return l.zr.Read(p)
}

// lazyDeflate reads a "deflate" body: zlib-wrapped as RFC 9110 says, or raw as some
// servers send it.
type lazyDeflate struct {
	src io.Reader
	r   io.Reader
}

func (l *lazyDeflate) Read(p []byte) (int, error) {
	if l.r == nil {
		l.r = newDeflateReader(l.src)
	}
	return l.r.Read(p)
}

// closers closes each in turn and returns the first error.
type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type readCloser struct {
	io.Reader
	io.Closer
}

func newDeflateReader(src io.Reader) io.Reader {
	br := bufio.NewReader(src)
	if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		if zr, err := zlib.NewReader(br); err == nil {
			return zr
		}
	}
	return flate.NewReader(br)
}
