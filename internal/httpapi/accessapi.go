package httpapi

import (
	"net/http"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
)

// me describes the caller: who it is and what it may do.
func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p, _ := sesame.PrincipalFrom(r.Context())
	out := map[string]any{"kind": p.Kind}
	for k, v := range map[string]string{"user_id": p.UserID, "user": p.UserName, "key_id": p.KeyID, "app_id": p.AppID, "app_version": p.AppVersion, "token_id": p.TokenID} {
		if v != "" {
			out[k] = v
		}
	}
	if s.cfg.Access != nil {
		privs := map[string][]sesame.Privilege{}
		for _, pr := range sesame.Privileges {
			ok, err := s.cfg.Access.Has(r.Context(), p, pr, "")
			if err != nil {
				return err
			}
			if ok {
				privs[sesame.AllWorkspaces] = append(privs[sesame.AllWorkspaces], pr)
			}
		}
		names, _, err := s.cfg.Access.Workspaces(r.Context(), p)
		if err != nil {
			return err
		}
		for ws := range names {
			for _, pr := range sesame.Privileges {
				if ok, _ := s.cfg.Access.Has(r.Context(), p, pr, ws); ok {
					privs[ws] = append(privs[ws], pr)
				}
			}
		}
		out["privileges"] = privs
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// --- users ---

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	items, err := s.cfg.Access.ListUsers(r.Context(), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(u sesame.User) string { return u.ID })
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required", "name")
	}
	u, err := s.cfg.Access.CreateUser(r.Context(), body.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.cfg.Access.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Disabled *bool `json:"disabled"`
	}
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Disabled == nil {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required", "disabled")
	}
	u, err := s.cfg.Access.SetUserDisabled(r.Context(), actorOf(r), r.PathValue("id"), *body.Disabled)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Access.DeleteUser(r.Context(), actorOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// actorOf is the principal making the request: the actor the privilege ceiling checks
// (internal/access/ceiling.go).
func actorOf(r *http.Request) sesame.Principal {
	p, _ := sesame.PrincipalFrom(r.Context())
	return p
}

// --- keys: a user manages its own keys; manage_users manages the keys of users holding
// no privilege the manager lacks (the privilege ceiling) ---

func (s *Server) selfOrManager(r *http.Request, userID string) error {
	p, _ := sesame.PrincipalFrom(r.Context())
	if p.Kind == sesame.PrincipalUser && p.UserID == userID {
		return nil
	}
	return s.cfg.Access.Authorize(r.Context(), p, sesame.PrivManageUsers, "")
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.selfOrManager(r, r.PathValue("id")); err != nil {
		return err
	}
	keys, err := s.cfg.Access.ListKeys(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page[sesame.APIKey]{Items: keys})
	return nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	if err := s.selfOrManager(r, r.PathValue("id")); err != nil {
		return err
	}
	var body struct {
		Name      string            `json:"name"`
		ExpiresAt *time.Time        `json:"expires_at"`
		RateLimit *sesame.RateLimit `json:"rate_limit"`
		Quota     *sesame.Quota     `json:"quota"`
	}
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &body); err != nil {
			return err
		}
	}
	k, err := s.cfg.Access.CreateLimitedKey(r.Context(), actorOf(r), r.PathValue("id"), body.Name, body.ExpiresAt, body.RateLimit, body.Quota)
	if err != nil {
		return err
	}
	// The only time the key is shown.
	writeJSON(w, http.StatusCreated, struct {
		sesame.APIKey
		Key string `json:"key"`
	}{k.APIKey, string(k.Key.Reveal())})
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.cfg.Access.GetKey(r.Context(), r.PathValue("id"))
	if err != nil {
		if sesame.ErrorCode(err) == sesame.CodeNotFound {
			// Do not tell a caller without manage_users which key IDs exist.
			p, _ := sesame.PrincipalFrom(r.Context())
			if aerr := s.cfg.Access.Authorize(r.Context(), p, sesame.PrivManageUsers, ""); aerr != nil {
				return aerr
			}
		}
		return err
	}
	if err := s.selfOrManager(r, k.UserID); err != nil {
		return err
	}
	if err := s.cfg.Access.RevokeKey(r.Context(), actorOf(r), k.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokeUserKeys revokes every key of a user, and every key they minted:
// DELETE /v1/users/{id}/keys.
func (s *Server) revokeUserKeys(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.selfOrManager(r, id); err != nil {
		return err
	}
	n, err := s.cfg.Access.RevokeUserKeys(r.Context(), actorOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": id, "revoked_keys": n})
	return nil
}

// --- groups ---

type groupBody struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.cfg.Access.ListGroups(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page[sesame.Group]{Items: gs})
	return nil
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var body groupBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	g, err := s.cfg.Access.CreateGroup(r.Context(), body.Name, body.Members)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.cfg.Access.GetGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (s *Server) putGroup(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Members []string `json:"members"`
	}
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	g, err := s.cfg.Access.SetGroupMembers(r.Context(), actorOf(r), r.PathValue("id"), body.Members)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Access.DeleteGroup(r.Context(), actorOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- roles ---

type roleBody struct {
	Name       string             `json:"name"`
	Privileges []sesame.Privilege `json:"privileges"`
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.cfg.Access.ListRoles(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page[sesame.Role]{Items: rs})
	return nil
}

func (s *Server) writeRole(w http.ResponseWriter, r *http.Request, name string, privs []sesame.Privilege) error {
	role, created, err := s.cfg.Access.PutRole(r.Context(), actorOf(r), name, privs)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, role)
	return nil
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request) error {
	var body roleBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required", "name")
	}
	if _, err := s.cfg.Access.GetRole(r.Context(), body.Name); err == nil {
		return sesame.Errorf(sesame.CodeAlreadyExists, "role %q already exists; use PUT /v1/roles/%s to change it", body.Name, body.Name)
	}
	return s.writeRole(w, r, body.Name, body.Privileges)
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request) error {
	role, err := s.cfg.Access.GetRole(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, role)
	return nil
}

func (s *Server) putRole(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Privileges []sesame.Privilege `json:"privileges"`
	}
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	return s.writeRole(w, r, r.PathValue("name"), body.Privileges)
}

func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Access.DeleteRole(r.Context(), actorOf(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- grants ---

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.cfg.Access.ListGrants(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page[sesame.Grant]{Items: gs})
	return nil
}

func (s *Server) createGrant(w http.ResponseWriter, r *http.Request) error {
	var body access.GrantInput
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	g, err := s.cfg.Access.CreateGrant(r.Context(), actorOf(r), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Access.DeleteGrant(r.Context(), actorOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
