package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/testpg"
)

// PRODUCT.md §4.8: a change and its audit event commit together. These tests make the
// audit writes fail inside the real database (a trigger that raises) while changes are
// made over the API, then remove the fault, restart the server, and check that every
// credential that exists has its event, on SQLite and PostgreSQL.

// auditDB is a second handle on a running server's database, with the dialect's way of
// making inserts into a table fail.
type auditDB struct {
	*sql.DB
	postgres bool
}

func openSQLiteDB(t *testing.T, data string) *auditDB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "sesame.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &auditDB{DB: db}
}

func openPostgresDB(t *testing.T, pgURL string) *auditDB {
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &auditDB{DB: db, postgres: true}
}

func (d *auditDB) tableExists(t *testing.T, table string) bool {
	t.Helper()
	var n int
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1`
	if d.postgres {
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`
	}
	if err := d.QueryRow(q, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// failInserts makes every insert into table fail until the returned func is called.
func (d *auditDB) failInserts(t *testing.T, table string) (restore func()) {
	t.Helper()
	name := "fail_" + table
	if d.postgres {
		rawExecE2E(t, d.DB, `CREATE FUNCTION `+name+`() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected audit failure'; END $$`)
		rawExecE2E(t, d.DB, `CREATE TRIGGER `+name+` BEFORE INSERT ON `+table+` FOR EACH ROW EXECUTE FUNCTION `+name+`()`)
		return func() {
			rawExecE2E(t, d.DB, `DROP TRIGGER `+name+` ON `+table)
			rawExecE2E(t, d.DB, `DROP FUNCTION `+name+`()`)
		}
	}
	rawExecE2E(t, d.DB, `CREATE TRIGGER `+name+` BEFORE INSERT ON `+table+` BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END`)
	return func() { rawExecE2E(t, d.DB, `DROP TRIGGER `+name) }
}

// failAuditWrites makes every audit write fail: the chain and, where it exists, the outbox.
func (d *auditDB) failAuditWrites(t *testing.T, alsoOutbox bool) (restore func()) {
	t.Helper()
	restores := []func(){d.failInserts(t, "audit_events")}
	if alsoOutbox && d.tableExists(t, "audit_outbox") {
		restores = append(restores, d.failInserts(t, "audit_outbox"))
	}
	return func() {
		for _, r := range restores {
			r()
		}
	}
}

// credentialsWithoutEvents lists the credentials that have no credential.put event.
func credentialsWithoutEvents(t *testing.T, s *testServer) []string {
	t.Helper()
	r := s.do("GET", "/v1/workspaces/default/credentials?limit=1000", "")
	mustStatus(t, r, 200)
	var missing []string
	events := map[string]bool{}
	q := s.do("GET", "/v1/audit?action=credential.put&limit=1000", "")
	mustStatus(t, q, 200)
	for _, it := range q.json(t)["items"].([]any) {
		events[it.(map[string]any)["target"].(string)] = true
	}
	for _, it := range r.json(t)["items"].([]any) {
		key := it.(map[string]any)["key"].(string)
		if !events[key] {
			missing = append(missing, key)
		}
	}
	return missing
}

func testChangeAndEventAtomic(t *testing.T, start func(adminKey string) *testServer, db *auditDB) {
	s := start("")
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	admin := s.AdminKey
	put := func(key string) response {
		return s.do("PUT", "/v1/workspaces/default/credentials/"+key, `{"type":"secret","fields":{"value":"v-`+key+`"}}`)
	}
	mustStatus(t, put("atomic.before"), 201)

	// Every audit write fails: the change must not happen either.
	restore := db.failAuditWrites(t, true)
	r := put("atomic.all-failing")
	restore()
	if r.Status < 500 {
		t.Fatalf("a change whose event cannot be written was acknowledged: %d %s", r.Status, r.Body)
	}

	// Only the chain fails (the change's own transaction can still write): whatever the
	// answer, once the store is healthy the change has its event.
	restore = db.failAuditWrites(t, false)
	r = put("atomic.chain-failing")
	restore()
	if r.Status >= 500 && r.Status != 503 {
		t.Fatalf("PUT while the chain fails: %d %s", r.Status, r.Body)
	}

	// A restart (what a crash comes back to) must leave no change without its event.
	if code := s.Stop(); code != 0 {
		t.Fatalf("server exited %d: %s", code, s.Stderr.String())
	}
	s = start(admin)
	s.AdminKey = admin
	var missing []string
	for range 50 {
		if missing = credentialsWithoutEvents(t, s); len(missing) == 0 {
			break
		}
		s.do("GET", "/v1/audit?wait=200ms&action=nothing", "")
	}
	if len(missing) > 0 {
		t.Fatalf("credentials changed with no audit event: %v", missing)
	}
	if v := s.auditVerify(t); !v.OK {
		t.Fatalf("chain after recovery: %+v", v)
	}
}

func TestChangeAndEventAreAtomicSQLite(t *testing.T) {
	data := t.TempDir()
	db := openSQLiteDB(t, data)
	testChangeAndEventAtomic(t, func(adminKey string) *testServer {
		return startServer(t, map[string]string{"SESAME_ADMIN_KEY": adminKey}, "--data", data)
	}, db)
}

func TestChangeAndEventAreAtomicPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	data := t.TempDir()
	db := openPostgresDB(t, pgURL)
	testChangeAndEventAtomic(t, func(adminKey string) *testServer {
		return startServer(t, map[string]string{"SESAME_ADMIN_KEY": adminKey}, "--data", data, "--postgres", pgURL,
			"--audit-outbox-grace", "200ms")
	}, db)
}

