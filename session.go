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
	// CLIReturn is the loopback URL of `sesame login` ("" for a console sign-in) and
	// CLIChallenge its PKCE S256 challenge.
	CLIReturn    string
	CLIChallenge string
	ExpiresAt    time.Time
}

// OIDCHandoff is a finished `sesame login` sign-in, kept until the CLI redeems its one-time
// code (with the verifier of its challenge) for a session token.
type OIDCHandoff struct {
	CodeHash  []byte
	UserID    string
	Challenge string
	ExpiresAt time.Time
}
