-- The audit outbox (PRODUCT.md §4.8): every write transaction of a change request also
-- writes the request's audit event here, so a committed change always has its event. The
-- request's final event removes the row as it is chained; rows left by a process that died
-- are chained later by the audit writer. event is the JSON of the unchained event.
CREATE TABLE audit_outbox (
	id    TEXT PRIMARY KEY,
	at    BIGINT NOT NULL,
	event TEXT NOT NULL
);
CREATE INDEX audit_outbox_at ON audit_outbox (at);
