package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/function"
	"github.com/sesamehq/sesame/internal/outbound"
	"github.com/sesamehq/sesame/internal/vault"
)

// Connection says where and how to call an API.
type Connection struct {
	BaseURI              string            `json:"base_uri"`
	MediaType            string            `json:"media_type,omitempty"`
	Credential           string            `json:"credential,omitempty"`
	Auth                 *AuthTarget       `json:"auth,omitempty"`
	Headers              map[string]string `json:"headers,omitempty"`
	TimeoutMS            int               `json:"timeout_ms,omitempty"`
	RateLimit            *RateLimit        `json:"rate_limit,omitempty"`
	Retry                *Retry            `json:"retry,omitempty"`
	Test                 *TestRequest      `json:"test,omitempty"`
	AllowPrivateNetworks bool              `json:"allow_private_networks,omitempty"`
	MaxBodyBytes         int64             `json:"max_body_bytes,omitempty"`
	AuthFailure          *AuthFailure      `json:"auth_failure,omitempty"`
	// Agent names the on-premise agent (in the same workspace) that carries every call of
	// this connection into its private network.
	Agent string `json:"agent,omitempty"`
}

// AuthTarget places an api_key or secret credential: a header or query parameter name.
type AuthTarget struct {
	In   string `json:"in"`
	Name string `json:"name"`
}

// RateLimit is a token bucket: requests per per_seconds, up to burst at once.
type RateLimit struct {
	Requests   int     `json:"requests"`
	PerSeconds float64 `json:"per_seconds"`
	Burst      int     `json:"burst,omitempty"`
	MaxWaitMS  int     `json:"max_wait_ms,omitempty"`
}

// Retry bounds retries of idempotent calls.
type Retry struct {
	MaxAttempts  int `json:"max_attempts"`
	BaseDelayMS  int `json:"base_delay_ms,omitempty"`
	MaxDelayMS   int `json:"max_delay_ms,omitempty"`
	MaxElapsedMS int `json:"max_elapsed_ms,omitempty"`
}

// TestRequest is the request that checks a connection works.
type TestRequest struct {
	Method       string `json:"method,omitempty"`
	Path         string `json:"path,omitempty"`
	ExpectStatus int    `json:"expect_status,omitempty"`
}

