// Package backup is Sesame's backup file format: a gzip'd stream of JSON lines. The first
// line is a header naming the format, the schema version, the store it came from and the
// master keys whose sealed values it holds; then, for each table, a line naming the table
// and its columns followed by one JSON array per row; and last a trailer with the counts,
// without which a reader refuses the file as truncated. Values are JSON null, numbers,
// booleans, strings, or {"b64": "…"} for bytes. Secrets are in it only as the sealed blobs
// the store holds: the file is as sensitive as the database, no more.
package backup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/sesamehq/sesame/internal/store"
)

// Format and Version identify the file format.
const (
	Format  = "sesame-backup"
	Version = 1
)

// Header is the first line of a backup.
type Header struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	Schema    int       `json:"schema"`
	Source    string    `json:"source"` // the store dialect the backup was taken from
	CreatedAt time.Time `json:"created_at"`
	// KeyIDs are the master keys that sealed values in the backup are sealed under; a
	// restore needs every one of them.
	KeyIDs []string `json:"master_key_ids"`
	// KeyCheck is the store's sealed key-check value: a restore opens it to prove it holds
	// the right master key before it writes anything.
	KeyCheck []byte `json:"keycheck,omitempty"`
}

type tableLine struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
}

type trailer struct {
	End    bool `json:"end"`
	Tables int  `json:"tables"`
	Rows   int  `json:"rows"`
}

type bytesValue struct {
	B64 string `json:"b64"`
}

// Writer writes a backup; it is a store.BackupWriter. Close finishes the file.
type Writer struct {
	gz     *gzip.Writer
	buf    *bufio.Writer
	enc    *json.Encoder
	now    func() time.Time
	tables int
	rows   int
}

// NewWriter returns a writer onto w.
func NewWriter(w io.Writer, now func() time.Time) *Writer {
	gz := gzip.NewWriter(w)
	buf := bufio.NewWriterSize(gz, 64<<10)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return &Writer{gz: gz, buf: buf, enc: enc, now: now}
}

// Begin writes the header.
func (w *Writer) Begin(s store.Snapshot) error {
	ids := make([]string, 0, len(s.KeyIDs))
	for id := range s.KeyIDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return w.enc.Encode(Header{Format: Format, Version: Version, Schema: s.Schema, Source: s.Dialect,
		CreatedAt: w.now().UTC(), KeyIDs: ids, KeyCheck: s.KeyCheck})
}

// Table starts a table.
func (w *Writer) Table(name string, columns []string) error {
	w.tables++
	return w.enc.Encode(tableLine{Table: name, Columns: columns})
}

// Row writes one row.
func (w *Writer) Row(values []any) error {
	out := make([]any, len(values))
	for i, v := range values {
		if b, ok := v.([]byte); ok {
			out[i] = bytesValue{B64: base64.StdEncoding.EncodeToString(b)}
			continue
		}
		out[i] = v
	}
	w.rows++
	return w.enc.Encode(out)
}

// Close writes the trailer and finishes the gzip stream (not the underlying writer).
func (w *Writer) Close() error {
	if err := w.enc.Encode(trailer{End: true, Tables: w.tables, Rows: w.rows}); err != nil {
		return err
	}
	if err := w.buf.Flush(); err != nil {
		return err
	}
	return w.gz.Close()
}

// Rows is how many rows were written.
func (w *Writer) Rows() int { return w.rows }

// ErrTruncated is returned for a backup that ends before its trailer, or whose counts do
// not match it.
var ErrTruncated = errors.New("backup: the file is truncated or damaged (its end is missing or does not match)")

// Reader reads a backup; it is a store.BackupReader.
type Reader struct {
	Header Header
	dec    *json.Decoder
	tables int
	rows   int
	done   bool
}

// NewReader reads the header of the backup in r.
func NewReader(r io.Reader) (*Reader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("backup: not a Sesame backup (not gzip): %w", err)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(gz, 64<<10))
	dec.UseNumber()
	rd := &Reader{dec: dec}
	if err := dec.Decode(&rd.Header); err != nil {
		return nil, fmt.Errorf("backup: not a Sesame backup (no header): %w", err)
	}
	if rd.Header.Format != Format {
		return nil, fmt.Errorf("backup: not a Sesame backup (format %q)", rd.Header.Format)
	}
	if rd.Header.Version != Version {
		return nil, fmt.Errorf("backup: file format version %d; this sesame reads version %d", rd.Header.Version, Version)
	}
	return rd, nil
}

// Next returns the next table (values nil) or row, and io.EOF after a complete backup.
func (r *Reader) Next() (table string, columns []string, values []any, err error) {
	if r.done {
		return "", nil, nil, io.EOF
	}
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", nil, nil, ErrTruncated
		}
		return "", nil, nil, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	if len(raw) > 0 && raw[0] == '[' {
		var vals []any
		if err := unmarshal(raw, &vals); err != nil {
			return "", nil, nil, fmt.Errorf("backup: row: %w", err)
		}
		for i, v := range vals {
			if vals[i], err = decodeValue(v); err != nil {
				return "", nil, nil, err
			}
		}
		r.rows++
		return "", nil, vals, nil
	}
	var obj struct {
		tableLine
		trailer
	}
	if err := unmarshal(raw, &obj); err != nil {
		return "", nil, nil, fmt.Errorf("backup: %w", err)
	}
	switch {
	case obj.End:
		if obj.Tables != r.tables || obj.Rows != r.rows {
			return "", nil, nil, ErrTruncated
		}
		if err := r.dec.Decode(&raw); !errors.Is(err, io.EOF) {
			return "", nil, nil, fmt.Errorf("%w: data after the end", ErrTruncated)
		}
		r.done = true
		return "", nil, nil, io.EOF
	case obj.Table != "":
		r.tables++
		return obj.Table, obj.Columns, nil, nil
	}
	return "", nil, nil, fmt.Errorf("backup: unexpected line")
}

func unmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

func decodeValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return nil, fmt.Errorf("backup: value %s is not an integer", x)
		}
		return n, nil
	case map[string]any:
		if s, ok := x["b64"].(string); ok && len(x) == 1 {
			return base64.StdEncoding.DecodeString(s)
		}
	}
	return nil, fmt.Errorf("backup: unexpected value of type %T", v)
}
