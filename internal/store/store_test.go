package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/testpg"
)

// A backend is one database the store runs on. Every case in storeCases runs against every
// backend, each on a fresh, empty database.
type backend struct {
	name string
	// fresh returns the location of a new, empty database that lives until the test ends.
	fresh func(t *testing.T) string
	open  func(ctx context.Context, loc string) (*store.Store, error)
	// raw opens the same database with database/sql, bypassing the store.
	raw func(t *testing.T, loc string) *sql.DB
	// failSecretInserts makes every insert into credential_secrets for workspace ws fail,
	// so tests can check that a multi-statement write leaves nothing behind.
	failSecretInserts func(t *testing.T, db *sql.DB, ws string)
}

var backends = []backend{
	{
		name:  "sqlite",
		fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "x.db") },
		open:  store.OpenSQLite,
		raw: func(t *testing.T, loc string) *sql.DB {
			return openRaw(t, "sqlite", "file:"+loc+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
		},
		failSecretInserts: func(t *testing.T, db *sql.DB, ws string) {
			rawExec(t, db, fmt.Sprintf(`CREATE TRIGGER fail_secrets BEFORE INSERT ON credential_secrets
				WHEN NEW.workspace = '%s' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`, ws))
		},
	},
	{
		name:  "postgres",
		fresh: func(t *testing.T) string { return testpg.URL(t) },
		open:  store.OpenPostgres,
		raw:   func(t *testing.T, loc string) *sql.DB { return openRaw(t, "pgx", loc) },
		failSecretInserts: func(t *testing.T, db *sql.DB, ws string) {
			rawExec(t, db, `CREATE FUNCTION fail_secrets() RETURNS trigger LANGUAGE plpgsql
				AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`)
			rawExec(t, db, fmt.Sprintf(`CREATE TRIGGER fail_secrets BEFORE INSERT ON credential_secrets
				FOR EACH ROW WHEN (NEW.workspace = '%s') EXECUTE FUNCTION fail_secrets()`, ws))
		},
	},
}

// env is what a case gets: a fresh store and a way around it.
type env struct {
	ctx     context.Context
	s       *store.Store
	b       backend
	loc     string
	rawOnce sync.Once
	rawDB   *sql.DB
}

// raw returns a database/sql handle on the store's database.
func (e *env) raw(t *testing.T) *sql.DB {
	e.rawOnce.Do(func() { e.rawDB = e.b.raw(t, e.loc) })
	return e.rawDB
}

// count runs a COUNT(*) query directly on the database.
func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.raw(t).QueryRowContext(e.ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// reopen opens a second store on the same database.
func (e *env) reopen(t *testing.T) *store.Store {
	t.Helper()
	s, err := e.b.open(e.ctx, e.loc)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openRaw(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open raw %s: %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawExec(t *testing.T, db *sql.DB, query string) {
	t.Helper()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// storeCase is one conformance case: it gets an env with a fresh, open store.
type storeCase struct {
	name string
	fn   func(t *testing.T, e *env)
}

// runCases runs every case against every backend, in parallel, each on a fresh database
// opened for it; setup, if not nil, prepares the store before the case runs.
func runCases(t *testing.T, cases []storeCase, setup func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					t.Cleanup(cancel)
					loc := b.fresh(t)
					s, err := b.open(ctx, loc)
					if err != nil {
						t.Fatalf("open: %v", err)
					}
					t.Cleanup(func() { s.Close() })
					e := &env{ctx: ctx, b: b, loc: loc, s: s}
					if setup != nil {
						setup(t, e)
					}
					c.fn(t, e)
				})
			}
		})
	}
}

var storeCases = []storeCase{
	{"Workspace/CreateAndGet", testWorkspaceCreateAndGet},
	{"Workspace/CreateDuplicate", testWorkspaceCreateDuplicate},
	{"Workspace/GetNotFound", testWorkspaceGetNotFound},
	{"Workspace/ListPaginates", testWorkspaceListPaginates},
	{"Workspace/DeleteNotFound", testWorkspaceDeleteNotFound},
	{"Workspace/DeleteEmpty", testWorkspaceDeleteEmpty},
	{"Workspace/DeleteNotEmptyWithoutForce", testWorkspaceDeleteNotEmpty},
	{"Workspace/DeleteForceCascades", testWorkspaceDeleteForce},
	{"CopyWorkspace/CopiesWithoutSecretValues", testCopyWorkspace},
	{"CopyWorkspace/TargetExists", testCopyWorkspaceTargetExists},
	{"CopyWorkspace/SourceMissing", testCopyWorkspaceSourceMissing},
	{"CopyWorkspace/FailureLeavesNothing", testCopyWorkspaceAtomic},
	{"PutCredential/Create", testPutCredentialCreate},
	{"PutCredential/UpdateReplacesSecrets", testPutCredentialUpdate},
	{"PutCredential/WrongVersionConflicts", testPutCredentialWrongVersion},
	{"PutCredential/UpdateMissingConflicts", testPutCredentialUpdateMissing},
	{"PutCredential/CreateExistingConflicts", testPutCredentialCreateExisting},
	{"PutCredential/WorkspaceMissing", testPutCredentialWorkspaceMissing},
	{"PutCredential/FailedWriteChangesNothing", testPutCredentialAtomic},
	{"GetCredential/NotFound", testGetCredentialNotFound},
	{"ListCredentials/PaginatesWithSecrets", testListCredentials},
	{"DeleteCredential/RemovesSecrets", testDeleteCredential},
	{"Meta/GetPut", testMeta},
	{"Sealed/Count", testCountSealed},
	{"Sealed/RewrapRewritesEverySealedBlob", testRewrap},
	{"Sealed/RewrapUnchangedWritesNothing", testRewrapUnchanged},
	{"Sealed/RewrapIsCompareAndSwap", testRewrapCompareAndSwap},
	{"Sealed/RewrapErrorWritesNothing", testRewrapError},
	{"Sealed/RewrapPaginates", testRewrapPaginates},
	{"Users/CreateAndLookUp", testUsersCreateAndLookUp},
	{"Users/DuplicateName", testUsersDuplicateName},
	{"Users/FailedKeyInsertCreatesNoUser", testUsersTransactional},
	{"Users/CreateAPIKey", testUsersCreateAPIKey},
	{"Users/TouchOnlyMovesForward", testUsersTouch},
	{"Open/ReopenIsIdempotent", testReopen},
	{"Open/ConcurrentFirstOpens", testConcurrentOpen},
	{"Keys/QuotaReservationsNeverExceedTheLimit", testQuotaReservations},
}