// requestIDs returns the events of the trail by request ID.
func requestIDs(t *testing.T, s *testServer) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	cursor := ""
	for {
		q := "/v1/audit?limit=1000"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := mustStatus(t, s.do("GET", q, ""), 200)
		m := r.json(t)
		for _, it := range m["items"].([]any) {
			ev := it.(map[string]any)
			if id, _ := ev["request_id"].(string); id != "" {
				out[id] = ev
			}
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

// readsWithIDs makes n reads, each with its own request ID, and returns the IDs.
func readsWithIDs(t *testing.T, s *testServer, prefix string, n int, want int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		r := s.doWith("GET", "/v1/workspaces/default/credentials", "", http.Header{"X-Request-Id": {id}})
		if r.Status != want {
			t.Fatalf("read %s during the outage: %d %s", id, r.Status, r.Body)
		}
		ids = append(ids, id)
	}
	return ids
}

// waitForRequestIDs waits until every id has its event.
func waitForRequestIDs(t *testing.T, s *testServer, ids []string) map[string]map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := requestIDs(t, s)
		var missing []string
		for _, id := range ids {
			if got[id] == nil {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events are missing after the outage, e.g. %s", len(missing), len(ids), missing[0])
		}
		s.do("GET", "/v1/audit?wait=200ms&action=nothing", "")
	}
}

// metric reads one value from GET /metrics (anonymous).
func metric(t *testing.T, s *testServer, name string) float64 {
	t.Helper()
	r := s.doWith("GET", "/metrics", "", http.Header{"Authorization": {"none"}, "X-Unused": {"1"}})
	if r.Status != 200 {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Body)
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("metric %s is not in /metrics:\n%s", name, r.Body)
	return 0
}

