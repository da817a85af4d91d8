package function

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sesamehq/sesame"
)

// LoadDir parses every *.yaml, *.yml and *.jigx (Jigx) file in dir (not its subfolders); a function's
// name is its file's name without the extension. It returns the functions sorted by name,
// or the first error, whose message starts with the file's path (a *sesame.Error keeps
// its code).
func LoadDir(dir string) ([]*Function, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading functions: %w", err)
	}
	var out []*Function
	seen := map[string]string{}
	for _, e := range entries { // sorted by file name
		ext := filepath.Ext(e.Name())
		if ext != ".yaml" && ext != ".yml" && ext != ".jigx" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		name := strings.TrimSuffix(e.Name(), ext)
		if other, ok := seen[name]; ok {
			return nil, sesame.Errorf(sesame.CodeAlreadyExists, "%s: function %q is also defined in %s", path, name, other)
		}
		seen[name] = path
		src, err := readFile(path)
		if err != nil {
			return nil, err
		}
		f, err := Parse(name, src)
		if err != nil {
			var se *sesame.Error
			if errors.As(err, &se) {
				return nil, sesame.Errorf(se.Code, "%s: %s", path, se.Message)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// readFile reads a regular file (following symbolic links) of at most MaxSourceSize bytes.
func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading function: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading function: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "%s: not a regular file", path)
	}
	src, err := io.ReadAll(io.LimitReader(fh, MaxSourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading function: %w", err)
	}
	if len(src) > MaxSourceSize {
		return nil, sesame.Errorf(sesame.CodePayloadTooLarge, "%s: function definition is larger than %d KiB", path, MaxSourceSize>>10)
	}
	return src, nil
}
