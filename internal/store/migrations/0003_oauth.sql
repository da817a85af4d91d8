-- OAuth2 grants: the tokens of an oauth2 credential for the workspace (end_user '') or for
-- one end user, sealed above the store. version is the compare-and-swap fence of token
-- writes; lease_owner/lease_until let one process at a time refresh a grant.
CREATE TABLE oauth_grants (
	workspace    TEXT NOT NULL,
	cred_key     TEXT NOT NULL,
	end_user     TEXT NOT NULL,
	access_blob  BYTEA,
	refresh_blob BYTEA,
	token_type   TEXT NOT NULL,
	scope        TEXT NOT NULL,
	expires_at   BIGINT,
	status       TEXT NOT NULL,
	reason       TEXT NOT NULL,
	version      BIGINT NOT NULL,
	lease_owner  TEXT NOT NULL DEFAULT '',
	lease_until  BIGINT NOT NULL DEFAULT 0,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL,
	refreshed_at BIGINT,
	PRIMARY KEY (workspace, cred_key, end_user),
	FOREIGN KEY (workspace, cred_key) REFERENCES credentials (workspace, cred_key) ON DELETE CASCADE
);

-- Pending authorization-code requests. state_id is an HMAC of the state value, never the
-- value; the PKCE verifier is sealed. Rows are single use and expire.
CREATE TABLE oauth_states (
	state_id     TEXT PRIMARY KEY,
	workspace    TEXT NOT NULL,
	cred_key     TEXT NOT NULL,
	end_user     TEXT NOT NULL,
	return_url   TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	verifier     BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	FOREIGN KEY (workspace, cred_key) REFERENCES credentials (workspace, cred_key) ON DELETE CASCADE
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);
