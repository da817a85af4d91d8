package httpapi

import (
	"net/http"

	"github.com/sesamehq/sesame"
)

// anyMethod marks a route that takes every method (the proxy).
const anyMethod = ""

// route is one entry of the route table. Every route is authenticated unless anonymous,
// and then authorized: the principal must hold one of privileges (in the route's {ws}
// when the pattern has one, otherwise on all workspaces). No privileges means any
// authenticated principal; inWorkspace means any privilege at all in {ws}.
type route struct {
	method      string
	pattern     string
	h           handlerFunc
	anonymous   bool               // no authentication at all
	uncapped    bool               // anonymous and cheap: not counted against Config.MaxAnonymous
	optional    bool               // anonymous callers get through; the handler decides
	privileges  []sesame.Privilege // any one of them suffices
	inWorkspace bool               // any privilege in {ws}
	// anyWorkspace: one of privileges in at least one workspace suffices; the handler
	// limits what it shows to the workspaces where the principal holds it.
	anyWorkspace bool
}

// Privilege shorthands for the table.
var (
	admin       = []sesame.Privilege{sesame.PrivAdmin}
	credentials = []sesame.Privilege{sesame.PrivManageCredentials}
	connections = []sesame.Privilege{sesame.PrivManageConnections}
	run         = []sesame.Privilege{sesame.PrivRunFunctions}
	runOrManage = []sesame.Privilege{sesame.PrivRunFunctions, sesame.PrivManageConnections}
	users       = []sesame.Privilege{sesame.PrivManageUsers}
)

