package access

import (
	"context"
	"errors"

	"github.com/sesamehq/sesame"
)

// UserByName returns the user of that name (sign-in through the identity provider).
func (s *Service) UserByName(ctx context.Context, name string) (sesame.User, error) {
	u, err := s.store.UserByName(ctx, name)
	return u, notFound(err, "user", name)
}

// SetDirectoryGroup makes user a member of the Sesame group named group, or not, as the
// identity provider's groups claim says at sign-in; it reports whether anything changed.
// A group that does not exist is skipped (never created).
//
// The actor is the server's configuration (--oidc-group-map), not a person, so the
// privilege ceiling does not apply: the caller passes only groups listed in the mapping,
// and which groups the identity provider controls is the admin's decision, made when they
// listed them. ctx may carry the change's audit intent: it commits with the change.
func (s *Service) SetDirectoryGroup(ctx context.Context, userID, group string, member bool) (bool, error) {
	groups, err := s.store.ListGroups(ctx)
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		g, err := s.store.GetGroup(ctx, g.ID)
		if errors.Is(err, sesame.ErrNotFound) {
			return false, nil // deleted meanwhile
		}
		if err != nil {
			return false, err
		}
		in := false
		for _, m := range g.Members {
			in = in || m == userID
		}
		if in == member {
			return false, nil // nothing to change, nothing to audit
		}
		changed, err := s.store.SetGroupMember(ctx, g.ID, userID, member)
		if errors.Is(err, sesame.ErrNotFound) {
			return false, nil // deleted meanwhile
		}
		if err != nil {
			return false, err
		}
		s.changed(ctx)
		return changed, nil
	}
	return false, nil
}