// TestAuditOutageLosesNoEventPostgres: the audit table goes away (the store cannot take
// events) while reads go on; once it is back, every read's event is in the chain, also
// across a restart during the outage. When the spill file fails too, the loss is written
// into the chain as an audit.gap event that verification reports, and metrics count it.
func TestAuditOutageLosesNoEventPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	data, spill := t.TempDir(), filepath.Join(t.TempDir(), "spill")
	db := openPostgresDB(t, pgURL)
	start := func(adminKey string) *testServer {
		s := startServer(t, map[string]string{"SESAME_ADMIN_KEY": adminKey}, "--data", data, "--postgres", pgURL,
			"--audit-spill-dir", spill)
		if s.stopped {
			t.Fatalf("server did not start: %s", s.Stderr.String())
		}
		if adminKey != "" {
			s.AdminKey = adminKey
		}
		return s
	}
	s := start("")
	admin := s.AdminKey
	down := func() { rawExecE2E(t, db.DB, `ALTER TABLE audit_events RENAME TO audit_events_away`) }
	up := func() { rawExecE2E(t, db.DB, `ALTER TABLE audit_events_away RENAME TO audit_events`) }

	// 1. An outage while the server runs: the events are spilled, then replayed.
	down()
	ids := readsWithIDs(t, s, "live", 40, 200)
	waitForMetric(t, s, "sesame_audit_spilled_total", 40)
	up()
	waitForRequestIDs(t, s, ids)

	// 2. An outage across a restart: nothing held only in memory.
	down()
	ids = readsWithIDs(t, s, "restart", 40, 200)
	waitForMetric(t, s, "sesame_audit_spilled_total", 80)
	if code := s.Stop(); code != 0 {
		t.Fatalf("server exited %d", code)
	}
	up()
	s = start(admin)
	waitForRequestIDs(t, s, ids)

	// 3. The store and the spill file both fail: the loss is counted and recorded.
	mustNotErr(t, os.RemoveAll(spill))
	mustNotErr(t, os.WriteFile(spill, []byte("not a folder"), 0o600))
	down()
	readsWithIDs(t, s, "lost", 25, 200)
	waitForMetric(t, s, "sesame_audit_dropped_total", 25)
	up()
	mustNotErr(t, os.Remove(spill))
	mustNotErr(t, os.Mkdir(spill, 0o700))
	after := readsWithIDs(t, s, "after", 1, 200)
	waitForRequestIDs(t, s, after)
	v := s.do("POST", "/v1/audit/verify", "").json(t)
	if v["ok"] != true || v["lost"] == nil || v["lost"].(float64) < 25 {
		t.Fatalf("verify after a loss: %v", v)
	}
	if metric(t, s, "sesame_audit_dropped_total") < 25 || metric(t, s, "sesame_audit_gap_events_total") < 1 {
		t.Fatal("metrics do not show the loss")
	}
	gaps := mustStatus(t, s.do("GET", "/v1/audit?action=audit.gap", ""), 200).json(t)["items"].([]any)
	if len(gaps) == 0 {
		t.Fatal("no audit.gap event in the chain")
	}
	if n := metric(t, s, "sesame_audit_queue_depth"); n < 0 {
		t.Fatalf("queue depth %v", n)
	}
}

// TestAuditStrictModeRefusesUnauditedRequestsPostgres: with --audit strict, a request whose
// event cannot be recorded durably is refused with 503 audit_unavailable and Retry-After;
// while the spill file works, an outage of the store costs nothing.
func TestAuditStrictModeRefusesUnauditedRequestsPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	spill := filepath.Join(t.TempDir(), "spill")
	db := openPostgresDB(t, pgURL)
	s := startServer(t, map[string]string{"SESAME_AUDIT": "strict"}, "--data", t.TempDir(), "--postgres", pgURL, "--audit-spill-dir", spill)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	rawExecE2E(t, db.DB, `ALTER TABLE audit_events RENAME TO audit_events_away`)
	ids := readsWithIDs(t, s, "spilled", 5, 200)

	// The spill folder is moved away and a file put in its place: spilling fails.
	mustNotErr(t, os.Rename(spill, spill+".away"))
	mustNotErr(t, os.WriteFile(spill, []byte("not a folder"), 0o600))
	// A trial app token changes nothing, but strict mode does not issue one unaudited
	// either (asked first, so that its own event's failure refuses it, not an earlier one's).
	if r := s.appAuth(manifestJSON("com.example.strict", "S", "1.0.0")); r.Status != 503 || r.json(t)["code"] != "audit_unavailable" {
		t.Fatalf("strict mode, audit down, trial token: %d %s", r.Status, r.Body)
	}
	for i := range 3 {
		r := s.doWith("GET", "/v1/workspaces/default/credentials", "", http.Header{"X-Request-Id": {fmt.Sprintf("refused-%d", i)}})
		if r.Status != 503 || r.json(t)["code"] != "audit_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("strict mode, audit down: %d %v %s", r.Status, r.Header, r.Body)
		}
	}
	rawExecE2E(t, db.DB, `ALTER TABLE audit_events_away RENAME TO audit_events`)
	mustNotErr(t, os.Remove(spill))
	mustNotErr(t, os.Rename(spill+".away", spill))
	// The spilled events are replayed; requests get through again within seconds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := s.doWith("GET", "/v1/workspaces/default/credentials", "", http.Header{"X-Request-Id": {"recovered"}})
		if r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("strict mode after recovery: %d %s", r.Status, r.Body)
		}
		s.do("GET", "/v1/audit?wait=300ms&action=nothing", "")
	}
	waitForRequestIDs(t, s, append(ids, "recovered"))
}

