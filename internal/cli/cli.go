// Package cli is the sesame command-line client: it mirrors the HTTP API, reaching a
// server by --server/SESAME_SERVER with a key from --key/SESAME_KEY, and prints tables for
// people or JSON with --json.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Env is what a command reads and writes.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// UsageError means the command line was wrong.
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }

// APIError is an error response from the server.
type APIError struct {
	Status    int
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d, request %s)", e.Code, e.Message, e.Status, e.RequestID)
}

// Run runs a client command: args[0] is the command group.
func Run(ctx context.Context, args []string, env Env) error {
	cmds := map[string]func(context.Context, *client, []string) error{
		"ws":    wsCommand,
		"cred":  credCommand,
		"keys":  keysCommand,
		"conn":  connCommand,
		"fn":    fnCommand,
		"user":  userCommand,
		"key":   keyCommand,
		"group": groupCommand,
		"role":  roleCommand,
		"grant": grantCommand,
		"app":   appCommand,
		"oauth": oauthCommand,
		"audit": auditCommand,
		"agent": agentCommand,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		return usagef("unknown command %q (try sesame help)", args[0])
	}
	return cmd(ctx, &client{env: env}, args[1:])
}

// client holds the connection settings shared by every command.
type client struct {
	env    Env
	server string
	key    string
	json   bool
	http   *http.Client
}

// flags returns a flag set with the shared client flags.
func (c *client) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sesame "+name, flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	server := c.env.Getenv("SESAME_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8420"
	}
	fs.StringVar(&c.server, "server", server, "server URL (SESAME_SERVER)")
	fs.StringVar(&c.key, "key", c.env.Getenv("SESAME_KEY"), "API key (SESAME_KEY)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, UsageError{"help shown"}
			}
			return nil, UsageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// do sends a request with a JSON body (if not nil) and decodes a JSON response into out
// (if not nil).
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if raw, ok := body.(json.RawMessage); ok {
			payload = raw
		} else if payload, err = json.Marshal(body); err != nil {
			return err
		}
		defer clear(payload) // may hold secret values
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	return c.doRaw(ctx, method, path, ct, payload, out)
}

// doRaw sends a request with a body of the given content type.
func (c *client) doRaw(ctx context.Context, method, path, contentType string, payload []byte, out any) error {
	if c.key == "" {
		return usagef("no API key: pass --key or set SESAME_KEY")
	}
	u := strings.TrimRight(c.server, "/") + path
	var rd io.Reader
	if contentType != "" {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "http_error", strings.TrimSpace(string(data))
		}
		return e
	}
	if out != nil && len(data) > 0 {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = append((*raw)[:0], data...)
			return nil
		}
		return json.Unmarshal(data, out)
	}
	return nil
}

// printJSON prints v indented.
func (c *client) printJSON(v any) error {
	enc := json.NewEncoder(c.env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned.
func (c *client) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// listAll follows next_cursor until the last page.
func listAll[T any](ctx context.Context, c *client, path string) ([]T, error) {
	return listWhere[T](ctx, c, path, nil)
}

// listWhere is listAll with query filters.
func listWhere[T any](ctx context.Context, c *client, path string, filter url.Values) ([]T, error) {
	var all []T
	q := url.Values{"limit": {"1000"}}
	for k, vs := range filter {
		q[k] = vs
	}
	for {
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

func fmtPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
