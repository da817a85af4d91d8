package httpapi

import "net/http"

// anyMethod marks a route that takes every method (the proxy).
const anyMethod = ""

// route is one entry of the route table. Every route is authenticated unless anonymous.
type route struct {
	method    string
	pattern   string
	anonymous bool
	h         handlerFunc
}

// routes is the whole API surface. The OpenAPI test checks that every entry is documented.
func (s *Server) routes() []route {
	return []route{
		{method: http.MethodGet, pattern: "/healthz", anonymous: true, h: s.healthz},
		{method: http.MethodGet, pattern: "/readyz", anonymous: true, h: s.readyz},
		{method: http.MethodGet, pattern: "/v1/openapi.json", h: s.openapi},

		{method: http.MethodGet, pattern: "/v1/workspaces", h: s.listWorkspaces},
		{method: http.MethodPost, pattern: "/v1/workspaces", h: s.createWorkspace},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}", h: s.getWorkspace},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}", h: s.deleteWorkspace},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/copy", h: s.copyWorkspace},

		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/credentials", h: s.listCredentials},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: s.getCredential},
		{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: s.putCredential},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: s.deleteCredential},

		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/connections", h: s.listConnections},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/connections/{name}", h: s.getConnection},
		{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/connections/{name}", h: s.putConnection},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/connections/{name}", h: s.deleteConnection},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/connections/{name}/test", h: s.testConnection},

		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/functions", h: s.listFunctions},
		{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/functions/{name}", h: s.getFunction},
		{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/functions/{name}", h: s.putFunction},
		{method: http.MethodDelete, pattern: "/v1/workspaces/{ws}/functions/{name}", h: s.deleteFunction},
		{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/functions/{name}/call", h: s.callFunction},

		{method: anyMethod, pattern: "/v1/workspaces/{ws}/proxy/{conn}", h: s.proxy},
		{method: anyMethod, pattern: "/v1/workspaces/{ws}/proxy/{conn}/{path...}", h: s.proxy},

		{method: http.MethodPost, pattern: "/v1/system/master-key/rotate", h: s.rotateMasterKey},
	}
}
