package backup_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/backup"
	"github.com/sesamehq/sesame/internal/store"
)

var t0 = time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)

func write(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := backup.NewWriter(&buf, func() time.Time { return t0 })
	must(t, w.Begin(store.Snapshot{Schema: 13, Dialect: "sqlite", KeyIDs: map[string]int{"0badf00d": 2, "01234567": 1}, KeyCheck: []byte{1, 2, 3}}))
	must(t, w.Table("meta", []string{"name", "value", "sealed"}))
	must(t, w.Row([]any{"keycheck", []byte{1, 2, 3}, true}))
	must(t, w.Table("workspaces", []string{"name", "created_at"}))
	must(t, w.Row([]any{"default", int64(1_700_000_000_123_456_789)}))
	must(t, w.Row([]any{"x\n\"y", nil}))
	must(t, w.Close())
	return buf.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type item struct {
	Table string
	Cols  []string
	Vals  []any
}

func readAll(data []byte) (backup.Header, []item, error) {
	r, err := backup.NewReader(bytes.NewReader(data))
	if err != nil {
		return backup.Header{}, nil, err
	}
	var items []item
	for {
		tb, cols, vals, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Header, items, nil
		}
		if err != nil {
			return r.Header, items, err
		}
		items = append(items, item{tb, cols, vals})
	}
}

func TestRoundTripKeepsTypes(t *testing.T) {
	h, items, err := readAll(write(t))
	if err != nil {
		t.Fatal(err)
	}
	if h.Schema != 13 || h.Source != "sqlite" || !h.CreatedAt.Equal(t0) || !reflect.DeepEqual(h.KeyIDs, []string{"01234567", "0badf00d"}) || !bytes.Equal(h.KeyCheck, []byte{1, 2, 3}) {
		t.Fatalf("header %+v", h)
	}
	want := []item{
		{"meta", []string{"name", "value", "sealed"}, nil},
		{"", nil, []any{"keycheck", []byte{1, 2, 3}, true}},
		{"workspaces", []string{"name", "created_at"}, nil},
		{"", nil, []any{"default", int64(1_700_000_000_123_456_789)}},
		{"", nil, []any{"x\n\"y", nil}},
	}
	if !reflect.DeepEqual(items, want) {
		t.Fatalf("read back %#v", items)
	}
}

func regzip(t *testing.T, data []byte, edit func(string) string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	must(t, err)
	plain, err := io.ReadAll(zr)
	must(t, err)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(edit(string(plain))))
	zw.Close()
	return buf.Bytes()
}

func TestDamagedFilesAreRefused(t *testing.T) {
	good := write(t)
	lines := func(s string) []string { return strings.SplitAfter(s, "\n") }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"not gzip", []byte("hello"), "not gzip"},
		{"cut short", good[:len(good)-12], "truncated"},
		{"no trailer", regzip(t, good, func(s string) string { l := lines(s); return strings.Join(l[:len(l)-2], "") }), "truncated"},
		{"row dropped", regzip(t, good, func(s string) string { l := lines(s); return strings.Join(append(l[:4:4], l[5:]...), "") }), "truncated"},
		{"data after the end", regzip(t, good, func(s string) string { return s + `["extra"]` + "\n" }), "truncated"},
		{"other format", regzip(t, good, func(s string) string { return strings.Replace(s, "sesame-backup", "other", 1) }), "not a Sesame backup"},
		{"newer version", regzip(t, good, func(s string) string { return strings.Replace(s, `"version":1`, `"version":2`, 1) }), "format version 2"},
		{"bad bytes", regzip(t, good, func(s string) string { return strings.Replace(s, `{"b64":"AQID"}`, `{"b64":"!!"}`, 1) }), "illegal base64"},
		{"fraction", regzip(t, good, func(s string) string { return strings.Replace(s, "1700000000123456789", "1.5", 1) }), "not an integer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
