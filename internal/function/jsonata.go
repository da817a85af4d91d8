package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	jsonata "github.com/blues/jsonata-go"
	"github.com/blues/jsonata-go/jparse"
	"github.com/sesamehq/sesame"
)

// Limits of JSONata, Jigx's transform language (jsonata-go).
//
// jsonata-go has no cancellation: an evaluation, once started, runs to its end. So the
// limits are in three layers. Parse refuses what can run without end or build a value
// far larger than its input in one step: recursion (a function may only be written as
// the argument of a built-in higher-order function such as $map, or after ~>, and only
// built-in functions may be called, so no function can reach itself), partial
// application, ranges other than literal ones of at most JSONataMaxRange items, and
// $pad to more than JSONataMaxRange characters. A run gets at most TransformTimeout:
// after it the caller gets transform_failed at once, and the abandoned evaluation keeps
// one of the expression's JSONataSlots until it ends, so that a slow expression holds at
// most that many cores. Its result must encode to at most TransformMaxOutput bytes of JSON.
const (
	JSONataMaxRange = 10_000
	JSONataSlots    = 2
)

// jsonataHOFs are the built-in functions that take a function argument.
var jsonataHOFs = map[string]bool{
	"map": true, "filter": true, "reduce": true, "single": true, "each": true, "sift": true, "sort": true,
}

// jsonataBuiltins are the functions a JSONata transform may call (jsonata-go's own, plus
// $now and $millis).
var jsonataBuiltins = map[string]bool{
	"string": true, "length": true, "substring": true, "substringBefore": true, "substringAfter": true,
	"uppercase": true, "lowercase": true, "pad": true, "trim": true, "contains": true, "split": true,
	"join": true, "match": true, "replace": true, "formatNumber": true, "formatBase": true,
	"decodeUrl": true, "decodeUrlComponent": true, "encodeUrl": true, "encodeUrlComponent": true,
	"number": true, "abs": true, "floor": true, "ceil": true, "round": true, "power": true, "sqrt": true,
	"random": true, "sum": true, "max": true, "min": true, "average": true, "boolean": true, "not": true,
	"exists": true, "distinct": true, "count": true, "reverse": true, "sort": true, "shuffle": true,
	"zip": true, "append": true, "map": true, "filter": true, "reduce": true, "single": true, "each": true,
	"sift": true, "keys": true, "lookup": true, "spread": true, "merge": true, "fromMillis": true,
	"toMillis": true, "type": true, "error": true, "now": true, "millis": true,
}

// jsonataTransform is a compiled, checked JSONata expression.
type jsonataTransform struct {
	expr  *jsonata.Expr
	slots chan struct{} // one token per evaluation that may run at once
}

// compileJSONata checks and compiles expression src. A leading "=" (how Jigx marks an
// expression in other fields) is dropped. It returns a message on error.
func compileJSONata(src string) (t *jsonataTransform, msg string) {
	src = strings.TrimSpace(src)
	src = strings.TrimPrefix(src, "=")
	if strings.TrimSpace(src) == "" {
		return nil, "is empty"
	}
	src = quotedSteps(src)
	defer func() {
		if r := recover(); r != nil { // jsonata-go re-panics parser panics it does not expect
			t, msg = nil, "is not a valid JSONata expression"
		}
	}()
	node, err := jparse.Parse(src)
	if err != nil {
		return nil, "is not a valid JSONata expression: " + truncate(err.Error(), 200)
	}
	if err := checkJSONata(node, false); err != nil {
		return nil, err.Error()
	}
	expr, err := jsonata.Compile(src)
	if err != nil {
		return nil, "is not a valid JSONata expression: " + truncate(err.Error(), 200)
	}
	return &jsonataTransform{expr: expr, slots: make(chan struct{}, JSONataSlots)}, ""
}

