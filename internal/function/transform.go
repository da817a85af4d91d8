package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/itchyny/gojq"
	"github.com/sesamehq/sesame"
)

// CodeTransformFailed is the code of an output transform that failed on a response.
const CodeTransformFailed sesame.Code = "transform_failed"

// TransformTimeout bounds one run of an output transform.
const TransformTimeout = time.Second

// maxTransformOutputs bounds how many results a transform may emit.
const maxTransformOutputs = 100_000

// transformer is a compiled transform: jq for Sesame's own format, JSONata for Jigx's.
// apply runs it on a decoded JSON value with the hard limits of its kind (TransformTimeout,
// TransformMaxOutput, and for jq the limits of guard.go). Its errors are *sesame.Error
// with code CodeTransformFailed and a message that holds nothing of the value (field is
// the field the transform was written in), or ctx's error when ctx ends first.
type transformer interface {
	apply(ctx context.Context, fn, field string, v any) (any, error)
}

// jqTransform is a compiled, guarded jq program.
type jqTransform struct{ code *gojq.Code }

// Transform applies the output transform (jq, or JSONata for a Jigx function) to v, a
// decoded JSON body (decode with UseNumber to keep large integers exact). With no
// transform it returns v. One result is returned as it is, several become an array, none
// give nil. A run is bounded by TransformTimeout and the limits of guard.go (jq) or
// jsonata.go (JSONata). A failure is a *sesame.Error with code CodeTransformFailed whose
// message holds nothing of the response (jq errors quote the values they failed on); a
// ctx that ends first gives ctx's error.
func (f *Function) Transform(ctx context.Context, v any) (any, error) {
	if f.transform == nil {
		return v, nil
	}
	return f.transform.apply(ctx, f.Name, "outputTransform", v)
}

func (t jqTransform) apply(ctx context.Context, fn, field string, v any) (any, error) {
	if err := checkInput(v, 0); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithTimeout(ctx, TransformTimeout)
	defer cancel()
	budget := newAllocBudget(runCtx, TransformMaxAlloc)
	iter := t.code.RunWithContext(budget, v)
	var out []any
	size := 0
	for {
		r, ok := iter.Next()
		if !ok {
			break
		}
		if err, isErr := r.(error); isErr {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var le *limitError
			if errors.As(err, &le) || errors.As(budget.Err(), &le) {
				return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s", fn, le.Error())
			}
			if errors.Is(err, context.DeadlineExceeded) || runCtx.Err() != nil {
				return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s took longer than %s", fn, field, TransformTimeout)
			}
			return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s failed on the response", fn, field)
		}
		if len(out) == maxTransformOutputs {
			return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s gave more than %d results", fn, field, maxTransformOutputs)
		}
		n, over := sizeOf(r, TransformMaxOutput-size)
		if size += n; over {
			return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s gave more than %d bytes", fn, field, TransformMaxOutput)
		}
		r, _ = clean(r)
		out = append(out, r)
	}
	switch len(out) {
	case 0:
		return nil, nil
	case 1:
		return out[0], nil
	}
	return out, nil
}

// checkInput refuses values gojq cannot take (it panics on some Go types).
func checkInput(v any, depth int) error {
	if depth > 10_000 {
		return fmt.Errorf("transform input is nested too deeply")
	}
	switch v := v.(type) {
	case nil, bool, string, float64, int, json.Number, *big.Int:
		return nil
	case []any:
		for _, e := range v {
			if err := checkInput(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, e := range v {
			if err := checkInput(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("transform input holds a %T, which is not a decoded JSON value", v)
}

// clean makes a jq result encodable as JSON: jq's nan becomes null and infinities the
// largest finite numbers, as jq prints them. Results can share parts with the input, so
// clean copies what it changes instead of writing into it.
func clean(v any) (any, bool) {
	switch v := v.(type) {
	case float64:
		switch {
		case math.IsNaN(v):
			return nil, true
		case math.IsInf(v, 1):
			return math.MaxFloat64, true
		case math.IsInf(v, -1):
			return -math.MaxFloat64, true
		}
	case []any:
		var out []any
		for i, e := range v {
			c, changed := clean(e)
			if changed && out == nil {
				out = slices.Clone(v)
			}
			if out != nil {
				out[i] = c
			}
		}
		if out != nil {
			return out, true
		}
	case map[string]any:
		var out map[string]any
		for k, e := range v {
			c, changed := clean(e)
			if changed && out == nil {
				out = maps.Clone(v)
			}
			if out != nil && changed {
				out[k] = c
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}