// TestStore is the store's conformance suite: every case runs against SQLite and
// PostgreSQL (skipped unless SESAME_TEST_POSTGRES is set), each on a fresh database.
func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range storeCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					t.Cleanup(cancel)
					loc := b.fresh(t)
					e := &env{ctx: ctx, b: b, loc: loc}
					if c.name != "Open/ConcurrentFirstOpens" {
						s, err := b.open(ctx, loc)
						if err != nil {
							t.Fatalf("open: %v", err)
						}
						t.Cleanup(func() { s.Close() })
						e.s = s
					}
					c.fn(t, e)
				})
			}
		})
	}
}

// --- fixtures and assertions ---

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code sesame.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := sesame.ErrorCode(err); got != code {
		t.Fatalf("got error %v (code %s), want code %s", err, got, code)
	}
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one matching %v", err, target)
	}
}

func createWorkspace(t *testing.T, e *env, name string) {
	t.Helper()
	must(t, e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: name, CreatedAt: t0}))
}

func secret(name string, blob string, ts time.Time) sesame.SealedField {
	var b []byte
	if blob != "" {
		b = []byte(blob)
	}
	return sesame.SealedField{Name: name, Blob: b, UpdatedAt: ts}
}

func record(ws, key string, secrets ...sesame.SealedField) sesame.CredentialRecord {
	return sesame.CredentialRecord{
		Workspace: ws,
		Key:       key,
		Type:      "api_key",
		Public:    map[string]any{"header": "X-Api-Key", "key": key, "n": 1.5, "on": true},
		Secrets:   secrets,
		CreatedAt: t0,
		UpdatedAt: t0,
	}
}

func put(t *testing.T, e *env, rec sesame.CredentialRecord, expect int64) int64 {
	t.Helper()
	v, err := e.s.PutCredential(e.ctx, rec, expect)
	if err != nil {
		t.Fatalf("PutCredential(%s/%s, %d): %v", rec.Workspace, rec.Key, expect, err)
	}
	return v
}

func get(t *testing.T, e *env, ws, key string) sesame.CredentialRecord {
	t.Helper()
	rec, err := e.s.GetCredential(e.ctx, ws, key)
	if err != nil {
		t.Fatalf("GetCredential(%s/%s): %v", ws, key, err)
	}
	return rec
}

// assertRecord compares everything but Version and the timestamps the caller checks.
func assertRecord(t *testing.T, got, want sesame.CredentialRecord) {
	t.Helper()
	if got.Workspace != want.Workspace || got.Key != want.Key || got.Type != want.Type {
		t.Errorf("record = %s/%s type %q, want %s/%s type %q", got.Workspace, got.Key, got.Type, want.Workspace, want.Key, want.Type)
	}
	if !reflect.DeepEqual(got.Public, want.Public) {
		t.Errorf("%s public = %v, want %v", want.Key, got.Public, want.Public)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s created/updated = %v/%v, want %v/%v", want.Key, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	assertSecrets(t, want.Key, got.Secrets, want.Secrets)
}

// assertSecrets compares sealed fields, which the store returns ordered by name.
func assertSecrets(t *testing.T, key string, got, want []sesame.SealedField) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d secrets %v, want %d %v", key, len(got), names(got), len(want), names(want))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || !bytes.Equal(g.Blob, w.Blob) || (g.Blob == nil) != (w.Blob == nil) || !g.UpdatedAt.Equal(w.UpdatedAt) {
			t.Errorf("%s secret %d = {%s %q nil=%v %v}, want {%s %q nil=%v %v}", key, i,
				g.Name, g.Blob, g.Blob == nil, g.UpdatedAt, w.Name, w.Blob, w.Blob == nil, w.UpdatedAt)
		}
	}
}

func names(fs []sesame.SealedField) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

func workspaceNames(ws []sesame.Workspace) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Name)
	}
	return out
}

func credentialKeys(recs []sesame.CredentialRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Key)
	}
	return out
}

func secretRows(t *testing.T, e *env, ws string) int {
	t.Helper()
	return e.count(t, `SELECT COUNT(*) FROM credential_secrets WHERE workspace = $1`, ws)
}

// --- workspaces ---

func testWorkspaceCreateAndGet(t *testing.T, e *env) {
	must(t, e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: "team-a", CreatedAt: at(5)}))
	ws, err := e.s.GetWorkspace(e.ctx, "team-a")
	must(t, err)
	if ws.Name != "team-a" || !ws.CreatedAt.Equal(at(5)) {
		t.Fatalf("GetWorkspace = %+v, want team-a created %v", ws, at(5))
	}
}

func testWorkspaceCreateDuplicate(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	err := e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: "a", CreatedAt: at(1)})
	wantIs(t, err, sesame.ErrAlreadyExists)
	ws, err := e.s.GetWorkspace(e.ctx, "a")
	must(t, err)
	if !ws.CreatedAt.Equal(t0) {
		t.Fatalf("duplicate create changed created_at to %v", ws.CreatedAt)
	}
}

func testWorkspaceGetNotFound(t *testing.T, e *env) {
	_, err := e.s.GetWorkspace(e.ctx, "nope")
	wantIs(t, err, sesame.ErrNotFound)
}

func testWorkspaceListPaginates(t *testing.T, e *env) {
	ws, err := e.s.ListWorkspaces(e.ctx, "", 10)
	must(t, err)
	if len(ws) != 0 {
		t.Fatalf("empty store lists %v", workspaceNames(ws))
	}
	// Created out of order; listed by name.
	for _, n := range []string{"w3", "w1", "w5", "w0", "w4", "w2"} {
		createWorkspace(t, e, n)
	}
	var pages [][]string
	after := ""
	for i := 0; i < 10; i++ {
		ws, err := e.s.ListWorkspaces(e.ctx, after, 4)
		must(t, err)
		if len(ws) == 0 {
			break
		}
		for _, w := range ws {
			if !w.CreatedAt.Equal(t0) {
				t.Errorf("%s created %v, want %v", w.Name, w.CreatedAt, t0)
			}
		}
		pages = append(pages, workspaceNames(ws))
		after = ws[len(ws)-1].Name
	}
	want := [][]string{{"w0", "w1", "w2", "w3"}, {"w4", "w5"}}
	if !reflect.DeepEqual(pages, want) {
		t.Fatalf("pages = %v, want %v", pages, want)
	}
	ws, err = e.s.ListWorkspaces(e.ctx, "w1", 2)
	must(t, err)
	if got := workspaceNames(ws); !reflect.DeepEqual(got, []string{"w2", "w3"}) {
		t.Fatalf("after w1 limit 2 = %v, want [w2 w3]", got)
	}
	ws, err = e.s.ListWorkspaces(e.ctx, "w15", 10) // a cursor that is not a name
	must(t, err)
	if got := workspaceNames(ws); !reflect.DeepEqual(got, []string{"w2", "w3", "w4", "w5"}) {
		t.Fatalf("after w15 = %v, want [w2 w3 w4 w5]", got)
	}
}