// checkJSONata refuses the constructs listed in the Limits. lambdaOK says whether a
// function may be written at n's place.
func checkJSONata(n jparse.Node, lambdaOK bool) error {
	check := func(ns ...jparse.Node) error {
		for _, c := range ns {
			if err := checkJSONata(c, false); err != nil {
				return err
			}
		}
		return nil
	}
	switch n := n.(type) {
	case nil, *jparse.StringNode, *jparse.NumberNode, *jparse.BooleanNode, *jparse.NullNode,
		*jparse.RegexNode, *jparse.NameNode, *jparse.WildcardNode, *jparse.DescendentNode, *jparse.VariableNode:
		return nil
	case *jparse.PathNode:
		return check(n.Steps...)
	case *jparse.NegationNode:
		return check(n.RHS)
	case *jparse.RangeNode:
		lo, ok1 := n.LHS.(*jparse.NumberNode)
		hi, ok2 := n.RHS.(*jparse.NumberNode)
		if !ok1 || !ok2 || hi.Value-lo.Value > JSONataMaxRange {
			return fmt.Errorf("ranges [a..b] must have literal numbers as bounds and at most %d items", JSONataMaxRange)
		}
		return nil
	case *jparse.ArrayNode:
		return check(n.Items...)
	case *jparse.ObjectNode:
		return checkPairs(n)
	case *jparse.BlockNode:
		return check(n.Exprs...)
	case *jparse.ObjectTransformationNode:
		return check(n.Pattern, n.Updates, n.Deletes)
	case *jparse.PredicateNode:
		if err := check(n.Expr); err != nil {
			return err
		}
		return check(n.Filters...)
	case *jparse.GroupNode:
		if err := check(n.Expr); err != nil {
			return err
		}
		return checkPairs(n.ObjectNode)
	case *jparse.ConditionalNode:
		return check(n.If, n.Then, n.Else)
	case *jparse.AssignmentNode:
		if jsonataBuiltins[n.Name] {
			return fmt.Errorf("must not assign to $%s, a built-in function", truncate(n.Name, 64))
		}
		return check(n.Value)
	case *jparse.NumericOperatorNode:
		return check(n.LHS, n.RHS)
	case *jparse.ComparisonOperatorNode:
		return check(n.LHS, n.RHS)
	case *jparse.BooleanOperatorNode:
		return check(n.LHS, n.RHS)
	case *jparse.StringConcatenationNode:
		return check(n.LHS, n.RHS)
	case *jparse.SortNode:
		if err := check(n.Expr); err != nil {
			return err
		}
		for _, t := range n.Terms {
			if err := check(t.Expr); err != nil {
				return err
			}
		}
		return nil
	case *jparse.LambdaNode:
		return checkLambda(n, lambdaOK)
	case *jparse.TypedLambdaNode:
		return checkLambda(n.LambdaNode, lambdaOK)
	case *jparse.FunctionCallNode:
		v, ok := n.Func.(*jparse.VariableNode)
		if !ok || !jsonataBuiltins[v.Name] {
			return errors.New("may only call built-in functions such as $map or $string")
		}
		if v.Name == "pad" && len(n.Args) > 1 {
			w, ok := n.Args[1].(*jparse.NumberNode)
			if !ok || math.Abs(w.Value) > JSONataMaxRange {
				return fmt.Errorf("$pad needs a literal width of at most %d", JSONataMaxRange)
			}
		}
		for _, a := range n.Args {
			if _, isPlaceholder := a.(*jparse.PlaceholderNode); isPlaceholder {
				return errors.New("partial application (?) is not supported")
			}
			if err := checkJSONata(a, jsonataHOFs[v.Name]); err != nil {
				return err
			}
		}
		return nil
	case *jparse.FunctionApplicationNode:
		if err := check(n.LHS); err != nil {
			return err
		}
		if v, ok := n.RHS.(*jparse.VariableNode); ok && jsonataBuiltins[v.Name] {
			return nil
		}
		return checkJSONata(n.RHS, true)
	case *jparse.PartialNode:
		return errors.New("partial application (?) is not supported")
	}
	return fmt.Errorf("uses a JSONata construct (%T) that Sesame does not run", n)
}

func checkPairs(o *jparse.ObjectNode) error {
	if o == nil {
		return nil
	}
	for _, p := range o.Pairs {
		for _, e := range p {
			if err := checkJSONata(e, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkLambda(n *jparse.LambdaNode, ok bool) error {
	if !ok {
		return errors.New("a function may only be written as the argument of a built-in function such as $map, or after ~>")
	}
	for _, p := range n.ParamNames {
		if jsonataBuiltins[p] {
			return fmt.Errorf("a function parameter must not be called $%s, a built-in function", truncate(p, 64))
		}
	}
	return checkJSONata(n.Body, false)
}

// apply evaluates the expression on v (see the Limits). JSONata's undefined gives nil.
func (t *jsonataTransform) apply(ctx context.Context, fn, field string, v any) (any, error) {
	in, err := toJSONata(v, 0)
	if err != nil {
		return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s: %s", fn, field, err.Error())
	}
	runCtx, cancel := context.WithTimeout(ctx, TransformTimeout)
	defer cancel()
	timedOut := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return sesame.Errorf(CodeTransformFailed, "function %s: %s took longer than %s", fn, field, TransformTimeout)
	}
	select {
	case t.slots <- struct{}{}:
	case <-runCtx.Done():
		return nil, timedOut()
	}
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-t.slots }()
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("jsonata: panic")}
			}
		}()
		r, err := t.expr.Eval(in)
		done <- result{r, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-runCtx.Done():
		return nil, timedOut()
	}
	if errors.Is(r.err, jsonata.ErrUndefined) {
		return nil, nil
	}
	if r.err != nil {
		return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s failed on its input", fn, field)
	}
	return fromJSONata(r.v, fn, field)
}

// toJSONata converts a decoded JSON value into what jsonata-go computes with: numbers
// become float64 (a json.Number is a string to it).
func toJSONata(v any, depth int) (any, error) {
	if depth > 10_000 {
		return nil, errors.New("input is nested too deeply")
	}
	switch v := v.(type) {
	case nil, bool, string, float64:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, errors.New("input holds a number that is not valid")
		}
		return f, nil
	case *big.Int:
		f, _ := new(big.Float).SetInt(v).Float64()
		return f, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := toJSONata(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, err := toJSONata(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("input holds a %T, which is not a decoded JSON value", v)
}

// cappedBuffer fails a write that would make it larger than max.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

var errTooLarge = errors.New("too large")

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}

// fromJSONata turns a JSONata result into a plain decoded JSON value (numbers as
// json.Number), refusing one larger than TransformMaxOutput.
func fromJSONata(v any, fn, field string) (any, error) {
	buf := &cappedBuffer{max: TransformMaxOutput}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s gave more than %d bytes", fn, field, TransformMaxOutput)
		}
		return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s gave a value that is not JSON (such as NaN or a function)", fn, field)
	}
	dec := json.NewDecoder(&buf.Buffer)
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, sesame.Errorf(CodeTransformFailed, "function %s: %s gave a value that is not JSON", fn, field)
	}
	return out, nil
}