// ConnectionView is a stored connection as the API shows it.
type ConnectionView struct {
	Workspace string `json:"workspace"`
	Name      string `json:"name"`
	Connection
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TestResult reports a connection test.
type TestResult struct {
	OK        bool    `json:"ok"`
	Status    int     `json:"status,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// parseConnection decodes and checks a connection body.
func parseConnection(body []byte) (Connection, error) {
	var c Connection
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return c, sesame.Errorf(sesame.CodeInvalidJSON, "field %q has the wrong JSON type", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return c, sesame.Errorf(sesame.CodeUnknownField, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return c, sesame.Errorf(sesame.CodeInvalidJSON, "request body is not valid JSON")
	}
	if dec.More() {
		return c, sesame.Errorf(sesame.CodeInvalidJSON, "request body must hold a single JSON object")
	}
	if c.BaseURI == "" {
		return c, sesame.Errorf(sesame.CodeMissingField, "field %q is required", "base_uri")
	}
	u, err := url.Parse(c.BaseURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must be an absolute http or https URL without user info, query or fragment", "base_uri")
	}
	c.BaseURI = strings.TrimRight(u.String(), "/")
	if c.MediaType != "" && !validToken(strings.ReplaceAll(c.MediaType, "/", "")) {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must be a media type such as application/json", "media_type")
	}
	if c.Credential != "" && !sesame.ValidCredentialKey(c.Credential) {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q is not a valid credential key", "credential")
	}
	if c.Auth != nil {
		if c.Auth.In != "header" && c.Auth.In != "query" {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must be header or query", "auth.in")
		}
		if !validToken(c.Auth.Name) {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must be a header or query parameter name", "auth.name")
		}
	}
	for name, v := range c.Headers {
		if !validToken(name) || hopByHop[http.CanonicalHeaderKey(name)] || strings.EqualFold(name, "Host") {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q: %q is not a header that can be set", "headers", name)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q: the value of %q contains CR, LF or NUL", "headers", name)
		}
	}
	if c.TimeoutMS < 0 || c.TimeoutMS > 600_000 {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must be between 0 and 600000", "timeout_ms")
	}
	if r := c.RateLimit; r != nil {
		if r.Requests < 0 || r.PerSeconds < 0 || r.Burst < 0 || r.MaxWaitMS < 0 || (r.Requests > 0 && r.PerSeconds == 0) {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q needs requests > 0 per per_seconds > 0, and non-negative burst and max_wait_ms", "rate_limit")
		}
	}
	if r := c.Retry; r != nil && (r.MaxAttempts < 0 || r.MaxAttempts > 10 || r.BaseDelayMS < 0 || r.MaxDelayMS < 0 || r.MaxElapsedMS < 0) {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q: max_attempts must be 0-10 and delays non-negative", "retry")
	}
	if t := c.Test; t != nil {
		if t.Method == "" {
			t.Method = http.MethodGet
		}
		t.Method = strings.ToUpper(t.Method)
		if !validToken(t.Method) {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q is not an HTTP method", "test.method")
		}
		if err := checkRelativePath(t.Path); err != nil {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q: %s", "test.path", err)
		}
		if t.ExpectStatus != 0 && (t.ExpectStatus < 100 || t.ExpectStatus > 599) {
			return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must be an HTTP status", "test.expect_status")
		}
	}
	if c.Agent != "" && !sesame.ValidCredentialKey(c.Agent) {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q is not a valid agent name", "agent")
	}
	if c.MaxBodyBytes < 0 {
		return c, sesame.Errorf(sesame.CodeInvalidField, "field %q must not be negative", "max_body_bytes")
	}
	if c.AuthFailure != nil {
		if err := c.AuthFailure.check(); err != nil {
			return c, err
		}
	}
	return c, nil
}

func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// checkRelativePath accepts "" or a path starting with "/" that cannot leave the base:
// no "//", backslash, query or fragment, and no segment that is or hides a "." or ".."
// segment, however often percent-decoded and with or without a ";..." suffix
// (function.HidesDotSegment: "%2e%2e", "%252e%252e", "..;", "%2e%2e%5c").
func checkRelativePath(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\?#\r\n\x00") {
		return errors.New(`must start with a single "/" and hold no backslash, "?" or "#"`)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if _, err := url.PathUnescape(seg); err != nil {
			return errors.New("has an invalid percent-encoding")
		}
		if function.HidesDotSegment(seg) {
			return errors.New(`must not hold "." or ".." segments, also encoded or followed by ";"`)
		}
	}
	return nil
}

// policy turns a connection of workspace ws into the outbound client's policy. A
// connection that names an agent dials only through it.
func (g *Gateway) policy(ws string, c Connection) outbound.Policy {
	p := outbound.Policy{Timeout: time.Duration(c.TimeoutMS) * time.Millisecond, AllowPrivate: c.AllowPrivateNetworks}
	p.Dial = g.agentDial(ws, c)
	if r := c.RateLimit; r != nil && r.Requests > 0 {
		p.Limits = outbound.Limits{
			Requests: r.Requests, Per: time.Duration(r.PerSeconds * float64(time.Second)),
			Burst: r.Burst, MaxWait: time.Duration(r.MaxWaitMS) * time.Millisecond,
		}
	}
	if r := c.Retry; r != nil {
		p.Retry = outbound.RetryPolicy{
			MaxAttempts: r.MaxAttempts, BaseDelay: time.Duration(r.BaseDelayMS) * time.Millisecond,
			MaxDelay: time.Duration(r.MaxDelayMS) * time.Millisecond, MaxElapsed: time.Duration(r.MaxElapsedMS) * time.Millisecond,
		}
	}
	return p
}

// agentDial returns the dial function of connection c of workspace ws when it names an
// agent (every connection of its calls, and of the token requests of its credential, goes
// through the agent), nil otherwise.
func (g *Gateway) agentDial(ws string, c Connection) credential.DialFunc {
	if c.Agent == "" {
		return nil
	}
	agents, name := g.cfg.Agents, c.Agent
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		if agents == nil {
			return nil, sesame.Errorf(sesame.CodeAgentUnavailable, "this server does not carry calls through agents")
		}
		return agents.Dial(ctx, ws, name, addr)
	}
}

// checkCredential checks that a referenced credential exists, passes check (if not nil),
// and may be sent to base; a credential not yet bound to any host is then bound to base's
// origin (vault.AllowDestination), so a save refused for another reason binds nothing.
func (g *Gateway) checkCredential(ctx context.Context, ws, key, base, field string, check func(sesame.CredentialRecord) error) (sesame.CredentialRecord, error) {
	rec, err := g.cfg.Store.GetCredential(ctx, ws, key)
	if errors.Is(err, sesame.ErrNotFound) {
		return rec, sesame.Errorf(sesame.CodeInvalidField, "%s: credential %q does not exist in workspace %q", field, key, ws)
	}
	if err != nil {
		return rec, err
	}
	if check != nil {
		if err := check(rec); err != nil {
			return rec, err
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		return rec, sesame.Errorf(sesame.CodeInvalidField, "%s: the URL the credential would be sent to does not parse", field)
	}
	if err := g.cfg.Vault.AllowDestination(ctx, ws, key, u); err != nil {
		var se *sesame.Error
		if errors.As(err, &se) {
			return rec, &sesame.Error{Code: se.Code, Message: field + ": " + se.Message}
		}
		return rec, err
	}
	return rec, nil
}

func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

// PutConnection creates or replaces a connection. Unless runTest is false and if the
// connection has a test request, it is tested first and not saved if the test fails.
// Turning on allow_private_networks needs an admin (by); a connection that has it keeps
// it when saved by anyone, as long as its base URI keeps its origin.
func (g *Gateway) PutConnection(ctx context.Context, ws, name string, body []byte, runTest bool, by vault.Actor) (ConnectionView, bool, *TestResult, error) {
	if err := checkWorkspace(ws); err != nil {
		return ConnectionView{}, false, nil, err
	}
	if err := checkName("connection", name); err != nil {
		return ConnectionView{}, false, nil, err
	}
	c, err := parseConnection(body)
	if err != nil {
		return ConnectionView{}, false, nil, err
	}
	old, err := g.cfg.Store.GetObject(ctx, ws, KindConnection, name)
	exists := err == nil
	if err != nil && !errors.Is(err, sesame.ErrNotFound) {
		return ConnectionView{}, false, nil, err
	}
	if c.AllowPrivateNetworks && !by.Admin && !keepsPrivateNetworks(old, exists, c) {
		return ConnectionView{}, false, nil, sesame.Errorf(sesame.CodeMissingPrivilege,
			"missing privilege admin: only an admin may set %q (or keep it while changing the base_uri's scheme, host or port)", "allow_private_networks")
	}
	if !by.Admin && agentChanges(old, exists, c) {
		return ConnectionView{}, false, nil, sesame.Errorf(sesame.CodeMissingPrivilege,
			"missing privilege admin: only an admin may set, change or remove %q (or keep it while changing the base_uri's scheme, host or port): it decides which network the connection's credential travels into", "agent")
	}
	var refs []string
	if c.Credential != "" {
		_, err := g.checkCredential(ctx, ws, c.Credential, c.BaseURI, "credential", func(rec sesame.CredentialRecord) error {
			if rec.Type == "secret" && c.Auth == nil {
				return sesame.Errorf(sesame.CodeMissingField,
					"field %q is required with a credential of type secret: say which header or query parameter carries it", "auth")
			}
			return nil
		})
		if err != nil {
			return ConnectionView{}, false, nil, err
		}
		refs = []string{c.Credential}
	}
	var result *TestResult
	if runTest && c.Test != nil {
		r := g.runTest(ctx, ws, name, c, 0)
		result = &r
		if !r.OK {
			return ConnectionView{}, false, result, &TestFailedError{Result: r}
		}
	}
	stored, _ := json.Marshal(c)
	now := g.cfg.Clock.Now().UTC()
	o := sesame.Object{Workspace: ws, Kind: KindConnection, Name: name, Body: stored, Refs: refs, CreatedAt: now, UpdatedAt: now}
	if exists {
		o.CreatedAt = old.CreatedAt
	}
	o.Version, err = g.cfg.Store.PutObject(ctx, o, old.Version)
	if err != nil {
		return ConnectionView{}, false, nil, err
	}
	g.forget(objectKey(ws, KindConnection, name))
	return ConnectionView{Workspace: ws, Name: name, Connection: c, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}, !exists, result, nil
}

// keepsPrivateNetworks reports whether the stored connection old already allows private
// networks for the same origin as c: saving it again needs no admin.
func keepsPrivateNetworks(old sesame.Object, exists bool, c Connection) bool {
	if !exists {
		return false
	}
	var prev Connection
	if json.Unmarshal(old.Body, &prev) != nil || !prev.AllowPrivateNetworks {
		return false
	}
	pu, err1 := url.Parse(prev.BaseURI)
	cu, err2 := url.Parse(c.BaseURI)
	return err1 == nil && err2 == nil && credential.Origin(pu) == credential.Origin(cu)
}

// agentChanges reports whether saving c over the stored connection old sets, changes or
// removes its agent, or keeps the agent while changing the base URI's origin.
func agentChanges(old sesame.Object, exists bool, c Connection) bool {
	var prev Connection
	if exists && json.Unmarshal(old.Body, &prev) != nil {
		return true
	}
	if prev.Agent != c.Agent {
		return true
	}
	if c.Agent == "" {
		return false
	}
	pu, err1 := url.Parse(prev.BaseURI)
	cu, err2 := url.Parse(c.BaseURI)
	return err1 != nil || err2 != nil || credential.Origin(pu) != credential.Origin(cu)
}

// ConnectionsUsingAgent lists the connections of ws that name agent.
func (g *Gateway) ConnectionsUsingAgent(ctx context.Context, ws, agent string) ([]string, error) {
	var out []string
	after := ""
	for {
		objs, err := g.cfg.Store.ListObjects(ctx, ws, KindConnection, after, 500)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			var c Connection
			if json.Unmarshal(o.Body, &c) == nil && c.Agent == agent {
				out = append(out, o.Name)
			}
		}
		if len(objs) < 500 {
			return out, nil
		}
		after = objs[len(objs)-1].Name
	}
}

// TestFailedError is returned when a connection's test request fails on save.
type TestFailedError struct{ Result TestResult }

func (e *TestFailedError) Error() string {
	return fmt.Sprintf("connection test failed: status %d: %s", e.Result.Status, e.Result.Error)
}

func (g *Gateway) loadConnection(ctx context.Context, ws, name string) (Connection, sesame.Object, error) {
	if err := checkWorkspace(ws); err != nil {
		return Connection{}, sesame.Object{}, err
	}
	if err := checkName("connection", name); err != nil {
		return Connection{}, sesame.Object{}, err
	}
	key := objectKey(ws, KindConnection, name)
	if pc, ok := g.conns.Get(key); ok {
		return pc.c, pc.o, nil
	}
	o, err := g.object(ctx, ws, KindConnection, name)
	if err != nil {
		return Connection{}, o, notFound(err, "connection", name, ws)
	}
	var c Connection
	if err := json.Unmarshal(o.Body, &c); err != nil {
		return c, o, fmt.Errorf("gateway: stored connection %s/%s: %w", ws, name, err)
	}
	g.conns.Set(key, parsedConn{c: c, o: o})
	return c, o, nil
}

// GetConnection returns a connection.
func (g *Gateway) GetConnection(ctx context.Context, ws, name string) (ConnectionView, error) {
	c, o, err := g.loadConnection(ctx, ws, name)
	if err != nil {
		return ConnectionView{}, err
	}
	return ConnectionView{Workspace: ws, Name: name, Connection: c, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}, nil
}

// ListConnections returns a page of connections.
func (g *Gateway) ListConnections(ctx context.Context, ws, after string, limit int) ([]ConnectionView, error) {
	if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	objs, err := g.cfg.Store.ListObjects(ctx, ws, KindConnection, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ConnectionView, 0, len(objs))
	for _, o := range objs {
		var c Connection
		if err := json.Unmarshal(o.Body, &c); err != nil {
			return nil, fmt.Errorf("gateway: stored connection %s/%s: %w", ws, o.Name, err)
		}
		out = append(out, ConnectionView{Workspace: ws, Name: o.Name, Connection: c, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt})
	}
	return out, nil
}

// DeleteConnection removes a connection.
func (g *Gateway) DeleteConnection(ctx context.Context, ws, name string) error {
	if err := checkWorkspace(ws); err != nil {
		return err
	}
	if err := checkName("connection", name); err != nil {
		return err
	}
	err := g.cfg.Store.DeleteObject(ctx, ws, KindConnection, name)
	g.forget(objectKey(ws, KindConnection, name))
	return err
}

// TestConnection runs a stored connection's test request.
func (g *Gateway) TestConnection(ctx context.Context, ws, name string) (TestResult, error) {
	c, o, err := g.loadConnection(ctx, ws, name)
	if err != nil {
		return TestResult{}, err
	}
	if c.Test == nil {
		c.Test = &TestRequest{Method: http.MethodGet}
	}
	return g.runTest(ctx, ws, name, c, o.Version), nil
}

// runTest sends the test request with the credential injected. Failures are reported in
// the result, with the upstream's error text, not returned as errors.
func (g *Gateway) runTest(ctx context.Context, ws, name string, c Connection, version int64) TestResult {
	t := c.Test
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, t.Method, c.BaseURI+t.Path, nil)
	if err != nil {
		return TestResult{Error: "could not build the test request"}
	}
	cl := g.client(objectKey(ws, KindConnection, name)+"#test", version, ws, c)
	rec := CallRecord{Kind: "test", Target: name, Connection: name}
	resp, err := g.send(ctx, ws, cl, req, c, credential.Target{}, &rec, nil)
	res := TestResult{LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		res.Error = testError(err)
		return res
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	want := t.ExpectStatus
	if (want == 0 && resp.StatusCode < 400) || resp.StatusCode == want {
		res.OK = true
		return res
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	res.Error = strings.TrimSpace(string(text))
	if res.Error == "" {
		// Not resp.Status: its reason phrase is the upstream's text, unredacted.
		res.Error = strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	return res
}

// testError describes a failed test call without leaking anything secret.
func testError(err error) string {
	var se *sesame.Error
	if errors.As(err, &se) {
		return se.Message
	}
	if errors.Is(err, outbound.ErrForbiddenAddress) {
		return "the address is private, loopback or link-local; set allow_private_networks to reach it"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "request failed"
}
