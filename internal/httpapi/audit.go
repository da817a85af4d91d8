package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/auth"
)

// AuditTrail is the audit trail the API serves and records requests in (internal/audit.Log).
type AuditTrail interface {
	Query(ctx context.Context, f audit.Filter, wait time.Duration) (audit.Page, error)
	Export(ctx context.Context, w io.Writer, f audit.Filter, flush func()) (int64, error)
	Verify(ctx context.Context) (audit.VerifyResult, error)
	Record(ctx context.Context, e audit.Event)
	RecordSync(ctx context.Context, e audit.Event) error
	// RecordDurable returns once e is committed or spilled to the local file (strict mode).
	RecordDurable(ctx context.Context, e audit.Event) error
	// Degraded reports that events cannot currently be recorded durably at all.
	Degraded() bool
	Checkpoint(ctx context.Context) (audit.Checkpoint, error)
	VerifyCheckpoint(ctx context.Context, cp *audit.Checkpoint) (audit.VerifyResult, error)
	HMAC(value string) string
}

// readAudit is what the audit routes need.
var readAudit = []sesame.Privilege{sesame.PrivReadAudit}

// maxAuditWait bounds ?wait= on GET /v1/audit.
const maxAuditWait = time.Minute

// auditPage is the response of GET /v1/audit.
type auditPage struct {
	Items      []audit.Event `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
	// FollowCursor resumes in ascending order after every event that matched so far: poll
	// with it (and ?wait=) to follow the trail.
	FollowCursor string `json:"follow_cursor,omitempty"`
}

// Cursors are opaque to clients: base64 of "a:<seq>" (ascending, events after seq) or
// "d:<seq>" (descending, events before seq).
func auditCursor(desc bool, seq int64) string {
	dir := "a:"
	if desc {
		dir = "d:"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + strconv.FormatInt(seq, 10)))
}

var errAuditCursor = sesame.Errorf(sesame.CodeInvalidArgument, "cursor is not valid; pass next_cursor or follow_cursor from a previous page")

// auditFilter reads the query parameters of GET /v1/audit.
func auditFilter(r *http.Request) (f audit.Filter, wait time.Duration, err error) {
	q := r.URL.Query()
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			if *t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return f, 0, sesame.Errorf(sesame.CodeInvalidArgument, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
			}
		}
	}
	f.Workspace, f.Principal, f.UserID = q.Get("workspace"), q.Get("principal"), q.Get("user")
	f.KeyID, f.AppID, f.Action, f.Result = q.Get("key"), q.Get("app"), q.Get("action"), q.Get("result")
	switch f.Result {
	case "", sesame.AuditOK, sesame.AuditDenied, sesame.AuditError:
	default:
		return f, 0, sesame.Errorf(sesame.CodeInvalidArgument, "result must be ok, denied or error")
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		f.Desc = true
	default:
		return f, 0, sesame.Errorf(sesame.CodeInvalidArgument, "order must be asc or desc")
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return f, 0, err
	}
	f.Limit = limit
	if after != "" {
		dir, n, ok := strings.Cut(after, ":")
		seq, perr := strconv.ParseInt(n, 10, 64)
		if !ok || perr != nil || seq < 0 || (dir != "a" && dir != "d") {
			return f, 0, errAuditCursor
		}
		if q.Get("order") != "" && (dir == "d") != f.Desc {
			return f, 0, sesame.Errorf(sesame.CodeInvalidArgument, "the cursor belongs to the other order")
		}
		f.Desc = dir == "d"
		if f.Desc {
			f.BeforeSeq = seq
		} else {
			f.AfterSeq = seq
		}
	}
	if v := q.Get("wait"); v != "" {
		wait, err = time.ParseDuration(v)
		if err != nil || wait < 0 || wait > maxAuditWait {
			return f, 0, sesame.Errorf(sesame.CodeInvalidArgument, "wait must be a duration from 0s to %s, such as 20s", maxAuditWait)
		}
		if f.Desc {
			return f, 0, sesame.Errorf(sesame.CodeInvalidArgument, "wait needs ascending order")
		}
	}
	return f, wait, nil
}

// wantsJSONLines reports whether the client asked for JSON lines.
func wantsJSONLines(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "jsonl" || f == "ndjson"
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && (mt == "application/x-ndjson" || mt == "application/jsonl") {
			return true
		}
	}
	return false
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Audit == nil {
		return sesame.Errorf(sesame.CodeUnavailable, "the audit trail is not enabled on this server")
	}
	if f := r.URL.Query().Get("format"); f != "" && f != "json" && f != "jsonl" && f != "ndjson" {
		return sesame.Errorf(sesame.CodeInvalidArgument, "format must be json or jsonl")
	}
	f, wait, err := auditFilter(r)
	if err != nil {
		return err
	}
	if f.Workspaces, err = s.auditScope(r, f.Workspace); err != nil {
		return err
	}
	if wantsJSONLines(r) {
		return s.exportAudit(w, r, f)
	}
	p, err := s.cfg.Audit.Query(r.Context(), f, wait)
	if err != nil {
		return err
	}
	out := auditPage{Items: p.Events}
	if out.Items == nil {
		out.Items = []audit.Event{}
	}
	if p.More {
		out.NextCursor = auditCursor(f.Desc, p.Events[len(p.Events)-1].Seq)
	}
	if !f.Desc || f.BeforeSeq == 0 { // ascending pages and the first descending page
		out.FollowCursor = auditCursor(false, p.Follow)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditScope is the workspaces whose events the caller may read: nil (all events) for
// read_audit on all workspaces, else those it holds read_audit in. Asking for another
// workspace by name is refused, the same whether or not it exists.
func (s *Server) auditScope(r *http.Request, asked string) ([]string, error) {
	if s.cfg.Access == nil {
		return nil, nil
	}
	p, _ := sesame.PrincipalFrom(r.Context())
	names, all, err := s.cfg.Access.WorkspacesWith(r.Context(), p, sesame.PrivReadAudit)
	if err != nil || all {
		return nil, err
	}
	if asked != "" && !slices.Contains(names, asked) {
		return nil, &sesame.Error{Code: sesame.CodeMissingPrivilege, Message: "missing privilege read_audit in this workspace"}
	}
	return names, nil
}

// exportAudit streams every matching event as JSON lines, flushing after each page. An
// error before the first line is an ordinary error response; after it, the response is
// aborted so that the client sees a truncated transfer rather than a short export.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request, f audit.Filter) error {
	lw := &lazyWriter{w: w, header: func(h http.Header) {
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
	}}
	rc := http.NewResponseController(w)
	n, err := s.cfg.Audit.Export(r.Context(), lw, f, func() { _ = rc.Flush() })
	if err != nil {
		if !lw.started {
			return err
		}
		s.log.ErrorContext(r.Context(), "audit export failed midway", logRequestID, requestIDFrom(r.Context()), "events", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		lw.header(w.Header())
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// lazyWriter sends the status and headers with the first byte of the body.
type lazyWriter struct {
	w       http.ResponseWriter
	header  func(http.Header)
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.header(l.w.Header())
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// verifyAudit verifies the chain; with {"checkpoint": "<seq> <hash> <mac>"} also that the
// chain still reaches that checkpoint (truncation).
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Audit == nil {
		return sesame.Errorf(sesame.CodeUnavailable, "the audit trail is not enabled on this server")
	}
	var req struct {
		Checkpoint string `json:"checkpoint"`
	}
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	var cp *audit.Checkpoint
	if req.Checkpoint != "" {
		c, err := audit.ParseCheckpoint(req.Checkpoint)
		if err != nil {
			return err
		}
		cp = &c
	}
	res, err := s.cfg.Audit.VerifyCheckpoint(r.Context(), cp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// auditCheckpoint returns the current head, signed, to keep outside the store.
func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Audit == nil {
		return sesame.Errorf(sesame.CodeUnavailable, "the audit trail is not enabled on this server")
	}
	cp, err := s.cfg.Audit.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": cp.Seq, "hash": cp.Hash, "mac": cp.MAC, "checkpoint": cp.String()})
	return nil
}

// metrics serves the Prometheus registry.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Metrics == nil {
		return sesame.Errorf(sesame.CodeRouteNotFound, "metrics are not enabled on this server")
	}
	s.cfg.Metrics.ServeHTTP(w, r)
	return nil
}

// --- recording requests ---

// auditRequest records every request to rt in the audit trail, one event each. It wraps
// the route outside guard, so that refused requests are recorded too. Reads, calls and the
// proxy are recorded with Record (no database round trip on the request's path), or, in
// strict mode (Config.AuditStrict), durably before the answer is sent. Changes (any other
// method) carry an audit intent (sesame.AuditIntent): every store transaction they commit
// writes their event to the outbox in the same transaction, so a change never commits
// without its event; when the handler sends its status, the final event is chained with
// RecordSync (removing the outbox row) before anything reaches the client. If a change's
// event cannot be made durable at all, the client gets 503 audit_unavailable instead of
// the handler's answer.
//
// It also puts the request's ID and source address in the context (audit.WithRequest), so
// the gateway's events for the outbound calls name the request they belong to.
func (s *Server) auditRequest(rt route, next http.Handler) http.Handler {
	// Probes are not events, and neither are reads of the trail itself: a follower polling
	// the trail (sesame audit tail) would otherwise fill it with its own reads.
	if s.cfg.Audit == nil || rt.pattern == "/healthz" || rt.pattern == "/readyz" || rt.pattern == "/metrics" ||
		strings.HasPrefix(rt.pattern, "/v1/audit") {
		return next
	}
	action := auditAction(rt)
	change := rt.method != http.MethodGet && rt.method != http.MethodHead && rt.method != anyMethod ||
		auditChangingGETs[rt.method+" "+rt.pattern]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := audit.WithRequest(r.Context(), audit.Request{ID: requestIDFrom(r.Context()), Source: sourceOf(r), Call: &audit.Call{}})
		var intent *sesame.AuditIntent
		if change {
			id := make([]byte, 16)
			_, _ = rand.Read(id)
			intent = &sesame.AuditIntent{ID: hex.EncodeToString(id), Event: sesame.AuditEvent{
				Time: start, Action: action, Target: auditTarget(r), Workspace: r.PathValue("ws"),
				RequestID: requestIDFrom(r.Context()), Source: sourceOf(r)}}
			ctx = sesame.WithAuditIntent(ctx, intent)
		}
		r = r.WithContext(ctx)
		if s.cfg.AuditStrict && s.cfg.Audit.Degraded() {
			// Strict mode: nothing runs that could not be audited.
			s.renderError(w, r, errAuditUnavailable)
			return
		}
		aw := &auditWriter{ResponseWriter: w, s: s, r: r, action: action, change: change, intent: intent, start: start}
		next.ServeHTTP(aw, r)
		if !aw.recorded { // the handler wrote nothing: net/http sends 200
			aw.WriteHeader(http.StatusOK)
		}
	})
}

var errAuditUnavailable = &sesame.Error{Code: sesame.CodeAuditUnavailable, RetryAfter: 5 * time.Second,
	Message: "the audit trail cannot record this request right now, and this server does not act unaudited; retry later"}

// auditWriter records the request when the handler sends the status line.
type auditWriter struct {
	http.ResponseWriter
	s        *Server
	r        *http.Request
	action   string
	change   bool
	intent   *sesame.AuditIntent // change requests
	start    time.Time
	recorded bool
	swallow  bool // the event could not be committed: the handler's answer is replaced
}

func (a *auditWriter) WriteHeader(code int) {
	if a.recorded {
		if !a.swallow {
			a.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if err := a.record(code); err != nil {
		a.swallow = true
		a.s.log.ErrorContext(a.r.Context(), "audit event not recorded; refusing to answer",
			logRequestID, requestIDFrom(a.r.Context()), "err", err)
		for k := range a.Header() {
			a.Header().Del(k)
		}
		msg := errAuditUnavailable.Message
		if a.change {
			msg = "the change could not be recorded in the audit trail, so it is not confirmed; it may have been applied: check before retrying"
		}
		// The trail is in the store: when the store itself is down or full, say that (the
		// same retryable 503 every other store-backed call gives).
		code := sesame.CodeAuditUnavailable
		if c := sesame.ErrorCode(err); c == sesame.CodeStoreUnavailable || c == sesame.CodeStorageFull {
			code = c
		}
		a.s.renderError(a.ResponseWriter, a.r, &sesame.Error{Code: code, Message: msg, RetryAfter: errAuditUnavailable.RetryAfter})
		return
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditWriter) Write(b []byte) (int, error) {
	if !a.recorded {
		a.WriteHeader(http.StatusOK)
	}
	if a.swallow {
		return len(b), nil
	}
	return a.ResponseWriter.Write(b)
}

func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// record builds the event and records it; for a change (and in strict mode, for every
// request) it waits until the event is durable.
func (a *auditWriter) record(status int) error {
	a.recorded = true
	r := a.r
	e := audit.FromContext(r.Context())
	var code sesame.Code
	if info, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
		code = info.code
		if info.principal != nil {
			p := info.principal
			e.Principal, e.UserID, e.KeyID, e.AppID = p.Kind, p.UserID, p.KeyID, p.AppID
		}
	}
	if code == "" && status >= 400 {
		code = sesame.CodeInternal
	}
	e.Action, e.Target, e.Workspace = a.action, auditTarget(r), r.PathValue("ws")
	e.Status, e.Code, e.Result = status, string(code), audit.ResultOf(code)
	e.LatencyMicros = time.Since(a.start).Microseconds()
	if req, ok := audit.RequestFrom(r.Context()); ok && req.Call != nil && req.Call.Taken {
		e.UpstreamStatus, e.Detail = req.Call.UpstreamStatus, req.Call.Detail
		if e.Code == "" && req.Call.Code != "" {
			e.Code = req.Call.Code
		}
	}
	if e.Principal == "" && e.Result == sesame.AuditDenied {
		// Nobody was authenticated: record the attempt, with the presented credential only
		// as an HMAC, so that repeated attempts with one key can be told apart from many.
		e.Target, e.Action = e.Action, "auth.failed"
		if presented := auth.KeyFromRequest(r); presented != "" {
			e.Detail = "credential " + a.s.cfg.Audit.HMAC(presented)
		}
	}
	ctx := r.Context()
	if a.intent != nil && a.intent.Written() {
		// The request changed something, and its event already committed with the change
		// (in the outbox). The final event replaces it; if that fails now, the outbox row
		// is chained later, so the answer stands.
		e.Outbox = a.intent.ID
		if err := a.s.cfg.Audit.RecordSync(ctx, e); err != nil {
			a.s.log.WarnContext(ctx, "audit: the change's final event is not chained yet; its outbox event will be",
				logRequestID, requestIDFrom(ctx), "err", err)
		}
		return nil
	}
	if a.change && status < 400 && (a.intent == nil || !a.intent.NoChange()) {
		return a.s.cfg.Audit.RecordSync(ctx, e)
	}
	if a.s.cfg.AuditStrict {
		return a.s.cfg.Audit.RecordDurable(ctx, e)
	}
	a.s.cfg.Audit.Record(ctx, e)
	return nil
}

// auditTarget names what a request acts on: its path values other than the workspace.
func auditTarget(r *http.Request) string {
	var parts []string
	for _, name := range []string{"id", "key", "name", "conn"} {
		if v := r.PathValue(name); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "/")
}

// auditChangingGETs are the GET routes that change something (the browser's redirect back
// from an OAuth2 provider stores the grant): they are audited as changes.
var auditChangingGETs = map[string]bool{"GET /v1/oauth/callback": true}

// auditActionOverrides names the routes the rule in auditAction names badly.
var auditActionOverrides = map[string]string{
	"GET /v1/me":                        "me.get",
	"GET /v1/openapi.json":              "openapi.get",
	"POST /api/v2/auth":                 "app.auth",
	"GET /v1/oauth/authorize":           "oauth.authorize",
	"GET /v1/oauth/callback":            "oauth.callback",
	"POST /v1/audit/verify":             "audit.verify",
	"POST /v1/system/master-key/rotate": "master_key.rotate",
	"GET /v1/agents/connect":            "agent.session",
	// The proxy's request event also carries its outbound call (upstream status, host).
	" /v1/workspaces/{ws}/proxy/{conn}":           "outbound.proxy",
	" /v1/workspaces/{ws}/proxy/{conn}/{path...}": "outbound.proxy",
}

// auditAction names a route's action from its pattern: the nouns of the path in the
// singular (the workspace scope left out: the event has its own workspace field), then a
// verb from the method, or the path's final verb ("copy", "test", "call").
//
//	GET    /v1/workspaces/{ws}/credentials         credential.list
//	PUT    /v1/workspaces/{ws}/credentials/{key}   credential.put
//	POST   /v1/workspaces/{ws}/functions/{name}/call   function.call
//	DELETE /v1/apps/tokens                         app.token.delete_all
//	*      /v1/workspaces/{ws}/proxy/{conn}/...    proxy
func auditAction(rt route) string {
	if a, ok := auditActionOverrides[rt.method+" "+rt.pattern]; ok {
		return a
	}
	segs := strings.Split(strings.Trim(rt.pattern, "/"), "/")
	if len(segs) > 0 && (segs[0] == "v1" || segs[0] == "api") {
		segs = segs[1:]
	}
	if len(segs) > 0 && segs[0] == "v2" {
		segs = segs[1:]
	}
	if len(segs) > 2 && segs[0] == "workspaces" && segs[1] == "{ws}" {
		if segs[2] == "copy" {
			return "workspace.copy"
		}
		segs = segs[2:]
	}
	isParam := func(s string) bool { return strings.HasPrefix(s, "{") }
	var nouns []string
	verb := ""
	for i, seg := range segs {
		if isParam(seg) {
			continue
		}
		last := i == len(segs)-1
		if last && i > 0 && isParam(segs[i-1]) && !strings.HasSuffix(seg, "s") {
			verb = seg // .../{name}/test, /call, /token
			break
		}
		nouns = append(nouns, strings.ReplaceAll(strings.TrimSuffix(seg, "s"), "-", "_"))
	}
	if rt.method == anyMethod {
		return strings.Join(nouns, ".")
	}
	if verb == "" {
		item := isParam(segs[len(segs)-1])
		switch rt.method {
		case http.MethodGet:
			verb = map[bool]string{true: "get", false: "list"}[item]
		case http.MethodPost:
			verb = "create"
		case http.MethodPut:
			verb = "put"
		case http.MethodPatch:
			verb = "update"
		case http.MethodDelete:
			verb = map[bool]string{true: "delete", false: "delete_all"}[item]
		default:
			verb = strings.ToLower(rt.method)
		}
	}
	return strings.Join(append(nouns, verb), ".")
}
