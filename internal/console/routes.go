package console

import (
	"net/http"
	"net/url"

	"github.com/sesamehq/sesame"
)

// handlerFunc is a console page for a signed-in principal; base carries the user and the
// sections they may open.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page)

// routes is the whole console surface in one place. Every state change is a POST, and
// every POST passes http.CrossOriginProtection (Sec-Fetch-Site / Origin), on top of the
// SameSite=Strict session cookie.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	home := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/console/", http.StatusSeeOther) }
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /console", home)
	mux.Handle("GET /console/static/", staticFiles())
	mux.HandleFunc("GET /console/signin", c.signInPage)
	mux.HandleFunc("POST /console/signin", c.signIn)
	mux.HandleFunc("POST /console/signout", c.signOut)
	mux.HandleFunc("GET /console/oauth/done", c.oauthDone)
	if c.oidc != nil {
		mux.HandleFunc("GET /console/oidc/start", c.oidcStart)
		mux.HandleFunc("GET /console/oidc/callback", c.oidcCallback)
		mux.HandleFunc("POST /console/oidc/cli/token", c.cliToken)
		mux.HandleFunc("POST /console/oidc/cli/logout", c.cliLogout)
	}

	pages := []struct {
		pattern string
		h       handlerFunc
	}{
		{"GET /console/{$}", c.home},
		{"GET /console/workspaces", c.workspaces},
		{"POST /console/workspaces", c.createWorkspace},
		{"POST /console/workspaces/{ws}/copy", c.copyWorkspace},
		{"GET /console/workspaces/{ws}/delete", c.confirmDeleteWorkspace},
		{"POST /console/workspaces/{ws}/delete", c.deleteWorkspace},

		{"GET /console/w/{ws}/credentials", c.credentials},
		{"GET /console/w/{ws}/credentials/new", c.newCredential},
		{"POST /console/w/{ws}/credentials/new", c.saveCredential},
		{"GET /console/w/{ws}/credentials/{key}/edit", c.editCredential},
		{"POST /console/w/{ws}/credentials/{key}/edit", c.saveCredential},
		{"GET /console/w/{ws}/credentials/{key}/delete", c.confirmDeleteCredential},
		{"POST /console/w/{ws}/credentials/{key}/delete", c.deleteCredential},

		{"GET /console/w/{ws}/credentials/{key}/connect", c.connectOAuth},
		{"GET /console/w/{ws}/credentials/{key}/grants", c.grants},
		{"POST /console/w/{ws}/credentials/{key}/grants/revoke", c.revokeGrant},

		{"GET /console/w/{ws}/connections", c.connections},
		{"GET /console/w/{ws}/connections/new", c.connectionForm},
		{"POST /console/w/{ws}/connections/new", c.saveConnection},
		{"GET /console/w/{ws}/connections/{name}/edit", c.connectionForm},
		{"POST /console/w/{ws}/connections/{name}/edit", c.saveConnection},
		{"POST /console/w/{ws}/connections/{name}/test", c.testConnection},
		{"GET /console/w/{ws}/connections/{name}/delete", c.confirmDeleteConnection},
		{"POST /console/w/{ws}/connections/{name}/delete", c.deleteConnection},

		{"GET /console/w/{ws}/agents", c.agents},
		{"POST /console/w/{ws}/agents", c.createAgent},
		{"GET /console/w/{ws}/agents/{name}/delete", c.confirmDeleteAgent},
		{"POST /console/w/{ws}/agents/{name}/delete", c.deleteAgent},

		{"GET /console/w/{ws}/functions", c.functions},
		{"GET /console/w/{ws}/functions/new", c.functionForm},
		{"POST /console/w/{ws}/functions/new", c.saveFunction},
		{"GET /console/w/{ws}/functions/{name}/edit", c.functionForm},
		{"POST /console/w/{ws}/functions/{name}/edit", c.saveFunction},
		{"GET /console/w/{ws}/functions/{name}/try", c.tryFunction},
		{"POST /console/w/{ws}/functions/{name}/try", c.tryFunction},
		{"GET /console/w/{ws}/functions/{name}/delete", c.confirmDeleteFunction},
		{"POST /console/w/{ws}/functions/{name}/delete", c.deleteFunction},

		{"GET /console/access", c.access},
		{"POST /console/access/users", c.createUser},
		{"POST /console/access/grants", c.createGrant},
		{"GET /console/access/users/{id}", c.userKeys},
		{"POST /console/access/users/{id}/keys", c.createKey},
		{"POST /console/access/users/{id}/keys/{key}/revoke", c.revokeKey},

		{"POST /console/access/grants/{id}/delete", c.deleteGrant},
		{"POST /console/access/users/{id}/disabled", c.setUserDisabled},
		{"POST /console/access/groups", c.createGroup},
		{"POST /console/access/roles", c.createRole},

		{"GET /console/apps", c.apps},
		{"POST /console/apps/certs", c.issueCert},
		{"POST /console/apps/certs/{id}/revoke", c.revokeCert},
		{"POST /console/apps/tokens/{id}/revoke", c.revokeAppToken},
		{"POST /console/apps/tokens/revoke", c.revokeAppTokens},

		{"GET /console/audit", c.audit},
		{"POST /console/audit/verify", c.verifyAudit},
		{"GET /console/audit/export", c.exportAudit},
	}
	for _, pg := range pages {
		mux.Handle(pg.pattern, c.authed(pg.h))
	}
	mux.Handle("/console/", c.authed(func(w http.ResponseWriter, r *http.Request, p sesame.Principal, base *page) {
		base.Title, base.Error = "Not found", "There is no page here."
		c.render(w, r, http.StatusNotFound, "error", base)
	}))
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "remote", sourceOf(r))
		c.render(w, r, http.StatusForbidden, "error", &page{Title: "Refused", Error: "Cross-origin request refused."})
	}))
	return securityHeaders(csrf.Handler(limitBody(mux)))
}