// waitForMetric waits until a metric reaches at least min.
func waitForMetric(t *testing.T, s *testServer, name string, min float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for metric(t, s, name) < min {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed at %v, want at least %v", name, metric(t, s, name), min)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustNotErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testTruncationNeedsACheckpoint: someone with write access to the database deletes the
// newest events and puts back the head row as it was before them. The chain alone still
// verifies (and says it cannot see this); verified against a checkpoint taken before the
// deletion, it fails.
func testTruncationNeedsACheckpoint(t *testing.T, s *testServer, db *auditDB) {
	if !strings.Contains(s.Stderr.String(), "audit checkpoint: ") {
		t.Fatalf("the server logged no checkpoint at start:\n%s", s.Stderr.String())
	}
	for i := range 3 {
		mustStatus(t, s.do("PUT", fmt.Sprintf("/v1/workspaces/default/credentials/old.%d", i), `{"type":"secret","fields":{"value":"v"}}`), 201)
	}
	var oldSeq int64
	var oldHash, oldMAC string
	if err := db.QueryRow(`SELECT seq, hash, mac FROM audit_head`).Scan(&oldSeq, &oldHash, &oldMAC); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustStatus(t, s.do("PUT", fmt.Sprintf("/v1/workspaces/default/credentials/hidden.%d", i), `{"type":"secret","fields":{"value":"v"}}`), 201)
	}
	code, cp, errOut := s.cli("", "audit", "checkpoint")
	if code != 0 || len(strings.Fields(cp)) != 3 {
		t.Fatalf("sesame audit checkpoint: %d %q %s", code, cp, errOut)
	}
	cp = strings.TrimSpace(cp)
	if code, out, errOut := s.cli("", "audit", "verify", "--checkpoint", cp); code != 0 {
		t.Fatalf("intact chain against its checkpoint: %d %s %s", code, out, errOut)
	}

	// The attack: the newest events go, the older head row comes back.
	rawExecE2E(t, db.DB, `DELETE FROM audit_events WHERE seq > $1`, oldSeq)
	rawExecE2E(t, db.DB, `UPDATE audit_head SET seq = $1, hash = $2, mac = $3`, oldSeq, oldHash, oldMAC)

	// Plain verification cannot see it, and says so.
	v := s.do("POST", "/v1/audit/verify", "").json(t)
	if v["ok"] != true || !strings.Contains(fmt.Sprint(v["note"]), "checkpoint") {
		t.Fatalf("plain verify after truncation: %v", v)
	}
	if code, out, _ := s.cli("", "audit", "verify"); code != 0 || !strings.Contains(out, "note: without a checkpoint") {
		t.Fatalf("sesame audit verify: %d %s", code, out)
	}
	// Against the checkpoint, given as a string, a file, or a server log holding it.
	file := filepath.Join(t.TempDir(), "checkpoint")
	mustNotErr(t, os.WriteFile(file, []byte(cp+"\n"), 0o600))
	logFile := filepath.Join(t.TempDir(), "server.log")
	mustNotErr(t, os.WriteFile(logFile, []byte(`time=2026-01-01T00:00:00Z level=INFO msg="audit checkpoint: 1 `+
		strings.Repeat("0", 64)+" "+strings.Repeat("0", 64)+`"`+"\n"+`time=2026-01-01T00:10:00Z level=INFO msg="audit checkpoint: `+cp+`"`+"\n"), 0o600))
	for _, arg := range []string{cp, file, logFile} {
		code, out, errOut := s.cli("", "audit", "verify", "--checkpoint", arg)
		if code == 0 || !strings.Contains(errOut, "truncated") {
			t.Fatalf("verify --checkpoint %s after truncation: %d %s %s", arg, code, out, errOut)
		}
	}
	r := s.do("POST", "/v1/audit/verify", `{"checkpoint":"`+cp+`"}`).json(t)
	if r["ok"] != false || r["first_broken"].(map[string]any)["reason"] != "truncated" {
		t.Fatalf("POST /v1/audit/verify with a checkpoint: %v", r)
	}
	// A checkpoint cannot be forged to match a rewritten chain: only the server's MAC counts.
	f := strings.Fields(cp)
	forged := fmt.Sprintf("%d %s %s", oldSeq, oldHash, f[2])
	if r := s.do("POST", "/v1/audit/verify", `{"checkpoint":"`+forged+`"}`); r.Status != 400 || r.json(t)["code"] != "invalid_argument" {
		t.Fatalf("forged checkpoint: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/v1/audit/verify", `{"checkpoint":"12 nothex"}`); r.Status != 400 {
		t.Fatalf("malformed checkpoint: %d %s", r.Status, r.Body)
	}
}

func TestAuditTruncationDetectedByCheckpointSQLite(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, nil, "--data", data)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	testTruncationNeedsACheckpoint(t, s, openSQLiteDB(t, data))
}

func TestAuditTruncationDetectedByCheckpointPostgres(t *testing.T) {
	pgURL := testpg.URL(t)
	s := startServer(t, nil, "--data", t.TempDir(), "--postgres", pgURL)
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	testTruncationNeedsACheckpoint(t, s, openPostgresDB(t, pgURL))
}

// TestMetricsAccess: /metrics is anonymous by default (scrapers have no key) and holds the
// audit trail's counters; with --metrics-anonymous=false it needs read_audit.
func TestMetricsAccess(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir())
	if s.stopped {
		t.Fatalf("server did not start: %s", s.Stderr.String())
	}
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/m.key", `{"type":"secret","fields":{"value":"CANARY-metrics"}}`), 201)
	r := s.doWith("GET", "/metrics", "", http.Header{"Authorization": {"Bearer "}})
	if r.Status != 200 || !strings.Contains(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("anonymous GET /metrics: %d %s", r.Status, r.Body)
	}
	for _, name := range []string{"sesame_audit_queue_depth", "sesame_audit_spilled_total", "sesame_audit_dropped_total",
		"sesame_audit_gap_events_total", "sesame_audit_committed_total", "sesame_audit_appends_total"} {
		if !strings.Contains(string(r.Body), "\n"+name+" ") {
			t.Fatalf("%s missing from /metrics:\n%s", name, r.Body)
		}
	}
	if metric(t, s, "sesame_audit_committed_total") < 1 || strings.Contains(string(r.Body), "CANARY") {
		t.Fatalf("metrics:\n%s", r.Body)
	}

	closed := startServer(t, nil, "--data", t.TempDir(), "--metrics-anonymous=false")
	if closed.stopped {
		t.Fatalf("server did not start: %s", closed.Stderr.String())
	}
	if r := closed.doWith("GET", "/metrics", "", http.Header{"Authorization": {"Bearer "}}); r.Status != 401 {
		t.Fatalf("GET /metrics without a key when not anonymous: %d %s", r.Status, r.Body)
	}
	if r := closed.do("GET", "/metrics", ""); r.Status != 200 {
		t.Fatalf("GET /metrics with the admin key: %d %s", r.Status, r.Body)
	}
}