func testWorkspaceDeleteNotFound(t *testing.T, e *env) {
	for _, force := range []bool{false, true} {
		err := e.s.DeleteWorkspace(e.ctx, "nope", force)
		wantCode(t, err, sesame.CodeNotFound)
		wantIs(t, err, sesame.ErrNotFound)
	}
}

func testWorkspaceDeleteEmpty(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	createWorkspace(t, e, "b")
	must(t, e.s.DeleteWorkspace(e.ctx, "a", false))
	_, err := e.s.GetWorkspace(e.ctx, "a")
	wantIs(t, err, sesame.ErrNotFound)
	if _, err := e.s.GetWorkspace(e.ctx, "b"); err != nil {
		t.Fatalf("deleting a touched b: %v", err)
	}
}

func testWorkspaceDeleteNotEmpty(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	put(t, e, record("a", "k1", secret("token", "blob-1", t0)), 0)
	err := e.s.DeleteWorkspace(e.ctx, "a", false)
	wantCode(t, err, sesame.CodeNotEmpty)
	if _, err := e.s.GetWorkspace(e.ctx, "a"); err != nil {
		t.Fatalf("refused delete removed the workspace: %v", err)
	}
	assertRecord(t, get(t, e, "a", "k1"), record("a", "k1", secret("token", "blob-1", t0)))
}

func testWorkspaceDeleteForce(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	createWorkspace(t, e, "b")
	put(t, e, record("a", "k1", secret("password", "p", t0), secret("token", "t", t0)), 0)
	put(t, e, record("a", "k2", secret("token", "t2", t0)), 0)
	put(t, e, record("b", "k1", secret("token", "other", t0)), 0)

	must(t, e.s.DeleteWorkspace(e.ctx, "a", true))
	_, err := e.s.GetWorkspace(e.ctx, "a")
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.GetCredential(e.ctx, "a", "k1")
	wantIs(t, err, sesame.ErrNotFound)
	if n := e.count(t, `SELECT COUNT(*) FROM credentials WHERE workspace = 'a'`); n != 0 {
		t.Errorf("%d credential rows left in a", n)
	}
	if n := secretRows(t, e, "a"); n != 0 {
		t.Errorf("%d secret rows left in a", n)
	}
	assertRecord(t, get(t, e, "b", "k1"), record("b", "k1", secret("token", "other", t0)))

	// The name is free again and the new workspace starts empty.
	createWorkspace(t, e, "a")
	recs, err := e.s.ListCredentials(e.ctx, "a", "", 10)
	must(t, err)
	if len(recs) != 0 {
		t.Fatalf("recreated workspace holds %v", credentialKeys(recs))
	}
}

// --- CopyWorkspace ---

func testCopyWorkspace(t *testing.T, e *env) {
	createWorkspace(t, e, "src")
	a := record("src", "a", secret("password", "pw", at(1)), secret("token", "tk", at(2)))
	a.Type = "basic"
	b := record("src", "b")
	b.Public = map[string]any{"url": "https://example.com", "scopes": []any{"x", "y"}}
	put(t, e, a, 0)
	v := put(t, e, b, 0)
	put(t, e, b, v) // version 2 in the source; the copy starts at 1

	now := at(30)
	must(t, e.s.CopyWorkspace(e.ctx, "src", "dst", now))
	ws, err := e.s.GetWorkspace(e.ctx, "dst")
	must(t, err)
	if !ws.CreatedAt.Equal(now) {
		t.Errorf("dst created %v, want %v", ws.CreatedAt, now)
	}
	recs, err := e.s.ListCredentials(e.ctx, "dst", "", 10)
	must(t, err)
	if got := credentialKeys(recs); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("dst holds %v, want [a b]", got)
	}
	wantA := a
	wantA.Workspace, wantA.CreatedAt, wantA.UpdatedAt = "dst", now, now
	wantA.Secrets = []sesame.SealedField{secret("password", "", now), secret("token", "", now)}
	assertRecord(t, recs[0], wantA)
	wantB := b
	wantB.Workspace, wantB.CreatedAt, wantB.UpdatedAt = "dst", now, now
	assertRecord(t, recs[1], wantB)
	for _, r := range recs {
		if r.Version != 1 {
			t.Errorf("dst/%s version %d, want 1", r.Key, r.Version)
		}
	}
	got := get(t, e, "dst", "a")
	if s, ok := got.Secret("password"); !ok || s.Blob != nil {
		t.Errorf("dst/a password = %+v, %v; want present with nil blob", s, ok)
	}

	// The source is untouched.
	assertRecord(t, get(t, e, "src", "a"), a)
	if n := secretRows(t, e, "dst"); n != 2 {
		t.Errorf("dst has %d secret rows, want 2", n)
	}
}

func testCopyWorkspaceTargetExists(t *testing.T, e *env) {
	createWorkspace(t, e, "src")
	createWorkspace(t, e, "dst")
	put(t, e, record("src", "a", secret("token", "t", t0)), 0)
	put(t, e, record("dst", "z", secret("token", "z", t0)), 0)

	err := e.s.CopyWorkspace(e.ctx, "src", "dst", at(1))
	wantCode(t, err, sesame.CodeAlreadyExists)
	wantIs(t, err, sesame.ErrAlreadyExists)
	recs, err := e.s.ListCredentials(e.ctx, "dst", "", 10)
	must(t, err)
	if got := credentialKeys(recs); !reflect.DeepEqual(got, []string{"z"}) {
		t.Fatalf("dst holds %v after refused copy, want [z]", got)
	}
	ws, err := e.s.GetWorkspace(e.ctx, "dst")
	must(t, err)
	if !ws.CreatedAt.Equal(t0) {
		t.Errorf("refused copy changed dst created_at to %v", ws.CreatedAt)
	}
	wantCode(t, e.s.CopyWorkspace(e.ctx, "src", "src", at(1)), sesame.CodeAlreadyExists)
}

