package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sesamehq/sesame/internal/agent"
)

const agentUsage = "usage: sesame agent list | get NAME | create NAME | rm NAME [-w WORKSPACE]   (sesame agent --server URL --token TOKEN --allow HOST:PORT|CIDR runs an agent)"

// AgentSubcommands are the words after `sesame agent` that are client commands; anything
// else runs the agent itself.
var AgentSubcommands = map[string]bool{"list": true, "ls": true, "get": true, "create": true, "rm": true, "delete": true}

func agentCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 || !AgentSubcommands[args[0]] {
		return usagef(agentUsage)
	}
	fs := c.flags("agent " + args[0])
	ws := fs.String("w", "default", "workspace")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	base := "/v1/workspaces/" + url.PathEscape(*ws) + "/agents"
	need := func(n int) error {
		if len(pos) != n {
			return usagef(agentUsage)
		}
		return nil
	}
	switch args[0] {
	case "list", "ls":
		if err := need(0); err != nil {
			return err
		}
		items, err := listAll[agent.View](ctx, c, base)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(items)
		}
		rows := make([][]string, len(items))
		for i, v := range items {
			rows[i] = agentRow(v)
		}
		return c.table(agentHeader, rows)
	case "get":
		if err := need(1); err != nil {
			return err
		}
		var v agent.View
		if err := c.do(ctx, http.MethodGet, base+"/"+url.PathEscape(pos[0]), nil, nil, &v); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(v)
		}
		return c.table(agentHeader, [][]string{agentRow(v)})
	case "create":
		if err := need(1); err != nil {
			return err
		}
		var v agent.Created
		if err := c.do(ctx, http.MethodPost, base, nil, map[string]string{"name": pos[0]}, &v); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(v)
		}
		// The one time the token is shown: on a line of its own, for scripts.
		fmt.Fprintf(c.env.Stdout, "agent %s created in workspace %s; its token is shown only now:\n", v.Name, v.Workspace)
		fmt.Fprintf(c.env.Stdout, "agent token: %s\n", v.Token)
		return nil
	default: // rm, delete
		if err := need(1); err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, base+"/"+url.PathEscape(pos[0]), nil, nil, nil)
	}
}

var agentHeader = []string{"NAME", "STATUS", "SESSIONS", "VERSION", "LAST SEEN", "CALLS IN FLIGHT"}

func agentRow(v agent.View) []string {
	status, version := "offline", "-"
	if v.Online {
		status = "online"
	}
	if len(v.Sessions) > 0 {
		version = v.Sessions[0].Version
	}
	return []string{v.Name, status, strconv.Itoa(len(v.Sessions)), version, fmtPtr(v.LastSeen), strconv.FormatInt(v.InFlight, 10)}
}
