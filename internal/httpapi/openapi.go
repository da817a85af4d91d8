package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"net/url"
)

//go:embed openapi.json
var openapiDoc []byte

// openapi serves the API description with this server as its server: the configured public
// URL, or else the origin the request came to (so a document fetched through any address
// names that address).
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	server := s.cfg.PublicURL
	if server == "" {
		server = requestOrigin(r)
		w.Header().Add("Vary", "Host")
	}
	doc, err := withServer(openapiDoc, server)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(doc)
	return err
}

// requestOrigin is scheme://host of the request, or "/" (the document's own origin, in
// OpenAPI terms) when the Host header is not a plain host[:port].
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u, err := url.Parse(scheme + "://" + r.Host)
	if err != nil || r.Host == "" || u.Host != r.Host || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "/"
	}
	return u.String()
}

// withServer returns doc with its servers list replaced by the one server.
func withServer(doc []byte, server string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, err
	}
	servers, err := json.Marshal([]map[string]string{{"url": server}})
	if err != nil {
		return nil, err
	}
	top["servers"] = servers
	return json.Marshal(top)
}
