// Package oauthtest runs a real OAuth2 authorization server for tests, in process on
// loopback: github.com/go-oauth2/oauth2/v4 (server, manager, in-memory stores), which
// Sesame did not write. Around it sit only what tests need to observe and disturb it:
// counters of token requests by grant type, a record of every issued token, code and
// verifier (for leak checks), injected failures, an RFC 7009 revocation endpoint, and a
// resource endpoint that accepts only the server's live access tokens.
//
// Only tests import this package.
package oauthtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	oerrors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
)

// Options shape the server.
type Options struct {
	// Rotate makes every refresh issue a new refresh token and invalidate the old one.
	Rotate bool
	// CodeTokenExp is the lifetime of tokens from the code and client credentials grants;
	// negative issues tokens that have already expired. Default one hour.
	CodeTokenExp time.Duration
	// RefreshedTokenExp is the lifetime of refreshed access tokens. Default one hour.
	RefreshedTokenExp time.Duration
	// Listener, when not nil, is where the provider listens (inside a network namespace,
	// say) instead of a new loopback listener; the provider closes it.
	Listener net.Listener
}

// Provider is a running authorization server.
type Provider struct {
	*httptest.Server
	t       testing.TB
	srv     *server.Server
	tokens  oauth2.TokenStore
	clients *store.ClientStore

	refreshes     atomic.Int64 // refresh_token grant requests
	exchanges     atomic.Int64 // authorization_code grant requests
	clientCreds   atomic.Int64 // client_credentials grant requests
	resourceCalls atomic.Int64
	revocations   atomic.Int64

	mu        sync.Mutex
	issued    []string // every access token, refresh token, code and verifier seen
	refreshOK []string // refresh tokens issued, for RevokeRefreshTokens
	fail      int      // token requests still to fail
	failCode  int
	onRefresh func()                 // runs after a refresh is answered by the server, before it is sent
	onToken   func(grantType string) // runs when a token request arrives, before it is answered
	deny      bool                   // the user refuses at /authorize
	lastForm  url.Values             // the last token request's form, secrets included (tests only)
	lastAuth  http.Header            // the last token request's headers
}

// New starts a provider that stops when the test ends.
func New(t testing.TB, o Options) *Provider {
	t.Helper()
	if o.CodeTokenExp == 0 {
		o.CodeTokenExp = time.Hour
	}
	if o.RefreshedTokenExp == 0 {
		o.RefreshedTokenExp = time.Hour
	}
	m := manage.NewDefaultManager()
	m.SetAuthorizeCodeTokenCfg(&manage.Config{AccessTokenExp: o.CodeTokenExp, RefreshTokenExp: 72 * time.Hour, IsGenerateRefresh: true})
	m.SetClientTokenCfg(&manage.Config{AccessTokenExp: o.CodeTokenExp})
	m.SetRefreshTokenCfg(&manage.RefreshingConfig{AccessTokenExp: o.RefreshedTokenExp, IsGenerateRefresh: o.Rotate,
		IsRemoveAccess: true, IsRemoveRefreshing: o.Rotate})
	m.SetValidateURIHandler(func(base, redirect string) error {
		if !strings.HasPrefix(redirect, base) {
			return oerrors.ErrInvalidRedirectURI
		}
		return nil
	})
	ts, err := store.NewMemoryTokenStore()
	if err != nil {
		t.Fatal(err)
	}
	m.MapTokenStorage(ts)
	cs := store.NewClientStore()
	m.MapClientStorage(cs)

	cfg := server.NewConfig()
	cfg.ForcePKCE = false
	srv := server.NewServer(cfg, m)
	srv.SetAllowGetAccessRequest(false)
	p := &Provider{t: t, srv: srv, tokens: ts, clients: cs}
	srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if id, secret, ok := r.BasicAuth(); ok {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
			return id, secret, nil
		}
		return server.ClientFormHandler(r)
	})
	srv.SetUserAuthorizationHandler(func(w http.ResponseWriter, r *http.Request) (string, error) {
		p.mu.Lock()
		deny := p.deny
		p.mu.Unlock()
		if deny {
			return "", oerrors.ErrAccessDenied
		}
		if u := r.FormValue("login_hint"); u != "" {
			return u, nil
		}
		return "alice", nil
	})
	srv.SetInternalErrorHandler(func(err error) *oerrors.Response {
		t.Logf("oauth server internal error: %v", err)
		return nil
	})

	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.token)
	mux.HandleFunc("/revoke", p.revoke)
	mux.HandleFunc("/api/", p.resource)
	p.Server = httptest.NewUnstartedServer(mux)
	if o.Listener != nil {
		p.Server.Listener.Close()
		p.Server.Listener = o.Listener
	}
	p.Server.Start()
	t.Cleanup(p.Close)
	return p
}

// AddClient registers a client. redirectPrefix bounds the redirect URIs it may use; an
// empty secret makes it public (PKCE only).
func (p *Provider) AddClient(id, secret, redirectPrefix string) {
	if err := p.clients.Set(id, &models.Client{ID: id, Secret: secret, Domain: redirectPrefix, Public: secret == ""}); err != nil {
		p.t.Fatal(err)
	}
}

