package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

const credUsage = `usage:
  sesame cred list [-w WS]
  sesame cred get  [-w WS] KEY
  sesame cred put  [-w WS] KEY --type TYPE [FIELD=VALUE | FIELD=@FILE | FIELD=@- | FIELD:=JSON ...] [--keep FIELD ...]
  sesame cred put  [-w WS] KEY --file BODY.json      (BODY is {"type": ..., "fields": {...}}; - reads stdin)
  sesame cred rm   [-w WS] KEY [--force]
FIELD=@FILE reads a value from a file and FIELD=@- from standard input, so secrets stay out
of the shell history and the process list.`

// credential is the API's view of a credential.
type credential struct {
	Workspace    string         `json:"workspace"`
	Key          string         `json:"key"`
	Type         string         `json:"type"`
	Fields       map[string]any `json:"fields"`
	NeedsSecrets []string       `json:"needs_secrets,omitempty"`
	Version      int64          `json:"version"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func credCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(credUsage)
	}
	fs := c.flags("cred " + args[0])
	ws := fs.String("w", "default", "workspace")
	typ := fs.String("type", "", "put: credential type (api_key, basic, bearer, secret, oauth2, jwt_bearer)")
	file := fs.String("file", "", "put: read the whole JSON body from this file (- for stdin)")
	force := fs.Bool("force", false, "rm: delete even if connections or functions use the credential")
	var keep listFlag
	fs.Var(&keep, "keep", "put: keep the stored value of this secret field (repeatable)")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	base := "/v1/workspaces/" + url.PathEscape(*ws) + "/credentials"
	switch args[0] {
	case "list", "ls":
		if len(pos) != 0 {
			return usagef(credUsage)
		}
		items, err := listAll[credential](ctx, c, base)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(items)
		}
		rows := make([][]string, len(items))
		for i, cr := range items {
			status := "ok"
			if len(cr.NeedsSecrets) > 0 {
				status = "needs secret: " + strings.Join(cr.NeedsSecrets, ", ")
			}
			rows[i] = []string{cr.Key, cr.Type, status, fmtTime(cr.UpdatedAt)}
		}
		return c.table([]string{"KEY", "TYPE", "STATUS", "UPDATED"}, rows)
	case "get":
		if len(pos) != 1 {
			return usagef(credUsage)
		}
		var cr credential
		if err := c.do(ctx, http.MethodGet, base+"/"+url.PathEscape(pos[0]), nil, nil, &cr); err != nil {
			return err
		}
		return c.printCredential(cr)
	case "put":
		if len(pos) < 1 {
			return usagef(credUsage)
		}
		body, err := c.credBody(*typ, *file, pos[1:], keep)
		if err != nil {
			return err
		}
		var cr credential
		if err := c.do(ctx, http.MethodPut, base+"/"+url.PathEscape(pos[0]), nil, body, &cr); err != nil {
			return err
		}
		return c.printCredential(cr)
	case "rm", "delete":
		if len(pos) != 1 {
			return usagef(credUsage)
		}
		q := url.Values{}
		if *force {
			q.Set("force", "true")
		}
		return c.do(ctx, http.MethodDelete, base+"/"+url.PathEscape(pos[0]), q, nil, nil)
	}
	return usagef(credUsage)
}

// credBody builds a PUT body from --file or from --type and FIELD arguments.
func (c *client) credBody(typ, file string, fields []string, keep []string) (json.RawMessage, error) {
	if file != "" {
		if typ != "" || len(fields) > 0 || len(keep) > 0 {
			return nil, usagef("--file gives the whole body; do not combine it with --type, fields or --keep")
		}
		return c.readSource(file)
	}
	if typ == "" {
		return nil, usagef("put needs --type (or --file)")
	}
	out := map[string]any{}
	for _, f := range fields {
		if name, raw, ok := strings.Cut(f, ":="); ok && !strings.Contains(name, "=") {
			var v any
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				return nil, usagef("field %s: value after := must be JSON", name)
			}
			out[name] = v
			continue
		}
		name, val, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, usagef("field argument %q must be FIELD=VALUE, FIELD=@FILE, FIELD=@- or FIELD:=JSON", f)
		}
		if strings.HasPrefix(val, "@") {
			b, err := c.readSource(val[1:])
			if err != nil {
				return nil, err
			}
			val = strings.TrimRight(string(b), "\r\n")
			clear(b)
		}
		out[name] = val
	}
	for _, name := range keep {
		out[name] = map[string]bool{"keep": true}
	}
	return json.Marshal(map[string]any{"type": typ, "fields": out})
}

func (c *client) readSource(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(c.env.Stdin, 1<<20))
	}
	return os.ReadFile(name)
}

func (c *client) printCredential(cr credential) error {
	if c.json {
		return c.printJSON(cr)
	}
	names := make([]string, 0, len(cr.Fields))
	for n := range cr.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := [][]string{{"key", cr.Key}, {"workspace", cr.Workspace}, {"type", cr.Type}}
	for _, n := range names {
		rows = append(rows, []string{n, describeField(cr.Fields[n])})
	}
	rows = append(rows, []string{"updated", fmtTime(cr.UpdatedAt)})
	return c.table([]string{"FIELD", "VALUE"}, rows)
}

// describeField prints a public value, or a secret field's state.
func describeField(v any) string {
	if m, ok := v.(map[string]any); ok {
		if set, ok := m["set"].(bool); ok {
			switch {
			case set:
				t, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["updated_at"]))
				return "(secret, set " + fmtTime(t) + ")"
			case m["needs_secret"] == true:
				return "(secret, NEEDS A VALUE)"
			}
			return "(secret, not set)"
		}
	}
	switch x := v.(type) {
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
