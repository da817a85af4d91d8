package access

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sesamehq/sesame"
)

// The privilege ceiling (PRODUCT.md §4.6). Every change to what a principal may do is
// checked here, against the actor's own privileges, by two rules:
//
//  1. Give or take only what you hold. Every privilege a change gives or takes away, in
//     every workspace it covers, the actor holds there itself; a change on all workspaces
//     ("*") needs the privilege on all workspaces. admin implies every privilege, so only
//     admin gives or takes admin.
//  2. Act only on your equals or lessers. Acting on another principal's account (disabling
//     or deleting it, minting or revoking its keys, taking grants away from it) needs every
//     privilege that principal holds, where it holds it. So only an admin acts on an admin.
//
// A change is described by a need: privileges by workspace (rule 1) and subjects (rule 2).

// need is what a change asks of its actor.
type need struct {
	privs policy   // privileges given or taken, by workspace
	users []string // users acted on
	apps  []string // app IDs or patterns ("com.acme.*") whose grants are taken away
	why   string   // what the change does, for the message: "grant role \"x\""
}

func (n *need) add(ws string, privs ...sesame.Privilege) {
	if n.privs == nil {
		n.privs = policy{}
	}
	set := n.privs[ws]
	if set == nil {
		set = map[sesame.Privilege]bool{}
		n.privs[ws] = set
	}
	for _, p := range privs {
		set[p] = true
	}
}

// holds reports whether pol grants priv in ws. ws "*" counts grants on all workspaces only.
func (pol policy) holds(priv sesame.Privilege, ws string) bool {
	if all := pol[sesame.AllWorkspaces]; all[priv] || all[sesame.PrivAdmin] {
		return true
	}
	if ws == sesame.AllWorkspaces {
		return false
	}
	w := pol[ws]
	return w[priv] || w[sesame.PrivAdmin]
}

