package access

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/sesamehq/sesame"
)

// UserByName returns the user of that name (sign-in through the identity provider).
func (s *Service) UserByName(ctx context.Context, name string) (sesame.User, error) {
	u, err := s.store.UserByName(ctx, name)
	return u, notFound(err, "user", name)
}

// GroupChange is one membership that SyncDirectoryGroups changed.
type GroupChange struct {
	Group string `json:"group"`
	Added bool   `json:"added"`
}

// SyncDirectoryGroups sets user's membership in the groups of managed (Sesame group
// names) to exactly member: it adds the user to each managed group in member and removes
// them from each managed group not in member. No other group is touched.
//
// The actor is the server's configuration (--oidc-group-map), not a person, so the
// privilege ceiling does not apply: which groups the identity provider controls is the
// admin's decision, made when they listed them in the mapping. A managed group that does
// not exist is skipped (it is never created). Each change is returned for the audit trail.
func (s *Service) SyncDirectoryGroups(ctx context.Context, userID string, managed, member map[string]bool) ([]GroupChange, error) {
	groups, err := s.store.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	var changes []GroupChange
	for _, name := range slices.Sorted(maps.Keys(managed)) {
		i := slices.IndexFunc(groups, func(g sesame.Group) bool { return g.Name == name })
		if i < 0 {
			continue
		}
		want := member[name]
		changed, err := s.store.SetGroupMember(ctx, groups[i].ID, userID, want)
		if errors.Is(err, sesame.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return changes, err
		}
		if changed {
			changes = append(changes, GroupChange{Group: name, Added: want})
		}
	}
	if len(changes) > 0 {
		s.changed(ctx)
	}
	return changes, nil
}
