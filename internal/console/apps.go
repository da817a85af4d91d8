package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/apps"
)

type appsData struct {
	Certs  []apps.CertView
	Tokens []sesame.AppToken
	// Issued is the certificate document just issued (public: the developer signs
	// manifests with it; it holds no private key).
	Issued string
}

func (c *Console) apps(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	c.renderApps(w, r, p, base, http.StatusOK, appsData{})
}

func (c *Console) renderApps(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int, d appsData) {
	var certs struct {
		Items []apps.CertView `json:"items"`
	}
	var tokens struct {
		Items []sesame.AppToken `json:"items"`
	}
	if err := c.call(r, p, http.MethodGet, "/v1/apps/certs?limit=500", nil, &certs); err != nil {
		c.renderError(w, r, err)
		return
	}
	if err := c.call(r, p, http.MethodGet, "/v1/apps/tokens?limit=500", nil, &tokens); err != nil {
		c.renderError(w, r, err)
		return
	}
	d.Certs, d.Tokens = certs.Items, tokens.Items
	base.Title, base.Data = "Apps", d
	if base.Flash == "" {
		base.Flash = r.URL.Query().Get("done")
	}
	c.render(w, r, status, "apps", base)
}

func (c *Console) issueCert(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	req := apps.CertRequest{DevPubkey: strings.TrimSpace(r.PostFormValue("dev_pubkey")), Domains: strings.Fields(strings.ReplaceAll(r.PostFormValue("domains"), ",", " "))}
	var cert apps.CertView
	if err := c.call(r, p, http.MethodPost, "/v1/apps/certs", req, &cert); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderApps(w, r, p, base, status, appsData{})
		})
		return
	}
	doc, _ := json.MarshalIndent(cert.Certificate, "", "  ")
	base.Flash = "Issued certificate " + cert.ID + "."
	c.renderApps(w, r, p, base, http.StatusCreated, appsData{Issued: string(doc)})
}

func (c *Console) revokeCert(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id := r.PathValue("id")
	if err := c.call(r, p, http.MethodDelete, "/v1/apps/certs/"+url.PathEscape(id), nil, nil); err != nil {
		c.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/apps?done="+url.QueryEscape("Revoked certificate "+id+" and its tokens."), http.StatusSeeOther)
}

func (c *Console) revokeAppToken(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	id := r.PathValue("id")
	if err := c.call(r, p, http.MethodDelete, "/v1/apps/tokens/"+url.PathEscape(id), nil, nil); err != nil {
		c.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/apps?done="+url.QueryEscape("Revoked token "+id+"."), http.StatusSeeOther)
}

// revokeAppTokens revokes every token of one app, trial tokens included (they have no
// record to list).
func (c *Console) revokeAppTokens(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
	app := strings.TrimSpace(r.PostFormValue("app"))
	var res struct {
		Revoked int `json:"revoked_tokens"`
	}
	if err := c.call(r, p, http.MethodDelete, "/v1/apps/tokens?app="+url.QueryEscape(app), nil, &res); err != nil {
		c.formError(w, r, p, base, err, func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page, status int) {
			c.renderApps(w, r, p, base, status, appsData{})
		})
		return
	}
	http.Redirect(w, r, "/console/apps?done="+url.QueryEscape("Revoked every token of "+app+"."), http.StatusSeeOther)
}
