package sesame

import "time"

// Session is a signed-in session as storage holds it: the hash of its ID (never the ID),
// the API key it acts as or, for a sign-in through the identity provider (OIDC), the user
// it acts as with no key, and when it ends.
type Session struct {
	IDHash    []byte
	KeyID     string // "" for an OIDC session
	UserID    string // set for an OIDC session; a key session follows its key's user
	CreatedAt time.Time
	ExpiresAt time.Time
}

// OIDCState is a started OIDC sign-in, kept server-side until its callback takes it once.
type OIDCState struct {
	StateHash []byte
	Nonce     string
	Verifier  string
	Next      string // console path to land on
	ExpiresAt time.Time
}
