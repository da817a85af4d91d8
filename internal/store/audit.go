package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

// The store keeps the audit chain but does not know how it is hashed: AppendAudit reads
// the head under a lock and hands it to the caller's link function, which assigns each
// event its seq and hashes. So the chain logic lives in one place (internal/audit) and the
// store only guarantees that appends are serialized and atomic.

const auditColumns = `seq, version, at, workspace, principal, user_id, key_id, app_id, action, target, result, code,
	status, upstream_status, latency_us, source, request_id, detail, prev_hash, hash, mac`

const auditColumnCount = 21

// auditInsertRows bounds the rows of one INSERT statement (21 parameters each), well under
// both dialects' parameter limits.
const auditInsertRows = 256

// AppendAudit appends events to the audit chain in one transaction. It locks the chain's
// head row (serializing appends across every replica on PostgreSQL; SQLite's single write
// connection serializes them there), calls link with the current head, which returns the
// events to insert with their Seq, PrevHash, Hash and MAC set (it may add events of its
// own, and may modify the slice it is given), inserts them and stores the new head link
// returns. Every commit is synced to disk on both dialects (on SQLite the write connection
// runs with synchronous=FULL and shares commits with concurrent writes), so durable asks
// for nothing more; it is kept for stores that could do cheaper non-durable appends.
//
// On error nothing is appended.
func (s *Store) AppendAudit(ctx context.Context, events []sesame.AuditEvent,
	link func(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error), durable bool) error {
	if len(events) == 0 {
		return nil
	}
	_ = durable
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Writing the head row takes its lock until commit: a concurrent appender on another
		// replica waits here, then reads the head this one stored.
		var head sesame.AuditHead
		err := tx.QueryRowContext(ctx, `UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash, mac`).
			Scan(&head.Seq, &head.Hash, &head.MAC)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: the audit head row is missing; the audit trail was tampered with")
		}
		if err != nil {
			return fmt.Errorf("store: lock audit head: %w", err)
		}
		linked, newHead, err := link(head, events)
		if err != nil {
			return err
		}
		for _, e := range linked {
			if e.Outbox != "" {
				if _, err := tx.ExecContext(ctx, `DELETE FROM audit_outbox WHERE id = $1`, e.Outbox); err != nil {
					return fmt.Errorf("store: audit outbox: %w", err)
				}
			}
		}
		if err := s.insertAudit(ctx, tx, linked); err != nil {
			return fmt.Errorf("store: insert audit events: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE audit_head SET seq = $1, hash = $2, mac = $3 WHERE id = 1`,
			newHead.Seq, newHead.Hash, newHead.MAC)
		return err
	})
}

// insertAudit inserts events: on PostgreSQL with multi-row INSERTs, to save round trips;
// on SQLite, in process, row by row through one prepared statement (binding thousands of
// parameters to one statement costs more there than it saves).
func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, events []sesame.AuditEvent) error {
	if s.dialect.name() == "sqlite" {
		st, err := tx.PrepareContext(ctx, auditInsertSQL(1))
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range events {
			if _, err := st.ExecContext(ctx, auditArgs(events[i:i+1])...); err != nil {
				return err
			}
		}
		return nil
	}
	for start := 0; start < len(events); start += auditInsertRows {
		chunk := events[start:min(start+auditInsertRows, len(events))]
		if _, err := tx.ExecContext(ctx, auditInsertSQL(len(chunk)), auditArgs(chunk)...); err != nil {
			return err
		}
	}
	return nil
}

