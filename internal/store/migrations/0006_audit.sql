-- The audit trail: an append-only, hash-chained list of events (PRODUCT.md C8).
-- Each event stores the hash of its predecessor; audit_head keeps the newest link, so
-- deleting the newest events is detected too. Hashes and MACs are lowercase hex.
CREATE TABLE audit_events (
	seq             BIGINT PRIMARY KEY,
	version         INTEGER NOT NULL,
	at              BIGINT NOT NULL,
	workspace       TEXT NOT NULL,
	principal       TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	key_id          TEXT NOT NULL,
	app_id          TEXT NOT NULL,
	action          TEXT NOT NULL,
	target          TEXT NOT NULL,
	result          TEXT NOT NULL,
	code            TEXT NOT NULL,
	status          INTEGER NOT NULL,
	upstream_status INTEGER NOT NULL,
	latency_us      BIGINT NOT NULL,
	source          TEXT NOT NULL,
	request_id      TEXT NOT NULL,
	detail          TEXT NOT NULL,
	prev_hash       TEXT NOT NULL,
	hash            TEXT NOT NULL,
	mac             TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_workspace ON audit_events (workspace, seq);
CREATE INDEX audit_events_user ON audit_events (user_id, seq);

-- One row: the newest link. Appends lock it, so they are serialized across replicas.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT NOT NULL,
	hash TEXT NOT NULL,
	mac  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', '');
