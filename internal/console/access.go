package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

type accessData struct {
	Privileges []sesame.Privilege // for the new-role form
	Groups     []sesame.Group
	Users      []sesame.User
	Roles      []sesame.Role
	Grants     []sesame.Grant
	Names      map[string]string // user ID → name, for the grants table
}

func (c *Console) access(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderAccess(w, r, p, base, http.StatusOK)
}

func (c *Console) renderAccess(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
	var users struct {
		Items []sesame.User `json:"items"`
	}
	var roles struct {
		Items []sesame.Role `json:"items"`
	}
	var grants struct {
		Items []sesame.Grant `json:"items"`
	}
	var groups struct {
		Items []sesame.Group `json:"items"`
	}
	for _, call := range []struct {
		path string
		out  any
	}{{"/v1/users?limit=500", &users}, {"/v1/roles?limit=500", &roles}, {"/v1/grants?limit=500", &grants}, {"/v1/groups?limit=500", &groups}} {
		if err := c.call(r, p, http.MethodGet, call.path, nil, call.out); err != nil {
			c.renderError(w, r, err)
			return
		}
	}
	d := accessData{Privileges: sesame.Privileges, Groups: groups.Items, Users: users.Items, Roles: roles.Items, Grants: grants.Items, Names: map[string]string{}}
	for _, u := range users.Items {
		d.Names[u.ID] = u.Name
	}
	for _, g := range groups.Items {
		d.Names[g.ID] = g.Name
	}
	base.Title, base.Data = "Access", d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "access", base)
}

func (c *Console) createUser(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	var u sesame.User
	if err := c.call(r, p, http.MethodPost, "/v1/users", map[string]string{"name": name}, &u); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Created user "+name+"."), http.StatusSeeOther)
}

// createRole creates a role with the privileges ticked; the privilege ceiling is the API's.
func (c *Console) createRole(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	privs := r.PostForm["privileges"]
	if privs == nil {
		privs = []string{}
	}
	if err := c.call(r, p, http.MethodPost, "/v1/roles", map[string]any{"name": name, "privileges": privs}, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Created role "+name+"."), http.StatusSeeOther)
}

func (c *Console) createGrant(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	body := map[string]string{"role": r.PostFormValue("role"), "workspace": strings.TrimSpace(r.PostFormValue("workspace"))}
	if g := r.PostFormValue("group"); g != "" {
		body["group"] = g
	} else {
		body["user"] = r.PostFormValue("user")
	}
	if err := c.call(r, p, http.MethodPost, "/v1/grants", body, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Granted "+body["role"]+"."), http.StatusSeeOther)
}

type keysData struct {
	UserID string
	Keys   []sesame.APIKey
	// NewKey is the key just created: shown once, in this response only, as text (never in
	// an attribute or a field), with Cache-Control: no-store like every page.
	NewKey     string
	NewKeyName string
	Now        time.Time
}

func (c *Console) userKeys(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderKeys(w, r, p, base, http.StatusOK, keysData{})
}

func (c *Console) renderKeys(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int, d keysData) {
	id := r.PathValue("id")
	var keys struct {
		Items []sesame.APIKey `json:"items"`
	}
	if err := c.call(r, p, http.MethodGet, "/v1/users/"+url.PathEscape(id)+"/keys?limit=500", nil, &keys); err != nil {
		c.renderError(w, r, err)
		return
	}
	d.UserID, d.Keys, d.Now = id, keys.Items, time.Now()
	base.Title, base.Data = "API keys", d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "keys", base)
}

// createKey issues a key and shows it on this response, once.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id := r.PathValue("id")
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name"))}
	if exp := strings.TrimSpace(r.PostFormValue("expires")); exp != "" {
		t, err := time.Parse("2006-01-02", exp)
		if err != nil {
			base.Error = "Expiry must be a date (YYYY-MM-DD)."
			c.renderKeys(w, r, p, base, http.StatusBadRequest, keysData{})
			return
		}
		body["expires_at"] = t.UTC()
	}
	var k struct {
		sesame.APIKey
		Key string `json:"key"`
	}
	if err := c.call(r, p, http.MethodPost, "/v1/users/"+url.PathEscape(id)+"/keys", body, &k); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderKeys(w, r, p, base, status, keysData{})
		})
		return
	}
	c.renderKeys(w, r, p, base, http.StatusCreated, keysData{NewKey: k.Key, NewKeyName: k.Name})
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id, key := r.PathValue("id"), r.PathValue("key")
	if err := c.call(r, p, http.MethodDelete, "/v1/keys/"+url.PathEscape(key), nil, nil); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderKeys(w, r, p, base, status, keysData{})
		})
		return
	}
	if key == p.KeyID {
		// The session acted as this key: it ended with it.
		http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/access/users/"+url.PathEscape(id)+"?done="+url.QueryEscape("Revoked key "+key+"."), http.StatusSeeOther)
}

func (c *Console) deleteGrant(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id := r.PathValue("id")
	if err := c.call(r, p, http.MethodDelete, "/v1/grants/"+url.PathEscape(id), nil, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Removed the grant."), http.StatusSeeOther)
}

func (c *Console) setUserDisabled(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id := r.PathValue("id")
	disabled := r.PostFormValue("disabled") == "true"
	if err := c.call(r, p, http.MethodPatch, "/v1/users/"+url.PathEscape(id), map[string]bool{"disabled": disabled}, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	what := "Enabled"
	if disabled {
		what = "Disabled"
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape(what+" the user."), http.StatusSeeOther)
}

func (c *Console) createGroup(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "members": r.PostForm["members"]}
	if r.PostForm["members"] == nil {
		body["members"] = []string{}
	}
	if err := c.call(r, p, http.MethodPost, "/v1/groups", body, nil); err != nil {
		c.formError(w, r, p, base, err, c.renderAccess)
		return
	}
	http.Redirect(w, r, "/console/access?done="+url.QueryEscape("Created group "+body["name"].(string)+"."), http.StatusSeeOther)
}
