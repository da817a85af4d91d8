package function

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJigxSamplesParse is a developer check, not a CI test: it parses every .jigx file
// under the folder named by SESAME_JIGX_SAMPLES (or /tmp/jigxcheck when that exists),
// such as a checkout of Jigx's public samples, and reports each file's result. It is
// skipped when neither is there (CI has no samples). A REST file that does not parse
// fails the test; files of other providers (SQL) and empty files must be refused.
func TestJigxSamplesParse(t *testing.T) {
	dir := os.Getenv("SESAME_JIGX_SAMPLES")
	if dir == "" {
		dir = "/tmp/jigxcheck"
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("no Jigx samples at %s (set SESAME_JIGX_SAMPLES to a folder of .jigx files)", dir)
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".jigx" {
			return err
		}
		n++
		src, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		name := strings.TrimSuffix(filepath.Base(path), ".jigx")
		_, perr := Parse(name, src)
		rest := strings.Contains(string(src), ProviderREST)
		switch {
		case perr == nil:
			t.Logf("ok      %s", rel)
		case !rest:
			t.Logf("refused %s: %v", rel, perr) // SQL providers, empty files
		default:
			t.Errorf("FAILED  %s: %v", rel, perr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skipf("no .jigx files under %s", dir)
	}
}
