package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/function"
	"github.com/sesamehq/sesame/internal/outbound"
	"github.com/sesamehq/sesame/internal/redact"
)

// connectionName returns the connection that serves f: its own connection, or for a
// Jigx function (whose url is absolute) the workspace's connection whose base URI has
// the url's origin, so that the connection's rate limit, retries, private-network
// setting and the destination rule apply. Of several, the one whose base path is the
// longest prefix of the url's path wins, then the first by name. A Sesame function
// with a url and no connection gives "".
func (g *Gateway) connectionName(ctx context.Context, ws string, f *function.Function) (string, error) {
	if f.Connection != "" || f.Provider == "" {
		return f.Connection, nil
	}
	cacheKey := ws + "\x00" + f.URL
	if name, ok := g.byOrigin.Get(cacheKey); ok {
		return name, nil
	}
	fu, err := url.Parse(f.URL)
	if err != nil {
		return "", sesame.Errorf(sesame.CodeInvalidField, "url: does not parse")
	}
	origin := credential.Origin(fu)
	urlPath := fu.EscapedPath()
	best, bestLen := "", -1
	after := ""
	for {
		objs, err := g.cfg.Store.ListObjects(ctx, ws, KindConnection, after, 100)
		if err != nil {
			return "", err
		}
		for _, o := range objs {
			c, err := parseConnection(o.Body)
			if err != nil {
				continue
			}
			cu, err := url.Parse(c.BaseURI)
			if err != nil || credential.Origin(cu) != origin {
				continue
			}
			n := 0
			if bp := strings.TrimSuffix(cu.EscapedPath(), "/"); bp != "" {
				if urlPath != bp && !strings.HasPrefix(urlPath, bp+"/") {
					continue
				}
				n = len(bp)
			}
			if n > bestLen {
				best, bestLen = o.Name, n
			}
		}
		if len(objs) < 100 {
			break
		}
		after = objs[len(objs)-1].Name
	}
	if best == "" {
		return "", sesame.Errorf(sesame.CodeInvalidField,
			"url: no connection in workspace %q has the origin %s (and a base path the url is under): create one with that base_uri first",
			ws, f.BaseURL())
	}
	g.byOrigin.Set(cacheKey, best)
	return best, nil
}

// newRequest turns a built function call into an HTTP request on base, refusing one
// that would leave base's host.
func newRequest(ctx context.Context, built function.Request, base string) (*http.Request, error) {
	var body io.Reader
	if built.Body != nil {
		body = bytes.NewReader(built.Body)
	}
	u, err := built.URL(base)
	if err != nil {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "the call could not be built into a request on the function's host")
	}
	req, err := http.NewRequestWithContext(ctx, built.Method, u.String(), body)
	if err != nil {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "the call could not be built into a request")
	}
	if built.Body != nil {
		b := built.Body
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for k, vs := range built.Header {
		req.Header[k] = vs
	}
	if built.ContentType != "" {
		req.Header.Set("Content-Type", built.ContentType)
	}
	if req.URL.Host != hostOf(base) {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "the call would leave the function's host")
	}
	return req, nil
}

// nextBuilt is the first page's built call changed as next says. Credential values that
// Build placed in the query (placed) stay when the next URL replaces the query.
func nextBuilt(first function.Request, next function.Next, placed map[string]bool) (function.Request, error) {
	r := first
	r.Query = url.Values{}
	for k, vs := range first.Query {
		r.Query[k] = append([]string(nil), vs...)
	}
	r.Header = first.Header.Clone()
	if next.URL != nil {
		r.Path = next.URL.EscapedPath()
		if r.Path == "" {
			r.Path = "/"
		}
		q := next.URL.Query()
		for name := range placed {
			if vs, ok := first.Query[name]; ok {
				q[name] = vs
			}
		}
		r.Query = q
	}
	for k, v := range next.Query {
		r.Query.Set(k, v)
	}
	for k, v := range next.Header {
		r.Header.Set(k, v)
	}
	if len(next.Body) > 0 {
		obj := map[string]any{}
		if len(first.Body) > 0 {
			dec := json.NewDecoder(bytes.NewReader(first.Body))
			dec.UseNumber()
			if err := dec.Decode(&obj); err != nil {
				return r, sesame.Errorf(sesame.CodeInvalidArgument, "continuation body parameters need a JSON object body")
			}
		}
		for k, v := range next.Body {
			obj[k] = v
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return r, sesame.Errorf(sesame.CodeInvalidArgument, "continuation body parameters could not be encoded")
		}
		r.Body, r.ContentType = b, "application/json"
		if ct := first.ContentType; ct != "" {
			r.ContentType = ct
		}
	}
	return r, nil
}

