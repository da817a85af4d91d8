package access

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/auth"
)

var (
	roleName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	appPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(\.\*)?$`)
)

func notFound(err error, what, id string) error {
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Errorf(sesame.CodeNotFound, "%s %q not found", what, id)
	}
	return err
}

// --- users ---

// CreateUser creates an enabled user with no rights.
func (s *Service) CreateUser(ctx context.Context, name string) (sesame.User, error) {
	if !sesame.ValidUserName(name) {
		return sesame.User{}, sesame.Errorf(sesame.CodeInvalidName, "invalid user name: use 1-128 letters, digits, '.', '_', '@' or '-'")
	}
	u := sesame.User{ID: auth.NewID("usr_"), Name: name, CreatedAt: s.now().UTC()}
	err := s.store.CreateUser(ctx, u)
	if errors.Is(err, sesame.ErrAlreadyExists) {
		return u, sesame.Errorf(sesame.CodeAlreadyExists, "user %q already exists", name)
	}
	return u, err
}

// GetUser returns a user.
func (s *Service) GetUser(ctx context.Context, id string) (sesame.User, error) {
	u, err := s.store.GetUser(ctx, id)
	return u, notFound(err, "user", id)
}

// ListUsers returns a page of users.
func (s *Service) ListUsers(ctx context.Context, after string, limit int) ([]sesame.User, error) {
	return s.store.ListUsers(ctx, after, limit)
}

// actOnUser checks that actor may act on user id's account (the privilege ceiling's
// second rule); it answers not_found for an unknown user. With keys, the action revokes
// the user's keys and so every key they minted: it acts on those keys' owners too.
func (s *Service) actOnUser(ctx context.Context, actor sesame.Principal, id, why string, keys bool) error {
	if _, err := s.GetUser(ctx, id); err != nil {
		return err
	}
	n := need{users: []string{id}, why: why}
	if keys {
		owners, err := s.store.MintedKeyOwners(ctx, id, true)
		if err != nil {
			return err
		}
		n.users = append(n.users, owners...)
	}
	return s.check(ctx, actor, n)
}

// SetUserDisabled disables (or re-enables) a user: its keys stop working everywhere. The
// actor must hold every privilege the user holds.
func (s *Service) SetUserDisabled(ctx context.Context, actor sesame.Principal, id string, disabled bool) (sesame.User, error) {
	why := "enable this user"
	if disabled {
		why = "disable this user"
	}
	if err := s.actOnUser(ctx, actor, id, why, false); err != nil {
		return sesame.User{}, err
	}
	if err := s.store.SetUserDisabled(ctx, id, disabled); err != nil {
		return sesame.User{}, err
	}
	s.changed(ctx)
	return s.GetUser(ctx, id)
}

// DeleteUser deletes a user, its keys, memberships and grants, and revokes every key its
// keys minted. The actor must hold every privilege of the user and of those keys' owners.
func (s *Service) DeleteUser(ctx context.Context, actor sesame.Principal, id string) error {
	if err := s.actOnUser(ctx, actor, id, "delete this user", true); err != nil {
		return err
	}
	if err := s.store.DeleteUser(ctx, id, s.now().UnixNano()); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// --- keys ---

// NewKey is a freshly created key: the only time the key itself is shown.
type NewKey struct {
	sesame.APIKey
	Key sesame.Secret `json:"-"`
}

// self reports whether actor is user id itself.
func self(actor sesame.Principal, id string) bool {
	return actor.Kind == sesame.PrincipalUser && actor.UserID == id
}

// CreateKey issues an API key for a user. A key for another user lets the actor act as
// that user, so the actor must hold every privilege that user holds. The key records the
// key that minted it (the actor's), so that revoking that key revokes this one too.
func (s *Service) CreateKey(ctx context.Context, actor sesame.Principal, userID, name string, expiresAt *time.Time) (NewKey, error) {
	return s.CreateLimitedKey(ctx, actor, userID, name, expiresAt, nil, nil)
}

// maxLimitPeriod is the longest rate-limit or quota period: a year.
const maxLimitPeriod = 366 * 24 * 3600

// CheckKeyLimits validates the limits a new key is to carry.
func CheckKeyLimits(rate *sesame.RateLimit, quota *sesame.Quota) error {
	if rate != nil && (rate.Requests < 1 || rate.PerSeconds < 1 || rate.PerSeconds > maxLimitPeriod) {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q needs requests of at least 1 and per_seconds from 1 to %d", "rate_limit", maxLimitPeriod)
	}
	if quota != nil && (quota.Calls < 1 || quota.PerSeconds < 1 || quota.PerSeconds > maxLimitPeriod) {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q needs calls of at least 1 and per_seconds from 1 to %d", "quota", maxLimitPeriod)
	}
	return nil
}

// errLimitedMinter refuses a key with limits what would let its holder escape them.
func errLimitedMinter(what string) error {
	return sesame.Errorf(sesame.CodeForbidden, "the API key of this request has a rate limit or quota: it cannot %s (that would escape its limits); use a key without limits", what)
}

// CreateLimitedKey is CreateKey for a key with a rate limit or a quota (either may be nil).
// A key with limits mints no keys: they would not share its limits.
func (s *Service) CreateLimitedKey(ctx context.Context, actor sesame.Principal, userID, name string, expiresAt *time.Time, rate *sesame.RateLimit, quota *sesame.Quota) (NewKey, error) {
	if actor.Limits != nil {
		return NewKey{}, errLimitedMinter("mint keys")
	}
	if err := CheckKeyLimits(rate, quota); err != nil {
		return NewKey{}, err
	}
	if self(actor, userID) {
		if _, err := s.GetUser(ctx, userID); err != nil {
			return NewKey{}, err
		}
	} else if err := s.actOnUser(ctx, actor, userID, "mint a key for this user", false); err != nil {
		return NewKey{}, err
	}
	if name == "" {
		name = "default"
	}
	if len(name) > 128 {
		return NewKey{}, sesame.Errorf(sesame.CodeInvalidField, "field %q is longer than 128 characters", "name")
	}
	now := s.now().UTC()
	if expiresAt != nil && !expiresAt.After(now) {
		return NewKey{}, sesame.Errorf(sesame.CodeInvalidField, "field %q must be in the future", "expires_at")
	}
	key, err := auth.GenerateKey()
	if err != nil {
		return NewKey{}, err
	}
	k := sesame.APIKey{ID: auth.NewID("key_"), UserID: userID, Name: name, Hash: s.hasher.Hash(key.Reveal()), CreatedAt: now, ExpiresAt: expiresAt,
		RateLimit: rate, Quota: quota}
	if actor.Kind == sesame.PrincipalUser {
		k.CreatedByKey = actor.KeyID
	}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return NewKey{}, err
	}
	return NewKey{APIKey: k, Key: key}, nil
}

// ListKeys lists a user's keys.
func (s *Service) ListKeys(ctx context.Context, userID string) ([]sesame.APIKey, error) {
	if _, err := s.GetUser(ctx, userID); err != nil {
		return nil, err
	}
	keys, err := s.store.ListAPIKeys(ctx, userID)
	if keys == nil {
		keys = []sesame.APIKey{}
	}
	return keys, err
}

// GetKey returns a key's metadata.
func (s *Service) GetKey(ctx context.Context, id string) (sesame.APIKey, error) {
	k, err := s.store.GetAPIKey(ctx, id)
	return k, notFound(err, "key", id)
}

// RevokeKey revokes a key everywhere, and every key it minted, transitively. Revoking
// another user's key needs every privilege of that user and of the owners of the keys it
// minted. A user may always revoke its own keys, and so the keys they minted.
func (s *Service) RevokeKey(ctx context.Context, actor sesame.Principal, id string) error {
	k, err := s.GetKey(ctx, id)
	if err != nil {
		return err
	}
	if !self(actor, k.UserID) {
		owners, err := s.store.MintedKeyOwners(ctx, id, false)
		if err != nil {
			return err
		}
		if err := s.check(ctx, actor, need{users: owners, why: "revoke this user's key"}); err != nil {
			return err
		}
	}
	if err := s.store.RevokeAPIKey(ctx, id, s.now().UnixNano()); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// RevokeUserKeys revokes every key of a user, and every key they minted, and returns how
// many keys it revoked. Revoking another user's keys needs every privilege of that user
// and of the owners of the keys they minted.
func (s *Service) RevokeUserKeys(ctx context.Context, actor sesame.Principal, userID string) (int, error) {
	if self(actor, userID) {
		if _, err := s.GetUser(ctx, userID); err != nil {
			return 0, err
		}
	} else if err := s.actOnUser(ctx, actor, userID, "revoke this user's keys", true); err != nil {
		return 0, err
	}
	n, err := s.store.RevokeUserAPIKeys(ctx, userID, s.now().UnixNano())
	if err != nil {
		return 0, err
	}
	s.changed(ctx)
	return n, nil
}

// --- groups ---

func (s *Service) checkUsers(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if _, err := s.store.GetUser(ctx, id); err != nil {
			if errors.Is(err, sesame.ErrNotFound) {
				return sesame.Errorf(sesame.CodeInvalidField, "field %q: user %q not found", "members", id)
			}
			return err
		}
	}
	return nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// CreateGroup creates a group of users.
func (s *Service) CreateGroup(ctx context.Context, name string, members []string) (sesame.Group, error) {
	if !roleName.MatchString(name) {
		return sesame.Group{}, sesame.Errorf(sesame.CodeInvalidName, "invalid group name: use 1-63 lowercase letters, digits, '.', '_' or '-'")
	}
	members = dedupe(members)
	if err := s.checkUsers(ctx, members); err != nil {
		return sesame.Group{}, err
	}
	g := sesame.Group{ID: auth.NewID("grp_"), Name: name, Members: members, CreatedAt: s.now().UTC()}
	err := s.store.CreateGroup(ctx, g)
	if errors.Is(err, sesame.ErrAlreadyExists) {
		return g, sesame.Errorf(sesame.CodeAlreadyExists, "group %q already exists", name)
	}
	if err != nil {
		return g, err
	}
	s.changed(ctx)
	return g, nil
}

// groupGrants returns the grants to group id.
func (s *Service) groupGrants(ctx context.Context, id string) ([]sesame.Grant, error) {
	return s.grantsWhere(ctx, func(g sesame.Grant) bool { return g.SubjectKind == sesame.SubjectGroup && g.Subject == id })
}

// SetGroupMembers replaces a group's members. Adding a member grants it the group's
// roles and removing one takes them away, so the actor must hold every privilege the
// group's grants give, and every privilege of each member it removes.
func (s *Service) SetGroupMembers(ctx context.Context, actor sesame.Principal, id string, members []string) (sesame.Group, error) {
	members = dedupe(members)
	if err := s.checkUsers(ctx, members); err != nil {
		return sesame.Group{}, err
	}
	old, err := s.GetGroup(ctx, id)
	if err != nil {
		return sesame.Group{}, err
	}
	n := need{why: "change the members of group " + old.Name}
	changed := false
	for _, m := range members {
		changed = changed || !slices.Contains(old.Members, m)
	}
	for _, m := range old.Members {
		if !slices.Contains(members, m) {
			n.users = append(n.users, m)
			changed = true
		}
	}
	if changed {
		grants, err := s.groupGrants(ctx, id)
		if err != nil {
			return sesame.Group{}, err
		}
		if err := s.grantsNeed(ctx, &n, grants); err != nil {
			return sesame.Group{}, err
		}
		if err := s.check(ctx, actor, n); err != nil {
			return sesame.Group{}, err
		}
	}
	if err := s.store.SetGroupMembers(ctx, id, members); err != nil {
		return sesame.Group{}, err
	}
	s.changed(ctx)
	return s.GetGroup(ctx, id)
}

// GetGroup returns a group.
func (s *Service) GetGroup(ctx context.Context, id string) (sesame.Group, error) {
	g, err := s.store.GetGroup(ctx, id)
	return g, notFound(err, "group", id)
}

// ListGroups lists groups.
func (s *Service) ListGroups(ctx context.Context) ([]sesame.Group, error) {
	gs, err := s.store.ListGroups(ctx)
	if gs == nil {
		gs = []sesame.Group{}
	}
	return gs, err
}

// DeleteGroup deletes a group and its grants. That takes the group's privileges from
// its members: the actor must hold them, and every privilege of every member.
func (s *Service) DeleteGroup(ctx context.Context, actor sesame.Principal, id string) error {
	g, err := s.GetGroup(ctx, id)
	if err != nil {
		return err
	}
	grants, err := s.groupGrants(ctx, id)
	if err != nil {
		return err
	}
	n := need{users: g.Members, why: "delete group " + g.Name}
	if err := s.grantsNeed(ctx, &n, grants); err != nil {
		return err
	}
	if err := s.check(ctx, actor, n); err != nil {
		return err
	}
	if err := s.store.DeleteGroup(ctx, id); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// --- roles ---

// roleGrants returns the grants of role name.
func (s *Service) roleGrants(ctx context.Context, name string) ([]sesame.Grant, error) {
	return s.grantsWhere(ctx, func(g sesame.Grant) bool { return g.Role == name })
}

// roleNeed is what changing role name from privileges old to next asks of the actor. A
// role is server-wide and may be granted in any workspace at any moment, so every
// privilege it had or will have is needed on all workspaces. Taking privileges away from
// the role's holders also acts on them: it needs every privilege they hold.
func (s *Service) roleNeed(ctx context.Context, name string, old, next []sesame.Privilege, why string) (need, error) {
	n := need{why: why}
	n.add(sesame.AllWorkspaces, old...)
	n.add(sesame.AllWorkspaces, next...)
	takes := false
	for _, p := range old {
		takes = takes || !slices.Contains(next, p)
	}
	if takes {
		grants, err := s.roleGrants(ctx, name)
		if err != nil {
			return n, err
		}
		if err := s.subjectsNeed(ctx, &n, grants); err != nil {
			return n, err
		}
	}
	return n, nil
}

// PutRole creates or replaces a role (see roleNeed for what the actor must hold).
func (s *Service) PutRole(ctx context.Context, actor sesame.Principal, name string, privs []sesame.Privilege) (sesame.Role, bool, error) {
	if !roleName.MatchString(name) {
		return sesame.Role{}, false, sesame.Errorf(sesame.CodeInvalidName, "invalid role name: use 1-63 lowercase letters, digits, '.', '_' or '-'")
	}
	if len(privs) == 0 {
		return sesame.Role{}, false, sesame.Errorf(sesame.CodeMissingField, "field %q must list at least one privilege", "privileges")
	}
	seen := map[sesame.Privilege]bool{}
	var out []sesame.Privilege
	for _, p := range privs {
		if !sesame.ValidPrivilege(p) {
			return sesame.Role{}, false, sesame.Errorf(sesame.CodeInvalidField, "field %q: unknown privilege %q", "privileges", truncate(string(p)))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	var old []sesame.Privilege
	switch cur, err := s.store.GetRole(ctx, name); {
	case err == nil && cur.Builtin:
		return sesame.Role{}, false, sesame.Errorf(sesame.CodeProtected, "role %q is built in and cannot be changed", name)
	case err == nil:
		old = cur.Privileges
	case !errors.Is(err, sesame.ErrNotFound):
		return sesame.Role{}, false, err
	}
	n, err := s.roleNeed(ctx, name, old, out, "set the privileges of role "+name)
	if err != nil {
		return sesame.Role{}, false, err
	}
	if err := s.check(ctx, actor, n); err != nil {
		return sesame.Role{}, false, err
	}
	r := sesame.Role{Name: name, Privileges: out, CreatedAt: s.now().UTC()}
	created, err := s.store.PutRole(ctx, r)
	if err != nil {
		return r, false, err
	}
	s.changed(ctx)
	r, err = s.GetRole(ctx, name)
	return r, created, err
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// GetRole returns a role.
func (s *Service) GetRole(ctx context.Context, name string) (sesame.Role, error) {
	r, err := s.store.GetRole(ctx, name)
	return r, notFound(err, "role", name)
}

// ListRoles lists roles.
func (s *Service) ListRoles(ctx context.Context) ([]sesame.Role, error) {
	return s.store.ListRoles(ctx)
}

// DeleteRole deletes a role and its grants (see roleNeed for what the actor must hold).
func (s *Service) DeleteRole(ctx context.Context, actor sesame.Principal, name string) error {
	r, err := s.GetRole(ctx, name)
	if err != nil {
		return err
	}
	if !r.Builtin {
		n, err := s.roleNeed(ctx, name, r.Privileges, nil, "delete role "+name)
		if err != nil {
			return err
		}
		if err := s.check(ctx, actor, n); err != nil {
			return err
		}
	}
	if err := s.store.DeleteRole(ctx, name); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// --- grants ---

// GrantInput names a role, exactly one subject, and a workspace ("*" for all).
type GrantInput struct {
	Role      string `json:"role"`
	User      string `json:"user,omitempty"`
	Group     string `json:"group,omitempty"`
	App       string `json:"app,omitempty"`
	Workspace string `json:"workspace"`
}

// CreateGrant gives a role to a user, group or app (an app ID or "com.example.*"). The
// actor must hold every privilege of the role in the grant's workspace ("*": on all).
func (s *Service) CreateGrant(ctx context.Context, actor sesame.Principal, in GrantInput) (sesame.Grant, error) {
	g := sesame.Grant{ID: auth.NewID("grt_"), Role: in.Role, Workspace: in.Workspace, CreatedAt: s.now().UTC()}
	n := 0
	for kind, v := range map[string]string{sesame.SubjectUser: in.User, sesame.SubjectGroup: in.Group, sesame.SubjectApp: in.App} {
		if v != "" {
			g.SubjectKind, g.Subject = kind, v
			n++
		}
	}
	if n != 1 {
		return g, sesame.Errorf(sesame.CodeInvalidArgument, "a grant names exactly one of %q, %q or %q", "user", "group", "app")
	}
	role, err := s.GetRole(ctx, in.Role)
	if err != nil {
		if sesame.ErrorCode(err) == sesame.CodeNotFound {
			return g, sesame.Errorf(sesame.CodeInvalidField, "field %q: role %q not found", "role", truncate(in.Role))
		}
		return g, err
	}
	switch g.SubjectKind {
	case sesame.SubjectUser:
		if _, err := s.store.GetUser(ctx, g.Subject); err != nil {
			return g, notFoundAsField(err, "field %q: user %q not found", "user", truncate(g.Subject))
		}
	case sesame.SubjectGroup:
		if _, err := s.GetGroup(ctx, g.Subject); err != nil {
			return g, notFoundAsField(err, "field %q: group %q not found", "group", truncate(g.Subject))
		}
	case sesame.SubjectApp:
		if !appPattern.MatchString(g.Subject) {
			return g, sesame.Errorf(sesame.CodeInvalidField, "field %q must be an app ID (com.acme.app) or a pattern (com.acme.*)", "app")
		}
	}
	if g.Workspace == "" {
		return g, sesame.Errorf(sesame.CodeMissingField, "field %q is required (a workspace name, or \"*\" for all)", "workspace")
	}
	if g.Workspace != sesame.AllWorkspaces {
		if _, err := s.store.GetWorkspace(ctx, g.Workspace); err != nil {
			return g, notFoundAsField(err, "field %q: workspace %q not found", "workspace", truncate(g.Workspace))
		}
	}
	gives := need{why: "grant role " + role.Name}
	gives.add(g.Workspace, role.Privileges...)
	if err := s.check(ctx, actor, gives); err != nil {
		return g, err
	}
	err = s.store.CreateGrant(ctx, g)
	if errors.Is(err, sesame.ErrAlreadyExists) {
		return g, sesame.Errorf(sesame.CodeAlreadyExists, "this grant already exists")
	}
	if err != nil {
		return g, err
	}
	s.changed(ctx)
	return g, nil
}

// ListGrants lists grants.
func (s *Service) ListGrants(ctx context.Context) ([]sesame.Grant, error) {
	gs, err := s.store.ListGrants(ctx)
	if gs == nil {
		gs = []sesame.Grant{}
	}
	return gs, err
}

// DeleteGrant removes a grant. The actor must hold the role's privileges in the grant's
// workspace, and every privilege of the principals it takes them from.
func (s *Service) DeleteGrant(ctx context.Context, actor sesame.Principal, id string) error {
	grants, err := s.grantsWhere(ctx, func(g sesame.Grant) bool { return g.ID == id })
	if err != nil {
		return err
	}
	if len(grants) == 0 {
		return sesame.Errorf(sesame.CodeNotFound, "grant %q not found", truncate(id))
	}
	n := need{why: "remove a grant of role " + grants[0].Role}
	if err := s.grantsNeed(ctx, &n, grants); err != nil {
		return err
	}
	if err := s.subjectsNeed(ctx, &n, grants); err != nil {
		return err
	}
	if err := s.check(ctx, actor, n); err != nil {
		return err
	}
	if err := s.store.DeleteGrant(ctx, id); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// notFoundAsField turns a not-found lookup of a referenced object into an invalid_field
// error naming the field; any other error (the store is down) passes through unchanged, so
// that an outage stays a retryable 503 and is not reported as bad input.
func notFoundAsField(err error, format string, args ...any) error {
	if sesame.ErrorCode(err) != sesame.CodeNotFound {
		return err
	}
	return sesame.Errorf(sesame.CodeInvalidField, format, args...)
}
