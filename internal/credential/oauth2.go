package credential

import "github.com/sesamehq/sesame"

// oauth2 is an OAuth 2.0 client. Grants and their tokens are managed by the OAuth service;
// stored access and refresh tokens are secret like the client secret.
var oauth2 = Kind{
	Name: "oauth2",
	Fields: []Field{
		{Name: "grant", Type: String, Required: true, Enum: []string{"client_credentials", "authorization_code"}},
		{Name: "client_id", Type: String, Required: true, MaxLen: 1024},
		{Name: "client_secret", Secret: true},
		{Name: "auth_url", Type: URL},
		{Name: "token_url", Type: URL},
		{Name: "scopes", Type: StringList},
		{Name: "provider", Type: String, MaxLen: 64},
	},
	Check: func(public map[string]any, present func(string) bool) error {
		// The client credentials grant authenticates the client with its secret; no
		// provider template can supply that.
		if public["grant"] == "client_credentials" && !present("client_secret") {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for the client_credentials grant", "client_secret")
		}
		// A provider template supplies the URLs; without one they must be given.
		if present("provider") {
			return nil
		}
		if !present("token_url") {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required unless %q names a provider template", "token_url", "provider")
		}
		if public["grant"] == "authorization_code" && !present("auth_url") {
			return sesame.Errorf(sesame.CodeMissingField, "field %q is required for the authorization_code grant unless %q names a provider template", "auth_url", "provider")
		}
		return nil
	},
}