// AuthURL, TokenURL, RevocationURL and ResourceURL are the endpoints.
func (p *Provider) AuthURL() string       { return p.URL + "/authorize" }
func (p *Provider) TokenURL() string      { return p.URL + "/token" }
func (p *Provider) RevocationURL() string { return p.URL + "/revoke" }
func (p *Provider) ResourceURL() string   { return p.URL + "/api" }

// Refreshes counts refresh_token grant requests that reached the token endpoint.
func (p *Provider) Refreshes() int64 { return p.refreshes.Load() }

// Exchanges counts authorization_code grant requests.
func (p *Provider) Exchanges() int64 { return p.exchanges.Load() }

// ClientCredentials counts client_credentials grant requests.
func (p *Provider) ClientCredentials() int64 { return p.clientCreds.Load() }

// ResourceCalls counts requests to the resource endpoint.
func (p *Provider) ResourceCalls() int64 { return p.resourceCalls.Load() }

// Revocations counts accepted revocation requests.
func (p *Provider) Revocations() int64 { return p.revocations.Load() }

// FailTokenRequests makes the next n token requests answer status (a 5xx, say) without
// reaching the server.
func (p *Provider) FailTokenRequests(n, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.failCode = n, status
}

// OnRefresh runs fn for each refresh after the server has issued the new tokens and
// before the response leaves: a test can cancel the caller there.
func (p *Provider) OnRefresh(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onRefresh = fn
}

// OnToken runs fn when a token request arrives, before it is answered; fn may block to
// keep the request in flight (for example while the requester is killed).
func (p *Provider) OnToken(fn func(grantType string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onToken = fn
}

// Deny makes the user refuse (or, with false, grant) consent at /authorize.
func (p *Provider) Deny(deny bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deny = deny
}

// Issued returns every secret the server issued or received: access and refresh tokens,
// authorization codes and PKCE verifiers.
func (p *Provider) Issued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

// LastTokenForm returns the form of the last token request.
func (p *Provider) LastTokenForm() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastForm
}

// RevokeRefreshTokens invalidates every refresh token issued so far, as when a user
// withdraws consent: the next refresh gets invalid_grant.
func (p *Provider) RevokeRefreshTokens() {
	p.mu.Lock()
	list := append([]string(nil), p.refreshOK...)
	p.mu.Unlock()
	for _, rt := range list {
		if err := p.tokens.RemoveByRefresh(context.Background(), rt); err != nil {
			p.t.Fatal(err)
		}
	}
}

// RevokeAccessTokens invalidates every access token issued so far (the resource endpoint
// then answers 401), leaving refresh tokens valid.
func (p *Provider) RevokeAccessTokens() {
	for _, tok := range p.accessTokens() {
		if err := p.tokens.RemoveByAccess(context.Background(), tok); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *Provider) accessTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.issued {
		if strings.HasPrefix(s, "access:") {
			out = append(out, strings.TrimPrefix(s, "access:"))
		}
	}
	return out
}

func (p *Provider) record(kind, v string) {
	if v == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issued = append(p.issued, kind+":"+v)
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	if err := p.srv.HandleAuthorizeRequest(rec, r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if loc := rec.Header().Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			p.record("code", u.Query().Get("code"))
		}
	}
	copyResponse(w, rec)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	p.record("verifier", r.PostForm.Get("code_verifier"))
	gt := r.PostForm.Get("grant_type")
	switch gt {
	case "refresh_token":
		p.refreshes.Add(1)
	case "authorization_code":
		p.exchanges.Add(1)
	case "client_credentials":
		p.clientCreds.Add(1)
	}
	p.mu.Lock()
	p.lastForm, p.lastAuth = r.PostForm, r.Header.Clone()
	failing := p.fail > 0
	if failing {
		p.fail--
	}
	status, hook, arrived := p.failCode, p.onRefresh, p.onToken
	p.mu.Unlock()
	if arrived != nil {
		arrived(gt) // may block, to hold a refresh in flight
	}
	if failing {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
		return
	}
	rec := httptest.NewRecorder()
	if err := p.srv.HandleTokenRequest(rec, r); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var body struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &body) == nil {
		p.record("access", body.Access)
		p.record("refresh", body.Refresh)
		if body.Refresh != "" {
			p.mu.Lock()
			p.refreshOK = append(p.refreshOK, body.Refresh)
			p.mu.Unlock()
		}
	}
	if gt == "refresh_token" && hook != nil && rec.Code == http.StatusOK {
		hook()
	}
	copyResponse(w, rec)
}

// revoke is RFC 7009: the client authenticates, the token is removed, 200 either way.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	cli, err := p.clients.GetByID(r.Context(), id)
	if err != nil || cli.GetSecret() != secret {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
		return
	}
	tok := r.PostForm.Get("token")
	_ = p.tokens.RemoveByRefresh(r.Context(), tok)
	_ = p.tokens.RemoveByAccess(r.Context(), tok)
	p.revocations.Add(1)
	w.WriteHeader(http.StatusOK)
}

// resource answers 200 with the token's user and client for a live access token, and
// 401 otherwise.
func (p *Provider) resource(w http.ResponseWriter, r *http.Request) {
	p.resourceCalls.Add(1)
	ti, err := p.srv.ValidationBearerToken(r)
	w.Header().Set("Content-Type", "application/json")
	if err != nil || ti == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_token"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"user": ti.GetUserID(), "client": ti.GetClientID(), "scope": ti.GetScope()})
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = bytes.NewReader(rec.Body.Bytes()).WriteTo(w)
}
