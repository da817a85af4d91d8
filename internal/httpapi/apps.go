package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/apps"
)

// AppService is the app-token service (internal/apps) behind POST /api/v2/auth and the
// /v1/apps routes.
type AppService interface {
	Issue(ctx context.Context, manifestJSON []byte, source string) (string, error)

	IssueCert(ctx context.Context, req apps.CertRequest) (apps.CertView, error)
	GetCert(ctx context.Context, id string) (apps.CertView, error)
	ListCerts(ctx context.Context, after string, limit int) ([]apps.CertView, error)
	RevokeCert(ctx context.Context, id string) (int, error)

	ListTokens(ctx context.Context, appID, after string, limit int) ([]sesame.AppToken, error)
	GetToken(ctx context.Context, id string) (sesame.AppToken, error)
	RevokeToken(ctx context.Context, id string) error
	RevokeAppTokens(ctx context.Context, appID string) (int, error)
}

// manageApps is what the /v1/apps routes need.
var manageApps = []sesame.Privilege{sesame.PrivManageApps}

func (s *Server) appService() (AppService, error) {
	if s.cfg.AppService == nil {
		return nil, sesame.Errorf(sesame.CodeUnavailable, "app tokens are not enabled on this server")
	}
	return s.cfg.AppService, nil
}

// appAuth is POST /api/v2/auth: an app manifest in, {"token": "…"} out, with the Actyx
// Auth API's error codes. The token is in the response body and nowhere else: not in a
// log line, not in an audit event.
func (s *Server) appAuth(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return sesame.Errorf(sesame.CodeAppMediaType, "Unsupported media type. Content-Type must be application/json.")
	}
	source := sourceOf(r)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, apps.MaxManifestSize))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return sesame.Errorf(sesame.CodeAppPayloadTooLarge, "Payload too large. A manifest is at most %d bytes.", apps.MaxManifestSize)
	}
	if err != nil {
		return sesame.Errorf(sesame.CodeBadRequest, "Invalid request. The body could not be read.")
	}
	token, err := svc.Issue(r.Context(), body, source)
	if err != nil {
		// A refused manifest counts as a failed authentication from its source; once the
		// source is over the limit, its refused manifests get 429. A good manifest is never
		// refused by the limiter (see guard).
		if sesame.ErrorCode(err) == sesame.CodeAppUnauthorized && s.cfg.Failures != nil {
			if wait, blocked := s.cfg.Failures.Blocked(source); blocked {
				return &sesame.Error{Code: sesame.CodeRateLimited, Message: "too many refused manifests from this address; retry later", RetryAfter: wait, Limiter: LimiterAuthFailures}
			}
			s.cfg.Failures.Fail(source)
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": token})
	return nil
}

// --- developer certificates ---

func (s *Server) listAppCerts(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	items, err := svc.ListCerts(r.Context(), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(c apps.CertView) string { return c.ID })
	return nil
}

func (s *Server) createAppCert(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	var req apps.CertRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	// A certificate lets its holder act with every grant to the apps it covers: the
	// privilege ceiling applies (internal/access/ceiling.go). Malformed domains are
	// IssueCert's to refuse, as bad input.
	wellFormed := len(req.Domains) > 0 && !slices.ContainsFunc(req.Domains, func(d string) bool { return !apps.ValidDomain(d) })
	if s.cfg.Access != nil && wellFormed {
		if err := s.cfg.Access.AuthorizeAppDomains(r.Context(), actorOf(r), req.Domains); err != nil {
			return err
		}
	}
	c, err := svc.IssueCert(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) getAppCert(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	c, err := svc.GetCert(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) revokeAppCert(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if s.cfg.Access != nil {
		c, err := svc.GetCert(r.Context(), id)
		if err != nil {
			return err
		}
		if err := s.cfg.Access.AuthorizeApps(r.Context(), actorOf(r), c.Domains,
			fmt.Sprintf("revoke the certificate for %s", strings.Join(c.Domains, ", "))); err != nil {
			return err
		}
	}
	n, err := svc.RevokeCert(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true, "revoked_tokens": n})
	return nil
}

// --- tokens ---

func (s *Server) listAppTokens(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	items, err := svc.ListTokens(r.Context(), r.URL.Query().Get("app"), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(t sesame.AppToken) string { return t.ID })
	return nil
}

func (s *Server) revokeAppToken(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	if s.cfg.Access != nil {
		t, err := svc.GetToken(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		if err := s.cfg.Access.AuthorizeApps(r.Context(), actorOf(r), []string{t.AppID}, "revoke a token of app "+t.AppID); err != nil {
			return err
		}
	}
	if err := svc.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokeAppTokens revokes every unexpired token of one app: DELETE /v1/apps/tokens?app=ID.
func (s *Server) revokeAppTokens(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.appService()
	if err != nil {
		return err
	}
	app := r.URL.Query().Get("app")
	if strings.TrimSpace(app) == "" {
		return sesame.Errorf(sesame.CodeMissingField, "query parameter %q (the app whose tokens to revoke) is required; to revoke one token, DELETE /v1/apps/tokens/{id}", "app")
	}
	if s.cfg.Access != nil && apps.ValidAppID(app) {
		// Revoking an app's tokens acts on the app: the privilege ceiling applies, as to
		// revoking a user's keys. Malformed IDs are RevokeAppTokens's to refuse.
		if err := s.cfg.Access.AuthorizeApps(r.Context(), actorOf(r), []string{app}, "revoke the tokens of app "+app); err != nil {
			return err
		}
	}
	n, err := svc.RevokeAppTokens(r.Context(), app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": app, "revoked_tokens": n})
	return nil
}
