// Package access is inbound access control (PRODUCT.md C6): users, groups, roles, grants
// and API keys, and the policy that decides whether a principal holds a privilege in a
// workspace. Decisions are served from memory; every change clears the caches here and,
// through the store's notifications, on every other replica.
package access

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesamehq/sesame"
)

// Store is the storage access control needs.
type Store interface {
	GetUser(ctx context.Context, id string) (sesame.User, error)
	ListUsers(ctx context.Context, after string, limit int) ([]sesame.User, error)
	CreateUser(ctx context.Context, u sesame.User) error
	SetUserDisabled(ctx context.Context, id string, disabled bool) error
	// DeleteUser deletes a user and its keys, and revokes (at) every key they minted.
	DeleteUser(ctx context.Context, id string, at int64) error

	CreateAPIKey(ctx context.Context, k sesame.APIKey) error
	ListAPIKeys(ctx context.Context, userID string) ([]sesame.APIKey, error)
	GetAPIKey(ctx context.Context, id string) (sesame.APIKey, error)
	// RevokeAPIKey revokes a key and every key it minted, transitively.
	RevokeAPIKey(ctx context.Context, id string, at int64) error
	// RevokeUserAPIKeys revokes every key of a user and every key they minted; it returns
	// how many keys it revoked.
	RevokeUserAPIKeys(ctx context.Context, userID string, at int64) (int, error)
	// MintedKeyOwners returns the users owning key id (with byUser, any key of user id)
	// and every key minted by it, transitively: whom revoking those keys acts on.
	MintedKeyOwners(ctx context.Context, id string, byUser bool) ([]string, error)

	CreateGroup(ctx context.Context, g sesame.Group) error
	SetGroupMembers(ctx context.Context, id string, members []string) error
	GetGroup(ctx context.Context, id string) (sesame.Group, error)
	ListGroups(ctx context.Context) ([]sesame.Group, error)
	DeleteGroup(ctx context.Context, id string) error
	UserByName(ctx context.Context, name string) (sesame.User, error)
	SetGroupMember(ctx context.Context, groupID, userID string, member bool) (bool, error)

	PutRole(ctx context.Context, r sesame.Role) (bool, error)
	GetRole(ctx context.Context, name string) (sesame.Role, error)
	ListRoles(ctx context.Context) ([]sesame.Role, error)
	DeleteRole(ctx context.Context, name string) error

	CreateGrant(ctx context.Context, g sesame.Grant) error
	DeleteGrant(ctx context.Context, id string) error
	ListGrants(ctx context.Context) ([]sesame.Grant, error)
	EffectivePrivileges(ctx context.Context, kind, subject string) (map[string][]sesame.Privilege, error)

	GetWorkspace(ctx context.Context, name string) (sesame.Workspace, error)
	Notify(ctx context.Context, channel, payload string) error
}

// Channel is the notification channel on which replicas announce access changes.
const Channel = "sesame_access"

// Hasher computes the stored hash of an API key.
type Hasher interface {
	Hash(key []byte) []byte
}

// DefaultMaxAge is how long a cached decision is used without asking the store again,
// unless SetMaxAge says otherwise. Every change clears the caches at once, here and (through
// the store's notifications) on every other replica; the maximum age only bounds how long a
// replica that missed a notification can go on deciding from stale data.
const DefaultMaxAge = 30 * time.Second

// Service manages access control.
type Service struct {
	store  Store
	hasher Hasher
	now    sesame.Clock
	log    *slog.Logger
	maxAge time.Duration

	mu       sync.RWMutex
	policies map[string]cachedPolicy // by subject kind + ":" + subject
	// gen counts invalidations, so that a policy read from the store before an
	// invalidation is not cached after it.
	gen      uint64
	onChange []func() // other caches to clear on a change (the key cache)

	hits, misses atomic.Uint64 // decision cache lookups, for metrics
}

// CacheStats reports how many decisions were made from cached privileges (hits) and how
// many read a principal's privileges from the store (misses).
func (s *Service) CacheStats() (hits, misses uint64) {
	return s.hits.Load(), s.misses.Load()
}

// policy is a subject's privileges by workspace ("*" for all).
type policy map[string]map[sesame.Privilege]bool

type cachedPolicy struct {
	pol    policy
	loaded time.Time
}

// New returns the access service.
func New(st Store, h Hasher, now sesame.Clock, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: st, hasher: h, now: now, log: log, maxAge: DefaultMaxAge, policies: map[string]cachedPolicy{}}
}

// SetMaxAge sets how long a cached decision may be used before it is read from the store
// again (see DefaultMaxAge). Call it before serving.
func (s *Service) SetMaxAge(d time.Duration) {
	if d > 0 {
		s.maxAge = d
	}
}

// OnChange registers a function to run whenever access data changes here or on another
// replica, to drop what it cached.
func (s *Service) OnChange(fn func()) { s.onChange = append(s.onChange, fn) }

// Invalidate drops every cached decision. It runs on local changes and on notifications
// from other replicas.
func (s *Service) Invalidate() {
	s.mu.Lock()
	clear(s.policies)
	s.gen++
	s.mu.Unlock()
	for _, fn := range s.onChange {
		fn()
	}
}

