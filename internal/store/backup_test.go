package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/sesamehq/sesame/internal/store"
)

// Every table of the schema is either in a backup or left out on purpose: a migration
// that adds a table without deciding fails here, on both stores.
func TestBackupCoversEveryTable(t *testing.T) {
	included, excluded := store.BackupTables()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			loc := b.fresh(t)
			s, err := b.open(context.Background(), loc)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
			if b.name == "postgres" {
				q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
			}
			rows, err := b.raw(t, loc).Query(q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var tables []string
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				tables = append(tables, n)
				if !slices.Contains(included, n) && !slices.Contains(excluded, n) {
					t.Errorf("table %s is neither backed up nor excluded (internal/store/backup.go backupTables)", n)
				}
			}
			for _, n := range append(included, excluded...) {
				if !slices.Contains(tables, n) {
					t.Errorf("backupTables names %s, which the schema does not have", n)
				}
			}
		})
	}
}
