package audit

import "github.com/sesamehq/sesame"

// ContentHash is hashEvent for tests that forge events the way an attacker who knows the
// encoding (but not the server's key) would.
func ContentHash(e *sesame.AuditEvent) string {
	h, _ := hashEvent(nil, e)
	return h
}

// GenesisHash is the prev_hash of the first event.
const GenesisHash = genesisHash
