package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/testpg"
)

// The audit trail end to end: a real server records its outbound calls, the chain verifies
// over the API and the CLI, and every kind of tampering done with SQL on a second handle is
// reported there, on SQLite and on PostgreSQL.

func TestAuditTrailEndToEndSQLite(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "sesame.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exerciseAuditTrail(t, s, db)
}

func TestAuditTrailEndToEndPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	s := startServer(t, nil, "--data", t.TempDir(), "--postgres", pgURL)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exerciseAuditTrail(t, s, db)
}

type e2eVerify struct {
	OK          bool  `json:"ok"`
	Events      int64 `json:"events"`
	FirstBroken *struct {
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
	} `json:"first_broken"`
}

type e2eEvent struct {
	Seq            int64  `json:"seq"`
	Action         string `json:"action"`
	Target         string `json:"target"`
	UserID         string `json:"user_id"`
	KeyID          string `json:"key_id"`
	UpstreamStatus int    `json:"upstream_status"`
	Result         string `json:"result"`
}

func (s *testServer) auditVerify(t *testing.T) e2eVerify {
	t.Helper()
	r := s.do("POST", "/v1/audit/verify", "")
	if r.Status != 200 {
		t.Fatalf("POST /v1/audit/verify: %d %s", r.Status, r.Body)
	}
	var v e2eVerify
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitForEvents follows the trail (long polling, no sleeping) until n events match query.
func (s *testServer) waitForEvents(t *testing.T, query string, n int) []e2eEvent {
	t.Helper()
	var all []e2eEvent
	cursor := ""
	deadline := time.Now().Add(30 * time.Second)
	for len(all) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events matching %q appeared", len(all), n, query)
		}
		q := query + "&limit=1000"
		if cursor != "" {
			q += "&wait=5s&cursor=" + cursor
		}
		r := s.do("GET", "/v1/audit?"+q, "")
		if r.Status != 200 {
			t.Fatalf("GET /v1/audit?%s: %d %s", q, r.Status, r.Body)
		}
		var p struct {
			Items        []e2eEvent `json:"items"`
			FollowCursor string     `json:"follow_cursor"`
			NextCursor   string     `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Items...)
		cursor = p.FollowCursor
		if p.NextCursor != "" {
			cursor = p.NextCursor
		}
	}
	return all
}

func exerciseAuditTrail(t *testing.T, s *testServer, db *sql.DB) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer up.Close()
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/up.key",
		`{"type":"api_key","fields":{"value":"`+canary+`","name":"X-Up-Key"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/up?test=false",
		fmt.Sprintf(`{"base_uri":%q,"credential":"up.key","allow_private_networks":true}`, up.URL)), 201)
	const calls = 6
	for i := range calls {
		mustStatus(t, s.do("GET", fmt.Sprintf("/v1/workspaces/default/proxy/up/item/%d", i), ""), 201)
	}
	events := s.waitForEvents(t, "action=outbound.proxy", calls)
	for _, ev := range events {
		if ev.Target != "up" || ev.UpstreamStatus != 201 || ev.Result != "ok" || ev.UserID == "" || ev.KeyID == "" {
			t.Fatalf("proxy call recorded as %+v", ev)
		}
	}

	// The intact chain verifies, over the API and the CLI.
	if v := s.auditVerify(t); !v.OK || v.Events < calls {
		t.Fatalf("intact chain: %+v", v)
	}
	if code, out, errOut := s.cli("", "audit", "verify"); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("sesame audit verify: %d %q %q", code, out, errOut)
	}

	// list, export (to stdout and to a file), all without the secret.
	code, out, errOut := s.cli("", "audit", "list", "--action", "outbound.*", "--limit", "3")
	if code != 0 || strings.Count(out, "outbound.proxy") != 3 || !strings.Contains(out, "SEQ") {
		t.Fatalf("sesame audit list: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = s.cli("", "audit", "list", "--json", "--asc", "-w", "default", "--result", "ok", "--since", "1h")
	var listed []e2eEvent
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed) < calls || listed[0].Seq > listed[1].Seq {
		t.Fatalf("sesame audit list --json: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = s.cli("", "audit", "export")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < calls {
		t.Fatalf("sesame audit export: %d %d lines %s", code, len(lines), errOut)
	}
	for i, line := range lines {
		var ev e2eEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Seq != int64(i+1) {
			t.Fatalf("export line %d: %q", i, line)
		}
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, _, errOut := s.cli("", "audit", "export", "--out", file); code != 0 {
		t.Fatalf("export --out: %s", errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("export file: %v %v", fi, err)
	}
	exported, _ := os.ReadFile(file)
	assertNoCanary(t, "the audit export", []byte(out+string(exported)))

	// tail shows the last events, then follows new ones until interrupted.
	testAuditTail(t, s)

	// Tampering with SQL on a second handle, each undone before the next.
	seqs := rawSeqs(t, db)
	first, mid, last := seqs[0], seqs[len(seqs)/2], seqs[len(seqs)-1]
	cases := []struct {
		name   string
		tamper func() (undo func())
		seq    int64
	}{
		{"edit a field", func() func() {
			row := rawRow(t, db, mid)
			rawExecE2E(t, db, `UPDATE audit_events SET target = 'nothing-here' WHERE seq = $1`, mid)
			return func() { rawExecE2E(t, db, `DELETE FROM audit_events WHERE seq = $1`, mid); rawInsert(t, db, row) }
		}, mid},
		{"delete the first event", deleteRow(t, db, first), first},
		{"delete a middle event", deleteRow(t, db, mid), mid},
		{"delete the last event", deleteRow(t, db, last), last},
		{"reorder two events", func() func() {
			swap := func() {
				rawExecE2E(t, db, `UPDATE audit_events SET seq = -1 WHERE seq = $1`, mid)
				rawExecE2E(t, db, `UPDATE audit_events SET seq = $1 WHERE seq = $2`, mid, mid+1)
				rawExecE2E(t, db, `UPDATE audit_events SET seq = $1 WHERE seq = -1`, mid+1)
			}
			swap()
			return swap
		}, mid},
		{"insert a forged event", func() func() {
			row := rawRow(t, db, mid)
			row[0] = last + 1
			rawInsert(t, db, row)
			return func() { rawExecE2E(t, db, `DELETE FROM audit_events WHERE seq = $1`, last+1) }
		}, last + 1},
	}
	for _, c := range cases {
		undo := c.tamper()
		v := s.auditVerify(t)
		if v.OK || v.FirstBroken == nil || v.FirstBroken.Seq != c.seq {
			t.Errorf("%s: POST /v1/audit/verify said %+v %+v, want the break at seq %d", c.name, v, v.FirstBroken, c.seq)
		}
		code, out, errOut := s.cli("", "audit", "verify")
		if code != 1 || !strings.Contains(errOut, fmt.Sprintf("broken link at seq %d:", c.seq)) {
			t.Errorf("%s: sesame audit verify: exit %d, %q %q", c.name, code, out, errOut)
		}
		undo()
		if v := s.auditVerify(t); !v.OK {
			t.Fatalf("%s: not ok after undoing: %+v", c.name, v.FirstBroken)
		}
	}
}

func testAuditTail(t *testing.T, s *testServer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int, 1)
	env := envFunc(map[string]string{"SESAME_SERVER": s.URL, "SESAME_KEY": s.AdminKey})
	go func() {
		done <- run(ctx, []string{"audit", "tail", "-n", "2", "--json", "--action", "outbound.*"}, env, strings.NewReader(""), out, &syncBuffer{}, nil)
	}()
	waitLines := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var lines []string
			sc := bufio.NewScanner(strings.NewReader(out.String()))
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			if len(lines) >= n {
				return lines
			}
			if time.Now().After(deadline) {
				t.Fatalf("tail printed %d lines, want %d:\n%s", len(lines), n, out.String())
			}
			time.Sleep(5 * time.Millisecond) // polling our own buffer, not the server
		}
	}
	lines := waitLines(2)
	mustStatus(t, s.do("GET", "/v1/workspaces/default/proxy/up/tailed", ""), 201)
	lines = waitLines(3)
	var ev e2eEvent
	if err := json.Unmarshal([]byte(lines[2]), &ev); err != nil || ev.Action != "outbound.proxy" {
		t.Fatalf("tail's third line: %q", lines[2])
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("tail exited %d after interrupt", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tail did not stop when interrupted")
	}
}

func rawExecE2E(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func rawSeqs(t *testing.T, db *sql.DB) []int64 {
	t.Helper()
	rows, err := db.Query(`SELECT seq FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if len(out) < 4 {
		t.Fatalf("only %d events", len(out))
	}
	return out
}

// rawRow reads a whole row, in the table's column order.
func rawRow(t *testing.T, db *sql.DB, seq int64) []any {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM audit_events WHERE seq = $1`, seq)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatalf("no event %d", seq)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	return vals
}

func rawInsert(t *testing.T, db *sql.DB, row []any) {
	t.Helper()
	marks := make([]string, len(row))
	for i := range marks {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	rawExecE2E(t, db, `INSERT INTO audit_events VALUES (`+strings.Join(marks, ", ")+`)`, row...)
}

func deleteRow(t *testing.T, db *sql.DB, seq int64) func() func() {
	return func() func() {
		row := rawRow(t, db, seq)
		rawExecE2E(t, db, `DELETE FROM audit_events WHERE seq = $1`, seq)
		return func() { rawInsert(t, db, row) }
	}
}
