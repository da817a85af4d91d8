package jwtinject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/jwtbearer"
	"github.com/sesamehq/sesame/internal/outbound"
)

// GrantType is the RFC 7523 JWT bearer grant.
const GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

const (
	maxTokenResponse = 1 << 20
	maxAccessToken   = 16 << 10
	// defaultTokenLife is assumed when the token endpoint gives no expires_in.
	defaultTokenLife = 5 * time.Minute
	maxTokenLife     = 24 * time.Hour
)

func newExchangeClient(allowPrivate bool, rt http.RoundTripper) *http.Client {
	if rt == nil {
		rt = outbound.NewTransport(allowPrivate)
	}
	// A token endpoint that redirects is answered as an error: the assertion is not sent
	// on to wherever it points.
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// clientFor is the exchange client for m: the injector's own, or, when m is injected for a
// connection through an agent (m.Dial), one that dials through the agent, whose allowlist
// then bounds the address instead of the injector's address check. Exchanges are rare
// (tokens are cached), so that client keeps no idle connections.
func (in *Injector) clientFor(m credential.Material) *http.Client {
	if m.Dial == nil {
		return in.client
	}
	var t *http.Transport
	if base, ok := in.opts.Transport.(*http.Transport); ok {
		t = base.Clone() // keeps the TLS settings
	} else {
		t = outbound.NewTransport(false)
	}
	t.Proxy = nil
	t.DialContext = m.Dial
	t.DialTLSContext = nil
	t.DisableKeepAlives = true
	return newExchangeClient(false, t)
}

// accessToken returns the access token cached under key, exchanging the JWT for a new
// one when there is none or it has expired. From its refresh time until it expires the
// cached token is still served while one exchange runs in the background. However many
// callers need a token at once, one exchange runs per key.
func (in *Injector) accessToken(ctx context.Context, key string, s *jwtbearer.Signer, v jwtbearer.Vars, m credential.Material) (string, error) {
	for attempt := 0; ; attempt++ {
		now := in.now()
		in.mu.Lock()
		e, ok := in.tokens[key]
		if ok && now.Before(e.expiresAt) {
			if !now.Before(e.refreshAt) {
				in.startLocked(ctx, key, s, v, m) // refresh early, in the background
			}
			in.mu.Unlock()
			if tok, err := in.open(e, key); err == nil {
				credential.ServedFrom(ctx).Set(servedKey(m), e.version)
				return tok, nil
			}
			// Unreadable (the master key it was sealed under is gone): exchange again.
			in.mu.Lock()
			if cur, ok := in.tokens[key]; ok && cur.version == e.version {
				delete(in.tokens, key)
			}
		}
		f := in.startLocked(ctx, key, s, v, m)
		in.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return "", sesame.Errorf(sesame.CodeUpstreamError, "the call was canceled while the token for credential %q was fetched", m.Key)
		}
		if f.err != nil {
			return "", f.err
		}
		tok, err := in.open(f.e, key)
		if err != nil {
			if attempt == 0 {
				continue
			}
			return "", fmt.Errorf("jwtinject: open the token just fetched: %w", err)
		}
		credential.ServedFrom(ctx).Set(servedKey(m), f.e.version)
		return tok, nil
	}
}

// startLocked returns the running exchange for key, starting one if none runs. in.mu is held.
func (in *Injector) startLocked(ctx context.Context, key string, s *jwtbearer.Signer, v jwtbearer.Vars, m credential.Material) *flight {
	if f, ok := in.flights[key]; ok {
		return f
	}
	f := &flight{done: make(chan struct{})}
	in.flights[key] = f
	// The exchange outlives the caller that started it: the others wait for its result.
	xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.opts.ExchangeTimeout)
	go func() {
		defer cancel()
		in.run(xctx, key, f, s, v, m)
	}()
	return f
}

func (in *Injector) run(ctx context.Context, key string, f *flight, s *jwtbearer.Signer, v jwtbearer.Vars, m credential.Material) {
	start := time.Now()
	tok, life, status, err := in.exchange(ctx, s, v, m)
	now := in.now()
	if err == nil {
		f.e, err = in.newEntry(key, m, tok, now, life)
	}
	code := ""
	if err != nil {
		code = string(sesame.ErrorCode(err))
	}
	in.log.LogAttrs(ctx, slog.LevelInfo, "jwt bearer token exchange",
		slog.String("workspace", m.Workspace), slog.String("credential", m.Key), slog.String("host", hostOf(s.Options().TokenURL)),
		slog.Int("status", status), slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
		slog.Float64("expires_in_s", life.Seconds()), slog.String("error", code))

	in.mu.Lock()
	if err == nil {
		in.storeLocked(key, f.e)
	} else if old, ok := in.tokens[key]; ok && now.Before(old.expiresAt) {
		// A failed early refresh: keep serving the valid token, and try again a little later.
		old.refreshAt = now.Add(failedRefreshPause)
		if old.refreshAt.After(old.expiresAt) {
			old.refreshAt = old.expiresAt
		}
		in.tokens[key] = old
	}
	f.err = err
	delete(in.flights, key)
	in.mu.Unlock()
	close(f.done)
}

