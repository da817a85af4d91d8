package httpapi

import (
	"errors"
	"net/http"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/vault"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	body := map[string]string{"status": "ok"}
	if s.cfg.Version != "" {
		body["version"] = s.cfg.Version
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			if errors.Is(err, sesame.ErrStorageFull) {
				return &sesame.Error{Code: sesame.CodeStorageFull, RetryAfter: sesame.ErrStorageFull.RetryAfter,
					Message: "the store's disk is full: writes fail, reads still work"}
			}
			if sesame.ErrorCode(err) == sesame.CodeMasterKeyUnavailable {
				return err // this replica lacks the primary master key: say which
			}
			return &sesame.Error{Code: sesame.CodeUnavailable, Message: "store is not reachable", RetryAfter: sesame.ErrStoreUnavailable.RetryAfter}
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// --- workspaces ---

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	// Only the workspaces the caller holds rights in; the others are not even named.
	var names map[string]bool
	all := true
	if s.cfg.Access != nil {
		p, _ := sesame.PrincipalFrom(r.Context())
		if names, all, err = s.cfg.Access.Workspaces(r.Context(), p); err != nil {
			return err
		}
	}
	var items []sesame.Workspace
	for len(items) <= limit {
		batch, err := s.cfg.Vault.ListWorkspaces(r.Context(), after, limit+1)
		if err != nil {
			return err
		}
		for _, ws := range batch {
			if all || names[ws.Name] {
				items = append(items, ws)
			}
		}
		if len(batch) < limit+1 {
			break
		}
		after = batch[len(batch)-1].Name
	}
	writePage(w, items, limit, func(ws sesame.Workspace) string { return ws.Name })
	return nil
}

type workspaceBody struct {
	Name string `json:"name"`
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) error {
	var body workspaceBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required", "name")
	}
	ws, err := s.cfg.Vault.CreateWorkspace(r.Context(), body.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ws)
	return nil
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.cfg.Vault.GetWorkspace(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ws)
	return nil
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request) error {
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	if err := s.cfg.Vault.DeleteWorkspace(r.Context(), r.PathValue("ws"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) copyWorkspace(w http.ResponseWriter, r *http.Request) error {
	var body workspaceBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q (the new workspace) is required", "name")
	}
	ws, err := s.cfg.Vault.CopyWorkspace(r.Context(), r.PathValue("ws"), body.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ws)
	return nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	switch r.URL.Query().Get(name) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, sesame.Errorf(sesame.CodeInvalidArgument, "query parameter %q must be true or false", name)
}

// --- credentials ---

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	items, err := s.cfg.Vault.ListCredentials(r.Context(), r.PathValue("ws"), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(c vault.CredentialView) string { return c.Key })
	return nil
}

func (s *Server) getCredential(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Vault.GetCredential(r.Context(), r.PathValue("ws"), r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) putCredential(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	by, err := s.actor(r)
	if err != nil {
		clear(body)
		return err
	}
	c, created, err := s.cfg.Vault.PutCredential(r.Context(), r.PathValue("ws"), r.PathValue("key"), body, by)
	clear(body) // the body held secret values
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, c)
	return nil
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	if err := s.cfg.Vault.DeleteCredential(r.Context(), r.PathValue("ws"), r.PathValue("key"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// actor says what the vault and the gateway must know about the caller of r: whether it
// holds admin in the route's workspace. Without access control everyone is.
func (s *Server) actor(r *http.Request) (vault.Actor, error) {
	if s.cfg.Access == nil {
		return vault.Actor{Admin: true}, nil
	}
	p, _ := sesame.PrincipalFrom(r.Context())
	admin, err := s.cfg.Access.Has(r.Context(), p, sesame.PrivAdmin, r.PathValue("ws"))
	return vault.Actor{Admin: admin}, err
}

// --- system ---

func (s *Server) rotateMasterKey(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		NewKey string `json:"new_key"` // only when the master key comes from the environment
	}
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &body); err != nil {
			return err
		}
	}
	res, err := s.cfg.Rotate(r.Context(), body.NewKey)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) masterKeyStatus(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.KeyStatus == nil {
		return sesame.Errorf(sesame.CodeUnavailable, "master-key status is not available on this server")
	}
	st, err := s.cfg.KeyStatus(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
