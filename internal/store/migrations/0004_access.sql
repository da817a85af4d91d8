-- Inbound access control: groups of users, roles holding privileges, and grants of roles
-- to users, groups or apps in one workspace or in all ("*").
CREATE TABLE groups (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
	group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE roles (
	name       TEXT PRIMARY KEY,
	privileges TEXT NOT NULL,
	builtin    BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE grants (
	id           TEXT PRIMARY KEY,
	role         TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
	subject_kind TEXT NOT NULL,
	subject      TEXT NOT NULL,
	workspace    TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	UNIQUE (role, subject_kind, subject, workspace)
);
CREATE INDEX grants_subject ON grants (subject_kind, subject);

INSERT INTO roles (name, privileges, builtin, created_at) VALUES
	('admin', '["admin"]', TRUE, 0),
	('developer', '["use_api_key","run_functions","manage_credentials","manage_connections"]', TRUE, 0),
	('caller', '["use_api_key","run_functions"]', TRUE, 0),
	('auditor', '["use_api_key","read_audit"]', TRUE, 0),
	('app', '["run_functions"]', TRUE, 0);

-- The admin user created before roles existed keeps its rights.
INSERT INTO grants (id, role, subject_kind, subject, workspace, created_at)
	SELECT 'grt_bootstrap_admin', 'admin', 'user', id, '*', created_at FROM users WHERE name = 'admin';
