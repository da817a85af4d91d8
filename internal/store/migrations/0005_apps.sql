-- App tokens (PRODUCT.md C7): developer certificates, issued tokens (claims only, never the
-- token), and the revocation sequence that replicas follow to learn of revocations.
CREATE TABLE app_certs (
	id         TEXT PRIMARY KEY,
	dev_pubkey TEXT NOT NULL,
	domains    TEXT NOT NULL, -- JSON array
	issued_at  BIGINT NOT NULL,
	expires_at BIGINT,
	revoked_at BIGINT,
	body       TEXT NOT NULL
);

CREATE TABLE app_tokens (
	id          TEXT PRIMARY KEY,
	app_id      TEXT NOT NULL,
	version     TEXT NOT NULL,
	mode        TEXT NOT NULL,
	cert_id     TEXT,
	source      TEXT NOT NULL,
	issued_at   BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	revoked_at  BIGINT,
	revoked_seq BIGINT
);
CREATE INDEX app_tokens_app ON app_tokens (app_id, id);
CREATE INDEX app_tokens_cert ON app_tokens (cert_id) WHERE cert_id IS NOT NULL;
CREATE INDEX app_tokens_expires ON app_tokens (expires_at);
CREATE INDEX app_tokens_revoked ON app_tokens (revoked_seq) WHERE revoked_seq IS NOT NULL;

-- One row: the last revocation sequence number. A revocation increments it in its own
-- transaction, so revocations commit in sequence order.
CREATE TABLE app_revocation_seq (
	id  INTEGER PRIMARY KEY,
	seq BIGINT NOT NULL
);
INSERT INTO app_revocation_seq (id, seq) VALUES (1, 0);
