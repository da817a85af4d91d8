package function_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/itchyny/gojq"
	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

func withTransform(t *testing.T, jq string) *function.Function {
	t.Helper()
	b, _ := json.Marshal(jq)
	return mustParse(t, "fn", "connection: c\nmethod: GET\noutputTransform: "+string(b)+"\n")
}

func decodeAny(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTransform(t *testing.T) {
	const in = `{"items": [{"id": 1, "n": "a"}, {"id": 12345678901234567890, "n": "b"}], "next": null}`
	tests := []struct {
		jq   string
		want string // JSON
	}{
		{".items", `[{"id":1,"n":"a"},{"id":12345678901234567890,"n":"b"}]`},
		{".items[0]", `{"id":1,"n":"a"}`},
		{".items[].n", `["a","b"]`}, // several results become an array
		{".items[] | select(.n == \"a\") | .id", `1`},
		{"empty", `null`},
		{".items | map(.id + 1) | .[0]", `2`},
		{"[nan, infinite, -infinite]", `[null,1.7976931348623157e+308,-1.7976931348623157e+308]`},
		{"$ENV | length", `0`}, // the server's environment is not visible
		{"env.HOME", `null`},
	}
	for _, tt := range tests {
		t.Run(tt.jq, func(t *testing.T) {
			f := withTransform(t, tt.jq)
			v := decodeAny(t, in)
			got, err := f.Transform(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
			if !reflect.DeepEqual(v, decodeAny(t, in)) {
				t.Errorf("Transform changed its input: %v", v)
			}
		})
	}
}

func TestTransformWithoutTransformReturnsInput(t *testing.T) {
	f := mustParse(t, "fn", "connection: c\nmethod: GET\n")
	in := map[string]any{"a": []any{1.0}}
	got, err := f.Transform(context.Background(), in)
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestTransformCleansWithoutWritingToInput(t *testing.T) {
	f := withTransform(t, `.a[1] = nan | .`)
	in := map[string]any{"a": []any{1.0, 2.0}, "b": map[string]any{"c": 1.0}}
	got, err := f.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, map[string]any{"a": []any{1.0, nil}, "b": map[string]any{"c": 1.0}}) {
		t.Errorf("got %v", got)
	}
	if in["a"].([]any)[1] != 2.0 {
		t.Errorf("input changed: %v", in)
	}
}

func TestTransformErrorsHoldNothingOfTheResponse(t *testing.T) {
	for _, jq := range []string{".token | tonumber", `error(.token)`, `.token | keys`, `.token.x`, `.token | .[]`} {
		f := withTransform(t, jq)
		_, err := f.Transform(context.Background(), map[string]any{"token": canary})
		assertError(t, err, function.CodeTransformFailed, "outputTransform failed")
		if strings.Contains(err.Error(), canary) {
			t.Errorf("%s: error holds the response: %v", jq, err)
		}
	}
}

func TestTransformRefusesNonJSONInput(t *testing.T) {
	f := withTransform(t, ".")
	_, err := f.Transform(context.Background(), map[string]any{"a": []string{"x"}})
	if err == nil || sesame.ErrorCode(err) != sesame.CodeInternal {
		t.Errorf("err = %v", err)
	}
}

func TestTransformIsBoundedInTime(t *testing.T) {
	f := withTransform(t, "last(range(1e15))")
	start := time.Now()
	_, err := f.Transform(context.Background(), nil)
	assertError(t, err, function.CodeTransformFailed, "took longer than 1s")
	if d := time.Since(start); d > function.TransformTimeout+2*time.Second {
		t.Errorf("took %s", d)
	}

	// A caller's context that ends first gives its own error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = f.Transform(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
}

func TestTransformBoundsResults(t *testing.T) {
	f := withTransform(t, "range(200000)")
	_, err := f.Transform(context.Background(), nil)
	assertError(t, err, function.CodeTransformFailed, "more than")
}

// TestTransformGuardsKeepMeaning: the checked operators and builtins give what plain gojq gives.
func TestTransformGuardsKeepMeaning(t *testing.T) {
	const in = `{"a": 1, "s": "ab", "l": [1, 2], "o": {"x": {"y": 1}}, "n": 12345678901234567890, "f": 1.25, "e": 1e3,
		"big": 4611686018427387904, "neg": -2}`
	for _, jq := range []string{
		`.a + 1`, `.a + -1`, `.a * -1`, `.a * 0`, `.n * 0`, `.n + .n`, `.f * 3`, `.f + .a`, `.big * .big`, `.neg * .big`, `.e + 1`,
		`[.a, .f, .e] | map(. * 7, . + 0.5)`, `.a + 0`, `9223372036854775807 + .a`, `-9223372036854775807 - 2 + .a`, `.a * 2.5`, `.s * 3`, `3 * .s`, `.s * 0`, `.s * -1`, `.s + "c"`, `.l + [3]`, `null + .a`, `.a + null`,
		`.o * {"x": {"z": 2}}`, `{"b": 2} + {"c": 3}`, `.n * 2`, `.n + 1`, `.a * .a`, `.a += 10 | .a`, `.l[] *= 2 | .l`,
		`[(.a, .a) += (1, 2) | .a]`, `.a += .a`, `.l[1]`, `.l[-1]`, `.l[0:1]`, `.l[1:]`, `.o["x"].y`, `.["s"]`,
		`setpath(["l", 3]; 9) | .l`, `.l[3] = 9 | .l`, `.l | tojson`, `.s | @base64`, `@json "v=\(.l)"`, `.l | add`,
		`[.s, "c"] | join("-")`, `[.s, 1, null] | join(",")`, `.s | split("") | length`, `.a | tostring | .[0:1]`,
		`def f: . * 2; .a | f | f`, `reduce .l[] as $x (0; . + $x)`, `"\(.a + 1)"`, `[paths]`, `to_entries | length`,
		`.l | map(. * 10)`, `[.l[] | . + 1]`, `try (.s * {}) catch "err"`, `try ([] + {}) catch "err"`, `[.[] | numbers] | add`,
		`path(.l[0])`, `del(.l[0]) | .l`, `.l | first`, `[limit(3; repeat(1))]`, `add(.l[])`, `[add(.l[], .l[])]`,
		`.o | add`, `{"a": "x", "b": "y"} | add`, `[[1], [2, 3]] | add`, `[] | add`, `[.l[] | tostring] | join(", ")`,
		`add(.l[]) + 1`, `try (1 | add) catch "err"`, `try ({} | join(",")) catch "err"`, `[range(10000) | tostring] | join(",") | length`,
	} {
		t.Run(jq, func(t *testing.T) {
			got, err := withTransform(t, jq).Transform(context.Background(), decodeAny(t, in))
			if err != nil {
				t.Fatal(err)
			}
			q, err := gojq.Parse(jq)
			if err != nil {
				t.Fatal(err)
			}
			var want []any
			for it := q.Run(decodeAny(t, in)); ; {
				v, ok := it.Next()
				if !ok {
					break
				}
				want = append(want, v)
			}
			var w any = want
			switch len(want) {
			case 0:
				w = nil
			case 1:
				w = want[0]
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(w)
			if string(gb) != string(wb) {
				t.Errorf("got %s, want %s", gb, wb)
			}
		})
	}
}

// TestTransformBombsFailFastAndSmall: transforms that would build huge values in one step,
// or many, stop with transform_failed and allocate a bounded amount.
func TestTransformBombsFailFastAndSmall(t *testing.T) {
	for _, jq := range []string{
		`"x" * 1000000000`,
		`1000000000 * "x"`,
		`[range(1e9)]`,
		`[range(1e9)] | length`,
		`reduce range(40) as $i ("x"; . + .)`,
		`reduce range(40) as $i ([1]; . + .)`,
		`.s = "x" | .s *= 1e9`,
		`"\"" * 1000000 | tojson | tojson | tojson | tojson | tojson | tojson | tojson | tojson`,
		`.[100000000] = 1`,
		`[] | setpath([100000000]; 1)`,
		`reduce range(40) as $i (2; . * .)`,
		`[limit(1e8; repeat("xxxxxxxxxxxxxxxx"))] | add`,
		`"x" * 4000000 | [., ., ., ., ., ., ., ., ., ., ., ., ., ., ., ., .] | add`,
		`"x" * 4000000 | [., ., ., ., .] | join("")`,
		`[range(1000)] | join("y" * 1000000)`,
		`"x" * 4000000 | add(., ., .)`,
		`[range(3000000)] | tojson`,
	} {
		t.Run(jq, func(t *testing.T) {
			f := withTransform(t, jq)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err := f.Transform(context.Background(), map[string]any{})
			runtime.ReadMemStats(&m1)
			if sesame.ErrorCode(err) != function.CodeTransformFailed {
				t.Fatalf("err = %v, want transform_failed", err)
			}
			if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 200<<20 {
				t.Errorf("allocated %d MiB", grew>>20)
			}
			t.Log(err)
		})
	}
}

// BenchmarkTransformGuards compares a transform with the checked operators against
// plain gojq on the same input (10,000 items).
func BenchmarkTransformGuards(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i := range 10000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"name":"item %d","price":%d.5}`, i, i, i)
	}
	sb.WriteString(`]}`)
	const jq = `[.items[] | {id: (.id + 1), label: (.name + "!"), total: (.price * 2)}] | length`
	f := mustParse(b, "fn", "connection: c\nmethod: GET\noutputTransform: '"+jq+"'\n")
	q, _ := gojq.Parse(jq)
	plain, _ := gojq.Compile(q)
	for _, tc := range []struct {
		name string
		run  func(v any)
	}{
		{"guarded", func(v any) { _, _ = f.Transform(context.Background(), v) }},
		{"plain", func(v any) { plain.Run(v).Next() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dec := json.NewDecoder(strings.NewReader(sb.String()))
			dec.UseNumber()
			var v any
			_ = dec.Decode(&v)
			for b.Loop() {
				tc.run(v)
			}
		})
	}
}
