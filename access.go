package sesame

import "time"

// Privilege is a right a role grants.
type Privilege string

// The privileges. admin implies every other.
const (
	PrivUseAPIKey         Privilege = "use_api_key"
	PrivRunFunctions      Privilege = "run_functions"
	PrivManageCredentials Privilege = "manage_credentials"
	PrivManageConnections Privilege = "manage_connections"
	PrivManageUsers       Privilege = "manage_users"
	PrivManageApps        Privilege = "manage_apps"
	PrivReadAudit         Privilege = "read_audit"
	PrivAdmin             Privilege = "admin"
)

// Privileges lists every privilege.
var Privileges = []Privilege{
	PrivUseAPIKey, PrivRunFunctions, PrivManageCredentials, PrivManageConnections,
	PrivManageUsers, PrivManageApps, PrivReadAudit, PrivAdmin,
}

// ValidPrivilege reports whether p is a known privilege.
func ValidPrivilege(p Privilege) bool {
	for _, q := range Privileges {
		if p == q {
			return true
		}
	}
	return false
}

// AllWorkspaces is the workspace of a grant that applies everywhere.
const AllWorkspaces = "*"

// Role is a named set of privileges.
type Role struct {
	Name       string      `json:"name"`
	Privileges []Privilege `json:"privileges"`
	Builtin    bool        `json:"builtin"`
	CreatedAt  time.Time   `json:"created_at"`
}

// Group is a named set of users.
type Group struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Members   []string  `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// Subject kinds of a grant.
const (
	SubjectUser  = "user"
	SubjectGroup = "group"
	SubjectApp   = "app"
)

// Grant gives a role to a user, group or app in one workspace or in all ("*").
type Grant struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	SubjectKind string    `json:"subject_kind"`
	Subject     string    `json:"subject"`
	Workspace   string    `json:"workspace"`
	CreatedAt   time.Time `json:"created_at"`
}