func testCopyWorkspaceSourceMissing(t *testing.T, e *env) {
	err := e.s.CopyWorkspace(e.ctx, "nope", "dst", at(1))
	wantCode(t, err, sesame.CodeNotFound)
	wantIs(t, err, sesame.ErrNotFound)
	_, err = e.s.GetWorkspace(e.ctx, "dst")
	wantIs(t, err, sesame.ErrNotFound)
}

func testCopyWorkspaceAtomic(t *testing.T, e *env) {
	createWorkspace(t, e, "src")
	put(t, e, record("src", "a", secret("token", "t", t0)), 0)
	// The last statement of the copy fails: the workspace and credential rows that the
	// earlier statements wrote must go too.
	e.b.failSecretInserts(t, e.raw(t), "boom")

	if err := e.s.CopyWorkspace(e.ctx, "src", "boom", at(1)); err == nil {
		t.Fatal("copy succeeded despite the injected failure")
	}
	_, err := e.s.GetWorkspace(e.ctx, "boom")
	wantIs(t, err, sesame.ErrNotFound)
	if n := e.count(t, `SELECT COUNT(*) FROM credentials WHERE workspace = 'boom'`); n != 0 {
		t.Fatalf("failed copy left %d credential rows", n)
	}
	// The store still works afterwards.
	must(t, e.s.CopyWorkspace(e.ctx, "src", "ok", at(1)))
}

// --- credentials ---

func testPutCredentialCreate(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	rec := record("a", "google.oauth", secret("token", "tk", at(1)), secret("client_secret", "cs", at(2)))
	if v := put(t, e, rec, 0); v != 1 {
		t.Fatalf("create returned version %d, want 1", v)
	}
	got := get(t, e, "a", "google.oauth")
	if got.Version != 1 {
		t.Errorf("version %d, want 1", got.Version)
	}
	want := rec
	want.Secrets = []sesame.SealedField{secret("client_secret", "cs", at(2)), secret("token", "tk", at(1))} // by name
	assertRecord(t, got, want)
}

func testPutCredentialUpdate(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	put(t, e, record("a", "k", secret("password", "old-pw", t0), secret("user", "old-user", t0)), 0)

	upd := record("a", "k", secret("password", "new-pw", at(5)), secret("extra", "", at(5)))
	upd.Type = "basic"
	upd.Public = map[string]any{"realm": "r"}
	upd.CreatedAt = at(99) // ignored on update
	upd.UpdatedAt = at(5)
	if v := put(t, e, upd, 1); v != 2 {
		t.Fatalf("update returned version %d, want 2", v)
	}
	got := get(t, e, "a", "k")
	if got.Version != 2 {
		t.Errorf("version %d, want 2", got.Version)
	}
	want := upd
	want.CreatedAt = t0
	want.Secrets = []sesame.SealedField{secret("extra", "", at(5)), secret("password", "new-pw", at(5))}
	assertRecord(t, got, want)
	if v := put(t, e, upd, 2); v != 3 {
		t.Fatalf("second update returned version %d, want 3", v)
	}
}

func testPutCredentialWrongVersion(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	orig := record("a", "k", secret("token", "v1", t0))
	put(t, e, orig, 0)
	v2 := record("a", "k", secret("token", "v2", at(1)))
	v2.UpdatedAt = at(1)
	put(t, e, v2, 1)

	for _, expect := range []int64{1, 3, 42} {
		bad := record("a", "k", secret("token", "lost", at(2)))
		bad.Type = "changed"
		bad.UpdatedAt = at(2)
		_, err := e.s.PutCredential(e.ctx, bad, expect)
		wantIs(t, err, sesame.ErrConflict)
		got := get(t, e, "a", "k")
		if got.Version != 2 {
			t.Errorf("expect %d: version %d after conflict, want 2", expect, got.Version)
		}
		assertRecord(t, got, v2)
	}
}

func testPutCredentialUpdateMissing(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	_, err := e.s.PutCredential(e.ctx, record("a", "k", secret("token", "t", t0)), 1)
	wantIs(t, err, sesame.ErrConflict)
	_, err = e.s.GetCredential(e.ctx, "a", "k")
	wantIs(t, err, sesame.ErrNotFound)
	if n := secretRows(t, e, "a"); n != 0 {
		t.Fatalf("conflicting update left %d secret rows", n)
	}
}

func testPutCredentialCreateExisting(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	orig := record("a", "k", secret("token", "first", t0))
	put(t, e, orig, 0)
	second := record("a", "k", secret("token", "second", at(1)), secret("other", "x", at(1)))
	second.Type = "bearer"
	_, err := e.s.PutCredential(e.ctx, second, 0)
	wantCode(t, err, sesame.CodeConflict)
	wantIs(t, err, sesame.ErrConflict)
	got := get(t, e, "a", "k")
	if got.Version != 1 {
		t.Errorf("version %d, want 1", got.Version)
	}
	assertRecord(t, got, orig)
}

