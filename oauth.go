package sesame

import "time"

// OAuth2 grant statuses.
const (
	// GrantValid: the grant has (or can fetch) an access token.
	GrantValid = "valid"
	// GrantReauthorize: the provider refused the refresh (invalid_grant, revoked consent)
	// or there is no refresh token; a person must authorize again.
	GrantReauthorize = "reauthorization_required"
)

// OAuthGrant is the token state of one OAuth2 credential for a workspace (EndUser "") or
// for one end user, as storage holds it: the tokens only as sealed blobs bound to
// ("oauth", workspace, credential, end user, "access"|"refresh").
type OAuthGrant struct {
	Workspace  string
	Credential string
	EndUser    string

	Access    []byte // sealed; nil before the first token (client credentials)
	Refresh   []byte // sealed; nil when the provider gave none
	TokenType string
	Scope     string
	ExpiresAt *time.Time // nil when the provider gave no expiry

	Status string // GrantValid or GrantReauthorize
	Reason string // why re-authorization is needed: an OAuth error code, never a token

	// Version increments on every token write; writes are compare-and-swap on it, so a
	// slow refresher can never overwrite a newer token.
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	RefreshedAt *time.Time
}

// OAuthState is a pending authorization-code request, bound to everything the callback
// needs. Storage keeps only an HMAC of the state value (ID) and the PKCE verifier sealed
// to ("oauth-state", ID).
type OAuthState struct {
	ID          string // hex HMAC-SHA256 of the state value
	Workspace   string
	Credential  string
	EndUser     string
	ReturnURL   string
	RedirectURI string
	Verifier    []byte // sealed
	CreatedAt   time.Time
	ExpiresAt   time.Time
}
