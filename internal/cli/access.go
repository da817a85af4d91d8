package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

const userUsage = `usage:
  sesame user list
  sesame user create NAME
  sesame user get ID
  sesame user disable ID | enable ID
  sesame user rm ID`

func userCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(userUsage)
	}
	pos, err := c.parse(c.flags("user "+args[0]), args[1:])
	if err != nil {
		return err
	}
	printUser := func(u sesame.User) error {
		if c.json {
			return c.printJSON(u)
		}
		return c.table([]string{"ID", "NAME", "DISABLED", "CREATED"}, [][]string{{u.ID, u.Name, fmt.Sprint(u.Disabled), fmtTime(u.CreatedAt)}})
	}
	one := func() (string, error) {
		if len(pos) != 1 {
			return "", usagef(userUsage)
		}
		return url.PathEscape(pos[0]), nil
	}
	switch args[0] {
	case "list", "ls":
		users, err := listAll[sesame.User](ctx, c, "/v1/users")
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(users)
		}
		rows := make([][]string, len(users))
		for i, u := range users {
			rows[i] = []string{u.ID, u.Name, fmt.Sprint(u.Disabled), fmtTime(u.CreatedAt)}
		}
		return c.table([]string{"ID", "NAME", "DISABLED", "CREATED"}, rows)
	case "create":
		if len(pos) != 1 {
			return usagef(userUsage)
		}
		var u sesame.User
		if err := c.do(ctx, http.MethodPost, "/v1/users", nil, map[string]string{"name": pos[0]}, &u); err != nil {
			return err
		}
		return printUser(u)
	case "get", "disable", "enable":
		id, err := one()
		if err != nil {
			return err
		}
		var u sesame.User
		if args[0] == "get" {
			err = c.do(ctx, http.MethodGet, "/v1/users/"+id, nil, nil, &u)
		} else {
			err = c.do(ctx, http.MethodPatch, "/v1/users/"+id, nil, map[string]bool{"disabled": args[0] == "disable"}, &u)
		}
		if err != nil {
			return err
		}
		return printUser(u)
	case "rm", "delete":
		id, err := one()
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, "/v1/users/"+id, nil, nil, nil)
	}
	return usagef(userUsage)
}

const keyUsage = `usage:
  sesame key create USER_ID [--name NAME] [--expires 2027-01-01T00:00:00Z] [--rate N/SECONDS] [--quota N/SECONDS]
                                            (prints the key once; --rate 100/60: 100 requests a
                                            minute on each replica; --quota 10000/86400: 10000
                                            calls a day across replicas; a key with limits
                                            cannot mint keys)
  sesame key list USER_ID
  sesame key revoke KEY_ID                  (also revokes every key it minted)
  sesame key revoke-all USER_ID             (every key of the user, and every key they minted)`

func keyCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(keyUsage)
	}
	fs := c.flags("key " + args[0])
	name := fs.String("name", "", "create: a name for the key")
	expires := fs.String("expires", "", "create: expiry time (RFC 3339)")
	rate := fs.String("rate", "", "create: rate limit, N/SECONDS (requests per period, counted by each replica)")
	quota := fs.String("quota", "", "create: quota, N/SECONDS (calls per period, counted across replicas)")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(keyUsage)
	}
	switch args[0] {
	case "create":
		body := map[string]any{"name": *name}
		if *expires != "" {
			body["expires_at"] = *expires
		}
		if *rate != "" {
			n, per, err := perPeriod("--rate", *rate)
			if err != nil {
				return err
			}
			body["rate_limit"] = sesame.RateLimit{Requests: n, PerSeconds: per}
		}
		if *quota != "" {
			n, per, err := perPeriod("--quota", *quota)
			if err != nil {
				return err
			}
			body["quota"] = sesame.Quota{Calls: n, PerSeconds: per}
		}
		var k struct {
			sesame.APIKey
			Key string `json:"key"`
		}
		if err := c.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(pos[0])+"/keys", nil, body, &k); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(k)
		}
		fmt.Fprintf(c.env.Stdout, "key id: %s\nkey: %s\n(store the key now: it is not shown again)\n", k.ID, k.Key)
		return nil
	case "list", "ls":
		var page struct {
			Items []sesame.APIKey `json:"items"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(pos[0])+"/keys", nil, nil, &page); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(page.Items)
		}
		rows := make([][]string, len(page.Items))
		for i, k := range page.Items {
			state := "active"
			if k.RevokedAt != nil {
				state = "revoked"
			}
			var limits []string
			if k.RateLimit != nil {
				limits = append(limits, fmt.Sprintf("rate %d/%ds", k.RateLimit.Requests, k.RateLimit.PerSeconds))
			}
			if k.Quota != nil {
				limits = append(limits, fmt.Sprintf("quota %d/%ds", k.Quota.Calls, k.Quota.PerSeconds))
			}
			if len(limits) == 0 {
				limits = []string{"-"}
			}
			rows[i] = []string{k.ID, k.Name, state, fmtTime(k.CreatedAt), fmtPtr(k.ExpiresAt), fmtPtr(k.LastUsedAt), k.CreatedByKey, strings.Join(limits, ", ")}
		}
		return c.table([]string{"ID", "NAME", "STATE", "CREATED", "EXPIRES", "LAST USED", "MINTED BY", "LIMITS"}, rows)
	case "revoke", "rm":
		return c.do(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(pos[0]), nil, nil, nil)
	case "revoke-all":
		var res struct {
			User        string `json:"user"`
			RevokedKeys int    `json:"revoked_keys"`
		}
		if err := c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(pos[0])+"/keys", nil, nil, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		fmt.Fprintf(c.env.Stdout, "revoked %d keys of %s\n", res.RevokedKeys, res.User)
		return nil
	}
	return usagef(keyUsage)
}

// perPeriod parses N/SECONDS.
func perPeriod(flag, v string) (n, per int64, err error) {
	a, b, ok := strings.Cut(v, "/")
	n, err1 := strconv.ParseInt(a, 10, 64)
	per, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || n < 1 || per < 1 {
		return 0, 0, usagef("%s must be N/SECONDS with both at least 1, such as 100/60, not %q", flag, v)
	}
	return n, per, nil
}

const groupUsage = `usage:
  sesame group list
  sesame group create NAME [USER_ID ...]
  sesame group members GROUP_ID [USER_ID ...]     (replaces the members)
  sesame group rm GROUP_ID`

const roleUsage = `usage:
  sesame role list
  sesame role put NAME PRIVILEGE [PRIVILEGE ...]
  sesame role rm NAME
privileges: use_api_key run_functions manage_credentials manage_connections manage_users manage_apps read_audit admin`

const grantUsage = `usage:
  sesame grant list
  sesame grant add ROLE (--user ID | --group ID | --app APP_ID) [-w WORKSPACE|*]
  sesame grant rm GRANT_ID`

func groupCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(groupUsage)
	}
	pos, err := c.parse(c.flags("group "+args[0]), args[1:])
	if err != nil {
		return err
	}
	var g sesame.Group
	switch args[0] {
	case "list", "ls":
		return c.listTable(ctx, "/v1/groups", []string{"ID", "NAME", "CREATED"}, func(raw json.RawMessage) []string {
			var g sesame.Group
			_ = json.Unmarshal(raw, &g)
			return []string{g.ID, g.Name, fmtTime(g.CreatedAt)}
		})
	case "create":
		if len(pos) < 1 {
			return usagef(groupUsage)
		}
		err = c.do(ctx, http.MethodPost, "/v1/groups", nil, map[string]any{"name": pos[0], "members": append([]string{}, pos[1:]...)}, &g)
	case "members":
		if len(pos) < 1 {
			return usagef(groupUsage)
		}
		err = c.do(ctx, http.MethodPut, "/v1/groups/"+url.PathEscape(pos[0]), nil, map[string]any{"members": append([]string{}, pos[1:]...)}, &g)
	case "rm", "delete":
		if len(pos) != 1 {
			return usagef(groupUsage)
		}
		return c.do(ctx, http.MethodDelete, "/v1/groups/"+url.PathEscape(pos[0]), nil, nil, nil)
	default:
		return usagef(groupUsage)
	}
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(g)
	}
	return c.table([]string{"ID", "NAME", "MEMBERS"}, [][]string{{g.ID, g.Name, strings.Join(g.Members, ",")}})
}

func roleCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(roleUsage)
	}
	pos, err := c.parse(c.flags("role "+args[0]), args[1:])
	if err != nil {
		return err
	}
	switch args[0] {
	case "list", "ls":
		return c.listTable(ctx, "/v1/roles", []string{"NAME", "PRIVILEGES", "BUILTIN"}, func(raw json.RawMessage) []string {
			var r sesame.Role
			_ = json.Unmarshal(raw, &r)
			ps := make([]string, len(r.Privileges))
			for i, p := range r.Privileges {
				ps[i] = string(p)
			}
			return []string{r.Name, strings.Join(ps, ","), fmt.Sprint(r.Builtin)}
		})
	case "put":
		if len(pos) < 2 {
			return usagef(roleUsage)
		}
		var r sesame.Role
		if err := c.do(ctx, http.MethodPut, "/v1/roles/"+url.PathEscape(pos[0]), nil, map[string]any{"privileges": pos[1:]}, &r); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(r)
		}
		fmt.Fprintf(c.env.Stdout, "role %s saved\n", r.Name)
		return nil
	case "rm", "delete":
		if len(pos) != 1 {
			return usagef(roleUsage)
		}
		return c.do(ctx, http.MethodDelete, "/v1/roles/"+url.PathEscape(pos[0]), nil, nil, nil)
	}
	return usagef(roleUsage)
}

func grantCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(grantUsage)
	}
	fs := c.flags("grant " + args[0])
	user := fs.String("user", "", "add: user ID")
	group := fs.String("group", "", "add: group ID")
	app := fs.String("app", "", "add: app ID or pattern (com.acme.*)")
	ws := fs.String("w", "*", "add: workspace, or * for all")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	switch args[0] {
	case "list", "ls":
		return c.listTable(ctx, "/v1/grants", []string{"ID", "ROLE", "SUBJECT", "WORKSPACE"}, func(raw json.RawMessage) []string {
			var g sesame.Grant
			_ = json.Unmarshal(raw, &g)
			return []string{g.ID, g.Role, g.SubjectKind + ":" + g.Subject, g.Workspace}
		})
	case "add":
		if len(pos) != 1 {
			return usagef(grantUsage)
		}
		var g sesame.Grant
		body := map[string]string{"role": pos[0], "user": *user, "group": *group, "app": *app, "workspace": *ws}
		if err := c.do(ctx, http.MethodPost, "/v1/grants", nil, body, &g); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(g)
		}
		return c.table([]string{"ID", "ROLE", "SUBJECT", "WORKSPACE"}, [][]string{{g.ID, g.Role, g.SubjectKind + ":" + g.Subject, g.Workspace}})
	case "rm", "delete":
		if len(pos) != 1 {
			return usagef(grantUsage)
		}
		return c.do(ctx, http.MethodDelete, "/v1/grants/"+url.PathEscape(pos[0]), nil, nil, nil)
	}
	return usagef(grantUsage)
}

// listTable prints a list endpoint's items, a row each.
func (c *client) listTable(ctx context.Context, path string, header []string, row func(json.RawMessage) []string) error {
	items, err := listAll[json.RawMessage](ctx, c, path)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(items)
	}
	rows := make([][]string, len(items))
	for i, it := range items {
		rows[i] = row(it)
	}
	return c.table(header, rows)
}
