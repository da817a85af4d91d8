// Package testpg gives tests their own PostgreSQL schema on the server named by
// SESAME_TEST_POSTGRES. Without that variable the test is skipped, except under CI
// (CI set), where a missing or unreachable PostgreSQL is a failure.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver
)

// URL returns a connection URL whose search_path is a new, empty schema that is dropped
// when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SESAME_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SESAME_TEST_POSTGRES is not set; under CI the PostgreSQL tests must run")
		}
		t.Skip("SESAME_TEST_POSTGRES is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("PostgreSQL at SESAME_TEST_POSTGRES is unreachable: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sesame_test_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SESAME_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Schema returns the schema name of a URL made by URL.
func Schema(pgURL string) string {
	u, err := url.Parse(pgURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("search_path")
}
