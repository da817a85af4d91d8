-- Console sessions (issue 12): a signed-in browser acts as the API key it signed in with.
-- Only an HMAC of the session ID is stored (as for API keys); the key is referenced by ID,
-- never copied, so revoking it or disabling its user ends the session on every replica.
CREATE TABLE console_sessions (
	id_hash    BYTEA PRIMARY KEY,
	key_id     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
CREATE INDEX console_sessions_key ON console_sessions (key_id);
