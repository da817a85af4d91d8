package httpapi

import (
	"context"
	"net/http"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/vault"
)

// OAuthApps are the organisation's shared OAuth apps (vault.PutOAuthApp): defined once by
// an admin, named by workspaces' oauth2 credentials in "oauth_app".
type OAuthApps interface {
	PutOAuthApp(ctx context.Context, name string, body []byte, by vault.Actor) (vault.CredentialView, bool, error)
	GetOAuthApp(ctx context.Context, name string) (vault.CredentialView, error)
	ListOAuthApps(ctx context.Context, after string, limit int) ([]vault.CredentialView, error)
	DeleteOAuthApp(ctx context.Context, name string) error
}

var errNoOAuthApps = sesame.Errorf(sesame.CodeUnavailable, "shared OAuth apps are not enabled on this server")

// appView is an app as clients see it: its name, and the readable form of its fields
// (the client secret only as set or not).
type appView struct {
	Name string `json:"name"`
	vault.CredentialView
}

func newAppView(c vault.CredentialView) appView {
	c.Workspace = ""
	return appView{Name: c.Key, CredentialView: c}
}

func (s *Server) listOAuthApps(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.OAuthApps == nil {
		return errNoOAuthApps
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	items, err := s.cfg.OAuthApps.ListOAuthApps(r.Context(), after, limit+1)
	if err != nil {
		return err
	}
	views := make([]appView, len(items))
	for i, c := range items {
		views[i] = newAppView(c)
	}
	writePage(w, views, limit, func(a appView) string { return a.Name })
	return nil
}

func (s *Server) getOAuthApp(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.OAuthApps == nil {
		return errNoOAuthApps
	}
	c, err := s.cfg.OAuthApps.GetOAuthApp(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newAppView(c))
	return nil
}

func (s *Server) putOAuthApp(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.OAuthApps == nil {
		return errNoOAuthApps
	}
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	// The route needs admin on all workspaces: the app's secret serves every workspace.
	c, created, err := s.cfg.OAuthApps.PutOAuthApp(r.Context(), r.PathValue("name"), body, vault.Actor{Admin: true})
	clear(body) // the body held the client secret
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, newAppView(c))
	return nil
}

func (s *Server) deleteOAuthApp(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.OAuthApps == nil {
		return errNoOAuthApps
	}
	if err := s.cfg.OAuthApps.DeleteOAuthApp(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
