package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/vault"
)

func (c *Console) home(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	http.Redirect(w, r, "/console/workspaces", http.StatusSeeOther)
}

// --- workspaces ---

type workspaceRow struct {
	Name        string
	Credentials bool
	Connections bool
	Functions   bool
}

type workspacesData struct {
	Items []workspaceRow
}

func (c *Console) workspaces(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderWorkspaces(w, r, p, base, http.StatusOK)
}

func (c *Console) renderWorkspaces(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
	items, err := listOf[sesame.Workspace](c, r, p, "/v1/workspaces")
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	var d workspacesData
	for _, ws := range items {
		d.Items = append(d.Items, workspaceRow{
			Name:        ws.Name,
			Credentials: c.can(r, p, sesame.PrivManageCredentials, ws.Name),
			Connections: c.can(r, p, sesame.PrivManageConnections, ws.Name),
			Functions:   c.can(r, p, sesame.PrivManageConnections, ws.Name) || c.can(r, p, sesame.PrivRunFunctions, ws.Name),
		})
	}
	base.Title, base.Data = "Workspaces", d
	base.Flash = r.URL.Query().Get("done")
	c.render(w, r, status, "workspaces", base)
}

func (c *Console) createWorkspace(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if err := c.call(r, p, http.MethodPost, "/v1/workspaces", map[string]string{"name": name}, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderWorkspaces)
		return
	}
	http.Redirect(w, r, "/console/workspaces?done="+url.QueryEscape("Created workspace "+name+"."), http.StatusSeeOther)
}

func (c *Console) copyWorkspace(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	from, to := r.PathValue("ws"), strings.TrimSpace(r.PostFormValue("name"))
	if err := c.call(r, p, http.MethodPost, "/v1/workspaces/"+url.PathEscape(from)+"/copy", map[string]string{"name": to}, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderWorkspaces)
		return
	}
	http.Redirect(w, r, "/console/workspaces?done="+url.QueryEscape("Copied "+from+" to "+to+": its credentials need their secrets entered again."), http.StatusSeeOther)
}

type confirmData struct {
	Question string
	Action   string
	Button   string
	Back     string
}

func (c *Console) confirmDeleteWorkspace(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	base.Title = "Delete workspace"
	base.Data = confirmData{
		Question: "Delete workspace " + ws + " with all its credentials, connections and functions? This cannot be undone.",
		Action:   "/console/workspaces/" + url.PathEscape(ws) + "/delete", Button: "Delete workspace " + ws, Back: "/console/workspaces",
	}
	c.render(w, r, http.StatusOK, "confirm", base)
}

func (c *Console) deleteWorkspace(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	if err := c.call(r, p, http.MethodDelete, "/v1/workspaces/"+url.PathEscape(ws)+"?force=true", nil, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderWorkspaces)
		return
	}
	http.Redirect(w, r, "/console/workspaces?done="+url.QueryEscape("Deleted workspace "+ws+"."), http.StatusSeeOther)
}

// formError shows a client error from the API on the page the form came from; anything
// else (internal, retryable) is an error page.
func (c *Console) formError(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, err error,
	again func(http.ResponseWriter, *http.Request, sesame.Principal, *page, int)) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == http.StatusUnauthorized {
		c.renderError(w, r, err)
		return
	}
	base.Error = ae.Message
	again(w, r, p, base, ae.Status)
}

// --- credentials ---

type credentialRow struct {
	Key     string
	Type    string
	OAuth   bool // an authorization-code oauth2 credential: Connect and grants
	Public  []kv
	Secrets []secretState
	Hosts   string
}

type kv struct{ Name, Value string }

type secretState struct {
	Name  string
	State string
	Needs bool
}

type credentialsData struct {
	Items []credentialRow
	Types []string
}

func (c *Console) credentials(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws := r.PathValue("ws")
	items, err := listOf[vault.CredentialView](c, r, p, "/v1/workspaces/"+url.PathEscape(ws)+"/credentials")
	if err != nil {
		c.renderError(w, r, err)
		return
	}
	d := credentialsData{Types: credentialTypes()}
	for _, v := range items {
		d.Items = append(d.Items, credentialRowOf(v))
	}
	base.Title, base.Data, base.Flash = "Credentials in "+ws, d, r.URL.Query().Get("done")
	c.render(w, r, http.StatusOK, "credentials", base)
}

func (c *Console) confirmDeleteCredential(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, key := r.PathValue("ws"), r.PathValue("key")
	base.Title = "Delete credential"
	back := "/console/w/" + url.PathEscape(ws) + "/credentials"
	base.Data = confirmData{
		Question: "Delete credential " + key + " from " + ws + "? Connections and functions that use it stop working.",
		Action:   back + "/" + url.PathEscape(key) + "/delete", Button: "Delete credential " + key, Back: back,
	}
	c.render(w, r, http.StatusOK, "confirm", base)
}

func (c *Console) deleteCredential(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, key := r.PathValue("ws"), r.PathValue("key")
	back := "/console/w/" + url.PathEscape(ws) + "/credentials"
	if err := c.call(r, p, http.MethodDelete, "/v1/workspaces/"+url.PathEscape(ws)+"/credentials/"+url.PathEscape(key), nil, nil); err != nil {
		c.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, back+"?done="+url.QueryEscape("Deleted "+key+"."), http.StatusSeeOther)
}
