package httpapi

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/oauth"
	"github.com/sesamehq/sesame/internal/oauth/provider"
)

// OAuth is the OAuth2 service (PRODUCT.md C5).
type OAuth interface {
	Authorize(ctx context.Context, r oauth.AuthorizeRequest) (oauth.Authorization, error)
	Callback(ctx context.Context, q url.Values) (oauth.CallbackResult, error)
	AccessToken(ctx context.Context, ws, key, user string) (oauth.AccessToken, error)
	ListGrants(ctx context.Context, ws, cred, after string, limit int) ([]oauth.GrantView, error)
	DeleteGrant(ctx context.Context, ws, cred, user string) (oauth.Revocation, error)
	Providers() []provider.Template
}

func (s *Server) oauthService() (OAuth, error) {
	if s.cfg.OAuth == nil {
		return nil, sesame.Errorf(sesame.CodeUnavailable, "OAuth2 is not configured on this server")
	}
	return s.cfg.OAuth, nil
}

// endUser reads an end user id (a query parameter, the proxy's X-Sesame-User header, a
// call body's "user") and puts it in the context for the grant lookup.
func endUser(ctx context.Context, id string) (context.Context, error) {
	if id == "" {
		return ctx, nil
	}
	if !sesame.ValidEndUser(id) {
		return ctx, sesame.Errorf(sesame.CodeInvalidArgument, "invalid end user: use 1-256 letters, digits and . _ @ : | + = -")
	}
	return sesame.WithEndUser(ctx, id), nil
}

// oauthAuthorize starts an authorization: it redirects (302) to the provider, or with
// redirect=false answers the URL in JSON. The caller needs run_functions or
// manage_credentials in the workspace.
func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.oauthService()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := oauth.AuthorizeRequest{Workspace: q.Get("workspace"), Credential: q.Get("credential"), User: q.Get("user"), ReturnURL: q.Get("return_url")}
	if req.Workspace == "" {
		req.Workspace = sesame.DefaultWorkspace
	}
	if req.Credential == "" {
		return sesame.Errorf(sesame.CodeMissingField, "query parameter %q is required", "credential")
	}
	if s.cfg.Access != nil {
		p, _ := sesame.PrincipalFrom(r.Context())
		if err := s.cfg.Access.Authorize(r.Context(), p, sesame.PrivRunFunctions, req.Workspace); err != nil {
			if err2 := s.cfg.Access.Authorize(r.Context(), p, sesame.PrivManageCredentials, req.Workspace); err2 != nil {
				return err
			}
		}
	}
	a, err := svc.Authorize(r.Context(), req)
	if err != nil {
		return err
	}
	if q.Get("redirect") == "false" {
		writeJSON(w, http.StatusOK, a)
		return nil
	}
	w.Header().Set("Location", a.URL)
	writeJSON(w, http.StatusFound, a)
	return nil
}

// oauthCallback is where the provider sends the browser back. It is anonymous: the
// single-use state authenticates it.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.oauthService()
	if err != nil {
		return err
	}
	// The query holds the code: no referrer may carry it on to the next page.
	w.Header().Set("Referrer-Policy", "no-referrer")
	res, err := svc.Callback(r.Context(), r.URL.Query())
	if err != nil {
		if s.cfg.OAuthLanding != "" && wantsHTML(r) && sesame.ErrorCode(err) != sesame.CodeInternal && !sesame.Retryable(sesame.ErrorCode(err)) {
			// A person's browser: a page that says what went wrong, not a JSON error.
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, s.cfg.OAuthLanding+"?"+url.Values{"status": {"error"}, "error": {string(sesame.ErrorCode(err))}}.Encode(), http.StatusSeeOther)
			return nil
		}
		return err
	}
	if res.Redirect != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, res.Redirect, http.StatusFound)
		return nil
	}
	if s.cfg.OAuthLanding != "" && wantsHTML(r) {
		// No return URL was asked for, but a browser came back: the console's landing page
		// says the result (nothing in it is secret).
		q := url.Values{"status": {res.Status}, "workspace": {res.Workspace}, "credential": {res.Credential}}
		if res.User != "" {
			q.Set("user", res.User)
		}
		if res.Error != "" {
			q.Set("error", res.Error)
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, s.cfg.OAuthLanding+"?"+q.Encode(), http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// wantsHTML reports whether the client prefers a web page (a browser's navigation).
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/html" {
			return true
		}
	}
	return false
}

func (s *Server) oauthProviders(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.oauthService()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page[provider.Template]{Items: svc.Providers()})
	return nil
}

// connectionToken is the local-call endpoint: the current access token of the
// connection's OAuth2 credential (never its refresh token or client secret).
func (s *Server) connectionToken(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.oauthService()
	if err != nil {
		return err
	}
	user := r.URL.Query().Get("user")
	if user != "" && !sesame.ValidEndUser(user) {
		return sesame.Errorf(sesame.CodeInvalidArgument, "invalid end user: use 1-256 letters, digits and . _ @ : | + = -")
	}
	c, err := s.cfg.Gateway.GetConnection(r.Context(), r.PathValue("ws"), r.PathValue("name"))
	if err != nil {
		return err
	}
	if c.Credential == "" {
		return sesame.Errorf(sesame.CodeInvalidArgument, "connection %q has no credential", c.Name)
	}
	tok, err := svc.AccessToken(r.Context(), c.Workspace, c.Credential, user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tok)
	return nil
}

func (s *Server) listOAuthGrants(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.oauthService()
	if err != nil {
		return err
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Vault.GetWorkspace(r.Context(), r.PathValue("ws")); err != nil {
		return err
	}
	items, err := svc.ListGrants(r.Context(), r.PathValue("ws"), r.URL.Query().Get("credential"), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, oauth.GrantCursor)
	return nil
}

func (s *Server) deleteOAuthGrant(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.oauthService()
	if err != nil {
		return err
	}
	res, err := svc.DeleteGrant(r.Context(), r.PathValue("ws"), r.PathValue("key"), r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
