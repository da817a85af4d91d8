package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/function"
	"github.com/sesamehq/sesame/internal/redact"
)

// CallResult is what a function call returns to the caller.
type CallResult struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body"`
	// Stream, when set, is a body too large to buffer: Body is nil and the caller writes
	// the result with Stream.WriteResult, which also closes it.
	Stream *BodyStream `json:"-"`
	// Pages is how many pages a function with a continuation (Jigx) fetched; Truncated
	// says it stopped at the server's page cap while the continuation asked for more.
	Pages     int  `json:"pages,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
}

// defaultResponseHeaders are returned when a function does not choose its own.
var defaultResponseHeaders = []string{"Content-Type", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

// CallFunction runs function name with the caller's parameters. Credential parameters are
// resolved from the vault; a caller may never pass one.
func (g *Gateway) CallFunction(ctx context.Context, ws, name string, args map[string]any) (CallResult, error) {
	f, fo, err := g.loadFunction(ctx, ws, name)
	if err != nil {
		return CallResult{}, err
	}
	if err := mayCall(ctx, f); err != nil {
		return CallResult{}, err
	}
	base, conn, co, connName, err := g.target(ctx, ws, f)
	if err != nil {
		return CallResult{}, err
	}

	// Where each credential may go is decided in send, for the built request's URL.
	// Credentials placed like parameters (api_key, secret) go through Build; the others
	// (basic, bearer, ...) are injected into the built request.
	secrets := map[string]sesame.Secret{}
	defer wipe(secrets)
	placed := map[string]bool{} // query parameters Build fills with a credential value
	bare := map[string]sesame.Secret{}
	defer wipe(bare) // bearer tokens whose scheme was added: redacted on their own too
	var injections []injection
	for pname, p := range f.Parameters {
		key := ""
		auth := function.IsAuth(pname, p)
		if auth {
			key = *p.Value
		} else if k, ok := g.namedSecret(ctx, ws, p); ok {
			key = k
		}
		if key == "" {
			continue
		}
		r, err := g.cfg.Vault.Resolve(ctx, ws, key)
		if err != nil {
			return CallResult{}, err
		}
		switch {
		case r.Type == "api_key", r.Type == "secret":
			secrets[pname] = r.Secrets["value"]
		case r.Type == "bearer" && !auth:
			// A bearer token named by an ordinary parameter goes where the parameter
			// goes, as it is (with its scheme in an Authorization header).
			tok := r.Secrets["token"]
			if p.Location == function.LocationHeader && http.CanonicalHeaderKey(pname) == "Authorization" {
				scheme, _ := r.Public["scheme"].(string)
				if scheme == "" {
					scheme = "Bearer"
				}
				bare[pname] = tok
				tok = sesame.NewSecret(append([]byte(scheme+" "), tok.Reveal()...))
			}
			secrets[pname] = tok
		default:
			wipe(r.Secrets)
			injections = append(injections, injection{key: key, t: credential.Target{In: p.Location, Name: pname}})
			continue
		}
		injections = append(injections, injection{key: key, placed: true})
		if p.Location == function.LocationQuery {
			placed[pname] = true
		}
	}
	built, err := f.BuildContext(ctx, args, secrets)
	if err != nil {
		return CallResult{}, err
	}
	req, err := newRequest(ctx, built, base)
	if err != nil {
		return CallResult{}, err
	}

	c := Connection{BaseURI: base}
	cacheKey, version := objectKey(ws, KindFunction, name), fo.Version
	if conn != nil {
		c, cacheKey, version = *conn, objectKey(ws, KindConnection, connName), co.Version
		c.BaseURI = base
		if len(injections) > 0 {
			c.Credential = "" // the function's own credentials replace the connection's
		}
	}
	rec := CallRecord{Kind: "function", Target: name, Connection: connName}
	// send injects the function's credentials, and again if it must retry after a refresh.
	seen := &injected{}
	for _, s := range secrets {
		seen.add(string(s.Reveal()))
	}
	for _, s := range bare {
		seen.add(string(s.Reveal()))
	}
	cl := g.client(cacheKey, version, ws, c)
	if f.Paged() {
		return g.callPages(ctx, ws, f, built, base, cl, c, rec, seen, placed, injections)
	}
	resp, err := g.send(ctx, ws, cl, req, c, credential.Target{}, &rec, seen, injections...)
	if err != nil {
		return CallResult{}, err
	}
	res, err := g.result(ctx, f, c, resp, seen.redactor(), built.Inputs)
	if res.Stream == nil {
		resp.Body.Close()
	}
	return res, err
}

// mayCall applies the function's own rules on who may call it: anonymous callers only
// when it allows them, and apps only if it lists them (when it lists any).
func mayCall(ctx context.Context, f *function.Function) error {
	p, _ := sesame.PrincipalFrom(ctx)
	switch p.Kind {
	case sesame.PrincipalAnonymous:
		if !f.AllowAnonymous {
			return sesame.Errorf(sesame.CodeUnauthenticated, "missing API key: send Authorization: Bearer <key> or X-API-Key")
		}
		// The end user selects an OAuth2 grant and becomes {{user}} in a signed JWT: an
		// anonymous caller names one only where the function takes it from the caller.
		if sesame.EndUserFrom(ctx) != "" && !f.AllowAnonymousEndUser {
			return sesame.Errorf(sesame.CodeEndUserNotAllowed, "anonymous callers may not name the end user of this function (it does not set allowAnonymousEndUser)")
		}
	case sesame.PrincipalApp:
		if len(f.AllowedApps) > 0 && !slices.ContainsFunc(f.AllowedApps, func(pattern string) bool { return sesame.AppPatternMatches(pattern, p.AppID) }) {
			return sesame.Errorf(sesame.CodeForbidden, "app %q may not call this function", p.AppID)
		}
	}
	return nil
}

// result reads the upstream response, decodes JSON and applies the transform. It buffers
// at most the function's ResponseBuffer: a larger response is an error if it must be
// transformed, and otherwise comes back as a Stream (bounded by the connection's body
// limit) that owns resp.Body. Whatever it returns has no injected value in it (rs).
// A response with an error status goes through the errorTransform (Jigx) if the function
// has one; a binary function's (format: pdf) response is read whole and given as base64
// with the call's inputs (see function.BinaryInput).
func (g *Gateway) result(ctx context.Context, f *function.Function, c Connection, resp *http.Response, rs *redact.Set, inputs map[string]any) (CallResult, error) {
	limit := g.MaxBody(c)
	buffer := min(f.ResponseBuffer(), limit)
	data, err := readAtMost(resp, buffer+1)
	if err != nil {
		return CallResult{}, outboundError(err)
	}
	out := CallResult{Status: resp.StatusCode, Headers: map[string]string{}}
	names := f.ResponseHeaders
	if len(names) == 0 {
		names = defaultResponseHeaders
	}
	for _, h := range names {
		if v := resp.Header.Get(h); v != "" {
			out.Headers[http.CanonicalHeaderKey(h)] = v
		}
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
	transform := resp.StatusCode < 400 && f.OutputTransform != ""
	errTransform := resp.StatusCode >= 400 && f.HasErrorTransform()
	binary := resp.StatusCode < 400 && f.Binary()
	if int64(len(data)) > buffer {
		if transform || errTransform || binary || buffer == limit {
			return CallResult{}, sesame.Errorf(sesame.CodeResponseTooLarge,
				"the upstream response is larger than the %d bytes function %s may buffer (maxResponseBytes, and the connection's body limit)", buffer, f.Name)
		}
		out.Stream = &BodyStream{head: data, rest: resp.Body, json: isJSON, limit: limit}
		return out, nil
	}
	var v any
	text := false // v is the body as text, not decoded JSON
	switch {
	case binary:
		v = function.BinaryInput(data, inputs)
		if !transform {
			v = map[string]any{"data": v.(map[string]any)["data"]}
		}
	case isJSON || (mt == "" && json.Valid(data)):
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			v, text = string(data), true
		}
	default:
		v, text = string(data), true
	}
	switch {
	case errTransform:
		v, err = f.TransformError(ctx, v)
	case text:
		out.Body = v
		return out, nil
	case transform:
		v, err = f.Transform(ctx, v)
	}
	if err != nil {
		return CallResult{}, err
	}
	// The body was redacted as it came in, but JSON escapes ("\u0073ecret") or a
	// transform can still spell an injected value: check what the caller will read.
	if !rs.Empty() {
		b, err := json.Marshal(v)
		if err != nil {
			return CallResult{}, fmt.Errorf("gateway: encode result of %s: %w", f.Name, err)
		}
		if rs.Contains(b) {
			if b = rs.Bytes(b); !json.Valid(b) {
				out.Body = string(b)
				return out, nil
			}
		}
		v = json.RawMessage(b)
	}
	out.Body = v
	return out, nil
}

// readAtMost reads up to n bytes of resp's body, in a buffer sized by Content-Length
// when the upstream gives one, and otherwise grown in steps that never allocate much more
// than what was read.
func readAtMost(resp *http.Response, n int64) ([]byte, error) {
	if resp.ContentLength > 0 {
		b := bytes.NewBuffer(make([]byte, 0, min(resp.ContentLength+1, n)))
		_, err := b.ReadFrom(io.LimitReader(resp.Body, n))
		return b.Bytes(), err
	}
	var pieces [][]byte
	total := 0
	r := io.LimitReader(resp.Body, n)
	for {
		p := make([]byte, 64<<10)
		m, err := io.ReadFull(r, p)
		if m > 0 {
			pieces = append(pieces, p[:m])
			total += m
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(pieces) == 1 {
		return pieces[0], nil
	}
	return bytes.Join(pieces, nil)[:total:total], nil
}

// BodyStream is a function's response body that is streamed to the caller instead of
// buffered: already read head, then rest, at most limit bytes in all.
type BodyStream struct {
	head  []byte
	rest  io.ReadCloser
	json  bool // written as it is; otherwise as a JSON string
	limit int64
}

// ErrStreamTooLarge ends a stream whose body passed the connection's body limit. The
// status is sent by then: the caller can only cut the response.
var ErrStreamTooLarge = errors.New("gateway: upstream response larger than the body limit")

// WriteResult writes res as JSON to w, streaming its body, and closes the stream. flush
// (may be nil) is called after each piece. An error means the response is incomplete.
func (s *BodyStream) WriteResult(w io.Writer, res CallResult, flush func()) error {
	defer s.rest.Close()
	head, err := json.Marshal(struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers,omitempty"`
	}{res.Status, res.Headers})
	if err != nil {
		return err
	}
	if _, err := w.Write(append(head[:len(head)-1], `,"body":`...)); err != nil {
		return err
	}
	if !s.json {
		if _, err := io.WriteString(w, `"`); err != nil {
			return err
		}
	}
	var pending, scratch []byte // an incomplete UTF-8 sequence at the end of the last piece; escaped text
	write := func(p []byte, final bool) error {
		if s.json {
			_, err := w.Write(p)
			return err
		}
		if len(pending) > 0 {
			p = append(pending, p...)
		}
		cut := len(p)
		if !final {
			cut = completeUTF8(p)
		}
		scratch = redact.AppendJSON(scratch[:0], p[:cut], true)
		pending = append(pending[:0:0], p[cut:]...)
		_, err := w.Write(scratch)
		return err
	}
	const piece = 32 << 10
	total := int64(len(s.head))
	for head := s.head; len(head) > 0; {
		n := min(len(head), piece)
		if err := write(head[:n], false); err != nil {
			return err
		}
		head = head[n:]
	}
	s.head = nil
	buf := make([]byte, piece)
	for {
		n, rerr := s.rest.Read(buf)
		if n > 0 {
			if total += int64(n); total > s.limit {
				return ErrStreamTooLarge
			}
			if err := write(buf[:n], false); err != nil {
				return err
			}
			if flush != nil {
				flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return outboundError(rerr)
		}
	}
	if !s.json {
		if err := write(nil, true); err != nil {
			return err
		}
		if _, err := io.WriteString(w, `"`); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "}\n")
	return err
}

// completeUTF8 returns the length of p without a trailing incomplete UTF-8 sequence.
func completeUTF8(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return len(p)
			}
			return i
		}
	}
	return len(p)
}
