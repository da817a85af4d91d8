package function_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"google.events.yaml": calendar,
		"weather.yml":        "url: https://api.weather.example/x\nmethod: GET\n",
		"notes.txt":          "not a function",
		"sub/nested.yaml":    "not: loaded",
		"README.md":          "# functions",
	})
	fns, err := function.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fns {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "google.events,weather" {
		t.Errorf("names = %v", names)
	}
}

func TestLoadDirEmpty(t *testing.T) {
	fns, err := function.LoadDir(t.TempDir())
	if err != nil || len(fns) != 0 {
		t.Errorf("got %v, %v", fns, err)
	}
}

func TestLoadDirErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		code  sesame.Code
		want  string
	}{
		{"an invalid function names its file and line",
			map[string]string{"a.yaml": "connection: c\nmethod: GET\n", "b.yaml": "connection: c\nmethod: GET\nparameters:\n  x: {location: nowhere}\n"},
			sesame.CodeInvalidField, "b.yaml: line 4: parameters.x.location: must be one of"},
		{"the same name twice",
			map[string]string{"a.yaml": "connection: c\nmethod: GET\n", "a.yml": "connection: c\nmethod: GET\n"},
			sesame.CodeAlreadyExists, `a.yml: function "a" is also defined in`},
		{"a file name that is not a function name",
			map[string]string{"-a.yaml": "connection: c\nmethod: GET\n"},
			sesame.CodeInvalidName, "-a.yaml: function name"},
		{"a file too large",
			map[string]string{"big.yaml": strings.Repeat("#", function.MaxSourceSize+1)},
			sesame.CodePayloadTooLarge, "big.yaml: function definition is larger"},
		{"a folder named like a function",
			map[string]string{"dir.yaml/x": ""},
			sesame.CodeInvalidArgument, "dir.yaml: not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := function.LoadDir(dir)
			assertError(t, err, tt.code, tt.want)
			if err != nil && !strings.Contains(err.Error(), dir) {
				t.Errorf("error does not name the file's path: %v", err)
			}
		})
	}
	if _, err := function.LoadDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadDir of a missing folder succeeded")
	}
}
