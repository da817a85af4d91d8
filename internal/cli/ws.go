package cli

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sesamehq/sesame"
)

const wsUsage = "usage: sesame ws list | get NAME | create NAME | copy FROM TO | rm NAME [--force]"

func wsCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(wsUsage)
	}
	fs := c.flags("ws " + args[0])
	force := fs.Bool("force", false, "rm: delete even if the workspace holds credentials")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	need := func(n int) error {
		if len(pos) != n {
			return usagef(wsUsage)
		}
		return nil
	}
	switch args[0] {
	case "list", "ls":
		if err := need(0); err != nil {
			return err
		}
		items, err := listAll[sesame.Workspace](ctx, c, "/v1/workspaces")
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(items)
		}
		rows := make([][]string, len(items))
		for i, ws := range items {
			rows[i] = []string{ws.Name, fmtTime(ws.CreatedAt)}
		}
		return c.table([]string{"NAME", "CREATED"}, rows)
	case "get", "create", "copy":
		var ws sesame.Workspace
		switch args[0] {
		case "get":
			if err := need(1); err != nil {
				return err
			}
			err = c.do(ctx, http.MethodGet, "/v1/workspaces/"+url.PathEscape(pos[0]), nil, nil, &ws)
		case "create":
			if err := need(1); err != nil {
				return err
			}
			err = c.do(ctx, http.MethodPost, "/v1/workspaces", nil, map[string]string{"name": pos[0]}, &ws)
		case "copy":
			if err := need(2); err != nil {
				return err
			}
			err = c.do(ctx, http.MethodPost, "/v1/workspaces/"+url.PathEscape(pos[0])+"/copy", nil, map[string]string{"name": pos[1]}, &ws)
		}
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(ws)
		}
		return c.table([]string{"NAME", "CREATED"}, [][]string{{ws.Name, fmtTime(ws.CreatedAt)}})
	case "rm", "delete":
		if err := need(1); err != nil {
			return err
		}
		q := url.Values{}
		if *force {
			q.Set("force", "true")
		}
		return c.do(ctx, http.MethodDelete, "/v1/workspaces/"+url.PathEscape(pos[0]), q, nil, nil)
	}
	return usagef(wsUsage)
}
