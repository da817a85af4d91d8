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
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"syscall"
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

// UsageError means the command line was wrong (exit code 2).
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }

// Usagef is a usage error for commands outside this package (sesame serve).
func Usagef(format string, args ...any) error { return usagef(format, args...) }

// ErrHelp means help was asked for and printed on standard output (exit code 0).
var ErrHelp = errors.New("help shown")

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

// group is a command group: its subcommands (aliases included) and its usage text.
type group struct {
	run   func(context.Context, *client, []string) error
	subs  []string
	usage string
}

func groups() map[string]group {
	return map[string]group{
		"ws":    {wsCommand, []string{"list", "ls", "get", "create", "copy", "rm", "delete"}, wsUsage},
		"cred":  {credCommand, []string{"list", "ls", "get", "put", "rm", "delete"}, credUsage},
		"keys":  {keysCommand, []string{"generate", "status", "rotate"}, keysUsage},
		"conn":  {connCommand, []string{"list", "ls", "get", "put", "test", "rm", "delete"}, connUsage},
		"fn":    {fnCommand, []string{"list", "ls", "get", "put", "call", "import", "rm", "delete"}, fnUsage},
		"user":  {userCommand, []string{"list", "ls", "create", "get", "disable", "enable", "rm", "delete"}, userUsage},
		"key":   {keyCommand, []string{"create", "list", "ls", "revoke", "rm", "revoke-all"}, keyUsage},
		"group": {groupCommand, []string{"list", "ls", "create", "members", "rm", "delete"}, groupUsage},
		"role":  {roleCommand, []string{"list", "ls", "put", "rm", "delete"}, roleUsage},
		"grant": {grantCommand, []string{"list", "ls", "add", "rm", "delete"}, grantUsage},
		"app":   {appCommand, []string{"keygen", "cert", "certs", "revoke-cert", "sign", "tokens", "revoke-token"}, appUsage},
		"oauth": {oauthCommand, []string{"authorize", "grants", "revoke", "token", "providers", "apps", "app-get", "app-put", "app-rm"}, oauthUsage},
		"audit": {auditCommand, []string{"list", "ls", "tail", "follow", "verify", "checkpoint", "export"}, auditUsage},
		"agent": {agentCommand, []string{"list", "ls", "get", "create", "rm", "delete"}, agentUsage},
	}
}

