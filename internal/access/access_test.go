package access_test

import (
	"context"
	"github.com/sesamehq/sesame/internal/testclock"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/access"
	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/store"
)

type clock = testclock.Clock

// TestCachedDecisionHealsAfterMaxAge: a grant made by another replica whose notification
// was lost reaches this replica's decisions once the cached one is older than the maximum
// age; a change made through the service is seen at once.
func TestCachedDecisionHealsAfterMaxAge(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	svc := access.New(st, auth.NewHasher(sesame.NewSecret([]byte("pepper"))), c.Now, slog.New(slog.DiscardHandler))
	svc.SetMaxAge(30 * time.Second)
	if err := st.CreateWorkspace(ctx, sesame.Workspace{Name: "acme", CreatedAt: c.Now()}); err != nil {
		t.Fatal(err)
	}
	u, err := svc.CreateUser(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	p := sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID}
	has := func() bool {
		t.Helper()
		ok, err := svc.Has(ctx, p, sesame.PrivRunFunctions, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if has() {
		t.Fatal("a new user holds run_functions")
	}
	// Another replica grants, and its notification is lost.
	g := sesame.Grant{ID: auth.NewID("grt_"), Role: "caller", SubjectKind: sesame.SubjectUser, Subject: u.ID, Workspace: "acme", CreatedAt: c.Now()}
	if err := st.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	c.Add(29 * time.Second)
	if has() {
		t.Fatal("the cached decision changed without a notification, before the maximum age")
	}
	c.Add(time.Second)
	if !has() {
		t.Fatal("the cached decision outlived the maximum age")
	}
	// Through the service: at once. The actor is an admin (granted in the store directly, as
	// the bootstrap does), since deleting a grant is checked against the actor's privileges.
	root, err := svc.CreateUser(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateGrant(ctx, sesame.Grant{ID: auth.NewID("grt_"), Role: "admin", SubjectKind: sesame.SubjectUser, Subject: root.ID, Workspace: "*", CreatedAt: c.Now()}); err != nil {
		t.Fatal(err)
	}
	admin := sesame.Principal{Kind: sesame.PrincipalUser, UserID: root.ID}
	if err := svc.DeleteGrant(ctx, admin, g.ID); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("a deleted grant still decides")
	}
}
