-- OIDC sign-in (issue 16). A session signed in through the identity provider has no API key:
-- key_id is '' and user_id names its user (a key session keeps user_id '' and follows its
-- key).
ALTER TABLE console_sessions ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
CREATE INDEX console_sessions_user ON console_sessions (user_id);
-- A started sign-in: the HMAC of its state, the nonce and PKCE verifier that go with it,
-- and the console path to land on. A state is taken (deleted) once, so it cannot be replayed.
CREATE TABLE oidc_states (
	state_hash BYTEA PRIMARY KEY,
	nonce      TEXT NOT NULL,
	verifier   TEXT NOT NULL,
	next       TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_states_expires ON oidc_states (expires_at);