// missing returns a privilege of want that pol does not hold and where, if any. It looks
// at "*" first, then workspaces and privileges in order, so the answer is stable.
func (pol policy) missing(want policy) (sesame.Privilege, string, bool) {
	wss := make([]string, 0, len(want))
	for ws := range want {
		wss = append(wss, ws)
	}
	slices.SortFunc(wss, func(a, b string) int {
		if (a == sesame.AllWorkspaces) != (b == sesame.AllWorkspaces) {
			if a == sesame.AllWorkspaces {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, ws := range wss {
		// admin first: lacking it says the most.
		for _, p := range append([]sesame.Privilege{sesame.PrivAdmin}, sesame.Privileges...) {
			if want[ws][p] && !pol.holds(p, ws) {
				return p, ws, true
			}
		}
	}
	return "", "", false
}

func where(ws string) string {
	if ws == sesame.AllWorkspaces {
		return "on all workspaces"
	}
	return fmt.Sprintf("in workspace %q", ws)
}

func ceilingError(msg string, priv sesame.Privilege, ws, subject string) error {
	d := map[string]string{"privilege": string(priv), "workspace": ws}
	if subject != "" {
		d["subject"] = subject
	}
	return &sesame.Error{Code: sesame.CodePrivilegeCeiling, Message: msg, Details: d}
}

// check enforces both rules for actor.
func (s *Service) check(ctx context.Context, actor sesame.Principal, n need) error {
	mine, err := s.policyOf(ctx, actor)
	if err != nil {
		return err
	}
	if p, ws, ok := mine.missing(n.privs); ok {
		return ceilingError(fmt.Sprintf("privilege ceiling: you cannot %s: it gives or takes %s %s, which you do not hold", n.why, p, where(ws)), p, ws, "")
	}
	for _, u := range n.users {
		if actor.Kind == sesame.PrincipalUser && actor.UserID == u {
			continue
		}
		theirs, err := s.policyOf(ctx, sesame.Principal{Kind: sesame.PrincipalUser, UserID: u})
		if err != nil {
			return err
		}
		if p, ws, ok := mine.missing(theirs); ok {
			return ceilingError(fmt.Sprintf("privilege ceiling: you cannot %s: user %s holds %s %s, which you do not (only a holder of every privilege a user holds acts on that user)", n.why, u, p, where(ws)), p, ws, "user:"+u)
		}
	}
	if len(n.apps) > 0 {
		theirs, err := s.appsPolicy(ctx, n.apps)
		if err != nil {
			return err
		}
		if p, ws, ok := mine.missing(theirs); ok {
			return ceilingError(fmt.Sprintf("privilege ceiling: you cannot %s: apps it covers are granted %s %s, which you do not hold", n.why, p, where(ws)), p, ws, "app:"+strings.Join(n.apps, ","))
		}
	}
	return nil
}

// rolePrivileges returns every role's privileges by name.
func (s *Service) rolePrivileges(ctx context.Context) (map[string][]sesame.Privilege, error) {
	roles, err := s.store.ListRoles(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]sesame.Privilege, len(roles))
	for _, r := range roles {
		out[r.Name] = r.Privileges
	}
	return out, nil
}

// grantsWhere returns the grants keep accepts.
func (s *Service) grantsWhere(ctx context.Context, keep func(sesame.Grant) bool) ([]sesame.Grant, error) {
	all, err := s.store.ListGrants(ctx)
	if err != nil {
		return nil, err
	}
	var out []sesame.Grant
	for _, g := range all {
		if keep(g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// grantsNeed adds to n the privileges of grants, each in its workspace.
func (s *Service) grantsNeed(ctx context.Context, n *need, grants []sesame.Grant) error {
	if len(grants) == 0 {
		return nil
	}
	roles, err := s.rolePrivileges(ctx)
	if err != nil {
		return err
	}
	for _, g := range grants {
		n.add(g.Workspace, roles[g.Role]...)
	}
	return nil
}

// subjectsNeed adds to n, as subjects acted on, the holders of grants: users, the members
// of groups, and apps.
func (s *Service) subjectsNeed(ctx context.Context, n *need, grants []sesame.Grant) error {
	for _, g := range grants {
		switch g.SubjectKind {
		case sesame.SubjectUser:
			n.users = append(n.users, g.Subject)
		case sesame.SubjectApp:
			n.apps = append(n.apps, g.Subject)
		case sesame.SubjectGroup:
			grp, err := s.store.GetGroup(ctx, g.Subject)
			if err != nil {
				return err
			}
			n.users = append(n.users, grp.Members...)
		}
	}
	return nil
}

// appsPolicy is the most any app covered by patterns may hold: the privileges of every
// app grant whose subject overlaps one of the patterns.
func (s *Service) appsPolicy(ctx context.Context, patterns []string) (policy, error) {
	grants, err := s.grantsWhere(ctx, func(g sesame.Grant) bool {
		if g.SubjectKind != sesame.SubjectApp {
			return false
		}
		for _, p := range patterns {
			if appsOverlap(p, g.Subject) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	var n need
	if err := s.grantsNeed(ctx, &n, grants); err != nil {
		return nil, err
	}
	return n.privs, nil
}

// appsOverlap reports whether some app ID is covered by both p and q, each an app ID
// ("com.acme.app") or a pattern ("com.acme.*", every app ID below com.acme).
func appsOverlap(p, q string) bool {
	pp, pw := strings.CutSuffix(p, "*")
	qp, qw := strings.CutSuffix(q, "*")
	switch {
	case pw && qw:
		return strings.HasPrefix(pp, qp) || strings.HasPrefix(qp, pp)
	case pw:
		return strings.HasPrefix(q, pp) && len(q) > len(pp)
	case qw:
		return strings.HasPrefix(p, qp) && len(p) > len(qp)
	}
	return p == q
}

// AuthorizeAppDomains checks that actor may issue a developer certificate for domains
// (app IDs and "com.acme.*" patterns). A certificate lets its holder sign manifests for
// every app it covers, and so act with every grant to those apps: the actor must hold,
// in each grant's workspace, every privilege of every app grant overlapping a domain.
// Apps nobody has granted anything need nothing beyond manage_apps.
func (s *Service) AuthorizeAppDomains(ctx context.Context, actor sesame.Principal, domains []string) error {
	if actor.Limits != nil {
		// A certificate signs app tokens, which no key limit counts.
		return errLimitedMinter("issue developer certificates")
	}
	return s.AuthorizeApps(ctx, actor, domains, fmt.Sprintf("issue a certificate for %s", strings.Join(domains, ", ")))
}

// AuthorizeApps checks that actor may act on the apps that apps (app IDs and patterns)
// cover: issue or revoke their certificates, revoke their tokens. Like acting on a user
// (rule 2), it needs every privilege of every app grant overlapping them, where granted;
// why says what the action is, for the message.
func (s *Service) AuthorizeApps(ctx context.Context, actor sesame.Principal, apps []string, why string) error {
	return s.check(ctx, actor, need{apps: apps, why: why})
}