// routes is the whole API surface, with the privilege each route needs. The OpenAPI test
// checks that every entry is documented.
func (s *Server) routes() []route {
	return []route{
		{method: http.MethodGet, pattern: "/healthz", anonymous: true, uncapped: true, h: s.healthz},
		{method: http.MethodGet, pattern: "/readyz", anonymous: true, uncapped: true, h: s.readyz},
		// Scrapers usually have no key: anonymous unless --metrics-anonymous=false, then read_audit.
		{method: http.MethodGet, pattern: "/metrics", anonymous: s.cfg.MetricsAnonymous, uncapped: true, h: s.metrics, privileges: readAudit},
		{method: http.MethodGet, pattern: "/v1/openapi.json", h: s.openapi},
		{method: http.MethodGet, pattern: "/v1/me", h: s.me},

		{method: http.MethodGet, pattern: "/v1/workspaces", h: s.listWorkspaces},
		{method: http.MethodPost, pattern: "/v1/workspaces", h: s.createWorkspace, privileges: admin},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}", h: s.getWorkspace, inWorkspace: true},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}", h: s.deleteWorkspace, privileges: admin},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/copy", h: s.copyWorkspace, privileges: admin},

		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/credentials", h: s.listCredentials, privileges: credentials},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: s.getCredential, privileges: credentials},
		{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: s.putCredential, privileges: credentials},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: s.deleteCredential, privileges: credentials},

		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/connections", h: s.listConnections, privileges: connections},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/connections/{name}", h: s.getConnection, privileges: connections},
		{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/connections/{name}", h: s.putConnection, privileges: connections},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/connections/{name}", h: s.deleteConnection, privileges: connections},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/connections/{name}/test", h: s.testConnection, privileges: connections},

		// On-premise agents (agents.go). Agents dial in on /v1/agents/connect with their own
		// token, checked by the handler.
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/agents", h: s.listAgents, privileges: connections},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/agents", h: s.createAgent, privileges: connections},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/agents/{name}", h: s.getAgent, privileges: connections},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/agents/{name}", h: s.deleteAgent, privileges: connections},
		{method: http.MethodGet, pattern: "/v1/agents/connect", anonymous: true, uncapped: true, h: s.agentConnect},

		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/functions", h: s.listFunctions, privileges: runOrManage},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/functions/{name}", h: s.getFunction, privileges: runOrManage},
		{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/functions/{name}", h: s.putFunction, privileges: connections},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/functions/{name}", h: s.deleteFunction, privileges: connections},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/functions/{name}/call", h: s.callFunction, privileges: run, optional: true},

		{method: anyMethod, pattern: "/v1/workspaces/{ws}/proxy/{conn}", h: s.proxy, privileges: run},
		{method: anyMethod, pattern: "/v1/workspaces/{ws}/proxy/{conn}/{path...}", h: s.proxy, privileges: run},

		{method: http.MethodGet, pattern: "/v1/users", h: s.listUsers, privileges: users},
		{method: http.MethodPost, pattern: "/v1/users", h: s.createUser, privileges: users},
		{method: http.MethodGet, pattern: "/v1/users/{id}", h: s.getUser, privileges: users},
		{method: http.MethodPatch, pattern: "/v1/users/{id}", h: s.patchUser, privileges: users},
		{method: http.MethodDelete, pattern: "/v1/users/{id}", h: s.deleteUser, privileges: users},
		// Key routes check manage_users or "own key" in the handler.
		{method: http.MethodGet, pattern: "/v1/users/{id}/keys", h: s.listKeys},
		{method: http.MethodPost, pattern: "/v1/users/{id}/keys", h: s.createKey},
		{method: http.MethodDelete, pattern: "/v1/users/{id}/keys", h: s.revokeUserKeys},
		{method: http.MethodDelete, pattern: "/v1/keys/{id}", h: s.revokeKey},

		{method: http.MethodGet, pattern: "/v1/groups", h: s.listGroups, privileges: users},
		{method: http.MethodPost, pattern: "/v1/groups", h: s.createGroup, privileges: users},
		{method: http.MethodGet, pattern: "/v1/groups/{id}", h: s.getGroup, privileges: users},
		{method: http.MethodPut, pattern: "/v1/groups/{id}", h: s.putGroup, privileges: users},
		{method: http.MethodDelete, pattern: "/v1/groups/{id}", h: s.deleteGroup, privileges: users},

		{method: http.MethodGet, pattern: "/v1/roles", h: s.listRoles, privileges: users},
		{method: http.MethodPost, pattern: "/v1/roles", h: s.createRole, privileges: users},
		{method: http.MethodGet, pattern: "/v1/roles/{name}", h: s.getRole, privileges: users},
		{method: http.MethodPut, pattern: "/v1/roles/{name}", h: s.putRole, privileges: users},
		{method: http.MethodDelete, pattern: "/v1/roles/{name}", h: s.deleteRole, privileges: users},

		{method: http.MethodGet, pattern: "/v1/grants", h: s.listGrants, privileges: users},
		{method: http.MethodPost, pattern: "/v1/grants", h: s.createGrant, privileges: users},
		{method: http.MethodDelete, pattern: "/v1/grants/{id}", h: s.deleteGrant, privileges: users},

		// App tokens (apps.go): the manifest exchange is anonymous, the rest needs manage_apps.
		{method: http.MethodPost, pattern: "/api/v2/auth", anonymous: true, h: s.appAuth},
		{method: http.MethodGet, pattern: "/v1/apps/certs", h: s.listAppCerts, privileges: manageApps},
		{method: http.MethodPost, pattern: "/v1/apps/certs", h: s.createAppCert, privileges: manageApps},
		{method: http.MethodGet, pattern: "/v1/apps/certs/{id}", h: s.getAppCert, privileges: manageApps},
		{method: http.MethodDelete, pattern: "/v1/apps/certs/{id}", h: s.revokeAppCert, privileges: manageApps},
		{method: http.MethodGet, pattern: "/v1/apps/tokens", h: s.listAppTokens, privileges: manageApps},
		{method: http.MethodDelete, pattern: "/v1/apps/tokens/{id}", h: s.revokeAppToken, privileges: manageApps},
		{method: http.MethodDelete, pattern: "/v1/apps/tokens", h: s.revokeAppTokens, privileges: manageApps},

		// OAuth2 (oauth.go). The callback is anonymous: the provider sends the browser there
		// and the single-use state authenticates it. authorize checks its ?workspace= itself.
		{method: http.MethodGet, pattern: "/v1/oauth/authorize", h: s.oauthAuthorize},
		{method: http.MethodGet, pattern: "/v1/oauth/callback", anonymous: true, h: s.oauthCallback},
		{method: http.MethodGet, pattern: "/v1/oauth/providers", h: s.oauthProviders},
		// Shared OAuth apps (oauthapps.go): whoever manages credentials somewhere may see
		// them, to name one; only an admin on all workspaces changes them.
		{method: http.MethodGet, pattern: "/v1/oauth/apps", h: s.listOAuthApps, privileges: credentials, anyWorkspace: true},
		{method: http.MethodGet, pattern: "/v1/oauth/apps/{name}", h: s.getOAuthApp, privileges: credentials, anyWorkspace: true},
		{method: http.MethodPut, pattern: "/v1/oauth/apps/{name}", h: s.putOAuthApp, privileges: admin},
		{method: http.MethodDelete, pattern: "/v1/oauth/apps/{name}", h: s.deleteOAuthApp, privileges: admin},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/connections/{name}/token", h: s.connectionToken, privileges: run},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/oauth/grants", h: s.listOAuthGrants, privileges: credentials},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/oauth/grants/{key}", h: s.deleteOAuthGrant, privileges: credentials},

		{method: http.MethodPost, pattern: "/v1/system/master-key/rotate", h: s.rotateMasterKey, privileges: admin},
		{method: http.MethodGet, pattern: "/v1/system/master-keys", h: s.masterKeyStatus, privileges: admin},

		// The audit trail (audit.go).
		{method: http.MethodGet, pattern: "/v1/audit", h: s.listAudit, privileges: readAudit, anyWorkspace: true}, // scoped: auditScope
		{method: http.MethodPost, pattern: "/v1/audit/verify", h: s.verifyAudit, privileges: readAudit},
		{method: http.MethodGet, pattern: "/v1/audit/checkpoint", h: s.auditCheckpoint, privileges: readAudit},
	}
}
