package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/sesamehq/sesame/internal/crypt"
)

// Rewrapper turns a sealed blob into one sealed under the current master key. changed is
// false when the blob needs no change.
type Rewrapper func(blob []byte) (out []byte, changed bool, err error)

// sealedColumn is one place where sealed blobs live. Rotation walks every one of them, so a
// table that adds sealed data adds a line here.
type sealedColumn struct {
	table string
	keys  []string // primary key columns, in order
	col   string
	where string // extra filter
}

var sealedColumns = []sealedColumn{
	{table: "meta", keys: []string{"name"}, col: "value", where: "sealed = TRUE"},
	{table: "credential_secrets", keys: []string{"workspace", "cred_key", "field"}, col: "blob", where: "blob IS NOT NULL"},
	{table: "oauth_grants", keys: []string{"workspace", "cred_key", "end_user"}, col: "access_blob", where: "access_blob IS NOT NULL"},
	{table: "oauth_grants", keys: []string{"workspace", "cred_key", "end_user"}, col: "refresh_blob", where: "refresh_blob IS NOT NULL"},
	{table: "oauth_states", keys: []string{"state_id"}, col: "verifier", where: "verifier IS NOT NULL"},
}

const rewrapBatch = 200

// RewrapSealed passes every sealed blob in the store through fn and writes back the ones
// that changed, a batch per transaction. Each write is a compare-and-swap on the old blob,
// so a secret updated concurrently is left alone (the new value is already sealed under
// the current key). It returns how many blobs fn changed, whether or not the write won:
// a caller loops until a pass returns 0, at which point every blob read was current.
func (s *Store) RewrapSealed(ctx context.Context, fn Rewrapper) (int, error) {
	total := 0
	for _, c := range sealedColumns {
		n, err := s.rewrapColumn(ctx, c, fn)
		total += n
		if err != nil {
			return total, fmt.Errorf("store: rewrap %s.%s: %w", c.table, c.col, err)
		}
	}
	return total, nil
}

func (s *Store) rewrapColumn(ctx context.Context, c sealedColumn, fn Rewrapper) (int, error) {
	// Keyset pagination over the primary key: (k1, k2, ...) > (cursor...).
	keyList := joinCols(c.keys)
	total := 0
	var cursor []any
	for {
		q := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s`, keyList, c.col, c.table, c.where)
		args := []any{}
		if cursor != nil {
			q += fmt.Sprintf(` AND (%s) > (%s)`, keyList, placeholders(1, len(c.keys)))
			args = append(args, cursor...)
		}
		q += fmt.Sprintf(` ORDER BY %s LIMIT %d`, keyList, rewrapBatch)

		type item struct {
			keys []any
			blob []byte
		}
		var batch []item
		rows, err := s.reads.QueryContext(ctx, q, args...)
		if err != nil {
			return total, err
		}
		for rows.Next() {
			keys := make([]string, len(c.keys))
			dest := make([]any, 0, len(c.keys)+1)
			for i := range keys {
				dest = append(dest, &keys[i])
			}
			var blob []byte
			dest = append(dest, &blob)
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return total, err
			}
			k := make([]any, len(keys))
			for i := range keys {
				k[i] = keys[i]
			}
			batch = append(batch, item{keys: k, blob: blob})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		cursor = batch[len(batch)-1].keys

		update := fmt.Sprintf(`UPDATE %s SET %s = $1 WHERE %s = $2`, c.table, c.col, c.col)
		for i, k := range c.keys {
			update += fmt.Sprintf(` AND %s = $%d`, k, i+3)
		}
		// fn runs before the transaction opens: it may be slow or use the store itself, and
		// on SQLite the transaction holds the only write connection. The compare-and-swap
		// below catches any write that lands in between.
		outs := make([][]byte, len(batch))
		for i, it := range batch {
			out, changed, err := fn(it.blob)
			if err != nil {
				return total, err
			}
			if changed {
				outs[i] = out
			}
		}
		n := 0
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if err := s.checkSealed(ctx, tx, outs...); err != nil {
				return err
			}
			for i, it := range batch {
				out := outs[i]
				if out == nil {
					continue
				}
				res, err := tx.ExecContext(ctx, update, append([]any{out, it.blob}, it.keys...)...)
				if err != nil {
					return err
				}
				_ = res // a lost compare-and-swap still counts: the next pass reads the winner
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
}

// CountSealed counts the sealed blobs in the store.
func (s *Store) CountSealed(ctx context.Context) (int, error) {
	total := 0
	for _, c := range sealedColumns {
		var n int
		if err := s.reads.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE %s`, c.table, c.where)).Scan(&n); err != nil {
			return 0, s.wrap(err)
		}
		total += n
	}
	return total, nil
}

func joinCols(cols []string) string {
	out := ""
	for i, c := range cols {
		if i > 0 {
			out += ", "
		}
		out += c
	}
	return out
}

func placeholders(from, n int) string {
	out := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("$%d", from+i)
	}
	return out
}

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// CountSealedByKey counts the sealed blobs in the store by the ID of the master key each
// is sealed under (crypt.KeyID's text form). It reads every blob.
func (s *Store) CountSealedByKey(ctx context.Context) (map[string]int, error) {
	return countSealedByKey(ctx, s.read)
}

func countSealedByKey(ctx context.Context, q querier) (map[string]int, error) {
	out := map[string]int{}
	for _, c := range sealedColumns {
		rows, err := q.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s`, c.col, c.table, c.where))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var blob []byte
			if err := rows.Scan(&blob); err != nil {
				rows.Close()
				return nil, err
			}
			id, err := crypt.KeyIDOf(blob)
			if err != nil {
				out["malformed"]++
				continue
			}
			out[id.String()]++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
