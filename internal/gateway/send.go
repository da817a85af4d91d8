package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/outbound"
)

// send adds the connection's default headers and credential to req, sends it through cl
// and records the call. The caller closes the response body.
func (g *Gateway) send(ctx context.Context, ws string, cl *outbound.Client, req *http.Request, c Connection, t credential.Target, rec *CallRecord) (*http.Response, error) {
	start := time.Now()
	rec.Time, rec.Workspace, rec.Method, rec.Host = g.cfg.Clock.Now().UTC(), ws, req.Method, req.URL.Host
	if p, ok := sesame.PrincipalFrom(ctx); ok {
		rec.UserID, rec.KeyID = p.UserID, p.KeyID
	}
	resp, err := g.sendInner(ctx, ws, cl, req, c, t)
	rec.Latency = time.Since(start)
	if resp != nil {
		rec.Status = resp.StatusCode
	}
	rec.Error = errorCodeOf(err)
	g.cfg.Recorder.RecordCall(ctx, *rec)
	return resp, err
}

func (g *Gateway) sendInner(ctx context.Context, ws string, cl *outbound.Client, req *http.Request, c Connection, t credential.Target) (*http.Response, error) {
	for name, v := range c.Headers {
		if req.Header.Get(name) == "" {
			req.Header.Set(name, v)
		}
	}
	if c.MediaType != "" && req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", c.MediaType)
	}
	if c.Credential != "" {
		if c.Auth != nil && t.Name == "" {
			t = credential.Target{In: c.Auth.In, Name: c.Auth.Name}
		}
		if err := g.inject(ctx, ws, req, c.Credential, t); err != nil {
			return nil, err
		}
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, outboundError(err)
	}
	return resp, nil
}

// inject resolves credential key and adds it to req, after checking that it may be sent
// to the request's host.
func (g *Gateway) inject(ctx context.Context, ws string, req *http.Request, key string, t credential.Target) error {
	r, err := g.cfg.Vault.Resolve(ctx, ws, key)
	if err != nil {
		return err
	}
	defer wipe(r.Secrets)
	if !credential.HostAllowed(r.Public, req.URL.Host) {
		return sesame.Errorf(sesame.CodeForbidden, "credential %q may not be sent to %s (not in its hosts)", key, req.URL.Host)
	}
	m := credential.Material{Workspace: ws, Key: key, Type: r.Type, Public: r.Public, Secrets: r.Secrets}
	if inj, ok := g.cfg.Injectors[r.Type]; ok {
		return inj.Inject(ctx, req, m, t)
	}
	return credential.Inject(req, m, t)
}

func wipe(secrets map[string]sesame.Secret) {
	for _, s := range secrets {
		s.Wipe()
	}
}
