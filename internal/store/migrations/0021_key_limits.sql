-- Per-key limits (issue 14): a rate limit counted by each replica, and a quota of calls per
-- period counted here, across replicas. Zero means none.
ALTER TABLE api_keys ADD COLUMN rate_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN rate_per_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN quota_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN quota_per_seconds BIGINT NOT NULL DEFAULT 0;
-- Calls reserved per key and quota period (replicas reserve a few at a time).
CREATE TABLE key_quota_usage (
	key_id       TEXT NOT NULL,
	window_start BIGINT NOT NULL,
	used         BIGINT NOT NULL,
	PRIMARY KEY (key_id, window_start)
);
