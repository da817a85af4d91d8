package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/function"
)

// CallResult is what a function call returns to the caller.
type CallResult struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body"`
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
	base, conn, co, err := g.target(ctx, ws, f)
	if err != nil {
		return CallResult{}, err
	}
	host := hostOf(base)

	// Where each credential may go is decided in send, for the built request's URL.
	// Credentials placed like parameters (api_key, secret) go through Build; the others
	// (basic, bearer, ...) are injected into the built request.
	secrets := map[string]sesame.Secret{}
	defer wipe(secrets)
	var injections []injection
	for pname, p := range f.Parameters {
		key := ""
		if function.IsAuth(pname, p) {
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
		switch r.Type {
		case "api_key", "secret":
			secrets[pname] = r.Secrets["value"]
			injections = append(injections, injection{key: key, placed: true})
		default:
			wipe(r.Secrets)
			injections = append(injections, injection{key: key, t: credential.Target{In: p.Location, Name: pname}})
		}
	}
	built, err := f.Build(args, secrets)
	if err != nil {
		return CallResult{}, err
	}

	var body io.Reader
	if built.Body != nil {
		body = bytes.NewReader(built.Body)
	}
	u, err := built.URL(base)
	if err != nil {
		return CallResult{}, sesame.Errorf(sesame.CodeInvalidArgument, "the call could not be built into a request on the function's host")
	}
	req, err := http.NewRequestWithContext(ctx, built.Method, u.String(), body)
	if err != nil {
		return CallResult{}, sesame.Errorf(sesame.CodeInvalidArgument, "the call could not be built into a request")
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
	if req.URL.Host != host {
		return CallResult{}, sesame.Errorf(sesame.CodeInvalidArgument, "the call would leave the function's host")
	}

	c := Connection{BaseURI: base}
	cacheKey, version := objectKey(ws, KindFunction, name), fo.Version
	if conn != nil {
		c, cacheKey, version = *conn, objectKey(ws, KindConnection, f.Connection), co.Version
		if len(injections) > 0 {
			c.Credential = "" // the function's own credentials replace the connection's
		}
	}
	rec := CallRecord{Kind: "function", Target: name, Connection: f.Connection}
	// send injects the function's credentials, and again if it must retry after a refresh.
	resp, err := g.send(ctx, ws, g.client(cacheKey, version, c.policy()), req, c, credential.Target{}, &rec, injections...)
	if err != nil {
		return CallResult{}, err
	}
	defer resp.Body.Close()
	return g.result(ctx, f, c, resp)
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

// result reads the upstream response (bounded), decodes JSON and applies the transform.
func (g *Gateway) result(ctx context.Context, f *function.Function, c Connection, resp *http.Response) (CallResult, error) {
	limit := g.cfg.MaxBody
	if c.MaxBodyBytes > 0 {
		limit = c.MaxBodyBytes
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return CallResult{}, outboundError(err)
	}
	if int64(len(data)) > limit {
		return CallResult{}, sesame.Errorf(sesame.CodeUpstreamError, "the upstream response is larger than %d bytes", limit)
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
	var v any
	if isJSON || (mt == "" && json.Valid(data)) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			out.Body = string(data)
			return out, nil
		}
		if resp.StatusCode < 400 && f.OutputTransform != "" {
			if v, err = f.Transform(ctx, v); err != nil {
				return CallResult{}, err
			}
		}
		out.Body = v
		return out, nil
	}
	out.Body = string(data)
	return out, nil
}