// exchange signs a JWT and trades it at the token URL for an access token (RFC 7523
// section 2.1), returning the token and its lifetime.
func (in *Injector) exchange(ctx context.Context, s *jwtbearer.Signer, v jwtbearer.Vars, m credential.Material) (string, time.Duration, int, error) {
	o := s.Options()
	assertion, _, err := s.Sign(v, in.now())
	if err != nil {
		return "", 0, 0, err
	}
	form := url.Values{"grant_type": {GrantType}, "assertion": {assertion}}
	if o.Scope != "" {
		form.Set("scope", o.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, 0, sesame.Errorf(sesame.CodeInvalidField, "credential %q: field %q is not a usable URL", m.Key, jwtbearer.FieldTokenURL)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	host := hostOf(o.TokenURL)
	resp, err := in.clientFor(m).Do(req)
	if err != nil {
		return "", 0, 0, exchangeError(err, m.Key, host)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", 0, resp.StatusCode, exchangeError(err, m.Key, host)
	}
	if len(body) > maxTokenResponse {
		return "", 0, resp.StatusCode, sesame.Errorf(sesame.CodeUpstreamError, "the token endpoint %s answered with more than %d bytes", host, maxTokenResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", 0, resp.StatusCode, refused(resp.StatusCode, body, host)
	}
	var tr struct {
		AccessToken any `json:"access_token"`
		ExpiresIn   any `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", 0, resp.StatusCode, sesame.Errorf(sesame.CodeUpstreamError, "the token endpoint %s did not answer with a JSON token response", host)
	}
	tok, _ := tr.AccessToken.(string)
	if tok == "" {
		return "", 0, resp.StatusCode, sesame.Errorf(sesame.CodeUpstreamError, "the token endpoint %s answered without an access_token", host)
	}
	if len(tok) > maxAccessToken || !printable(tok) {
		return "", 0, resp.StatusCode, sesame.Errorf(sesame.CodeUpstreamError, "the token endpoint %s answered with an access_token that cannot go in a header", host)
	}
	return tok, tokenLife(tr.ExpiresIn), resp.StatusCode, nil
}

// tokenLife reads expires_in, given as a number or (by some servers) a string.
func tokenLife(v any) time.Duration {
	var secs float64
	switch x := v.(type) {
	case float64:
		secs = x
	case string:
		secs, _ = strconv.ParseFloat(x, 64)
	}
	if secs <= 0 {
		return defaultTokenLife
	}
	return min(time.Duration(secs*float64(time.Second)), maxTokenLife)
}

// refused turns a token endpoint's error answer into a client error: the status, the
// OAuth error code and its description, with anything that looks like a token or key cut.
func refused(status int, body []byte, host string) error {
	var e struct {
		Error       any `json:"error"`
		Description any `json:"error_description"`
	}
	_ = json.Unmarshal(body, &e)
	code, _ := e.Error.(string)
	desc, _ := e.Description.(string)
	msg := fmt.Sprintf("the token endpoint %s refused the JWT assertion (HTTP %d", host, status)
	if code = clean(code, 64); code != "" {
		msg += ", " + code
	}
	if desc = clean(desc, 300); desc != "" {
		msg += ": " + desc
	}
	msg += ")"
	if status >= 300 && status < 400 {
		msg += "; token_url must be the endpoint's final address, redirects are not followed"
	}
	return &sesame.Error{Code: sesame.CodeUpstreamError, Message: msg}
}

// longRun is what a token, an assertion or key material looks like in a message.
var longRun = regexp.MustCompile(`[A-Za-z0-9+/=_.\-]{24,}`)

// clean keeps printable ASCII, cut to n bytes, with long base64-like runs replaced.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	s = longRun.ReplaceAllString(s, "[...]")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// exchangeError says what kind of failure a token request met, never its details (they
// may hold the URL's query).
func exchangeError(err error, key, host string) error {
	var ne net.Error
	var se *sesame.Error
	switch {
	case errors.As(err, &se) && (se.Code == sesame.CodeAgentTargetRefused || se.Code == sesame.CodeAgentUnavailable):
		// The connection's agent did not carry the exchange: offline, or its allowlist
		// refuses the token endpoint.
		return &sesame.Error{Code: se.Code, RetryAfter: se.RetryAfter,
			Message: fmt.Sprintf("the token_url of credential %q is reached through the connection's agent: %s", key, se.Message)}
	case errors.Is(err, outbound.ErrForbiddenAddress):
		return sesame.Errorf(sesame.CodeForbiddenAddress,
			"the token_url of credential %q resolves to a loopback, private, link-local or metadata address; the server reaches those only when started with SESAME_ALLOW_PRIVATE_TOKEN_URLS=true", key)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return sesame.Errorf(sesame.CodeUpstreamTimeout, "the token endpoint %s did not answer in time", host)
	case errors.Is(err, context.Canceled):
		return sesame.Errorf(sesame.CodeUpstreamError, "the token request to %s was canceled", host)
	}
	return sesame.Errorf(sesame.CodeUpstreamError, "the token endpoint %s could not be reached", host)
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// place puts the token where it goes: with no target (or the conventional "accessToken"
// parameter) in the credential's header with its scheme; otherwise in the named header
// (with the scheme only for Authorization) or query parameter.
func place(req *http.Request, t credential.Target, o jwtbearer.Options, token string) error {
	if !printable(token) {
		return sesame.Errorf(sesame.CodeUpstreamError, "the token cannot go in a header")
	}
	withScheme := func() string {
		if o.Scheme == "" {
			return token
		}
		return o.Scheme + " " + token
	}
	if t.Name == "" || t.Name == "accessToken" {
		req.Header.Set(o.HeaderName, withScheme())
		return nil
	}
	switch t.In {
	case "query":
		q := req.URL.Query()
		q.Set(t.Name, token)
		req.URL.RawQuery = q.Encode()
	case "header", "":
		if !validHeaderName(t.Name) {
			return sesame.Errorf(sesame.CodeInvalidArgument, "%q is not a valid header name for the token", t.Name)
		}
		if strings.EqualFold(t.Name, "Authorization") {
			req.Header.Set(t.Name, withScheme())
		} else {
			req.Header.Set(t.Name, token)
		}
	default:
		return sesame.Errorf(sesame.CodeInvalidArgument, "a jwt_bearer credential goes in a header or a query parameter, not the %s", t.In)
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
