-- OIDC sign-in (issue 16). A session signed in through the identity provider has no API key:
-- key_id is '' and user_id names its user (a key session keeps user_id '' and follows its
-- key).
ALTER TABLE console_sessions ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
CREATE INDEX console_sessions_user ON console_sessions (user_id);
-- A started sign-in: the HMAC of its state, the nonce and PKCE verifier that go with it,
-- the console path to land on, and for `sesame login` its loopback URL and PKCE challenge.
-- A state is taken (deleted) once, so it cannot be replayed.
CREATE TABLE oidc_states (
	state_hash    BYTEA PRIMARY KEY,
	nonce         TEXT NOT NULL,
	verifier      TEXT NOT NULL,
	next          TEXT NOT NULL,
	cli_return    TEXT NOT NULL,
	cli_challenge TEXT NOT NULL,
	expires_at    BIGINT NOT NULL
);
CREATE INDEX oidc_states_expires ON oidc_states (expires_at);
-- A finished `sesame login` sign-in waiting for the CLI: the HMAC of the one-time code the
-- browser brought to the CLI's loopback address, the user, and the CLI's PKCE challenge.
CREATE TABLE oidc_handoffs (
	code_hash  BYTEA PRIMARY KEY,
	user_id    TEXT NOT NULL,
	challenge  TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_handoffs_expires ON oidc_handoffs (expires_at);