func testPutCredentialWorkspaceMissing(t *testing.T, e *env) {
	for _, expect := range []int64{0, 1} {
		_, err := e.s.PutCredential(e.ctx, record("nope", "k", secret("token", "t", t0)), expect)
		wantCode(t, err, sesame.CodeNotFound)
		wantIs(t, err, sesame.ErrNotFound)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM credentials`); n != 0 {
		t.Fatalf("%d credential rows written", n)
	}
}

// A secret insert that fails (here: a duplicate field name) must undo the credential row
// and, on update, the deletion of the old secrets.
func testPutCredentialAtomic(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	dup := record("a", "new", secret("token", "x", t0), secret("token", "y", t0))
	if _, err := e.s.PutCredential(e.ctx, dup, 0); err == nil {
		t.Fatal("create with a duplicate secret field succeeded")
	}
	_, err := e.s.GetCredential(e.ctx, "a", "new")
	wantIs(t, err, sesame.ErrNotFound)

	orig := record("a", "k", secret("password", "pw", t0), secret("token", "tk", t0))
	put(t, e, orig, 0)
	bad := record("a", "k", secret("token", "x", at(1)), secret("token", "y", at(1)))
	bad.Type = "changed"
	bad.UpdatedAt = at(1)
	if _, err := e.s.PutCredential(e.ctx, bad, 1); err == nil {
		t.Fatal("update with a duplicate secret field succeeded")
	}
	got := get(t, e, "a", "k")
	if got.Version != 1 {
		t.Errorf("version %d after failed update, want 1", got.Version)
	}
	assertRecord(t, got, orig)
}

func testGetCredentialNotFound(t *testing.T, e *env) {
	_, err := e.s.GetCredential(e.ctx, "nope", "k")
	wantIs(t, err, sesame.ErrNotFound)
	createWorkspace(t, e, "a")
	createWorkspace(t, e, "b")
	put(t, e, record("b", "k"), 0)
	_, err = e.s.GetCredential(e.ctx, "a", "k")
	wantIs(t, err, sesame.ErrNotFound)
	wantCode(t, err, sesame.CodeNotFound)
}

func testListCredentials(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	createWorkspace(t, e, "b")
	recs, err := e.s.ListCredentials(e.ctx, "a", "", 10)
	must(t, err)
	if len(recs) != 0 {
		t.Fatalf("empty workspace lists %v", credentialKeys(recs))
	}
	want := map[string]sesame.CredentialRecord{}
	for _, k := range []string{"k3", "k0", "k4", "k1", "k2", "k5"} {
		var secrets []sesame.SealedField
		switch k {
		case "k0", "k2", "k4": // two fields each, blobs naming their owner
			secrets = []sesame.SealedField{secret("f1", "a/"+k+"/f1", t0), secret("f2", "a/"+k+"/f2", t0)}
		case "k3":
			secrets = []sesame.SealedField{secret("f1", "", t0)}
		}
		rec := record("a", k, secrets...)
		put(t, e, rec, 0)
		want[k] = rec
		// The same keys in another workspace must not leak into a's page.
		put(t, e, record("b", k, secret("f1", "b/"+k, t0), secret("f0", "b/"+k, t0)), 0)
	}
	put(t, e, record("b", "k25", secret("f1", "b/k25", t0)), 0)

	var pages [][]string
	after := ""
	for i := 0; i < 10; i++ {
		recs, err := e.s.ListCredentials(e.ctx, "a", after, 2)
		must(t, err)
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			assertRecord(t, r, want[r.Key])
			if r.Version != 1 {
				t.Errorf("%s version %d, want 1", r.Key, r.Version)
			}
		}
		pages = append(pages, credentialKeys(recs))
		after = recs[len(recs)-1].Key
	}
	wantPages := [][]string{{"k0", "k1"}, {"k2", "k3"}, {"k4", "k5"}}
	if !reflect.DeepEqual(pages, wantPages) {
		t.Fatalf("pages = %v, want %v", pages, wantPages)
	}
	recs, err = e.s.ListCredentials(e.ctx, "a", "k15", 3)
	must(t, err)
	if got := credentialKeys(recs); !reflect.DeepEqual(got, []string{"k2", "k3", "k4"}) {
		t.Fatalf("after k15 limit 3 = %v", got)
	}
	for _, r := range recs {
		assertRecord(t, r, want[r.Key])
	}
	recs, err = e.s.ListCredentials(e.ctx, "nope", "", 10)
	must(t, err)
	if len(recs) != 0 {
		t.Fatalf("missing workspace lists %v", credentialKeys(recs))
	}
}

func testDeleteCredential(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	put(t, e, record("a", "k", secret("password", "pw", t0), secret("token", "tk", t0)), 0)
	put(t, e, record("a", "other", secret("token", "keep", t0)), 0)

	must(t, e.s.DeleteCredential(e.ctx, "a", "k", false))
	_, err := e.s.GetCredential(e.ctx, "a", "k")
	wantIs(t, err, sesame.ErrNotFound)
	if n := e.count(t, `SELECT COUNT(*) FROM credential_secrets WHERE workspace = 'a' AND cred_key = 'k'`); n != 0 {
		t.Fatalf("%d secret rows left after delete", n)
	}
	assertRecord(t, get(t, e, "a", "other"), record("a", "other", secret("token", "keep", t0)))

	err = e.s.DeleteCredential(e.ctx, "a", "k", false)
	wantCode(t, err, sesame.CodeNotFound)
	wantCode(t, e.s.DeleteCredential(e.ctx, "nope", "k", false), sesame.CodeNotFound)

	// Re-created under the same key, it starts over with only its own secrets.
	fresh := record("a", "k", secret("token", "new", at(1)))
	if v := put(t, e, fresh, 0); v != 1 {
		t.Fatalf("re-create returned version %d, want 1", v)
	}
	assertRecord(t, get(t, e, "a", "k"), fresh)
}

// --- meta ---

func testMeta(t *testing.T, e *env) {
	_, err := e.s.GetMeta(e.ctx, "check")
	wantIs(t, err, sesame.ErrNotFound)

	must(t, e.s.PutMeta(e.ctx, "check", []byte("sealed-1"), true))
	must(t, e.s.PutMeta(e.ctx, "plain", []byte{0, 1, 2, 255}, false))
	v, err := e.s.GetMeta(e.ctx, "check")
	must(t, err)
	if !bytes.Equal(v, []byte("sealed-1")) {
		t.Fatalf("GetMeta = %q", v)
	}
	v, err = e.s.GetMeta(e.ctx, "plain")
	must(t, err)
	if !bytes.Equal(v, []byte{0, 1, 2, 255}) {
		t.Fatalf("GetMeta(plain) = %v", v)
	}

	err = e.s.PutMeta(e.ctx, "check", []byte("sealed-2"), true)
	wantIs(t, err, sesame.ErrAlreadyExists)
	v, err = e.s.GetMeta(e.ctx, "check")
	must(t, err)
	if !bytes.Equal(v, []byte("sealed-1")) {
		t.Fatalf("second PutMeta overwrote the value: %q", v)
	}
}

// --- sealed blobs ---

func testCountSealed(t *testing.T, e *env) {
	count := func(want int) {
		t.Helper()
		n, err := e.s.CountSealed(e.ctx)
		must(t, err)
		if n != want {
			t.Fatalf("CountSealed = %d, want %d", n, want)
		}
	}
	count(0)
	must(t, e.s.PutMeta(e.ctx, "sealed", []byte("s"), true))
	must(t, e.s.PutMeta(e.ctx, "plain", []byte("p"), false))
	count(1)
	createWorkspace(t, e, "a")
	put(t, e, record("a", "k", secret("a", "1", t0), secret("b", "2", t0), secret("missing", "", t0)), 0)
	count(3)
	must(t, e.s.CopyWorkspace(e.ctx, "a", "copy", at(1))) // copies only NULL blobs
	count(3)
	must(t, e.s.DeleteCredential(e.ctx, "a", "k", false))
	count(1)
}

// rewrapFixture fills the store with sealed and unsealed values and returns the sealed
// blobs by location.
func rewrapFixture(t *testing.T, e *env) map[string][]byte {
	must(t, e.s.PutMeta(e.ctx, "sealed-1", []byte("meta-1"), true))
	must(t, e.s.PutMeta(e.ctx, "sealed-2", []byte("meta-2"), true))
	must(t, e.s.PutMeta(e.ctx, "plain", []byte("meta-plain"), false))
	createWorkspace(t, e, "a")
	createWorkspace(t, e, "b")
	put(t, e, record("a", "k1", secret("password", "a-k1-pw", t0), secret("token", "a-k1-tk", t0)), 0)
	put(t, e, record("a", "k2", secret("token", "a-k2-tk", t0), secret("missing", "", t0)), 0)
	put(t, e, record("b", "k1", secret("token", "b-k1-tk", t0)), 0)
	put(t, e, record("b", "empty"), 0)
	return map[string][]byte{
		"meta/sealed-1": []byte("meta-1"),
		"meta/sealed-2": []byte("meta-2"),
		"a/k1/password": []byte("a-k1-pw"),
		"a/k1/token":    []byte("a-k1-tk"),
		"a/k2/token":    []byte("a-k2-tk"),
		"b/k1/token":    []byte("b-k1-tk"),
	}
}

// snapshot reads every stored blob, sealed or not, by location.
func snapshot(t *testing.T, e *env) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{"sealed-1", "sealed-2", "plain"} {
		v, err := e.s.GetMeta(e.ctx, name)
		must(t, err)
		out["meta/"+name] = v
	}
	for _, ws := range []string{"a", "b"} {
		recs, err := e.s.ListCredentials(e.ctx, ws, "", 100)
		must(t, err)
		for _, r := range recs {
			for _, f := range r.Secrets {
				out[ws+"/"+r.Key+"/"+f.Name] = f.Blob
			}
		}
	}
	return out
}

func appendByte(b []byte) []byte { return append(bytes.Clone(b), 0xA5) }

func testRewrap(t *testing.T, e *env) {
	sealed := rewrapFixture(t, e)
	var mu sync.Mutex
	seen := map[string]int{}
	n, err := e.s.RewrapSealed(e.ctx, func(blob []byte) ([]byte, bool, error) {
		mu.Lock()
		seen[string(blob)]++
		mu.Unlock()
		return appendByte(blob), true, nil
	})
	must(t, err)
	if n != len(sealed) {
		t.Errorf("RewrapSealed = %d, want %d", n, len(sealed))
	}
	want := map[string]int{}
	for _, b := range sealed {
		want[string(b)] = 1
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("rewrapper saw %v, want each sealed blob once: %v", seen, want)
	}

	got := snapshot(t, e)
	for loc, b := range sealed {
		if !bytes.Equal(got[loc], appendByte(b)) {
			t.Errorf("%s = %q, want %q", loc, got[loc], appendByte(b))
		}
	}
	if !bytes.Equal(got["meta/plain"], []byte("meta-plain")) {
		t.Errorf("unsealed meta changed to %q", got["meta/plain"])
	}
	if b, ok := got["a/k2/missing"]; !ok || b != nil {
		t.Errorf("nil blob became %q (present %v)", b, ok)
	}
	// Rewrapping does not touch versions: it is not an edit.
	if r := get(t, e, "a", "k1"); r.Version != 1 {
		t.Errorf("a/k1 version %d after rewrap, want 1", r.Version)
	}
	if c, err := e.s.CountSealed(e.ctx); err != nil || c != len(sealed) {
		t.Errorf("CountSealed = %d, %v; want %d", c, err, len(sealed))
	}
}

func testRewrapUnchanged(t *testing.T, e *env) {
	rewrapFixture(t, e)
	before := snapshot(t, e)
	calls := 0
	n, err := e.s.RewrapSealed(e.ctx, func(blob []byte) ([]byte, bool, error) {
		calls++
		return []byte("must not be written"), false, nil
	})
	must(t, err)
	if n != 0 {
		t.Errorf("RewrapSealed = %d, want 0", n)
	}
	if calls != 6 {
		t.Errorf("rewrapper called %d times, want 6", calls)
	}
	if after := snapshot(t, e); !reflect.DeepEqual(after, before) {
		t.Errorf("store changed:\n got %q\nwant %q", after, before)
	}
}

// A blob replaced between the walk's read and its write is newer than the walk; the walk
// must leave it alone rather than overwrite it with a rewrap of the old value.
func testRewrapCompareAndSwap(t *testing.T, e *env) {
	sealed := rewrapFixture(t, e)
	fresh := record("b", "k1", secret("token", "written-during-rewrap", at(1)))
	fresh.UpdatedAt = at(1)
	raced := false
	n, err := e.s.RewrapSealed(e.ctx, func(blob []byte) ([]byte, bool, error) {
		if string(blob) == "b-k1-tk" && !raced {
			raced = true
			if _, err := e.s.PutCredential(e.ctx, fresh, 1); err != nil {
				return nil, false, fmt.Errorf("concurrent write: %w", err)
			}
		}
		return appendByte(blob), true, nil
	})
	must(t, err)
	if !raced {
		t.Fatal("rewrapper never saw b/k1/token")
	}
	// The raced blob counts although its write lost: a caller loops until a pass counts
	// 0, and the next pass reads what the concurrent writer stored.
	if n != len(sealed) {
		t.Errorf("RewrapSealed = %d, want %d (every blob the rewrapper changed)", n, len(sealed))
	}
	got := get(t, e, "b", "k1")
	if got.Version != 2 {
		t.Errorf("b/k1 version %d, want 2", got.Version)
	}
	assertRecord(t, got, fresh)
	after := snapshot(t, e)
	for loc, b := range sealed {
		if loc == "b/k1/token" {
			continue
		}
		if !bytes.Equal(after[loc], appendByte(b)) {
			t.Errorf("%s = %q, want %q", loc, after[loc], appendByte(b))
		}
	}
}

func testRewrapError(t *testing.T, e *env) {
	rewrapFixture(t, e)
	before := snapshot(t, e)
	boom := errors.New("boom")
	_, err := e.s.RewrapSealed(e.ctx, func(blob []byte) ([]byte, bool, error) {
		if string(blob) == "a-k2-tk" {
			return nil, false, boom
		}
		return appendByte(blob), true, nil
	})
	wantIs(t, err, boom)
	// Meta is walked first and its batch committed; the secrets batch holding the failing
	// blob is not written at all.
	after := snapshot(t, e)
	for loc, b := range before {
		if loc == "meta/sealed-1" || loc == "meta/sealed-2" {
			continue
		}
		if !bytes.Equal(after[loc], b) {
			t.Errorf("%s = %q after a failed rewrap, want unchanged %q", loc, after[loc], b)
		}
	}
}

// More blobs than one batch, in a table with a one-column key and one with a three-column
// key, so the walk's keyset cursor is exercised.
func testRewrapPaginates(t *testing.T, e *env) {
	const metas, fields = 230, 450
	for i := 0; i < metas; i++ {
		must(t, e.s.PutMeta(e.ctx, fmt.Sprintf("m%03d", i), []byte(fmt.Sprintf("meta-%d", i)), i%2 == 0))
	}
	createWorkspace(t, e, "a")
	createWorkspace(t, e, "b")
	var secrets []sesame.SealedField
	for i := 0; i < fields; i++ {
		secrets = append(secrets, secret(fmt.Sprintf("f%03d", i), fmt.Sprintf("blob-%d", i), t0))
	}
	put(t, e, record("a", "big", secrets...), 0)
	put(t, e, record("a", "c", secret("x", "a-c-x", t0)), 0)
	put(t, e, record("b", "big", secret("f000", "b-big", t0)), 0)

	calls := 0
	n, err := e.s.RewrapSealed(e.ctx, func(blob []byte) ([]byte, bool, error) {
		calls++
		return appendByte(blob), true, nil
	})
	must(t, err)
	want := metas/2 + fields + 2
	if n != want || calls != want {
		t.Fatalf("RewrapSealed = %d with %d calls, want %d", n, calls, want)
	}
	rec := get(t, e, "a", "big")
	for i, f := range rec.Secrets {
		if w := appendByte([]byte(fmt.Sprintf("blob-%d", i))); !bytes.Equal(f.Blob, w) {
			t.Fatalf("a/big/%s = %q, want %q", f.Name, f.Blob, w)
		}
	}
	for i := 0; i < metas; i++ {
		v, err := e.s.GetMeta(e.ctx, fmt.Sprintf("m%03d", i))
		must(t, err)
		w := []byte(fmt.Sprintf("meta-%d", i))
		if i%2 == 0 {
			w = appendByte(w)
		}
		if !bytes.Equal(v, w) {
			t.Fatalf("m%03d = %q, want %q", i, v, w)
		}
	}
}

// --- users and API keys ---

func user(id, name string) sesame.User {
	return sesame.User{ID: id, Name: name, CreatedAt: t0}
}

func apiKey(id, userID, hash string) sesame.APIKey {
	return sesame.APIKey{ID: id, UserID: userID, Name: "key " + id, Hash: []byte(hash), CreatedAt: t0}
}

func countUsers(t *testing.T, e *env, want int) {
	t.Helper()
	n, err := e.s.CountUsers(e.ctx)
	must(t, err)
	if n != want {
		t.Fatalf("CountUsers = %d, want %d", n, want)
	}
}

func testUsersCreateAndLookUp(t *testing.T, e *env) {
	countUsers(t, e, 0)
	exp := at(60 * 24)
	u := user("u1", "alice@example.com")
	u.Disabled = true
	k := apiKey("k1", "u1", "hash-1")
	k.ExpiresAt = &exp
	must(t, e.s.CreateUserWithKey(e.ctx, u, k))
	countUsers(t, e, 1)

	gk, gu, err := e.s.APIKeyByHash(e.ctx, []byte("hash-1"))
	must(t, err)
	if gu.ID != "u1" || gu.Name != "alice@example.com" || !gu.Disabled || !gu.CreatedAt.Equal(t0) {
		t.Errorf("user = %+v", gu)
	}
	if gk.ID != "k1" || gk.UserID != "u1" || gk.Name != "key k1" || !bytes.Equal(gk.Hash, []byte("hash-1")) || !gk.CreatedAt.Equal(t0) {
		t.Errorf("key = %+v", gk)
	}
	if gk.ExpiresAt == nil || !gk.ExpiresAt.Equal(exp) || gk.RevokedAt != nil || gk.LastUsedAt != nil {
		t.Errorf("key times: expires %v revoked %v last used %v", gk.ExpiresAt, gk.RevokedAt, gk.LastUsedAt)
	}

	_, _, err = e.s.APIKeyByHash(e.ctx, []byte("hash-2"))
	wantIs(t, err, sesame.ErrNotFound)
	_, _, err = e.s.APIKeyByHash(e.ctx, []byte("hash-")) // a prefix is not a match
	wantIs(t, err, sesame.ErrNotFound)
}

func testUsersDuplicateName(t *testing.T, e *env) {
	must(t, e.s.CreateUserWithKey(e.ctx, user("u1", "alice"), apiKey("k1", "u1", "h1")))
	err := e.s.CreateUserWithKey(e.ctx, user("u2", "alice"), apiKey("k2", "u2", "h2"))
	wantIs(t, err, sesame.ErrAlreadyExists)
	countUsers(t, e, 1)
	_, _, err = e.s.APIKeyByHash(e.ctx, []byte("h2"))
	wantIs(t, err, sesame.ErrNotFound)
	err = e.s.CreateUserWithKey(e.ctx, user("u1", "bob"), apiKey("k3", "u1", "h3"))
	wantIs(t, err, sesame.ErrAlreadyExists)
	countUsers(t, e, 1)
}

// The user row is written first; when the key that follows fails, the user must go too.
func testUsersTransactional(t *testing.T, e *env) {
	must(t, e.s.CreateUserWithKey(e.ctx, user("u1", "alice"), apiKey("k1", "u1", "h1")))

	err := e.s.CreateUserWithKey(e.ctx, user("u2", "bob"), apiKey("k2", "u2", "h1")) // hash taken
	wantIs(t, err, sesame.ErrAlreadyExists)
	countUsers(t, e, 1)
	err = e.s.CreateUserWithKey(e.ctx, user("u3", "carol"), apiKey("k1", "u3", "h3")) // key ID taken
	wantIs(t, err, sesame.ErrAlreadyExists)
	countUsers(t, e, 1)
	err = e.s.CreateUserWithKey(e.ctx, user("u4", "dave"), apiKey("k4", "ghost", "h4")) // no such user
	if err == nil {
		t.Fatal("key for a missing user was accepted")
	}
	countUsers(t, e, 1)
	if n := e.count(t, `SELECT COUNT(*) FROM users WHERE name IN ('bob', 'carol', 'dave')`); n != 0 {
		t.Fatalf("%d users left behind by failed creates", n)
	}
	// The names are still free.
	must(t, e.s.CreateUserWithKey(e.ctx, user("u2", "bob"), apiKey("k2", "u2", "h2")))
	countUsers(t, e, 2)
}

func testUsersCreateAPIKey(t *testing.T, e *env) {
	must(t, e.s.CreateUserWithKey(e.ctx, user("u1", "alice"), apiKey("k1", "u1", "h1")))
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k2", "u1", "h2")))
	k, u, err := e.s.APIKeyByHash(e.ctx, []byte("h2"))
	must(t, err)
	if k.ID != "k2" || u.ID != "u1" {
		t.Fatalf("h2 -> key %s user %s", k.ID, u.ID)
	}
	wantIs(t, e.s.CreateAPIKey(e.ctx, apiKey("k3", "u1", "h1")), sesame.ErrAlreadyExists)
	wantIs(t, e.s.CreateAPIKey(e.ctx, apiKey("k4", "ghost", "h4")), sesame.ErrNotFound)
	_, _, err = e.s.APIKeyByHash(e.ctx, []byte("h4"))
	wantIs(t, err, sesame.ErrNotFound)
}

func testUsersTouch(t *testing.T, e *env) {
	must(t, e.s.CreateUserWithKey(e.ctx, user("u1", "alice"), apiKey("k1", "u1", "h1")))
	must(t, e.s.CreateAPIKey(e.ctx, apiKey("k2", "u1", "h2")))
	lastUsed := func(hash string) *time.Time {
		t.Helper()
		k, _, err := e.s.APIKeyByHash(e.ctx, []byte(hash))
		must(t, err)
		return k.LastUsedAt
	}
	check := func(hash string, want time.Time) {
		t.Helper()
		if got := lastUsed(hash); got == nil || !got.Equal(want) {
			t.Fatalf("%s last used %v, want %v", hash, got, want)
		}
	}

	must(t, e.s.TouchAPIKeys(e.ctx, nil))
	if got := lastUsed("h1"); got != nil {
		t.Fatalf("untouched key last used %v", got)
	}
	must(t, e.s.TouchAPIKeys(e.ctx, map[string]time.Time{"k1": at(10), "k2": at(20), "ghost": at(30)}))
	check("h1", at(10))
	check("h2", at(20))
	must(t, e.s.TouchAPIKeys(e.ctx, map[string]time.Time{"k1": at(5), "k2": at(25)})) // k1 goes back: ignored
	check("h1", at(10))
	check("h2", at(25))
	must(t, e.s.TouchAPIKeys(e.ctx, map[string]time.Time{"k1": at(10)})) // same time: no change
	check("h1", at(10))
	must(t, e.s.TouchAPIKeys(e.ctx, map[string]time.Time{"k1": at(11)}))
	check("h1", at(11))
}

// --- opening ---

func testReopen(t *testing.T, e *env) {
	createWorkspace(t, e, "a")
	put(t, e, record("a", "k", secret("token", "t", t0)), 0)
	must(t, e.s.PutMeta(e.ctx, "m", []byte("v"), true))
	migrations := e.count(t, `SELECT COUNT(*) FROM schema_migrations`)

	s2 := e.reopen(t) // while the first store is still open
	assertRecord(t, func() sesame.CredentialRecord {
		r, err := s2.GetCredential(e.ctx, "a", "k")
		must(t, err)
		return r
	}(), record("a", "k", secret("token", "t", t0)))
	must(t, e.s.Close())
	must(t, s2.Close())

	s3 := e.reopen(t) // after both are closed
	v, err := s3.GetMeta(e.ctx, "m")
	must(t, err)
	if string(v) != "v" {
		t.Fatalf("meta after reopen = %q", v)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM schema_migrations`); n != migrations {
		t.Fatalf("schema_migrations has %d rows after reopening, had %d", n, migrations)
	}
	if migrations == 0 {
		t.Fatal("no migrations recorded")
	}
	if s3.Dialect() != e.b.name {
		t.Fatalf("Dialect = %q, want %q", s3.Dialect(), e.b.name)
	}
	must(t, s3.Ping(e.ctx))
}

// Replicas starting together on an empty database must each migrate it or wait for the
// one that does, never fail on the other's half-created tables.
//
// Not run on SQLite: two processes creating the same SQLite file at once can fail with
// SQLITE_BUSY when both switch the new file to WAL, and Sesame runs one process per file.
func testConcurrentOpen(t *testing.T, e *env) {
	if e.b.name == "sqlite" {
		t.Skip("one process per SQLite file")
	}
	const n = 4
	stores := make([]*store.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = e.b.open(e.ctx, e.loc)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}
	must(t, stores[0].CreateWorkspace(e.ctx, sesame.Workspace{Name: "a", CreatedAt: t0}))
	for i, s := range stores {
		if _, err := s.GetWorkspace(e.ctx, "a"); err != nil {
			t.Errorf("store %d does not see the workspace: %v", i, err)
		}
	}
	var versions int
	if err := e.raw(t).QueryRowContext(e.ctx, `SELECT COUNT(DISTINCT version) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if rows := e.count(t, `SELECT COUNT(*) FROM schema_migrations`); rows != versions {
		t.Fatalf("schema_migrations holds %d rows for %d versions", rows, versions)
	}
}
