package function

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestQuotedPathStepsAreFieldNames(t *testing.T) {
	cases := []struct{ src, want string }{
		{`$."@odata.nextLink"`, "$.`@odata.nextLink`"},
		{`=$."@odata.nextLink"`, "=$.`@odata.nextLink`"},
		{`$ . 'a b'`, "$ . `a b`"},
		{`"x".y`, "`x`.y"},
		{`"x"[0].y`, "`x`[0].y"},
		{`$.a."b\"c"`, "$.a.`b\"c`"},
		{`$.a.'it\'s'`, "$.a.`it's`"},
		// strings that are not path steps stay strings
		{`$.a = "b.c"`, `$.a = "b.c"`},
		{`{"a": "b"}`, `{"a": "b"}`},
		{`$substringAfter($.x, ".")`, `$substringAfter($.x, ".")`},
		{`$.a & "x" & $.b`, `$.a & "x" & $.b`},
		{`$.a[name = "n"].v`, `$.a[name = "n"].v`},
		{`[1..3]`, `[1..3]`},
		// inside a string, a backtick name or a regular expression nothing changes
		{`"a.\"b\"".c`, "`a.\"b\"`.c"},
		{"$.`x.\"y\"`", "$.`x.\"y\"`"},
		{`$match($.a, /."b"/)`, `$match($.a, /."b"/)`},
		{`$.a / 2 . "b"`, "$.a / 2 . `b`"},
		// a name with a backtick cannot be a backtick name; unterminated text is left
		{"$.\"a`b\"", "$.\"a`b\""},
		{`$."abc`, `$."abc`},
	}
	for _, c := range cases {
		if got := quotedSteps(c.src); got != c.want {
			t.Errorf("quotedSteps(%s) = %s, want %s", c.src, got, c.want)
		}
	}
}

func TestQuotedPathStepsEvaluateAsJigxDoes(t *testing.T) {
	page := map[string]any{
		"@odata.nextLink": "https://graph.example/next",
		"value":           []any{map[string]any{"@odata.etag": "e1", "id": "1"}},
		"a.b":             "dotted",
	}
	cases := []struct {
		src  string
		want string
	}{
		{`=$."@odata.nextLink"`, `"https://graph.example/next"`},
		{`$exists($."@odata.nextLink")`, `true`},
		{`$.value."@odata.etag"`, `"e1"`},
		{`$.value.{"etag": $."@odata.etag", "s": "a.b"}`, `{"etag":"e1","s":"a.b"}`},
		{`$."a.b" & "." & "x"`, `"dotted.x"`},
		{`$."missing"`, `null`},
	}
	for _, c := range cases {
		tr, msg := compileJSONata(c.src)
		if msg != "" {
			t.Errorf("%s: %s", c.src, msg)
			continue
		}
		v, err := tr.apply(context.Background(), "f", "outputTransform", page)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		b, _ := json.Marshal(v)
		if string(b) != c.want {
			t.Errorf("%s = %s, want %s", c.src, b, c.want)
		}
	}
}

// FuzzQuotedSteps: the rewrite is idempotent, changes only string literals into
// backtick names, and what it gives compiles or is refused without a panic.
func FuzzQuotedSteps(f *testing.F) {
	for _, s := range []string{`$."@odata.nextLink"`, `"a"[0].b`, `$.a = "b.c"`, `$match(x, /"a"/) . "b"`, `'x\'y'.z`, "$.`a`.\"b\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out := quotedSteps(src)
		if again := quotedSteps(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", src, out, again)
		}
		if strings.Count(out, "`")-strings.Count(src, "`") > 2*strings.Count(src, `"`)+2*strings.Count(src, "'") {
			t.Fatalf("added more backticks than there were strings: %q -> %q", src, out)
		}
		_, _ = compileJSONata(src)
	})
}
