package httpapi

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/agent"
	"github.com/sesamehq/sesame/internal/auth"
)

// Agents is the on-premise agent registry and the hub that holds their links
// (internal/agent).
type Agents interface {
	Create(ctx context.Context, ws, name, createdBy string) (agent.Created, error)
	Get(ctx context.Context, ws, name string) (agent.View, error)
	List(ctx context.Context, ws, after string, limit int) ([]agent.View, error)
	Delete(ctx context.Context, ws, name string) error
	Authenticate(ctx context.Context, token string) (ws, name string, stillValid func(context.Context) bool, err error)
	Serve(ctx context.Context, conn net.Conn, info agent.SessionInfo, stillValid func(context.Context) bool) error
}

var errNoAgents = sesame.Errorf(sesame.CodeUnavailable, "on-premise agents are not enabled on this server")

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Agents == nil {
		return errNoAgents
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Vault.GetWorkspace(r.Context(), r.PathValue("ws")); err != nil {
		return err
	}
	items, err := s.cfg.Agents.List(r.Context(), r.PathValue("ws"), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(v agent.View) string { return v.Name })
	return nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Agents == nil {
		return errNoAgents
	}
	v, err := s.cfg.Agents.Get(r.Context(), r.PathValue("ws"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// createAgent registers an agent and answers its token, once. Whoever holds the token of
// an agent that connections already name receives those connections' traffic, so
// (re)creating such an agent needs admin, like setting a connection's agent.
func (s *Server) createAgent(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Agents == nil {
		return errNoAgents
	}
	var body struct {
		Name string `json:"name"`
	}
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return sesame.Errorf(sesame.CodeMissingField, "field %q is required", "name")
	}
	ws := r.PathValue("ws")
	by, err := s.actor(r)
	if err != nil {
		return err
	}
	if !by.Admin && sesame.ValidWorkspaceName(ws) && sesame.ValidCredentialKey(body.Name) {
		users, err := s.cfg.Gateway.ConnectionsUsingAgent(r.Context(), ws, body.Name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return sesame.Errorf(sesame.CodeMissingPrivilege,
				"missing privilege admin: connections %s already route through agent %q; only an admin may issue a token for it",
				strings.Join(users, ", "), body.Name)
		}
	}
	p, _ := sesame.PrincipalFrom(r.Context())
	c, err := s.cfg.Agents.Create(r.Context(), ws, body.Name, p.UserID)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Agents == nil {
		return errNoAgents
	}
	if err := s.cfg.Agents.Delete(r.Context(), r.PathValue("ws"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentConnect is where agents dial in: it authenticates the agent token (failed attempts
// count against the source's limit like bad API keys), upgrades to a WebSocket and hands
// the link to the hub for as long as it lives.
func (s *Server) agentConnect(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Agents == nil {
		return errNoAgents
	}
	source := sourceOf(r)
	ws, name, stillValid, err := func() (string, string, func(context.Context) bool, error) {
		// Unauthenticated until the token checks out: hold one of the anonymous slots.
		release, ok := s.acquireAnonymous()
		if !ok {
			return "", "", nil, errTooManyAnonymous
		}
		defer release()
		if s.cfg.Failures != nil {
			if wait, blocked := s.cfg.Failures.Blocked(source); blocked {
				return "", "", nil, &sesame.Error{Code: sesame.CodeRateLimited, Message: "too many failed authentications from this address; retry later", RetryAfter: wait}
			}
		}
		tok := auth.KeyFromRequest(r)
		if tok == "" {
			return "", "", nil, sesame.Errorf(sesame.CodeUnauthenticated, "missing agent token: send Authorization: Bearer <token>")
		}
		ws, name, stillValid, err := s.cfg.Agents.Authenticate(r.Context(), tok)
		if err != nil && sesame.ErrorCode(err) == sesame.CodeUnauthenticated {
			if s.cfg.Failures != nil {
				s.cfg.Failures.Fail(source)
			}
			s.authEvent(r, "failed", source, "", sesame.CodeUnauthenticated)
		}
		return ws, name, stillValid, err
	}()
	if err != nil {
		return err
	}
	liftBodyDeadline(w)
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil // Accept has answered the client
	}
	ctx := context.WithoutCancel(r.Context())
	nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
	info := agent.SessionInfo{Workspace: ws, Name: name, Version: truncate(r.Header.Get(agent.VersionHeader), 64), Remote: r.RemoteAddr}
	return s.cfg.Agents.Serve(ctx, nc, info, stillValid)
}
