package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

const auditUsage = `usage:
  sesame audit list   [FILTERS] [--limit N] [--asc] [--json]   newest first (oldest first with --asc)
  sesame audit tail   [FILTERS] [-n N]                         the last N events, then follow until interrupted
  sesame audit verify [--checkpoint FILE|CHECKPOINT] [--json]   check the hash chain (and that it still reaches the
                                                               checkpoint: not truncated); exit status 1 if broken
  sesame audit checkpoint [--json]                             print a signed checkpoint of the head, to keep outside the store
  sesame audit export [FILTERS] [--out FILE]                   every matching event as JSON lines
FILTERS: -w WS  --user ID  --key-id ID  --app ID  --principal user|app|anonymous
         --action ACTION (a prefix with *: credential.*)  --result ok|denied|error
         --since T  --until T   (T: RFC 3339, or a duration before now such as 1h)`

// auditEvent is the part of an audit event the CLI shows; --json prints it whole.
type auditEvent struct {
	Seq            int64     `json:"seq"`
	Time           time.Time `json:"time"`
	Workspace      string    `json:"workspace"`
	Principal      string    `json:"principal"`
	UserID         string    `json:"user_id"`
	KeyID          string    `json:"key_id"`
	AppID          string    `json:"app_id"`
	Action         string    `json:"action"`
	Target         string    `json:"target"`
	Result         string    `json:"result"`
	Code           string    `json:"code"`
	Status         int       `json:"status"`
	UpstreamStatus int       `json:"upstream_status"`
	LatencyMicros  int64     `json:"latency_us"`
	RequestID      string    `json:"request_id"`
}

type auditPage struct {
	Items        []json.RawMessage `json:"items"`
	NextCursor   string            `json:"next_cursor"`
	FollowCursor string            `json:"follow_cursor"`
}

type auditFlags struct {
	ws, user, key, app, principal, action, result, since, until string
}

func (f *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ws, "w", "", "only this workspace")
	fs.StringVar(&f.user, "user", "", "only this user ID")
	fs.StringVar(&f.key, "key-id", "", "only this API key ID")
	fs.StringVar(&f.app, "app", "", "only this app ID")
	fs.StringVar(&f.principal, "principal", "", "only this principal kind: user, app or anonymous")
	fs.StringVar(&f.action, "action", "", "only this action, or a prefix ending in *")
	fs.StringVar(&f.result, "result", "", "only this result: ok, denied or error")
	fs.StringVar(&f.since, "since", "", "only events at or after T (RFC 3339, or a duration before now)")
	fs.StringVar(&f.until, "until", "", "only events before T (RFC 3339, or a duration before now)")
}

func (f *auditFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for name, v := range map[string]string{"workspace": f.ws, "user": f.user, "key": f.key, "app": f.app,
		"principal": f.principal, "action": f.action, "result": f.result} {
		if v != "" {
			q.Set(name, v)
		}
	}
	for name, v := range map[string]string{"since": f.since, "until": f.until} {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			d, derr := time.ParseDuration(v)
			if derr != nil || d < 0 {
				return nil, usagef("--%s must be an RFC 3339 time or a duration such as 1h, not %q", name, v)
			}
			t = now.Add(-d)
		}
		q.Set(name, t.UTC().Format(time.RFC3339Nano))
	}
	return q, nil
}

func auditCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(auditUsage)
	}
	fs := c.flags("audit " + args[0])
	var af auditFlags
	af.register(fs)
	limit := fs.Int("limit", 50, "list: how many events")
	asc := fs.Bool("asc", false, "list: oldest first")
	n := fs.Int("n", 10, "tail: how many past events to show first")
	out := fs.String("out", "", "export: write to FILE (mode 0600) instead of standard output")
	checkpoint := fs.String("checkpoint", "", "verify: a checkpoint (\"<seq> <hash> <mac>\"), or a FILE holding one (a saved checkpoint or a server log: its last \"audit checkpoint:\" line counts)")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(auditUsage)
	}
	q, err := af.query(time.Now())
	if err != nil {
		return err
	}
	switch args[0] {
	case "list", "ls":
		return c.auditList(ctx, q, *limit, *asc)
	case "tail", "follow":
		return c.auditTail(ctx, q, *n)
	case "verify":
		return c.auditVerify(ctx, *checkpoint)
	case "checkpoint":
		return c.auditCheckpoint(ctx)
	case "export":
		return c.auditExport(ctx, q, *out)
	}
	return usagef(auditUsage)
}

