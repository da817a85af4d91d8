package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/agent"
)

type agentsData struct {
	Items []agent.View
	// NewToken is the token of the agent just created: shown once, in this response only,
	// as text (never in an attribute or a form field).
	NewToken     string
	NewTokenName string
	Name         string // the name typed into the create form, kept after an error
}

func agentsPath(ws string) string { return "/v1/workspaces/" + url.PathEscape(ws) + "/agents" }

func agentsPage(ws string) string { return "/console/w/" + url.PathEscape(ws) + "/agents" }

func (c *Console) agents(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderAgents(w, r, p, base, http.StatusOK, agentsData{})
}

func (c *Console) renderAgents(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int, d agentsData) {
	ws := r.PathValue("ws")
	items, err := listOf[agent.View](c, r, p, agentsPath(ws))
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	d.Items = items
	base.Title, base.Data = "Agents in "+ws, d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "agents", base)
}

// createAgent registers an agent through the API and shows its token this once.
func (c *Console) createAgent(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	name := strings.TrimSpace(r.PostFormValue("name"))
	var created agent.Created
	if err := c.call(r, p, http.MethodPost, agentsPath(ws), map[string]string{"name": name}, &created); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderAgents(w, r, p, base, status, agentsData{Name: name})
		})
		return
	}
	c.renderAgents(w, r, p, base, http.StatusCreated, agentsData{NewToken: created.Token, NewTokenName: created.Name})
}

func (c *Console) confirmDeleteAgent(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	back := agentsPage(ws)
	base.Title = "Delete agent"
	base.Data = confirmData{
		Question: "Delete agent " + name + " from " + ws + "? Its token stops working, its sessions end, and connections that route through it stop working.",
		Action:   back + "/" + url.PathEscape(name) + "/delete", Button: "Delete agent " + name, Back: back,
	}
	c.render(w, r, http.StatusOK, "confirm", base)
}

func (c *Console) deleteAgent(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	if err := c.call(r, p, http.MethodDelete, agentsPath(ws)+"/"+url.PathEscape(name), nil, nil); err != nil {
		c.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, agentsPage(ws)+"?done="+url.QueryEscape("Deleted agent "+name+"."), http.StatusSeeOther)
}