// maxForm bounds a console request body (a PKCS#12 upload is the largest thing a form sends).
const maxForm = 2 << 20

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		next.ServeHTTP(w, r)
	})
}

// authed runs h for a signed-in principal. Without a session, a page view is sent to the
// sign-in page and anything else is refused with 401.
func (c *Console) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := c.session(r)
		if err != nil {
			c.renderError(w, r, err)
			return
		}
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.render(w, r, http.StatusUnauthorized, "error", &page{Title: "Signed out", Error: "You are not signed in (or your session ended). Sign in again."})
			return
		}
		base := &page{User: &p, WS: r.PathValue("ws")}
		ctx := r.Context()
		has := func(priv sesame.Privilege) bool {
			ok, err := c.cfg.Access.Has(ctx, p, priv, "")
			return err == nil && ok
		}
		base.Nav = nav{Access: has(sesame.PrivManageUsers), Audit: has(sesame.PrivReadAudit), Admin: has(sesame.PrivAdmin), Apps: has(sesame.PrivManageApps)}
		if base.WS != "" {
			base.Nav.Credentials = c.can(r, p, sesame.PrivManageCredentials, base.WS)
			base.Nav.Connections = c.can(r, p, sesame.PrivManageConnections, base.WS)
			base.Nav.Agents = base.Nav.Connections
			base.Nav.Functions = base.Nav.Connections || c.can(r, p, sesame.PrivRunFunctions, base.WS)
		}
		h(w, r, p, base)
	})
}

// can reports whether p holds priv in ws (the API's own decision, for showing buttons).
func (c *Console) can(r *http.Request, p sesame.Principal, priv sesame.Privilege, ws string) bool {
	ok, err := c.cfg.Access.Has(r.Context(), p, priv, ws)
	return err == nil && ok
}