func auditInsertSQL(rows int) string {
	var b strings.Builder
	b.Grow(64 + rows*auditColumnCount*5)
	b.WriteString(`INSERT INTO audit_events (`)
	b.WriteString(auditColumns)
	b.WriteString(`) VALUES `)
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range auditColumnCount {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

func auditArgs(events []sesame.AuditEvent) []any {
	args := make([]any, 0, len(events)*auditColumnCount)
	for _, e := range events {
		args = append(args, e.Seq, e.Version, nanos(e.Time), e.Workspace, e.Principal, e.UserID, e.KeyID, e.AppID,
			e.Action, e.Target, e.Result, e.Code, e.Status, e.UpstreamStatus, e.LatencyMicros, e.Source, e.RequestID,
			e.Detail, e.PrevHash, e.Hash, e.MAC)
	}
	return args
}

func scanAudit(sc interface{ Scan(...any) error }, e *sesame.AuditEvent) error {
	var at int64
	if err := sc.Scan(&e.Seq, &e.Version, &at, &e.Workspace, &e.Principal, &e.UserID, &e.KeyID, &e.AppID,
		&e.Action, &e.Target, &e.Result, &e.Code, &e.Status, &e.UpstreamStatus, &e.LatencyMicros, &e.Source,
		&e.RequestID, &e.Detail, &e.PrevHash, &e.Hash, &e.MAC); err != nil {
		return err
	}
	e.Time = fromNanos(at)
	return nil
}

// AuditHead returns the newest link of the audit chain.
func (s *Store) AuditHead(ctx context.Context) (sesame.AuditHead, error) {
	var h sesame.AuditHead
	err := s.reads.QueryRowContext(ctx, `SELECT seq, hash, mac FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &h.MAC)
	return h, s.wrap(err)
}

// ListAudit returns the events that match f, by seq (descending if f.Desc), at most
// f.Limit of them (all if f.Limit is 0).
func (s *Store) ListAudit(ctx context.Context, f sesame.AuditFilter) ([]sesame.AuditEvent, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.AfterSeq > 0 {
		where = append(where, "seq > "+arg(f.AfterSeq))
	}
	if f.BeforeSeq > 0 {
		where = append(where, "seq < "+arg(f.BeforeSeq))
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(nanos(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < "+arg(nanos(f.Until)))
	}
	for _, eq := range []struct{ col, v string }{
		{"workspace", f.Workspace}, {"principal", f.Principal}, {"user_id", f.UserID},
		{"key_id", f.KeyID}, {"app_id", f.AppID}, {"result", f.Result},
	} {
		if eq.v != "" {
			where = append(where, eq.col+" = "+arg(eq.v))
		}
	}
	if f.Workspaces != nil {
		in := make([]string, len(f.Workspaces))
		for i, ws := range f.Workspaces {
			in[i] = arg(ws)
		}
		if len(in) == 0 {
			where = append(where, "1 = 0")
		} else {
			where = append(where, "workspace IN ("+strings.Join(in, ", ")+")")
		}
	}
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
			if prefix != "" {
				// substr counts characters in both dialects; no LIKE, so no escaping.
				where = append(where, "substr(action, 1, "+arg(len([]rune(prefix)))+") = "+arg(prefix))
			}
		} else {
			where = append(where, "action = "+arg(f.Action))
		}
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	if f.Desc {
		q += ` ORDER BY seq DESC`
	} else {
		q += ` ORDER BY seq`
	}
	if f.Limit > 0 {
		q += ` LIMIT ` + arg(f.Limit)
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []sesame.AuditEvent
	for rows.Next() {
		var e sesame.AuditEvent
		if err := scanAudit(rows, &e); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, e)
	}
	return out, s.wrap(rows.Err())
}

// WalkAudit reads the whole audit chain from one consistent snapshot: first the head, then
// every event in seq order, streaming, so memory stays constant however long the chain is.
// It stops at the first error a callback returns. The event passed to each is reused.
func (s *Store) WalkAudit(ctx context.Context, head func(sesame.AuditHead) error, each func(*sesame.AuditEvent) error) error {
	// A read-only transaction: on PostgreSQL a repeatable-read snapshot, on SQLite a
	// deferred read transaction (a WAL snapshot that does not block writers).
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.snapshotIsolation()})
	if err != nil {
		return fmt.Errorf("store: begin audit snapshot: %w", err)
	}
	defer tx.Rollback()
	var h sesame.AuditHead
	err = tx.QueryRowContext(ctx, `SELECT seq, hash, mac FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &h.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		h = sesame.AuditHead{Seq: -1} // no head row: the caller reports it
	} else if err != nil {
		return s.wrap(err)
	}
	if err := head(h); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`)
	if err != nil {
		return s.wrap(err)
	}
	defer rows.Close()
	var e sesame.AuditEvent
	for rows.Next() {
		if err := scanAudit(rows, &e); err != nil {
			return s.wrap(err)
		}
		if err := each(&e); err != nil {
			return err
		}
	}
	return s.wrap(rows.Err())
}

func (s *Store) snapshotIsolation() sql.IsolationLevel {
	if s.dialect.name() == "postgres" {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault
}

// --- the outbox ---

// writeOutbox inserts the pending event of a change request, once per request however many
// transactions it commits.
func writeOutbox(ctx context.Context, tx *sql.Tx, id string, e sesame.AuditEvent) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_outbox (id, at, event) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		id, nanos(e.Time), string(body))
	return err
}

// CountAuditOutbox returns how many change events wait in the outbox to be chained.
func (s *Store) CountAuditOutbox(ctx context.Context) (int64, error) {
	var n int64
	err := s.reads.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_outbox`).Scan(&n)
	return n, s.wrap(err)
}

// DrainAuditOutbox chains, in one transaction with the head locked as AppendAudit does, up
// to limit outbox rows written before before, oldest first, and removes them. fix adjusts
// each event before it is linked (it says the request's end was not seen). It returns how
// many events it chained. Rows that the requests' final events remove concurrently are
// not chained twice: the head lock serializes both.
func (s *Store) DrainAuditOutbox(ctx context.Context, before time.Time, limit int, fix func(*sesame.AuditEvent),
	link func(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error)) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var head sesame.AuditHead
		err := tx.QueryRowContext(ctx, `UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash, mac`).
			Scan(&head.Seq, &head.Hash, &head.MAC)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: the audit head row is missing; the audit trail was tampered with")
		}
		if err != nil {
			return fmt.Errorf("store: lock audit head: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, event FROM audit_outbox WHERE at < $1 ORDER BY at, id LIMIT $2`, nanos(before), limit)
		if err != nil {
			return err
		}
		var ids []string
		var events []sesame.AuditEvent
		for rows.Next() {
			var id, body string
			if err := rows.Scan(&id, &body); err != nil {
				rows.Close()
				return err
			}
			var e sesame.AuditEvent
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				// Still chained: an unreadable row is evidence, not something to lose.
				e = sesame.AuditEvent{Action: "audit.outbox_unreadable", Result: sesame.AuditError, Detail: "outbox row " + id}
			}
			e.Seq, e.PrevHash, e.Hash, e.MAC, e.Outbox = 0, "", "", "", ""
			fix(&e)
			ids = append(ids, id)
			events = append(events, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		linked, newHead, err := link(head, events)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM audit_outbox WHERE id = $1`, id); err != nil {
				return err
			}
		}
		if err := s.insertAudit(ctx, tx, linked); err != nil {
			return fmt.Errorf("store: insert audit events: %w", err)
		}
		n = len(linked)
		_, err = tx.ExecContext(ctx, `UPDATE audit_head SET seq = $1, hash = $2, mac = $3 WHERE id = 1`,
			newHead.Seq, newHead.Hash, newHead.MAC)
		return err
	})
	return n, err
}
