package gateway

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/outbound"
)

// Refresher is an Injector whose material can be renewed when the upstream rejects it
// (an OAuth2 access token). After a response that matches the connection's auth-failure
// signals, the gateway forces one refresh and sends the request once more.
type Refresher interface {
	ForceRefresh(ctx context.Context, m credential.Material) error
}

// injection is a credential to put into a request: where the kind lets the caller choose.
// A placed one is already in the request (a function's api_key or secret parameter).
type injection struct {
	key    string
	t      credential.Target
	placed bool
}

// send adds the connection's default headers and credential, and the extra injections
// (a function's own credentials), to req, sends it through cl and records the call. The
// response comes back redacted: none of the values injected (nor those in seen already,
// such as a function's api_key parameters) appears in its headers or body, in any of the
// forms of redact.Forms. The caller closes the response body.
func (g *Gateway) send(ctx context.Context, ws string, cl *outbound.Client, req *http.Request, c Connection, t credential.Target, rec *CallRecord, seen *injected, extra ...injection) (*http.Response, error) {
	if seen == nil {
		seen = &injected{}
	}
	start := time.Now()
	rec.Time, rec.Workspace, rec.Method, rec.Host = g.cfg.Clock.Now().UTC(), ws, req.Method, req.URL.Host
	if p, ok := sesame.PrincipalFrom(ctx); ok {
		rec.UserID, rec.KeyID = p.UserID, p.KeyID
	}
	var endCall func()
	if c.Agent != "" && g.cfg.Agents != nil {
		endCall = g.cfg.Agents.Begin(ws, c.Agent)
	}
	resp, err := g.sendInner(ctx, ws, cl, req, c, t, seen, extra)
	if endCall != nil {
		if err != nil {
			endCall()
		} else {
			resp.Body = &endBody{ReadCloser: resp.Body, end: endCall}
		}
	}
	if err == nil {
		if err = redactResponse(resp, seen.redactor(), g.buffers); err != nil {
			resp = nil
		}
	}
	rec.Latency = time.Since(start)
	if resp != nil {
		rec.Status = resp.StatusCode
	}
	rec.Error = errorCodeOf(err)
	g.cfg.Recorder.RecordCall(ctx, *rec)
	return resp, err
}

func (g *Gateway) sendInner(ctx context.Context, ws string, cl *outbound.Client, req *http.Request, c Connection, t credential.Target, seen *injected, extra []injection) (*http.Response, error) {
	for name, v := range c.Headers {
		if req.Header.Get(name) == "" {
			req.Header.Set(name, v)
		}
	}
	if c.MediaType != "" && req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", c.MediaType)
	}
	injs := extra
	if len(injs) > 0 || c.Credential != "" || len(seen.values) > 0 {
		askIdentity(req)
	}
	if c.Credential != "" {
		if c.Auth != nil && t.Name == "" {
			t = credential.Target{In: c.Auth.In, Name: c.Auth.Name}
		}
		injs = append([]injection{{key: c.Credential, t: t}}, extra...)
	}
	// The destination rule (PRODUCT.md §4.7), for every credential the request carries,
	// before any is sent: the client follows redirects only within this origin, and a
	// retry goes to the same URL.
	for _, in := range injs {
		if err := g.cfg.Vault.AllowDestination(ctx, ws, in.key, req.URL); err != nil {
			return nil, err
		}
	}
	// Injectors note which token version went into the request, so that a forced refresh
	// after a rejection renews only that one.
	ctx, _ = credential.WithServed(ctx)
	// A connection through an agent fetches its credentials' tokens through it too.
	dial := g.agentDial(ws, c)
	var refreshable []injection
	for _, in := range injs {
		if in.placed {
			continue
		}
		ok, err := g.inject(ctx, ws, req, in.key, in.t, dial, seen)
		if err != nil {
			return nil, err
		}
		if ok {
			refreshable = append(refreshable, in)
		}
	}
	// A request is sent again only if its body can be: none, or one GetBody makes anew.
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var retry *http.Request
	if len(refreshable) > 0 && replayable {
		retry = req.Clone(req.Context())
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, outboundError(err)
	}
	if retry == nil || !c.AuthFailure.matches(resp) {
		return resp, nil
	}
	// The upstream rejected the credential: one forced refresh, one more try.
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	for _, in := range refreshable {
		if err := g.forceRefresh(ctx, ws, in.key, dial); err != nil {
			return nil, err
		}
	}
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, sesame.Errorf(sesame.CodeUpstreamError, "the request body could not be sent again")
		}
	}
	for _, in := range refreshable {
		if _, err := g.inject(ctx, ws, retry, in.key, in.t, dial, seen); err != nil {
			return nil, err
		}
	}
	resp, err = cl.Do(retry)
	if err != nil {
		return nil, outboundError(err)
	}
	return resp, nil
}

// inject resolves credential key and adds it to req; sendInner has checked that it may be
// sent to the request's origin. It notes in seen what it added (every header and query value
// that changed, and the credential's own value, password or token), and reports whether the
// credential's injector can refresh it. dial, when not nil, is the connection's agent:
// the injector reaches token endpoints through it (credential.Material.Dial).
func (g *Gateway) inject(ctx context.Context, ws string, req *http.Request, key string, t credential.Target, dial credential.DialFunc, seen *injected) (refreshable bool, err error) {
	r, err := g.cfg.Vault.Resolve(ctx, ws, key)
	if err != nil {
		return false, err
	}
	defer wipe(r.Secrets)
	m := credential.Material{Workspace: ws, Key: key, Type: r.Type, Public: r.Public, Secrets: r.Secrets, Dial: dial}
	before := snapshotOf(req)
	defer func() {
		seen.diff(before, req)
		for _, f := range injectedFields {
			if v, ok := r.Secrets[f]; ok {
				seen.add(string(v.Reveal()))
			}
		}
	}()
	if inj, ok := g.cfg.Injectors[r.Type]; ok {
		_, refreshable = inj.(Refresher)
		return refreshable, inj.Inject(ctx, req, m, t)
	}
	return false, credential.Inject(req, m, t)
}

// injectedFields are the secret fields whose values go into requests as they are (a
// Basic password inside base64); keys and client secrets that only sign or fetch a token
// are not sent, and the token they give is caught by the request diff.
var injectedFields = []string{"value", "password", "token"}

// forceRefresh renews credential key's material through its injector, reaching its token
// endpoint through dial when not nil (the connection's agent).
func (g *Gateway) forceRefresh(ctx context.Context, ws, key string, dial credential.DialFunc) error {
	r, err := g.cfg.Vault.Resolve(ctx, ws, key)
	if err != nil {
		return err
	}
	defer wipe(r.Secrets)
	rf, ok := g.cfg.Injectors[r.Type].(Refresher)
	if !ok {
		return nil
	}
	return rf.ForceRefresh(ctx, credential.Material{Workspace: ws, Key: key, Type: r.Type, Public: r.Public, Secrets: r.Secrets, Dial: dial})
}

func wipe(secrets map[string]sesame.Secret) {
	for _, s := range secrets {
		s.Wipe()
	}
}

// endBody ends a call's count when its response body is closed.
type endBody struct {
	io.ReadCloser
	end func()
}

func (b *endBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}
