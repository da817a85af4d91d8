package sesame

import "time"

// Session is a signed-in console session as storage holds it: the hash of its ID (never
// the ID), the API key it acts as, and when it ends.
type Session struct {
	IDHash    []byte
	KeyID     string
	CreatedAt time.Time
	ExpiresAt time.Time
}
