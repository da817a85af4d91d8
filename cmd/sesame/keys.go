package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// loadMasterKeys finds the master keys: --master-key-file, else SESAME_MASTER_KEY, else
// <data>/master.key, which is created only on a store that has never sealed anything.
// Several keys (one per line in a file, comma-separated in the environment) mean a
// rotation was interrupted or a key was added for one; which key is primary is recorded in
// the store once it holds secrets. It returns a saver and the path of file keys (for
// reloading; empty when the keys come from the environment).
func loadMasterKeys(ctx context.Context, c serveConfig, getenv func(string) string, st *store.Store, log *slog.Logger) ([]*crypt.MasterKey, vault.KeySaver, string, error) {
	keys, path, err := givenMasterKeys(c, getenv)
	if err == nil {
		var save vault.KeySaver
		if path != "" {
			save = keySaver(path)
		}
		return keys, save, path, nil
	}
	if !errors.Is(err, errNoMasterKey) {
		return nil, nil, "", err
	}
	path = filepath.Join(c.data, "master.key")
	// No key anywhere. Only an empty store may get a new one.
	if _, err := st.GetMeta(ctx, "keycheck"); !errors.Is(err, sesame.ErrNotFound) {
		if err != nil {
			return nil, nil, "", err
		}
		return nil, nil, "", fmt.Errorf("no master key: this store holds secrets sealed under a master key; give it with --master-key-file or SESAME_MASTER_KEY (looked for %s)", path)
	}
	k, err := crypt.GenerateMasterKey()
	if err != nil {
		return nil, nil, "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, "", fmt.Errorf("create master key file: %w", err)
	}
	_, werr := fmt.Fprintln(f, k.Encode())
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return nil, nil, "", fmt.Errorf("write master key file: %w", err)
	}
	log.Warn("NO MASTER KEY GIVEN: created a new one in a file next to the data. Fine for development; in production keep the key apart from the data (SESAME_MASTER_KEY or --master-key-file) and back it up: without it the secrets cannot be read.",
		"file", path, "key_id", k.ID().String())
	return []*crypt.MasterKey{k}, keySaver(path), path, nil
}

// errNoMasterKey: no key file, no SESAME_MASTER_KEY, no <data>/master.key.
var errNoMasterKey = errors.New("no master key given")

// givenMasterKeys reads the master keys from --master-key-file, else SESAME_MASTER_KEY,
// else <data>/master.key (unless the store is PostgreSQL); it never creates one. path is
// the key file, empty when the keys come from the environment.
func givenMasterKeys(c serveConfig, getenv func(string) string) (keys []*crypt.MasterKey, path string, err error) {
	if c.masterKeyFile != "" {
		keys, err := readKeyFile(c.masterKeyFile)
		return keys, c.masterKeyFile, err
	}
	if env := getenv("SESAME_MASTER_KEY"); env != "" {
		for i, part := range strings.Split(env, ",") {
			k, err := crypt.ParseMasterKey(part)
			if err != nil {
				return nil, "", fmt.Errorf("SESAME_MASTER_KEY (key %d): %w", i+1, err)
			}
			keys = append(keys, k)
		}
		return keys, "", nil
	}
	path = filepath.Join(c.data, "master.key")
	keys, err = readKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("%w (looked for %s)", errNoMasterKey, path)
	}
	return keys, path, err
}

func readKeyFile(path string) ([]*crypt.MasterKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	defer clear(b)
	var keys []*crypt.MasterKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, err := crypt.ParseMasterKey(text)
		if err != nil {
			return nil, fmt.Errorf("master key file %s line %d: %w", path, line, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("master key file %s holds no key", path)
	}
	return keys, nil
}

// keySaver replaces the key file atomically: write a temporary file (0600) beside it,
// sync, rename over, sync the folder.
func keySaver(path string) vault.KeySaver {
	return func(keys []*crypt.MasterKey) error {
		var buf bytes.Buffer
		buf.WriteString("# Sesame master keys, primary first. Keep this file secret and backed up.\n")
		for _, k := range keys {
			buf.WriteString(k.Encode() + "\n")
		}
		defer clear(buf.Bytes())
		tmp, err := os.CreateTemp(filepath.Dir(path), ".master.key-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if err := tmp.Chmod(0o600); err != nil {
			tmp.Close()
			return err
		}
		_, werr := tmp.Write(buf.Bytes())
		if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
		dir, err := os.Open(filepath.Dir(path))
		if err != nil {
			return err
		}
		defer dir.Close()
		return dir.Sync()
	}
}

// keyRingLoop keeps this replica's keyring in step: every interval, and at once on SIGHUP,
// it re-reads the key file (so a key added to it needs no restart), picks up the store's
// primary key, and records a heartbeat with the key IDs it holds. A rotation elsewhere is
// also announced on PostgreSQL (vault.KeysChannel); the caller listens for it.
func keyRingLoop(ctx context.Context, v *vault.Vault, keyFile string, interval time.Duration, hup <-chan os.Signal, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-hup:
			log.Info("SIGHUP: reloading the master key file", "file", keyFile)
		}
		if keyFile != "" {
			keys, err := readKeyFile(keyFile)
			if err != nil {
				log.Warn("reload master key file (keeping the keys loaded)", "err", err)
			} else {
				v.ReloadKeys(keys)
			}
		}
		if err := v.SyncKeys(ctx); err != nil && ctx.Err() == nil {
			log.Warn("sync master key ring", "err", err)
		}
		if err := v.Heartbeat(ctx); err != nil && ctx.Err() == nil {
			log.Warn("replica heartbeat", "err", err)
		}
	}
}
