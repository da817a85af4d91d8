package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// spillFile is where background events go while the store cannot take them: JSON lines
// appended to <dir>/audit-spill.jsonl and fsynced, replayed in order into the chain once
// the store is back. <dir>/audit-spill.offset records how far the replay got, so that a
// restart replays only the rest. Only the writer goroutine uses it.
type spillFile struct {
	path, offPath string
	offset        int64 // bytes of path already replayed
	pending       int64 // events after offset
	nextTry       time.Time
	backoff       time.Duration
}

const (
	spillName       = "audit-spill.jsonl"
	spillOffsetName = "audit-spill.offset"
)

func openSpill(dir string) (*spillFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: spill folder: %w", err)
	}
	s := &spillFile{path: filepath.Join(dir, spillName), offPath: filepath.Join(dir, spillOffsetName)}
	if b, err := os.ReadFile(s.offPath); err == nil {
		s.offset, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.offset = 0
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: spill file: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(s.offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("audit: spill file: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			s.pending++
		}
	}
	return s, nil
}

// write appends events and fsyncs; on error the file is cut back to where it was.
func (s *spillFile) write(events []Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if _, err = f.Write(buf.Bytes()); err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Truncate(fi.Size())
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.pending += int64(len(events))
	return nil
}

// read returns up to max events after the offset and the offset after them. A line that
// does not parse (a write torn by a crash) is returned as an audit.gap-worthy loss: it is
// skipped, and counted in lost.
func (s *spillFile) read(max int) (events []Event, next int64, err error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, s.offset, err
	}
	defer f.Close()
	if _, err := f.Seek(s.offset, io.SeekStart); err != nil {
		return nil, s.offset, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	next = s.offset
	for len(events) < max {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			break
		}
		next += int64(len(line))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Event
		if json.Unmarshal(line, &e) != nil {
			e = Event{Time: time.Now(), Action: "audit.spill_unreadable", Result: "error",
				Detail: fmt.Sprintf("a spilled event at byte %d of %s could not be read", next-int64(len(line)), spillName)}
			normalize(&e)
		}
		events = append(events, e)
		if err != nil {
			break
		}
	}
	return events, next, nil
}

// advance records that the events up to next were replayed; once all are, the file is
// emptied.
func (s *spillFile) advance(next, n int64) error {
	s.offset, s.pending, s.backoff, s.nextTry = next, s.pending-n, 0, time.Time{}
	if s.pending <= 0 {
		s.offset, s.pending = 0, 0
		err := os.Truncate(s.path, 0)
		if rmErr := os.Remove(s.offPath); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
			err = rmErr
		}
		return err
	}
	tmp := s.offPath + ".tmp"
	if err := writeSynced(tmp, []byte(strconv.FormatInt(next, 10)+"\n")); err != nil {
		return err
	}
	return os.Rename(tmp, s.offPath)
}

func (s *spillFile) retryLater() {
	s.backoff = min(max(s.backoff*2, 200*time.Millisecond), 5*time.Second)
	s.nextTry = time.Now().Add(s.backoff)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