func (c *client) auditList(ctx context.Context, q url.Values, limit int, asc bool) error {
	if limit < 1 {
		return usagef("--limit must be at least 1")
	}
	if !asc {
		q.Set("order", "desc")
	}
	var items []json.RawMessage
	for len(items) < limit {
		q.Set("limit", strconv.Itoa(min(limit-len(items), 1000)))
		var p auditPage
		if err := c.do(ctx, http.MethodGet, "/v1/audit", q, nil, &p); err != nil {
			return err
		}
		items = append(items, p.Items...)
		if p.NextCursor == "" {
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	if c.json {
		if items == nil {
			items = []json.RawMessage{}
		}
		return c.printJSON(items)
	}
	return c.auditTable(items, true)
}

func (c *client) auditTable(items []json.RawMessage, header bool) error {
	rows := make([][]string, 0, len(items))
	for _, raw := range items {
		var e auditEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		rows = append(rows, auditRow(e))
	}
	if !header {
		for _, r := range rows {
			fmt.Fprintln(c.env.Stdout, strings.Join(r, "  "))
		}
		return nil
	}
	return c.table([]string{"SEQ", "TIME", "WORKSPACE", "PRINCIPAL", "ACTION", "TARGET", "RESULT", "STATUS", "LATENCY", "REQUEST"}, rows)
}

func auditRow(e auditEvent) []string {
	who := e.Principal
	switch {
	case e.AppID != "":
		who = "app:" + e.AppID
	case e.UserID != "":
		who = "user:" + e.UserID
	case who == "":
		who = "-"
	}
	result := e.Result
	if e.Code != "" {
		result += " (" + e.Code + ")"
	}
	status := "-"
	switch {
	case e.Status != 0 && e.UpstreamStatus != 0:
		status = fmt.Sprintf("%d/%d", e.Status, e.UpstreamStatus)
	case e.Status != 0:
		status = strconv.Itoa(e.Status)
	case e.UpstreamStatus != 0:
		status = "up " + strconv.Itoa(e.UpstreamStatus)
	}
	latency := "-"
	if e.LatencyMicros > 0 {
		latency = (time.Duration(e.LatencyMicros) * time.Microsecond).String()
	}
	return []string{strconv.FormatInt(e.Seq, 10), e.Time.Local().Format("2006-01-02 15:04:05.000"), dash(e.Workspace),
		who, e.Action, dash(e.Target), result, status, latency, dash(e.RequestID)}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tailWait is how long one follow request waits on the server for a new event.
const tailWait = "25s"

// auditTail prints the last n matching events, then polls with the follow cursor (each
// request waiting on the server for new events) until ctx ends, which is not an error.
func (c *client) auditTail(ctx context.Context, q url.Values, n int) error {
	if n < 0 || n > 1000 {
		return usagef("-n must be from 0 to 1000")
	}
	first := cloneValues(q)
	first.Set("order", "desc")
	first.Set("limit", strconv.Itoa(max(n, 1)))
	var p auditPage
	if err := c.do(ctx, http.MethodGet, "/v1/audit", first, nil, &p); err != nil {
		return err
	}
	if n > 0 {
		slices.Reverse(p.Items)
		if err := c.printAudit(p.Items); err != nil {
			return err
		}
	}
	cursor := p.FollowCursor
	for {
		next := cloneValues(q)
		next.Set("cursor", cursor)
		next.Set("wait", tailWait)
		next.Set("limit", "1000")
		var p auditPage
		err := c.do(ctx, http.MethodGet, "/v1/audit", next, nil, &p)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.printAudit(p.Items); err != nil {
			return err
		}
		switch {
		case p.NextCursor != "":
			cursor = p.NextCursor
		case p.FollowCursor != "":
			cursor = p.FollowCursor
		}
	}
}

// printAudit prints events as they come: one JSON object per line with --json, otherwise
// one aligned line each.
func (c *client) printAudit(items []json.RawMessage) error {
	if c.json {
		for _, raw := range items {
			if _, err := fmt.Fprintf(c.env.Stdout, "%s\n", raw); err != nil {
				return err
			}
		}
		return nil
	}
	return c.auditTable(items, false)
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

type auditVerifyResult struct {
	OK     bool  `json:"ok"`
	Events int64 `json:"events"`
	Head   struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
	} `json:"head"`
	FirstBroken *struct {
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	} `json:"first_broken"`
	Checkpoint *struct {
		Seq int64 `json:"seq"`
	} `json:"checkpoint"`
	Gaps []struct {
		Seq int64 `json:"seq"`
	} `json:"gaps"`
	Lost           int64  `json:"lost"`
	PendingChanges int64  `json:"pending_changes"`
	Note           string `json:"note"`
}

// ErrAuditBroken is returned by `sesame audit verify` when the chain is broken.
var ErrAuditBroken = errors.New("the audit trail's hash chain is broken")

func (c *client) auditVerify(ctx context.Context, checkpoint string) error {
	var body any
	if checkpoint != "" {
		cp, err := readCheckpoint(checkpoint)
		if err != nil {
			return err
		}
		body = map[string]string{"checkpoint": cp}
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/v1/audit/verify", nil, body, &raw); err != nil {
		return err
	}
	var res auditVerifyResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	if c.json {
		if err := c.printRaw(raw); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(c.env.Stdout, "ok: %d events, head seq %d, hash %s\n", res.Events, res.Head.Seq, res.Head.Hash)
		if res.Checkpoint != nil {
			fmt.Fprintf(c.env.Stdout, "the chain still reaches the checkpoint at seq %d: not truncated before it\n", res.Checkpoint.Seq)
		}
		if res.Lost > 0 {
			fmt.Fprintf(c.env.Stdout, "warning: %d event(s) were lost, as %d audit.gap event(s) in the chain record (first at seq %d)\n",
				res.Lost, len(res.Gaps), res.Gaps[0].Seq)
		}
		if res.PendingChanges > 0 {
			fmt.Fprintf(c.env.Stdout, "%d change event(s) wait in the outbox to be chained\n", res.PendingChanges)
		}
		if res.Note != "" {
			fmt.Fprintf(c.env.Stdout, "note: %s\n", res.Note)
		}
	}
	if res.OK {
		return nil
	}
	if res.FirstBroken == nil {
		return ErrAuditBroken
	}
	return fmt.Errorf("%w: first broken link at seq %d: %s (%s)", ErrAuditBroken, res.FirstBroken.Seq, res.FirstBroken.Reason, res.FirstBroken.Detail)
}

// readCheckpoint returns the checkpoint text of arg: a file's content if arg names a
// file (the server parses out its last "audit checkpoint:" line), else arg itself.
func readCheckpoint(arg string) (string, error) {
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		b, err := os.ReadFile(arg)
		if err != nil {
			return "", err
		}
		text := string(b)
		if i := strings.LastIndex(text, "audit checkpoint: "); i >= 0 {
			text = text[i:]
			if j := strings.IndexByte(text, '\n'); j >= 0 {
				text = text[:j]
			}
		}
		return strings.TrimSpace(text), nil
	}
	return strings.TrimSpace(arg), nil
}

// auditCheckpoint prints a signed checkpoint of the chain's head.
func (c *client) auditCheckpoint(ctx context.Context) error {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, nil, &raw); err != nil {
		return err
	}
	if c.json {
		return c.printRaw(raw)
	}
	var cp struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(raw, &cp); err != nil {
		return err
	}
	fmt.Fprintln(c.env.Stdout, cp.Checkpoint)
	return nil
}

// auditExport streams the JSON-lines export to stdout or a new file. A transfer the server
// aborted midway is an error, not a short file.
func (c *client) auditExport(ctx context.Context, q url.Values, out string) error {
	server, key, err := c.endpoint()
	if err != nil {
		return err
	}
	q.Set("format", "jsonl")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/v1/audit?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "application/x-ndjson")
	hc := c.http
	if hc == nil {
		hc = &http.Client{} // no overall timeout: an export can be long; ctx ends it
	}
	resp, err := hc.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "http_error", strings.TrimSpace(string(data))
		}
		return e
	}
	w := c.env.Stdout
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export interrupted: %w", err)
	}
	if f, ok := w.(*os.File); ok && out != "" {
		return f.Sync()
	}
	return nil
}
