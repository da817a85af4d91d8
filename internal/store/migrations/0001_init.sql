CREATE TABLE meta (
	name   TEXT PRIMARY KEY,
	value  BYTEA NOT NULL,
	sealed BOOLEAN NOT NULL
);

CREATE TABLE workspaces (
	name       TEXT PRIMARY KEY,
	created_at BIGINT NOT NULL
);

CREATE TABLE credentials (
	workspace  TEXT NOT NULL REFERENCES workspaces (name) ON DELETE CASCADE,
	cred_key   TEXT NOT NULL,
	type       TEXT NOT NULL,
	public     TEXT NOT NULL,
	version    BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (workspace, cred_key)
);

CREATE TABLE credential_secrets (
	workspace  TEXT NOT NULL,
	cred_key   TEXT NOT NULL,
	field      TEXT NOT NULL,
	blob       BYTEA,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (workspace, cred_key, field),
	FOREIGN KEY (workspace, cred_key) REFERENCES credentials (workspace, cred_key) ON DELETE CASCADE
);

CREATE TABLE users (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	disabled   BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	hash         BYTEA NOT NULL UNIQUE,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT,
	revoked_at   BIGINT,
	last_used_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
