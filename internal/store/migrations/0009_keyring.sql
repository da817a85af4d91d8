-- The master-key ring shared by every replica (internal/vault/keys.go). keyring_state has
-- one row: the primary key, the only key new blobs may be sealed under; every write of a
-- sealed blob checks it in its own transaction. master_keys records each key's state
-- (primary, draining while a rotation re-wraps, retired). replicas is a heartbeat: which
-- key IDs each running replica holds, so a rotation can refuse to strand one.
CREATE TABLE keyring_state (
	id          INTEGER PRIMARY KEY,
	primary_key TEXT NOT NULL,
	version     BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE TABLE master_keys (
	key_id     TEXT PRIMARY KEY,
	state      TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE replicas (
	replica_id   TEXT PRIMARY KEY,
	key_ids      TEXT NOT NULL,
	holds_primary BOOLEAN NOT NULL,
	started_at   BIGINT NOT NULL,
	seen_at      BIGINT NOT NULL
);