// Commands lists the client command groups, for suggestions in the top-level usage.
func Commands() []string {
	var names []string
	for name := range groups() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Usage is the usage text of a command group, if there is one.
func Usage(name string) (string, bool) {
	if name == "login" || name == "logout" {
		return loginUsage, true
	}
	g, ok := groups()[name]
	return g.usage, ok
}

// IsHelp reports whether an argument asks for help.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// Run runs a client command: args[0] is the command group, args[1] its subcommand. Help
// (GROUP --help, GROUP SUB --help) goes to standard output and returns ErrHelp.
func Run(ctx context.Context, args []string, env Env) error {
	switch args[0] {
	case "login":
		return Login(ctx, args[1:], env)
	case "logout":
		return Logout(ctx, args[1:], env)
	}
	g, ok := groups()[args[0]]
	if !ok {
		return Unknown("sesame", args[0], append(Commands(), "serve", "help", "login", "logout"))
	}
	if len(args) == 1 {
		return usagef("sesame %s needs a subcommand\n%s", args[0], g.usage)
	}
	if IsHelp(args[1]) {
		fmt.Fprintln(env.Stdout, g.usage)
		return ErrHelp
	}
	if !slices.Contains(g.subs, args[1]) {
		return Unknown("sesame "+args[0], args[1], g.subs)
	}
	return g.run(ctx, &client{env: env, usage: g.usage}, args[1:])
}

// Unknown is the usage error for an unknown (sub)command, naming the closest known one.
func Unknown(prefix, name string, known []string) error {
	msg := fmt.Sprintf("unknown command %q", prefix+" "+name)
	if best := Closest(name, known); best != "" {
		msg += fmt.Sprintf("; did you mean %q?", prefix+" "+best)
	}
	return usagef("%s (%s --help lists the commands)", msg, prefix)
}

// Closest is the known name nearest to name by edit distance, if it is near enough to be a
// plausible typo (or name is a prefix of it); "" otherwise.
func Closest(name string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		d := editDistance(name, k)
		if strings.HasPrefix(k, name) && name != "" {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	if bestD <= max(2, len(name)/3) && bestD < len(name) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// client holds the connection settings shared by every command.
type client struct {
	env    Env
	server string
	key    string
	json   bool
	http   *http.Client
	usage  string // the command group's usage text, for --help and usage errors
}

// defaultServer is where client commands go without --server or SESAME_SERVER.
const defaultServer = "http://127.0.0.1:8420"

// flags returns a flag set with the shared client flags. Their defaults come from the
// environment only after parsing (endpoint), so that help never prints the API key.
func (c *client) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sesame "+name, flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	fs.Usage = func() {} // c.parse prints help and errors itself
	fs.StringVar(&c.server, "server", "", "server URL (default: from SESAME_SERVER, else "+defaultServer+")")
	fs.StringVar(&c.key, "key", "", "API key (default: from SESAME_KEY)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	return fs
}

// parse parses flags that may come before or after positional arguments. -h or --help
// prints the command's usage and flags on standard output and returns ErrHelp.
func (c *client) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.env.Stdout, "%s\n\nflags of %s:\n", c.usage, fs.Name())
				fs.SetOutput(c.env.Stdout)
				fs.PrintDefaults()
				return nil, ErrHelp
			}
			return nil, usagef("%v\n%s", err, c.usage)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// serverURL is the server URL from --server, else SESAME_SERVER, else the default.
func (c *client) serverURL() (string, error) {
	server, from := c.server, "--server"
	if server == "" {
		server, from = c.env.Getenv("SESAME_SERVER"), "SESAME_SERVER"
	}
	if server == "" {
		server, from = defaultServer, "the default server"
	}
	if u, err := url.Parse(server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("%s=%q is not a server URL: write it with its scheme, as in %s", from, server, defaultServer)
	}
	c.server = server
	return strings.TrimRight(server, "/"), nil
}

// endpoint is the server URL and the credential: --key, else SESAME_KEY, else the session
// token `sesame login` saved for this server.
func (c *client) endpoint() (string, string, error) {
	server, err := c.serverURL()
	if err != nil {
		return "", "", err
	}
	key := c.key
	if key == "" {
		key = c.env.Getenv("SESAME_KEY")
	}
	if key == "" {
		if token, ok := loadSession(c.env, server); ok {
			return server, token, nil
		}
		return "", "", usagef("no API key: pass --key or set SESAME_KEY, or sign in with sesame login")
	}
	return server, key, nil
}

// unreachable turns a failure to reach the server into advice.
func (c *client) unreachable(err error) error {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no Sesame server answers at %s: start one with `sesame serve` (it listens on 127.0.0.1:8420 unless given --addr), or point SESAME_SERVER or --server at a running one", c.server)
	case errors.As(err, &dns):
		return fmt.Errorf("cannot find the host of %s (%v): check SESAME_SERVER or --server", c.server, dns)
	case errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("cannot reach the Sesame server at %s: %w", c.server, err)
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
	server, key, err := c.endpoint()
	if err != nil {
		return err
	}
	u := server + path
	var rd io.Reader
	if contentType != "" {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	return c.exchange(hc, req, 64<<20, out)
}

// exchange does req and decodes a JSON answer of at most limit bytes into out (raw for a
// *json.RawMessage); an error answer is an *APIError, an unreachable server says so.
func (c *client) exchange(hc *http.Client, req *http.Request, limit int64, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
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
