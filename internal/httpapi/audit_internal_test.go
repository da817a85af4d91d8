package httpapi

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// These tests cover auditRequest, the per-route wrapper that records requests. Besides the
// server New builds, they mount single routes by hand the way New does:
// auditRequest(rt, guard(rt, handle(rt.h))).

type recordingEnv struct {
	s     *Server
	trail *audit.Log
	db    *sql.DB
	admin string
	acc   *access.Service
}

func newRecordingEnv(t *testing.T) *recordingEnv {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, _ := crypt.GenerateMasterKey()
	log := slog.New(slog.DiscardHandler)
	v := vault.New(st, crypt.NewKeyring(k), time.Now, log)
	if err := v.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	pepper, _ := v.ServerSecret(ctx, "api-key-hmac")
	auditKey, _ := v.ServerSecret(ctx, "audit-hmac")
	trail, err := audit.New(audit.Config{Store: st, Secret: auditKey, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trail.Close(context.Background()) })
	h := auth.NewHasher(pepper)
	authn := auth.New(st, h, nil, log)
	acc := access.New(st, h, nil, log)
	acc.OnChange(authn.Invalidate)
	adminKey, err := authn.Bootstrap(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Vault: v, Auth: authn, Access: acc, Ready: st.Ping, Logger: log, Audit: trail})
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &recordingEnv{s: s, trail: trail, db: db, admin: string(adminKey.Reveal()), acc: acc}
}

// mount serves one route through auditRequest and the shared middleware.
func (e *recordingEnv) mount(rt route) http.Handler {
	mux := http.NewServeMux()
	pattern := rt.pattern
	if rt.method != anyMethod {
		pattern = rt.method + " " + pattern
	}
	mux.Handle(pattern, e.s.auditRequest(rt, e.s.guard(rt, e.s.handle(rt.h))))
	return e.s.requestID(e.s.logRequests(e.s.recoverPanics(mux)))
}

func (e *recordingEnv) serve(h http.Handler, w http.ResponseWriter, key, method, path, body string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	h.ServeHTTP(w, req)
}

// next returns the next event after seq, waiting for the writer.
func (e *recordingEnv) next(t *testing.T, after int64) audit.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := e.trail.Query(ctx, audit.Filter{AfterSeq: after, Limit: 1}, 30*time.Second)
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("no event after seq %d: %v", after, err)
	}
	return p.Events[0]
}

var actionShape = regexp.MustCompile(`^[a-z][a-z_]*(\.[a-z][a-z_]*)*$`)

func TestAuditActionsOfEveryRoute(t *testing.T) {
	for _, rt := range (&Server{}).routes() {
		if a := auditAction(rt); !actionShape.MatchString(a) {
			t.Errorf("%s %s: action %q", rt.method, rt.pattern, a)
		}
	}
	for route, want := range map[string]string{
		"GET /v1/workspaces":                               "workspace.list",
		"POST /v1/workspaces":                              "workspace.create",
		"DELETE /v1/workspaces/{ws}":                       "workspace.delete",
		"POST /v1/workspaces/{ws}/copy":                    "workspace.copy",
		"PUT /v1/workspaces/{ws}/credentials/{key}":        "credential.put",
		"GET /v1/workspaces/{ws}/credentials":              "credential.list",
		"POST /v1/workspaces/{ws}/connections/{name}/test": "connection.test",
		"POST /v1/workspaces/{ws}/functions/{name}/call":   "function.call",
		" /v1/workspaces/{ws}/proxy/{conn}/{path...}":      "outbound.proxy",
		"POST /v1/users/{id}/keys":                         "user.key.create",
		"DELETE /v1/keys/{id}":                             "key.delete",
		"PATCH /v1/users/{id}":                             "user.update",
		"DELETE /v1/apps/tokens":                           "app.token.delete_all",
		"GET /v1/audit":                                    "audit.list",
		"POST /v1/audit/verify":                            "audit.verify",
	} {
		method, pattern, _ := strings.Cut(route, " ")
		if got := auditAction(route_(method, pattern)); got != want {
			t.Errorf("%s: action %q, want %q", route, got, want)
		}
	}
}

