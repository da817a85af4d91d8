package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// auditEnv is the real API with access control and the audit trail over a real SQLite store.
type auditEnv struct {
	h     http.Handler
	trail *audit.Log
	acc   *access.Service
	db    *sql.DB // the same file, around the store
	admin string
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, _ := crypt.GenerateMasterKey()
	log := slog.New(slog.DiscardHandler)
	v := vault.New(st, crypt.NewKeyring(mk), time.Now, log)
	if err := v.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	pepper, err := v.ServerSecret(ctx, "api-key-hmac")
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := v.ServerSecret(ctx, "audit-hmac")
	if err != nil {
		t.Fatal(err)
	}
	trail, err := audit.New(audit.Config{Store: st, Secret: auditKey, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trail.Close(context.Background()) })
	hasher := auth.NewHasher(pepper)
	authn := auth.New(st, hasher, nil, log)
	acc := access.New(st, hasher, nil, log)
	acc.OnChange(authn.Invalidate)
	adminKey, err := authn.Bootstrap(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	h := httpapi.New(httpapi.Config{Vault: v, Auth: authn, Access: acc, Ready: st.Ping, Logger: log, Audit: trail})
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &auditEnv{h: h, trail: trail, acc: acc, db: db, admin: string(adminKey.Reveal())}
}

func (e *auditEnv) get(t *testing.T, key, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return e.req(t, key, http.MethodGet, path, header...)
}

func (e *auditEnv) req(t *testing.T, key, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

type auditPageBody struct {
	Items        []audit.Event `json:"items"`
	NextCursor   string        `json:"next_cursor"`
	FollowCursor string        `json:"follow_cursor"`
}

func (e *auditEnv) page(t *testing.T, query string) auditPageBody {
	t.Helper()
	rec := e.get(t, e.admin, "/v1/audit?"+query)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/audit?%s: %d %s", query, rec.Code, rec.Body)
	}
	var p auditPageBody
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *auditEnv) record(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		ev := audit.Event{Time: time.Date(2026, 2, 1, 0, 0, i, 0, time.UTC), Workspace: []string{"default", "acme"}[i%2],
			Principal: sesame.PrincipalUser, UserID: fmt.Sprintf("u%d", i%3), Action: []string{"credential.put", "outbound.proxy"}[i%2],
			Target: fmt.Sprintf("t%d", i), Result: []string{sesame.AuditOK, sesame.AuditOK, sesame.AuditDenied}[i%3]}
		if err := e.trail.RecordSync(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

func seqsOf(events []audit.Event) []int64 {
	out := []int64{}
	for _, ev := range events {
		out = append(out, ev.Seq)
	}
	return out
}

func TestAuditListPaginatesAndFilters(t *testing.T) {
	e := newAuditEnv(t)
	e.record(t, 7)
	// Pages in seq order.
	var got []int64
	q := url.Values{"limit": {"3"}}
	for range 5 {
		p := e.page(t, q.Encode())
		got = append(got, seqsOf(p.Items)...)
		if p.NextCursor == "" {
			if p.FollowCursor == "" {
				t.Fatal("the last page has no follow_cursor")
			}
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7]" {
		t.Fatalf("pages gave %v", got)
	}
	for query, want := range map[string]string{
		"workspace=acme":                      "[2 4 6]",
		"user=u1":                             "[2 5]",
		"action=credential.*":                 "[1 3 5 7]",
		"action=outbound.proxy&result=denied": "[6]",
		"principal=user&result=denied":        "[3 6]",
		"since=2026-02-01T00:00:05Z":          "[6 7]",
		"until=2026-02-01T00:00:02Z":          "[1 2]",
		"key=nobody":                          "[]",
		"app=x":                               "[]",
		"since=2026-02-01T00:00:01Z&until=2026-02-01T00:00:03Z&workspace=acme": "[2]",
	} {
		if got := seqsOf(e.page(t, query).Items); fmt.Sprint(got) != want {
			t.Errorf("%s: got %v, want %s", query, got, want)
		}
	}

	// Newest first, and its cursor keeps the order.
	p := e.page(t, "order=desc&limit=2")
	if fmt.Sprint(seqsOf(p.Items)) != "[7 6]" || p.NextCursor == "" || p.FollowCursor == "" {
		t.Fatalf("desc page: %+v", p)
	}
	if p2 := e.page(t, "limit=2&cursor="+p.NextCursor); fmt.Sprint(seqsOf(p2.Items)) != "[5 4]" {
		t.Fatalf("desc second page: %v", seqsOf(p2.Items))
	}
	// follow_cursor from the first descending page: nothing newer yet, then the new event.
	if f := e.page(t, "cursor="+p.FollowCursor); len(f.Items) != 0 || f.FollowCursor != p.FollowCursor {
		t.Fatalf("following: %+v", f)
	}
	e.record(t, 1)
	if f := e.page(t, "cursor="+p.FollowCursor); fmt.Sprint(seqsOf(f.Items)) != "[8]" {
		t.Fatalf("following after a new event: %v", seqsOf(f.Items))
	}
}

func TestAuditListRejectsBadParameters(t *testing.T) {
	e := newAuditEnv(t)
	for _, q := range []string{
		"since=yesterday", "until=2026-13-01T00:00:00Z", "result=maybe", "order=sideways", "limit=0", "limit=1001",
		"cursor=!!!", "cursor=bm9wZQ", "wait=forever", "wait=2m", "wait=1s&order=desc", "format=xml",
		"order=asc&cursor=" + descCursor(e, t),
	} {
		rec := e.get(t, e.admin, "/v1/audit?"+q)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_argument"`) {
			t.Errorf("?%s: %d %s", q, rec.Code, rec.Body)
		}
	}
}

func descCursor(e *auditEnv, t *testing.T) string {
	e.record(t, 3)
	return e.page(t, "order=desc&limit=1").NextCursor
}

func TestAuditExportStreamsJSONLines(t *testing.T) {
	e := newAuditEnv(t)
	e.record(t, 5)
	for _, how := range [][]string{{"/v1/audit?format=jsonl"}, {"/v1/audit", "Accept", "application/x-ndjson"}} {
		rec := e.get(t, e.admin, how[0], how[1:]...)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%v: %d %v", how, rec.Code, rec.Header())
		}
		var n int64
		sc := bufio.NewScanner(bytes.NewReader(rec.Body.Bytes()))
		for sc.Scan() {
			var ev audit.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			n++
			if ev.Seq != n || len(ev.Hash) != 64 {
				t.Fatalf("line %d: %+v", n, ev)
			}
		}
		if n != 5 {
			t.Fatalf("%v: %d lines", how, n)
		}
	}
	if rec := e.get(t, e.admin, "/v1/audit?format=jsonl&workspace=none"); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("empty export: %d %q", rec.Code, rec.Body)
	}
}

