package function_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

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
