package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache prepares each read query once and reuses it: parsing SQL dominated the cost
// of a hot-path read on SQLite. database/sql re-prepares a Stmt on each pooled connection
// as needed, so one Stmt serves every reader.
type stmtCache struct {
	db    *sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}} }

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.RLock()
	st, ok := c.stmts[query]
	c.mu.RUnlock()
	if ok {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

// QueryRowContext runs a cached single-row query.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *cachedRow {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return &cachedRow{err: classify(err, true)}
	}
	return &cachedRow{row: st.QueryRowContext(ctx, args...)}
}

// QueryContext runs a cached query.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, classify(err, true)
	}
	rows, err := st.QueryContext(ctx, args...)
	return rows, classify(err, true)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	clear(c.stmts)
}

// cachedRow is sql.Row with a preparation error carried to Scan.
type cachedRow struct {
	row *sql.Row
	err error
}

func (r *cachedRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return classify(r.row.Scan(dest...), true)
}
