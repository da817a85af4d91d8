// Package redact removes injected credential values from what comes back to a caller: an
// upstream that echoes request headers, a redirect whose Location carries a query secret,
// an error page quoting the bad key. A Set holds the forms a value can take on the wire
// (raw, URL-escaped, JSON-escaped, base64, the whole Authorization value); Reader
// replaces them in a stream, holding back at most the longest form less one byte across
// reads, so the output is the same however the input is chunked.
package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Marker replaces every redacted value.
const Marker = "[redacted]"

// Set is the set of byte strings to redact. The zero Set and a nil *Set redact nothing.
type Set struct {
	pats   [][]byte    // by first byte, then longest first; no duplicates
	lo, hi [256]uint16 // pats[lo[c]:hi[c]] start with byte c
	firsts []byte      // the distinct first bytes
	maxLen int
}

// New returns the Set of the given injected values and their encoded forms. Empty values
// are ignored; every other value is redacted whatever its length.
func New(values ...string) *Set {
	s := &Set{}
	var forms []string
	for _, v := range values {
		forms = append(forms, Forms(v)...)
	}
	slices.Sort(forms)
	for _, f := range slices.Compact(forms) {
		if f != "" {
			s.pats = append(s.pats, []byte(f))
		}
	}
	slices.SortFunc(s.pats, func(a, b []byte) int {
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		return len(b) - len(a)
	})
	for i, p := range s.pats {
		if s.hi[p[0]] == 0 {
			s.lo[p[0]] = uint16(i)
			s.firsts = append(s.firsts, p[0])
		}
		s.hi[p[0]] = uint16(i + 1)
		s.maxLen = max(s.maxLen, len(p))
	}
	return s
}

// Forms returns the forms value can take in a response: itself, URL query- and
// path-escaped (upper- and lower-case hex), JSON-escaped (with and without HTML escaping,
// and with "/" escaped as PHP does),
// standard and URL-safe base64 (also as part of a longer base64 text, at any alignment,
// for values of 12 bytes or more); for an Authorization-style value "<scheme> <token>" also
// the token's forms, and for Basic the decoded "user:password" and the password.
func Forms(value string) []string {
	if value == "" {
		return nil
	}
	out := encodings(value)
	if scheme, token, ok := strings.Cut(value, " "); ok && token != "" && !strings.ContainsAny(scheme, "\t\"") {
		out = append(out, encodings(token)...)
		if strings.EqualFold(scheme, "Basic") {
			if dec, err := base64.StdEncoding.DecodeString(token); err == nil {
				out = append(out, encodings(string(dec))...)
				if _, pass, ok := strings.Cut(string(dec), ":"); ok && pass != "" {
					out = append(out, encodings(pass)...)
				}
			}
		}
	}
	return out
}

func encodings(v string) []string {
	q, p := url.QueryEscape(v), url.PathEscape(v)
	out := []string{v, q, p, lowerHex(q), lowerHex(p),
		base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))}
	j := string(AppendJSON(nil, []byte(v), true))
	out = append(out, j, string(AppendJSON(nil, []byte(v), false)), strings.ReplaceAll(j, "/", `\/`)) // PHP escapes "/"
	return append(out, embeddedBase64(v)...)
}

// minEmbedded is the shortest part of a value (in bytes) whose base64 is redacted inside a
// longer base64 text: shorter ones would match unrelated data too often.
const minEmbedded = 12

// embeddedBase64 returns the base64 (standard and URL-safe, unpadded) of v as it appears
// inside the base64 of a longer text (an upstream echoing the whole request encoded): at
// each of the three alignments v can have in the byte stream, the characters that depend
// on v alone. The one or two bytes at either end of v that share a group with other bytes
// stay visible.
func embeddedBase64(v string) []string {
	var out []string
	for skip := 0; skip < 3 && len(v)-skip >= minEmbedded; skip++ {
		part := v[skip:]
		part = part[:len(part)/3*3]
		out = append(out, base64.RawStdEncoding.EncodeToString([]byte(part)), base64.RawURLEncoding.EncodeToString([]byte(part)))
	}
	return out
}

