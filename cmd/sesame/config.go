package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sesamehq/sesame/internal/cli"
)

// The config file (--config / SESAME_CONFIG) is a YAML mapping whose keys are the serve
// flags' names without the dashes, kebab-case as on the command line:
//
//	addr: 0.0.0.0:8420
//	postgres: postgres://sesame@db/sesame
//	master-key-file: /run/credentials/sesame.service/master-key
//	audit-spill-dir: /var/lib/sesame/spill
//	oauth-return-urls: [https://app.example/done, https://admin.example/]
//
// Precedence: a flag on the command line, then its environment variable (SESAME_ and the
// name in upper snake case: audit-spill-dir is SESAME_AUDIT_SPILL_DIR), then the file,
// then the default. An unknown key, a repeated key or a value the flag refuses is an error
// that names the key and its line. The file may not hold the master key itself
// (master-key): name a file with master-key-file, or use SESAME_MASTER_KEY.

// envName is the environment variable of a serve flag.
func envName(flagName string) string {
	return "SESAME_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyConfigFile sets, from the file at path, every flag that neither the command line
// nor the environment set.
func applyConfigFile(fs *flag.FlagSet, path string, getenv func(string) string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s line %d: must be a mapping of flag names to values (addr: 127.0.0.1:8420)", path, root.Line)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		at := fmt.Sprintf("config file %s line %d", path, k.Line)
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: keys must be flag names", at)
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("%s: key %q repeats line %d", at, name, prev)
		}
		seen[name] = k.Line
		switch name {
		case "master-key", "master_key":
			return fmt.Errorf("%s: %q: the config file may not hold the master key; name a file that does with master-key-file (mode 0600, or a systemd credential), or set SESAME_MASTER_KEY", at, name)
		case "config":
			return fmt.Errorf("%s: %q: a config file cannot name another", at, name)
		}
		if fs.Lookup(name) == nil {
			return fmt.Errorf("%s: unknown key %q%s", at, name, suggestFlag(fs, name))
		}
		value, err := configValue(v)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", at, name, err)
		}
		if onCommandLine[name] || getenv(envName(name)) != "" {
			continue // the command line and the environment win
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("%s: %s: not a valid value (%w)", at, name, err)
		}
	}
	return nil
}

// configValue is the flag text of a value: a scalar as written, a list of scalars joined
// by commas (for the comma-separated flags).
func configValue(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", errors.New("has no value")
		}
		return v.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("line %d: a list may hold only plain values", item.Line)
			}
			parts = append(parts, item.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("must be a plain value or a list of plain values")
}

// suggestFlag names the flag an unknown key probably meant: the same name in kebab case,
// or the closest name by edit distance.
func suggestFlag(fs *flag.FlagSet, name string) string {
	if kebab := strings.ReplaceAll(strings.ToLower(name), "_", "-"); fs.Lookup(kebab) != nil {
		return fmt.Sprintf(" (keys are the flag names in kebab case: %q)", kebab)
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	best := cli.Closest(name, names)
	if best == "" {
		return " (keys are the names of the serve flags: sesame serve -h)"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