// callPages runs a function that reads records (Jigx records, continuation): each page's
// records are gathered, the next page requested while the continuation says so (at most
// Config.MaxPages pages, then the result says truncated), and the outputTransform applied
// to the list. A page with an error status ends the call with that page (through the
// errorTransform, if the function has one) as the result.
// Every page goes through send (credentials injected anew, destination rule, redaction);
// the continuation sees only redacted pages.
func (g *Gateway) callPages(ctx context.Context, ws string, f *function.Function, first function.Request, base string,
	cl *outbound.Client, c Connection, rec CallRecord, seen *injected, placed map[string]bool, injections []injection) (CallResult, error) {
	built := first
	var all []any
	total := int64(0)
	budget := min(f.ResponseBuffer(), g.MaxBody(c))
	out := CallResult{}
	for pages := 1; ; pages++ {
		req, err := newRequest(ctx, built, base)
		if err != nil {
			return CallResult{}, err
		}
		r := rec
		resp, err := g.send(ctx, ws, cl, req, c, credential.Target{}, &r, seen, injections...)
		if err != nil {
			return CallResult{}, err
		}
		page, res, err := g.readPage(f, resp, budget-total, seen.redactor())
		resp.Body.Close()
		if err != nil {
			return CallResult{}, err
		}
		total += res.size
		out.Status, out.Headers, out.Pages = res.Status, res.Headers, pages
		if res.Status >= 400 {
			v, err := f.TransformError(ctx, page)
			if err != nil {
				return CallResult{}, err
			}
			return redactedResult(f, out, v, seen.redactor())
		}
		recs, err := f.PageRecords(ctx, page)
		if err != nil {
			return CallResult{}, err
		}
		all = append(all, recs...)
		next, more, err := f.NextPage(ctx, page)
		if err != nil {
			return CallResult{}, err
		}
		if !more {
			break
		}
		if pages >= g.cfg.MaxPages {
			out.Truncated = true
			break
		}
		if built, err = nextBuilt(first, next, placed); err != nil {
			return CallResult{}, err
		}
	}
	if all == nil {
		all = []any{}
	}
	v, err := f.Transform(ctx, all)
	if err != nil {
		return CallResult{}, err
	}
	return redactedResult(f, out, v, seen.redactor())
}

// redactedResult is out with body v, with any injected value (rs) that a transform
// spelled replaced.
func redactedResult(f *function.Function, out CallResult, v any, rs *redact.Set) (CallResult, error) {
	if !rs.Empty() {
		b, err := json.Marshal(v)
		if err != nil {
			return CallResult{}, sesame.Errorf(function.CodeTransformFailed, "function %s: the result could not be encoded", f.Name)
		}
		if rs.Contains(b) {
			b = rs.Bytes(b)
			if !json.Valid(b) {
				out.Body = string(b)
				return out, nil
			}
		}
		v = json.RawMessage(b)
	}
	out.Body = v
	return out, nil
}

type pageResult struct {
	CallResult
	size int64
}

// readPage reads one page of at most limit bytes and decodes it as JSON, with any
// injected value that escaped the stream redaction (as a JSON escape) replaced.
func (g *Gateway) readPage(f *function.Function, resp *http.Response, limit int64, rs *redact.Set) (any, pageResult, error) {
	data, err := readAtMost(resp, limit+1)
	if err != nil {
		return nil, pageResult{}, outboundError(err)
	}
	if int64(len(data)) > limit {
		return nil, pageResult{}, sesame.Errorf(sesame.CodeResponseTooLarge,
			"the pages of function %s are larger than the %d bytes it may buffer (maxResponseBytes, and the connection's body limit)", f.Name, f.ResponseBuffer())
	}
	res := pageResult{CallResult: CallResult{Status: resp.StatusCode, Headers: map[string]string{}}, size: int64(len(data))}
	for _, h := range defaultResponseHeaders {
		if v := resp.Header.Get(h); v != "" {
			res.Headers[h] = v
		}
	}
	if !rs.Empty() && rs.Contains(data) {
		data = rs.Bytes(data)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if (mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json")) || dec.Decode(&v) != nil {
		if resp.StatusCode >= 400 {
			return string(data), res, nil
		}
		return nil, res, sesame.Errorf(sesame.CodeUpstreamError, "function %s: a page of its response is not JSON", f.Name)
	}
	if !rs.Empty() {
		// JSON escapes can spell an injected value the byte check missed.
		b, err := json.Marshal(v)
		if err == nil && rs.Contains(b) {
			dec := json.NewDecoder(bytes.NewReader(rs.Bytes(b)))
			dec.UseNumber()
			v = nil
			if dec.Decode(&v) != nil {
				return nil, res, sesame.Errorf(sesame.CodeUpstreamError, "function %s: a page of its response is not JSON", f.Name)
			}
		}
	}
	return v, res, nil
}