// lowerHex lower-cases the hex digits of percent escapes.
func lowerHex(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lower(b[i+1]), lower(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Empty reports whether s redacts nothing.
func (s *Set) Empty() bool { return s == nil || len(s.pats) == 0 }

// MaxLen is the length of the longest form.
func (s *Set) MaxLen() int {
	if s == nil {
		return 0
	}
	return s.maxLen
}

// match returns the length of the longest form at the start of b, or 0.
func (s *Set) match(b []byte) int {
	for _, p := range s.pats[s.lo[b[0]]:s.hi[b[0]]] {
		if bytes.HasPrefix(b, p) {
			return len(p)
		}
	}
	return 0
}

// appendRedacted appends b to dst with every form replaced, scanning from the left and
// taking the longest form at each position. Positions from which a form might still
// begin (fewer than MaxLen bytes before the end, unless final) are left unscanned: it
// returns how many bytes of b it consumed.
func (s *Set) appendRedacted(dst, b []byte, final bool) ([]byte, int) {
	i, done := 0, 0
	limit := len(b) - s.maxLen + 1 // positions < limit have a full window
	if final {
		limit = len(b)
	}
	// Candidates are found with bytes.IndexByte per distinct first byte (vectorized),
	// remembering each one's next position; with many first bytes, byte by byte.
	var next [maxFirsts]int
	for j := range next {
		next[j] = -2 // not looked for yet
	}
	for i < limit {
		if len(s.firsts) <= maxFirsts {
			c := -1
			for j, f := range s.firsts {
				if next[j] != -1 && next[j] < i {
					if k := bytes.IndexByte(b[i:limit], f); k < 0 {
						next[j] = -1 // none before limit
					} else {
						next[j] = i + k
					}
				}
				if next[j] >= 0 && (c < 0 || next[j] < c) {
					c = next[j]
				}
			}
			if c < 0 {
				i = limit
				break
			}
			i = c
		} else if s.hi[b[i]] == 0 {
			i++
			continue
		}
		if n := s.match(b[i:]); n > 0 {
			dst = append(append(dst, b[done:i]...), Marker...)
			i += n
			done = i
			continue
		}
		i++
	}
	// Bytes before i were scanned; those from done on are plain.
	dst = append(dst, b[done:i]...)
	return dst, i
}

// maxFirsts is how many distinct first bytes are searched for with bytes.IndexByte.
const maxFirsts = 12

// Bytes returns b with every form replaced.
func (s *Set) Bytes(b []byte) []byte {
	if s.Empty() {
		return b
	}
	out, _ := s.appendRedacted(make([]byte, 0, len(b)), b, true)
	return out
}

// String returns v with every form replaced.
func (s *Set) String(v string) string {
	if s.Empty() {
		return v
	}
	return string(s.Bytes([]byte(v)))
}

// Contains reports whether any form occurs in b.
func (s *Set) Contains(b []byte) bool {
	if s.Empty() {
		return false
	}
	for i := range b {
		if s.hi[b[i]] != 0 && s.match(b[i:]) > 0 {
			return true
		}
	}
	return false
}

// Header redacts every value of h in place, and drops the fields whose name holds a form
// (compared without case: names arrive canonicalized).
func (s *Set) Header(h http.Header) {
	if s.Empty() {
		return
	}
	for k, vs := range h {
		if s.inName(k) {
			delete(h, k)
			continue
		}
		for i, v := range vs {
			vs[i] = s.String(v)
		}
	}
}

func (s *Set) inName(name string) bool {
	name = strings.ToLower(name)
	for _, p := range s.pats {
		if len(p) <= len(name) && strings.Contains(name, strings.ToLower(string(p))) {
			return true
		}
	}
	return false
}

// Reader returns a reader of r with every form replaced. It holds back at most
// MaxLen-1 bytes of r between reads, and reads r in pieces of up to 32 KiB. Its buffers
// come from bufs (nil: allocated) and go back there when the reader is closed; Close
// does not close r.
func (s *Set) Reader(r io.Reader, bufs *Buffers) io.ReadCloser {
	if s.Empty() {
		return io.NopCloser(r)
	}
	return &reader{s: s, r: r, bufs: bufs}
}

const (
	readSize = 32 << 10 // of one read of the source
	slack    = 4 << 10  // room in a pooled buffer for held-back bytes and markers
)

// Buffers is a pool of the readers' buffers, shared by all of them.
type Buffers struct{ p sync.Pool }

// NewBuffers returns an empty pool.
func NewBuffers() *Buffers {
	return &Buffers{p: sync.Pool{New: func() any { b := make([]byte, 0, readSize+slack); return &b }}}
}

func (b *Buffers) get(n int) []byte {
	if b == nil || n > readSize+slack {
		return make([]byte, 0, n)
	}
	return (*b.p.Get().(*[]byte))[:0]
}

func (b *Buffers) put(buf []byte) {
	if b == nil || cap(buf) != readSize+slack {
		return
	}
	b.p.Put(&buf)
}

type reader struct {
	s       *Set
	r       io.Reader
	bufs    *Buffers
	in      []byte // read from r, not yet scanned
	out     []byte // scanned, not yet returned
	off     int    // of out
	err     error  // of r, once seen
	started bool
}

func (rd *reader) Read(p []byte) (int, error) {
	for rd.off == len(rd.out) {
		if rd.err != nil {
			return 0, rd.err
		}
		if !rd.started {
			rd.started = true
			rd.in = rd.bufs.get(readSize + rd.s.maxLen)
			rd.out = rd.bufs.get(readSize + slack)
		}
		rd.out, rd.off = rd.out[:0], 0
		n, err := rd.r.Read(rd.in[len(rd.in) : len(rd.in)+readSize])
		rd.in = rd.in[:len(rd.in)+n]
		if err != nil {
			rd.err = err
		}
		var used int
		rd.out, used = rd.s.appendRedacted(rd.out, rd.in, err != nil)
		rd.in = rd.in[:copy(rd.in, rd.in[used:])]
	}
	n := copy(p, rd.out[rd.off:])
	rd.off += n
	return n, nil
}

// Close returns the reader's buffers to its pool. Reading after Close is an error.
func (rd *reader) Close() error {
	if rd.started {
		rd.bufs.put(rd.in)
		rd.bufs.put(rd.out)
		rd.in, rd.out, rd.off = nil, nil, 0
	}
	if rd.err == nil {
		rd.err = errClosed
	}
	rd.started = true
	return nil
}

var errClosed = errors.New("redact: read after Close")

// AppendJSON appends p escaped for the inside of a JSON string as encoding/json escapes
// it: invalid UTF-8 becomes U+FFFD, and with html "<", ">" and "&" are escaped too.
func AppendJSON(dst, p []byte, html bool) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20 || html && (c == '<' || c == '>' || c == '&'):
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, p[i:i+size]...)
		}
		i += size
	}
	return dst
}