func route_(method, pattern string) route { return route{method: method, pattern: pattern} }

// hookWriter runs a check the moment the status line is about to leave.
type hookWriter struct {
	*httptest.ResponseRecorder
	onHeader func(code int)
	wrote    bool
}

func (h *hookWriter) WriteHeader(code int) {
	if !h.wrote {
		h.wrote = true
		h.onHeader(code)
	}
	h.ResponseRecorder.WriteHeader(code)
}

func (h *hookWriter) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseRecorder.Write(b)
}

func TestAuditChangeIsCommittedBeforeItIsAcknowledged(t *testing.T) {
	e := newRecordingEnv(t)
	rt := route{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: e.s.putCredential, privileges: credentials}
	h := e.mount(rt)
	inTrail := -1
	w := &hookWriter{ResponseRecorder: httptest.NewRecorder(), onHeader: func(int) {
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE action = 'credential.put'`).Scan(&inTrail); err != nil {
			t.Fatal(err)
		}
	}}
	e.serve(h, w, e.admin, http.MethodPut, "/v1/workspaces/default/credentials/svc.key", `{"type":"secret","fields":{"value":"CANARY-rec"}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if inTrail != 1 {
		t.Fatalf("when the status left, the trail held %d credential.put events, want 1", inTrail)
	}
	ev := e.next(t, 0)
	if ev.Action != "credential.put" || ev.Workspace != "default" || ev.Target != "svc.key" || ev.Status != 201 ||
		ev.Result != sesame.AuditOK || ev.Principal != sesame.PrincipalUser || ev.UserID == "" || ev.KeyID == "" ||
		ev.RequestID != w.Header().Get("X-Request-Id") || ev.Source != "192.0.2.1" {
		t.Fatalf("event %+v", ev)
	}
	if strings.Contains(ev.Target+ev.Detail, "CANARY") {
		t.Fatal("the secret reached the event")
	}
}

// TestAuditChangeKeepsItsEventInTheOutbox: when the final event cannot be chained (the
// trail is closed), the change is still acknowledged only because its event committed
// with it, in the outbox, to be chained later.
func TestAuditChangeKeepsItsEventInTheOutbox(t *testing.T) {
	e := newRecordingEnv(t)
	rt := route{method: http.MethodPut, pattern: "/v1/workspaces/{ws}/credentials/{key}", h: e.s.putCredential, privileges: credentials}
	h := e.mount(rt)
	if err := e.trail.Close(context.Background()); err != nil { // RecordSync now fails
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	e.serve(h, w, e.admin, http.MethodPut, "/v1/workspaces/default/credentials/svc.key", `{"type":"secret","fields":{"value":"CANARY-outbox"}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	var body string
	if err := e.db.QueryRow(`SELECT event FROM audit_outbox`).Scan(&body); err != nil {
		t.Fatalf("the change's event is not in the outbox: %v", err)
	}
	if !strings.Contains(body, `"credential.put"`) || !strings.Contains(body, `"svc.key"`) || !strings.Contains(body, `"principal":"user"`) ||
		!strings.Contains(body, `"key_id":"`) || strings.Contains(body, "CANARY") {
		t.Fatalf("outbox event %s", body)
	}
}

// TestAuditChangeNotAcknowledgedWithoutItsEvent: a change request that wrote nothing the
// outbox could carry (here: the trail is closed and the handler fails to store nothing)
// is answered 503 audit_unavailable when its event cannot be committed.
func TestAuditChangeNotAcknowledgedWithoutItsEvent(t *testing.T) {
	e := newRecordingEnv(t)
	rt := route{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/noop", privileges: credentials,
		h: func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusNoContent); return nil }}
	h := e.mount(rt)
	if err := e.trail.Close(context.Background()); err != nil { // RecordSync now fails
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	e.serve(h, w, e.admin, http.MethodPost, "/v1/workspaces/default/noop", "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"audit_unavailable"`) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a change without its event was answered %d %s", w.Code, w.Body)
	}
}

func TestAuditReadsRefusalsAndCallsAreRecorded(t *testing.T) {
	e := newRecordingEnv(t)
	get := route{method: http.MethodGet, pattern: "/v1/workspaces/{ws}/credentials", h: e.s.listCredentials, privileges: credentials}
	h := e.mount(get)

	w := httptest.NewRecorder()
	e.serve(h, w, e.admin, http.MethodGet, "/v1/workspaces/default/credentials", "")
	ev := e.next(t, 0)
	if w.Code != 200 || ev.Action != "credential.list" || ev.Result != sesame.AuditOK || ev.Status != 200 {
		t.Fatalf("read: %d, event %+v", w.Code, ev)
	}

	// A wrong key: auth.failed, the presented key only as an HMAC.
	bad := "sesame_notarealkey0000000000000000000000"
	w = httptest.NewRecorder()
	e.serve(h, w, bad, http.MethodGet, "/v1/workspaces/default/credentials", "")
	ev = e.next(t, ev.Seq)
	if w.Code != 401 || ev.Action != "auth.failed" || ev.Target != "credential.list" || ev.Result != sesame.AuditDenied ||
		ev.Status != 401 || ev.Detail != "credential "+e.trail.HMAC(bad) {
		t.Fatalf("bad key: %d, event %+v", w.Code, ev)
	}
	if strings.Contains(ev.Detail+ev.Target+ev.KeyID, bad) {
		t.Fatal("the presented key reached the event")
	}

	// Authenticated but without the privilege: denied, with who it was.
	ctx := context.Background()
	u, _ := e.acc.CreateUser(ctx, "reader")
	if _, _, err := e.acc.PutRole(ctx, bootstrapAdmin(t, e.acc), "reader", []sesame.Privilege{sesame.PrivUseAPIKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.acc.CreateGrant(ctx, bootstrapAdmin(t, e.acc), access.GrantInput{Role: "reader", User: u.ID, Workspace: "*"}); err != nil {
		t.Fatal(err)
	}
	k, _ := e.acc.CreateKey(ctx, bootstrapAdmin(t, e.acc), u.ID, "k", nil)
	w = httptest.NewRecorder()
	e.serve(h, w, string(k.Key.Reveal()), http.MethodGet, "/v1/workspaces/default/credentials", "")
	ev = e.next(t, ev.Seq)
	if w.Code != 403 || ev.Action != "credential.list" || ev.Result != sesame.AuditDenied || ev.UserID != u.ID || ev.Code != string(sesame.CodeMissingPrivilege) {
		t.Fatalf("no privilege: %d, event %+v", w.Code, ev)
	}

	// The gateway's events for a request carry its ID and source.
	call := route{method: http.MethodPost, pattern: "/v1/workspaces/{ws}/functions/{name}/call", privileges: run,
		h: func(w http.ResponseWriter, r *http.Request) error {
			e.trail.RecordCall(r.Context(), gateway.CallRecord{Workspace: "default", Kind: "function", Target: "f", Status: 200})
			writeJSON(w, 200, map[string]string{})
			return nil
		}}
	w = httptest.NewRecorder()
	e.serve(e.mount(call), w, e.admin, http.MethodPost, "/v1/workspaces/default/functions/f/call", "{}")
	// One event: the request's, carrying its outbound call.
	request := e.next(t, ev.Seq)
	if request.Action != "function.call" || request.RequestID != w.Header().Get("X-Request-Id") || request.Source != "192.0.2.1" ||
		request.Status != 200 || request.UpstreamStatus != 200 {
		t.Fatalf("request event %+v", request)
	}
	if res, err := e.trail.Verify(ctx); err != nil || !res.OK {
		t.Fatalf("verify: %+v %v", res, err)
	}
}
