package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/oauth"
)

// connectOAuth starts the authorization-code flow for an oauth2 credential (optionally for
// one end user) through the API's authorize route, and sends the browser to the provider.
// The provider comes back to the API's anonymous callback, which sends the browser on to
// the console's landing page (/console/oauth/done, on this server's own public URL).
//
// It is a GET link, not a form: the CSP's form-action 'self' stops a form submission from
// being redirected to another origin. A GET is no CSRF hole here: from another site the
// browser sends no SameSite=Strict session cookie, and a cross-site fetch metadata header
// is refused outright.
func (c *Console) connectOAuth(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		base.Title, base.Error = "Refused", "Cross-origin request refused."
		c.render(w, r, http.StatusForbidden, "error", base)
		return
	}
	ws, key := r.PathValue("ws"), r.PathValue("key")
	user := strings.TrimSpace(r.URL.Query().Get("user"))
	back := url.Values{"workspace": {ws}, "credential": {key}}
	if user != "" {
		back.Set("user", user)
	}
	q := url.Values{"workspace": {ws}, "credential": {key}, "redirect": {"false"},
		"return_url": {c.cfg.PublicURL + "/console/oauth/done?" + back.Encode()}}
	if user != "" {
		q.Set("user", user)
	}
	var a oauth.Authorization
	if err := c.call(r, p, http.MethodGet, "/v1/oauth/authorize?"+q.Encode(), nil, &a); err != nil {
		c.renderError(w, r, err)
		return
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		c.renderError(w, r, sesame.Errorf(sesame.CodeInvalidField, "the credential's auth_url is not an http(s) URL"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.URL, http.StatusSeeOther)
}

type oauthDoneData struct {
	OK                    bool
	Error                 string
	Workspace, Credential string
	User                  string
}

// oauthDone is the human landing page after the provider's callback. It needs no session:
// coming back from another site, a browser does not send the SameSite=Strict cookie. It
// only repeats what the callback put in its query (no secret is ever there) and links back
// into the console.
func (c *Console) oauthDone(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := oauthDoneData{OK: q.Get("status") == "authorized", Error: q.Get("error"), Workspace: q.Get("workspace"), Credential: q.Get("credential"), User: q.Get("user")}
	if !sesame.ValidWorkspaceName(d.Workspace) {
		d.Workspace = ""
	}
	title := "Connection failed"
	if d.OK {
		title = "Connected"
	}
	c.render(w, r, http.StatusOK, "oauthdone", &page{Title: title, Data: d})
}

type grantsData struct {
	Key    string
	Grants []oauth.GrantView
	// ConnectUser is an end user typed into the form: the page offers a Connect link for them.
	ConnectUser string
}

// grants shows the credential's grants (per end user) with Reconnect and Revoke.
func (c *Console) grants(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, key := r.PathValue("ws"), r.PathValue("key")
	var list struct {
		Items []oauth.GrantView `json:"items"`
	}
	if err := c.call(r, p, http.MethodGet, "/v1/workspaces/"+url.PathEscape(ws)+"/oauth/grants?limit=500&credential="+url.QueryEscape(key), nil, &list); err != nil {
		c.renderError(w, r, err)
		return
	}
	base.Title, base.Flash = "Grants of "+key, r.URL.Query().Get("done")
	d := grantsData{Key: key, Grants: list.Items}
	if u := strings.TrimSpace(r.URL.Query().Get("user")); sesame.ValidEndUser(u) {
		d.ConnectUser = u
	}
	base.Data = d
	c.render(w, r, http.StatusOK, "grants", base)
}

func (c *Console) revokeGrant(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	ws, key := r.PathValue("ws"), r.PathValue("key")
	user := r.PostFormValue("user")
	path := "/v1/workspaces/" + url.PathEscape(ws) + "/oauth/grants/" + url.PathEscape(key)
	if user != "" {
		path += "?user=" + url.QueryEscape(user)
	}
	var res oauth.Revocation
	if err := c.call(r, p, http.MethodDelete, path, nil, &res); err != nil {
		c.renderError(w, r, err)
		return
	}
	msg := "Revoked the grant."
	if !res.RevokedAtProvider {
		msg = "Deleted the grant here; the provider did not confirm the revocation."
	}
	http.Redirect(w, r, "/console/w/"+url.PathEscape(ws)+"/credentials/"+url.PathEscape(key)+"/grants?done="+url.QueryEscape(msg), http.StatusSeeOther)
}
