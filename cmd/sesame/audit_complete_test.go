package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

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

var _ = fmt.Sprintf
