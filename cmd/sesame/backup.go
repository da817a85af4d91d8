package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sesamehq/sesame/internal/backup"
	"github.com/sesamehq/sesame/internal/cli"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// parseFileCommand parses `sesame backup|restore [flags] FILE`: the serve flags (so that
// --config, --data, --postgres and the master key work as for serve), flags before or
// after FILE.
func parseFileCommand(name string, args []string, getenv func(string) string, stdout, stderr io.Writer) (serveConfig, string, error) {
	var c serveConfig
	fs := newServeFlags("sesame "+name, &c, getenv, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: sesame %s [flags] FILE\n\nThe store is --data (SQLite) or --postgres, as for sesame serve; --config, the environment and the master key flags work as there.\n\nflags:\n", name)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return c, "", cli.ErrHelp
			}
			return c, "", cli.Usagef("%v (sesame %s --help lists the flags)", err, name)
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		return c, "", cli.Usagef("usage: sesame %s [flags] FILE (one file, got %d)", name, len(files))
	}
	return c, files[0], c.finish(fs, getenv)
}

// backupCommand writes a consistent snapshot of the store to FILE (mode 0600): see
// store.Backup and internal/backup. It reads the store only, holds no writer up, and needs
// no master key: secrets stay sealed.
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, file, err := parseFileCommand("backup", args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(file); err == nil {
		return fmt.Errorf("backup: %s exists; name a new file", file)
	}
	st, err := store.OpenForBackup(ctx, c.postgres, filepath.Join(c.data, "sesame.db"))
	if err != nil {
		return fmt.Errorf("backup: open the store: %w", err)
	}
	defer st.Close()
	tmp, err := os.CreateTemp(filepath.Dir(file), ".sesame-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	w := backup.NewWriter(tmp, time.Now)
	var snap store.Snapshot
	err = st.Backup(ctx, snapshotTap{w, &snap}, tmp.Name()+".sqlite")
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup %s: %d rows from %s, schema %d, secrets sealed under master key(s) %s\n",
		file, w.Rows(), st.Dialect(), snap.Schema, keyList(snap.KeyIDs))
	return nil
}

// snapshotTap passes a backup through and keeps its snapshot for the summary.
type snapshotTap struct {
	*backup.Writer
	snap *store.Snapshot
}

func (t snapshotTap) Begin(s store.Snapshot) error {
	*t.snap = s
	return t.Writer.Begin(s)
}

func keyList(ids map[string]int) string {
	if len(ids) == 0 {
		return "(none)"
	}
	var out []string
	for id := range ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// restoreCommand loads a backup into an empty store. Before it writes anything it checks
// the file's format and schema version, and that the master key given (--master-key-file,
// SESAME_MASTER_KEY or <data>/master.key, as for serve; never a new one) opens the
// backup's key check and that every master key its secrets are sealed under is held.
// The rows go in in one transaction: a damaged or truncated file changes nothing.
func restoreCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, file, err := parseFileCommand("restore", args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	rd, err := backup.NewReader(f)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	h := rd.Header
	if want := store.SchemaVersion(); h.Schema != want {
		return fmt.Errorf("restore: the backup has schema version %d and this sesame's is %d: restore with the sesame version that took it, then upgrade", h.Schema, want)
	}
	// Early, from the header; then again from the rows themselves before they commit, so a
	// header that understates what the file holds gains nothing.
	check := func(keyCheck []byte, keyIDs []string) error {
		if keyCheck == nil && len(keyIDs) == 0 {
			return nil
		}
		return checkBackupKeys(c, getenv, keyCheck, keyIDs)
	}
	if err := check(h.KeyCheck, h.KeyIDs); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	created := false
	if c.postgres == "" {
		if _, err := os.Stat(c.data); errors.Is(err, os.ErrNotExist) {
			created = true
		}
	}
	st, err := openStore(ctx, c)
	if err != nil {
		return fmt.Errorf("restore: open the store: %w", err)
	}
	rows, err := st.Restore(ctx, rd, func(s store.Snapshot) error {
		ids := slices.Sorted(maps.Keys(s.KeyIDs))
		return check(s.KeyCheck, ids)
	})
	st.Close()
	if err != nil {
		if created { // leave no half-made data folder behind
			_ = os.RemoveAll(c.data)
		}
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s: %d rows into %s (backup of %s taken %s)\n", file, rows, storeName(c), h.Source, h.CreatedAt.Format(time.RFC3339))
	return nil
}

// checkBackupKeys proves that the master keys given open the backup.
func checkBackupKeys(c serveConfig, getenv func(string) string, keyCheck []byte, keyIDs []string) error {
	keys, _, err := givenMasterKeys(c, getenv)
	if errors.Is(err, errNoMasterKey) {
		return fmt.Errorf("the backup's secrets are sealed under master key(s) %s: give the key with --master-key-file or SESAME_MASTER_KEY (%w)", strings.Join(keyIDs, ", "), err)
	}
	if err != nil {
		return err
	}
	kr := crypt.NewKeyring(keys[0], keys[1:]...)
	if keyCheck != nil {
		if err := vault.CheckKey(kr, keyCheck); err != nil {
			return fmt.Errorf("the master key given cannot open this backup: %w", err)
		}
	}
	held := map[string]bool{}
	for _, id := range kr.IDs() {
		held[id.String()] = true
	}
	var missing []string
	for _, id := range keyIDs {
		if !held[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("secrets in the backup are sealed under master key(s) %s, which were not given (%s held)", strings.Join(missing, ", "), kr.Primary())
	}
	return nil
}

func storeName(c serveConfig) string {
	if c.postgres != "" {
		return "PostgreSQL"
	}
	return filepath.Join(c.data, "sesame.db")
}