func TestAuditVerifyReportsTheFirstBrokenLink(t *testing.T) {
	e := newAuditEnv(t)
	verify := func() audit.VerifyResult {
		rec := e.req(t, e.admin, http.MethodPost, "/v1/audit/verify")
		if rec.Code != http.StatusOK {
			t.Fatalf("verify: %d %s", rec.Code, rec.Body)
		}
		var res audit.VerifyResult
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	e.record(t, 6)
	if res := verify(); !res.OK || res.Events != 6 || res.Head.Seq != 6 {
		t.Fatalf("intact chain: %+v", res)
	}
	if _, err := e.db.Exec(`UPDATE audit_events SET target = 'nothing to see' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	res := verify()
	if res.OK || res.FirstBroken == nil || res.FirstBroken.Seq != 3 || res.FirstBroken.Reason != audit.ReasonHashMismatch {
		t.Fatalf("edited chain: %+v %+v", res, res.FirstBroken)
	}
	rec := e.req(t, e.admin, http.MethodPost, "/v1/audit/verify")
	if !strings.Contains(rec.Body.String(), `"first_broken":{"seq":3,"reason":"hash_mismatch"`) {
		t.Fatalf("body: %s", rec.Body)
	}
}

func TestAuditNeedsReadAudit(t *testing.T) {
	e := newAuditEnv(t)
	ctx := context.Background()
	key := func(privs ...sesame.Privilege) string {
		name := fmt.Sprintf("u%d", time.Now().UnixNano())
		u, err := e.acc.CreateUser(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.acc.PutRole(ctx, bootstrapAdmin(t, e.acc), "r-"+name, append([]sesame.Privilege{sesame.PrivUseAPIKey}, privs...)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.acc.CreateGrant(ctx, bootstrapAdmin(t, e.acc), access.GrantInput{Role: "r-" + name, User: u.ID, Workspace: "*"}); err != nil {
			t.Fatal(err)
		}
		k, err := e.acc.CreateKey(ctx, bootstrapAdmin(t, e.acc), u.ID, "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(k.Key.Reveal())
	}
	without := key(sesame.PrivManageCredentials, sesame.PrivManageUsers, sesame.PrivRunFunctions)
	with := key(sesame.PrivReadAudit)
	for _, r := range []struct{ method, path string }{{"GET", "/v1/audit"}, {"GET", "/v1/audit?format=jsonl"}, {"POST", "/v1/audit/verify"}} {
		if rec := e.req(t, without, r.method, r.path); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "read_audit") {
			t.Errorf("%s %s without read_audit: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
		if rec := e.req(t, with, r.method, r.path); rec.Code != http.StatusOK {
			t.Errorf("%s %s with read_audit: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
}

// TestAuditWaitFollowsLive: a request with ?wait= and nothing to return yet answers as soon
// as a matching event is committed.
func TestAuditWaitFollowsLive(t *testing.T) {
	e := newAuditEnv(t)
	e.record(t, 2)
	follow := e.page(t, "action=outbound.*").FollowCursor
	got := make(chan auditPageBody, 1)
	go func() {
		rec := e.get(t, e.admin, "/v1/audit?action=outbound.*&wait=50s&cursor="+follow)
		var p auditPageBody
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		got <- p
	}()
	e.trail.Record(context.Background(), audit.Event{Action: "credential.put"})
	e.trail.Record(context.Background(), audit.Event{Action: "outbound.proxy", Target: "live"})
	select {
	case p := <-got:
		if len(p.Items) != 1 || p.Items[0].Target != "live" || p.Items[0].Seq != 4 {
			t.Fatalf("woke with %+v", p.Items)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the waiting request did not answer")
	}
}

func TestAuditUnavailableWithoutTrail(t *testing.T) {
	c := newClient(t)
	for _, r := range []struct{ method, path string }{{"GET", "/v1/audit"}, {"POST", "/v1/audit/verify"}} {
		if got := c.do(r.method, r.path, nil, nil); got.status != http.StatusServiceUnavailable {
			t.Errorf("%s %s without a trail: %d %s", r.method, r.path, got.status, got.body)
		}
	}
}

// bootstrapAdmin is the bootstrap admin as an actor, for setting up through the access service.
func bootstrapAdmin(tb testing.TB, acc *access.Service) sesame.Principal {
	tb.Helper()
	for after := ""; ; {
		users, err := acc.ListUsers(context.Background(), after, 100)
		if err != nil {
			tb.Fatal(err)
		}
		if len(users) == 0 {
			tb.Fatal("no admin user")
		}
		for _, u := range users {
			if u.Name == "admin" {
				return sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID}
			}
		}
		after = users[len(users)-1].ID
	}
}
