package store_test

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
)

// TestClosedStoreIsUnavailable: on both backends, every kind of call on a store whose
// connections are gone (reads through the statement cache, list queries, transactions,
// Ping) returns sesame.ErrStoreUnavailable, never a bare driver error.
func TestClosedStoreIsUnavailable(t *testing.T) {
	runCases(t, []storeCase{{"Closed", func(t *testing.T, e *env) {
		if err := e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: "w", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.GetWorkspace(e.ctx, "w"); err != nil { // prepares the cached statement
			t.Fatal(err)
		}
		e.s.Close()
		calls := map[string]error{
			"Ping":         e.s.Ping(e.ctx),
			"GetWorkspace": func() error { _, err := e.s.GetWorkspace(e.ctx, "w"); return err }(),
			"ListCredentials": func() error {
				_, err := e.s.ListCredentials(e.ctx, "w", "", 10)
				return err
			}(),
			"CreateWorkspace": e.s.CreateWorkspace(e.ctx, sesame.Workspace{Name: "x", CreatedAt: time.Now()}),
		}
		for name, err := range calls {
			if !errors.Is(err, sesame.ErrStoreUnavailable) || sesame.ErrorCode(err) != sesame.CodeStoreUnavailable {
				t.Errorf("%s on a closed store = %v; want store_unavailable", name, err)
			}
		}
	}}}, nil)
}

// TestClassify: the fault classes, and that other errors pass through unchanged.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{syscall.ECONNREFUSED, sesame.ErrStoreUnavailable},
		{io.ErrUnexpectedEOF, sesame.ErrStoreUnavailable},
		{syscall.ENOSPC, sesame.ErrStorageFull},
	} {
		// A plain network or I/O error may come from anywhere (an upstream call): the safety
		// net leaves it alone; the store, which knows it came from its driver, does not.
		if got := store.Classify(c.err); got != c.err {
			t.Errorf("Classify(%v) = %v; want it unchanged (not known to come from the store)", c.err, got)
		}
		if got := store.ClassifyDriverError(c.err); !errors.Is(got, c.want) || !errors.Is(got, c.err) {
			t.Errorf("classify(%v) = %v; want %v wrapping the cause", c.err, got, c.want)
		}
	}
	for _, err := range []error{sql.ErrConnDone, driver.ErrBadConn, fmt.Errorf("store: %w", sql.ErrConnDone)} {
		if got := store.Classify(err); !errors.Is(got, sesame.ErrStoreUnavailable) {
			t.Errorf("Classify(%v) = %v; want store_unavailable", err, got)
		}
	}
	other := errors.New("some bug")
	if got := store.Classify(other); got != other {
		t.Errorf("Classify(other) = %v; want it unchanged", got)
	}
	if store.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}
