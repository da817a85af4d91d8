-- Per-app revocations: every token of app_id issued before revoked_before (Unix
-- nanoseconds) is revoked. Trial tokens have no row in app_tokens, so this is how they are
-- revoked; signed tokens are covered too. seq is the revocation's number from
-- app_revocation_seq, so replicas read only the revocations after the last one they hold.
CREATE TABLE app_revocations (
	app_id         TEXT PRIMARY KEY,
	revoked_before BIGINT NOT NULL,
	seq            BIGINT NOT NULL
);
CREATE INDEX app_revocations_seq ON app_revocations (seq);