// Changed is for changes made outside this service that affect decisions (a workspace
// deleted with its grants, or created): it invalidates here and tells the other replicas.
func (s *Service) Changed(ctx context.Context) { s.changed(ctx) }

// changed invalidates here and tells the other replicas.
func (s *Service) changed(ctx context.Context) {
	s.Invalidate()
	if err := s.store.Notify(context.WithoutCancel(ctx), Channel, "changed"); err != nil {
		s.log.Warn("could not notify other replicas of an access change; their cached decisions expire within the maximum age", "err", err)
	}
}

func subjectOf(p sesame.Principal) (kind, subject string) {
	switch p.Kind {
	case sesame.PrincipalUser:
		return sesame.SubjectUser, p.UserID
	case sesame.PrincipalApp:
		return sesame.SubjectApp, p.AppID
	}
	return "", ""
}

func (s *Service) policyOf(ctx context.Context, p sesame.Principal) (policy, error) {
	kind, subject := subjectOf(p)
	if kind == "" {
		return policy{}, nil
	}
	key := kind + ":" + subject
	now := s.now()
	s.mu.RLock()
	c, ok := s.policies[key]
	gen := s.gen
	s.mu.RUnlock()
	if ok && now.Sub(c.loaded) < s.maxAge && !now.Before(c.loaded) {
		s.hits.Add(1)
		return c.pol, nil
	}
	s.misses.Add(1)
	byWS, err := s.store.EffectivePrivileges(ctx, kind, subject)
	if err != nil {
		return nil, err
	}
	pol := policy{}
	for ws, privs := range byWS {
		set := pol[ws]
		if set == nil {
			set = map[sesame.Privilege]bool{}
			pol[ws] = set
		}
		for _, pr := range privs {
			set[pr] = true
		}
	}
	s.mu.Lock()
	if s.gen == gen { // not invalidated while this was read: it may be cached
		if len(s.policies) > 100_000 {
			clear(s.policies)
		}
		s.policies[key] = cachedPolicy{pol: pol, loaded: now}
	}
	s.mu.Unlock()
	return pol, nil
}

// Has reports whether p holds priv in workspace ws (ws "" means a server-wide right: only
// grants on all workspaces count). admin implies every privilege.
func (s *Service) Has(ctx context.Context, p sesame.Principal, priv sesame.Privilege, ws string) (bool, error) {
	pol, err := s.policyOf(ctx, p)
	if err != nil {
		return false, err
	}
	if all := pol[sesame.AllWorkspaces]; all[priv] || all[sesame.PrivAdmin] {
		return true, nil
	}
	if ws == "" {
		return false, nil
	}
	w := pol[ws]
	return w[priv] || w[sesame.PrivAdmin], nil
}

// HasAnywhere reports whether p holds priv in at least one workspace.
func (s *Service) HasAnywhere(ctx context.Context, p sesame.Principal, priv sesame.Privilege) (bool, error) {
	pol, err := s.policyOf(ctx, p)
	if err != nil {
		return false, err
	}
	for _, set := range pol {
		if set[priv] || set[sesame.PrivAdmin] {
			return true, nil
		}
	}
	return false, nil
}

// Authorize returns nil if p holds priv in ws, and otherwise a forbidden error naming the
// privilege. The answer is the same whether or not ws exists, so a caller without rights
// learns nothing about other workspaces.
func (s *Service) Authorize(ctx context.Context, p sesame.Principal, priv sesame.Privilege, ws string) error {
	ok, err := s.Has(ctx, p, priv, ws)
	if err != nil {
		return err
	}
	if !ok {
		where := "on all workspaces"
		if ws != "" {
			where = "in this workspace"
		}
		return &sesame.Error{Code: sesame.CodeMissingPrivilege, Message: "missing privilege " + string(priv) + " " + where}
	}
	return nil
}

// WorkspacesWith returns the workspaces p holds priv in, sorted, or all=true when p holds
// it on all workspaces.
func (s *Service) WorkspacesWith(ctx context.Context, p sesame.Principal, priv sesame.Privilege) (names []string, all bool, err error) {
	pol, err := s.policyOf(ctx, p)
	if err != nil {
		return nil, false, err
	}
	if set := pol[sesame.AllWorkspaces]; set[priv] || set[sesame.PrivAdmin] {
		return nil, true, nil
	}
	names = []string{}
	for ws, set := range pol {
		if set[priv] || set[sesame.PrivAdmin] {
			names = append(names, ws)
		}
	}
	slices.Sort(names)
	return names, false, nil
}

// Workspaces returns the workspaces p holds any privilege in, or all=true.
func (s *Service) Workspaces(ctx context.Context, p sesame.Principal) (names map[string]bool, all bool, err error) {
	pol, err := s.policyOf(ctx, p)
	if err != nil {
		return nil, false, err
	}
	if len(pol[sesame.AllWorkspaces]) > 0 {
		return nil, true, nil
	}
	names = map[string]bool{}
	for ws, set := range pol {
		if len(set) > 0 {
			names[ws] = true
		}
	}
	return names, false, nil
}
