-- Connections, functions and later kinds of workspace object: a JSON or YAML body each,
-- plus the credentials it refers to, so that deleting a credential in use can be refused.
CREATE TABLE objects (
	workspace  TEXT NOT NULL REFERENCES workspaces (name) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	body       TEXT NOT NULL,
	version    BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (workspace, kind, name)
);

CREATE TABLE object_refs (
	workspace  TEXT NOT NULL,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	credential TEXT NOT NULL,
	PRIMARY KEY (workspace, kind, name, credential),
	FOREIGN KEY (workspace, kind, name) REFERENCES objects (workspace, kind, name) ON DELETE CASCADE
);
CREATE INDEX object_refs_credential ON object_refs (workspace, credential);
