package gateway

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

// strippedRequestHeaders never travel upstream from the caller: its own credentials and
// cookies, and what only concerns the hop between caller and Sesame.
// X-Sesame-User selects the end user's grant (OAuth2) and is for Sesame alone.
var strippedRequestHeaders = []string{"Authorization", "X-Api-Key", "Cookie", "Host", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Sesame-User"}

// removeHopByHop deletes hop-by-hop headers and those the Connection header names.
func removeHopByHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for name := range hopByHop {
		h.Del(name)
	}
}

// Proxy forwards in to connection conn at rawPath (escaped, without the leading "/") with
// the connection's credential injected, and returns the upstream response for the caller
// to stream back. The request body is streamed, never buffered.
//
// TRACE (which reflects the request, injected credential included) and CONNECT are
// refused. With a credential to inject, the upstream is asked for an uncompressed answer
// and no Range of it (a range could return a credential value piece by piece), and the
// response is redacted (see send).
func (g *Gateway) Proxy(ctx context.Context, ws, conn string, in *http.Request, rawPath string) (*http.Response, Connection, error) {
	if in.Method == http.MethodTrace || in.Method == http.MethodConnect {
		return nil, Connection{}, sesame.Errorf(sesame.CodeMethodNotAllowed, "the proxy does not forward %s requests", in.Method)
	}
	c, o, err := g.loadConnection(ctx, ws, conn)
	if err != nil {
		return nil, c, err
	}
	if err := checkRelativePath("/" + rawPath); err != nil && rawPath != "" {
		return nil, c, sesame.Errorf(sesame.CodeInvalidArgument, "proxy path %s", err)
	}
	target := c.BaseURI
	if rawPath != "" {
		target += "/" + rawPath
	}
	var body io.Reader = in.Body
	if in.ContentLength == 0 {
		body = nil
	}
	req, err := http.NewRequestWithContext(ctx, in.Method, target, body)
	if err != nil {
		return nil, c, sesame.Errorf(sesame.CodeInvalidArgument, "the proxy path does not form a valid URL")
	}
	if req.URL.Host != hostOf(c.BaseURI) {
		return nil, c, sesame.Errorf(sesame.CodeInvalidArgument, "the proxy path would leave the connection's host")
	}
	req.URL.RawQuery = in.URL.RawQuery
	req.ContentLength = in.ContentLength
	req.Header = in.Header.Clone()
	removeHopByHop(req.Header)
	for _, h := range strippedRequestHeaders {
		req.Header.Del(h)
	}
	if c.Auth != nil && c.Auth.In == "header" {
		req.Header.Del(c.Auth.Name)
	}
	if c.Credential != "" {
		req.Header.Del("Range")
		req.Header.Del("If-Range")
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, c, sesame.Errorf(sesame.CodeInvalidArgument, "header %q has a value with CR, LF or NUL", k)
			}
		}
	}
	rec := CallRecord{Kind: "proxy", Target: conn, Connection: conn}
	resp, err := g.send(ctx, ws, g.client(objectKey(ws, KindConnection, conn), o.Version, ws, c), req, c, credential.Target{}, &rec, nil)
	if err != nil {
		return nil, c, err
	}
	removeHopByHop(resp.Header)
	return resp, c, nil
}

// MaxBody returns the body limit for a connection.
func (g *Gateway) MaxBody(c Connection) int64 {
	if c.MaxBodyBytes > 0 {
		return c.MaxBodyBytes
	}
	return g.cfg.MaxBody
}
