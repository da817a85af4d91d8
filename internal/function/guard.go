package function

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"runtime/metrics"
	"strings"

	"github.com/itchyny/gojq"
)

// Limits of one output-transform run. gojq checks for cancellation between its
// instructions only, so a single instruction that builds a huge value ("x" * 1e9, a string
// doubled by "+" in a reduce, tojson of tojson, setpath at index 1e8) would run to the end
// and allocate all of it. Parse therefore rewrites every "*" and "+" (and "*=", "+="), the
// builtins that can make their output much larger than their input, and every index and
// setpath into checked versions; and a run stops once the process has allocated
// TransformMaxAlloc since it began, checked every few hundred instructions.
const (
	// TransformMaxValue bounds one string (bytes), array (elements) or big integer
	// (bits/8) that an operation may produce.
	TransformMaxValue = 4 << 20
	// TransformMaxIndex bounds an array index used to read or write.
	TransformMaxIndex = 1 << 20
	// TransformMaxAlloc bounds what the process allocates during one run. The count is
	// process-wide: under heavy concurrent load a large transform can be stopped early.
	TransformMaxAlloc = 128 << 20
	// TransformMaxOutput bounds the results of a run (their JSON size, roughly).
	TransformMaxOutput = 16 << 20
)

// limitError is a transform that crossed one of the limits.
type limitError struct{ what string }

func (e *limitError) Error() string { return "outputTransform " + e.what }

// expanding are the builtins whose result can be several times larger than their input.
var expanding = map[string]bool{
	"tojson": true, "tostring": true, "explode": true, "implode": true, "split": true, "splits": true,
	"tostream": true, "to_entries": true, "paths": true, "leaf_paths": true,
	"combinations": true, "flatten": true, "ascii": true, "indices": true, "_nwise": true,
}

// Names of the checked operations. A transform may call them too; they are checked all the same.
const (
	fnMul     = "_sesame_mul"
	fnAdd     = "_sesame_add"
	fnCheck   = "_sesame_check"
	fnIndex   = "_sesame_index"
	fnSetpath = "_sesame_setpath"
	fnJoin    = "_sesame_join"
	fnAddAll  = "_sesame_addall"
	varRHS    = "$__sesame_rhs"
)

// guardOptions are the compiler options that define the checked operations.
func guardOptions() []gojq.CompilerOption {
	return []gojq.CompilerOption{
		gojq.WithFunction(fnMul, 2, 2, func(_ any, a []any) any { return checkedOp(mulCode, a[0], a[1], true) }),
		gojq.WithFunction(fnAdd, 2, 2, func(_ any, a []any) any { return checkedOp(addCode, a[0], a[1], false) }),
		gojq.WithFunction(fnCheck, 1, 1, func(_ any, a []any) any {
			if err := checkSize(a[0]); err != nil {
				return err
			}
			return a[0]
		}),
		gojq.WithFunction(fnIndex, 1, 1, func(_ any, a []any) any {
			if err := checkIndex(a[0]); err != nil {
				return err
			}
			return a[0]
		}),
		gojq.WithFunction(fnJoin, 1, 1, func(v any, a []any) any {
			sep, _ := a[0].(string)
			if err := checkJoined(v, len(sep)); err != nil {
				return err
			}
			return runOne(joinCode, v, a[0])
		}),
		gojq.WithFunction(fnAddAll, 0, 0, func(v any, _ []any) any {
			if err := checkJoined(v, 0); err != nil {
				return err
			}
			return runOne(addAllCode, v)
		}),
		gojq.WithFunction(fnSetpath, 2, 2, func(v any, a []any) any {
			if p, ok := a[0].([]any); ok {
				for _, e := range p {
					if err := checkIndex(e); err != nil {
						return err
					}
				}
			}
			return runOne(setpathCode, v, a[0], a[1])
		}),
	}
}

// The real operations, run once checked. Compiled once; a *gojq.Code is immutable.
var (
	mulCode     = mustCompile(".[0] * .[1]")
	addCode     = mustCompile(".[0] + .[1]")
	setpathCode = mustCompile("setpath($__p; $__v)", "$__p", "$__v")
	joinCode    = mustCompile("join($__s)", "$__s")
	addAllCode  = mustCompile("add")
)

func mustCompile(src string, vars ...string) *gojq.Code {
	q, err := gojq.Parse(src)
	if err != nil {
		panic(err)
	}
	c, err := gojq.Compile(q, gojq.WithVariables(vars))
	if err != nil {
		panic(err)
	}
	return c
}

// runOne runs c on in with the given variable values and returns its first result.
func runOne(c *gojq.Code, in any, vars ...any) any {
	v, ok := c.Run(in, vars...).Next()
	if !ok {
		return nil
	}
	return v
}

// checkedOp refuses an operation whose result would pass TransformMaxValue, then runs it.
func checkedOp(c *gojq.Code, l, r any, mul bool) any {
	if mul {
		s, n, ok := stringTimes(l, r)
		if ok && n > 0 && float64(len(s))*n > TransformMaxValue {
			return &limitError{fmt.Sprintf("would make a string longer than %d bytes", TransformMaxValue)}
		}
		if a, b, ok := bigs(l, r); ok && (a.BitLen()+b.BitLen())/8 > TransformMaxValue {
			return &limitError{fmt.Sprintf("would make a number larger than %d bytes", TransformMaxValue)}
		}
	} else {
		switch l := l.(type) {
		case string:
			if r, ok := r.(string); ok && len(l)+len(r) > TransformMaxValue {
				return &limitError{fmt.Sprintf("would make a string longer than %d bytes", TransformMaxValue)}
			}
		case []any:
			if r, ok := r.([]any); ok && len(l)+len(r) > TransformMaxValue {
				return &limitError{fmt.Sprintf("would make an array longer than %d elements", TransformMaxValue)}
			}
		}
	}
	// Numbers and strings without a nested run.
	if a, ok := plainNumber(l); ok {
		if b, ok := plainNumber(r); ok {
			if v, ok := arith(a, b, mul); ok {
				return v
			}
		}
	}
	if a, ok := l.(string); ok && !mul {
		if b, ok := r.(string); ok {
			return a + b
		}
	}
	return runOne(c, []any{l, r})
}

// plainNumber returns v as an int or float64 as gojq would see it, if it is one of those.
func plainNumber(v any) (any, bool) {
	switch v := v.(type) {
	case int, float64:
		return v, true
	case json.Number:
		if i, err := v.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i), true
		}
		if strings.ContainsAny(string(v), ".eE") {
			if f, err := v.Float64(); err == nil {
				return f, true
			}
		}
	}
	return nil, false
}

// arith adds or multiplies two plain numbers as gojq does, unless an int result would
// overflow (then gojq makes a big integer).
func arith(a, b any, mul bool) (any, bool) {
	ai, aInt := a.(int)
	bi, bInt := b.(int)
	if aInt && bInt {
		if mul {
			if ai == 0 || bi == 0 {
				return 0, true
			}
			if p := ai * bi; p/bi == ai && !(ai == -1 && bi == math.MinInt) && !(bi == -1 && ai == math.MinInt) {
				return p, true
			}
			return nil, false
		}
		if sum := ai + bi; (sum > ai) == (bi > 0) {
			return sum, true
		}
		return nil, false
	}
	af, bf := toFloat(a), toFloat(b)
	if mul {
		return af * bf, true
	}
	return af + bf, true
}

func toFloat(v any) float64 {
	if i, ok := v.(int); ok {
		return float64(i)
	}
	return v.(float64)
}

func stringTimes(l, r any) (string, float64, bool) {
	if s, ok := l.(string); ok {
		if n, ok := number(r); ok {
			return s, n, true
		}
	}
	if s, ok := r.(string); ok {
		if n, ok := number(l); ok {
			return s, n, true
		}
	}
	return "", 0, false
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case float64:
		return v, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(v).Float64()
		return f, true
	}
	if f, ok := gojq.ToFloat64(v); ok {
		return f, true
	}
	return 0, false
}

func bigs(l, r any) (*big.Int, *big.Int, bool) {
	toBig := func(v any) (*big.Int, bool) {
		switch v := v.(type) {
		case *big.Int:
			return v, true
		case int:
			return big.NewInt(int64(v)), true
		}
		return nil, false
	}
	a, ok1 := toBig(l)
	b, ok2 := toBig(r)
	_, bigL := l.(*big.Int)
	_, bigR := r.(*big.Int)
	return a, b, ok1 && ok2 && (bigL || bigR)
}

// checkJoined refuses to add up or join the elements (or object values) of v when the
// strings or arrays that would make would pass TransformMaxValue, sep bytes between each.
func checkJoined(v any, sep int) error {
	var vs []any
	switch v := v.(type) {
	case []any:
		vs = v
	case map[string]any:
		for _, e := range v {
			vs = append(vs, e)
		}
	default:
		return nil // not a list: the real operation reports it
	}
	n := sep * max(len(vs)-1, 0)
	for _, e := range vs {
		switch e := e.(type) {
		case string:
			n += len(e)
		case []any:
			n += len(e)
		default:
			n += 24
		}
	}
	if n > TransformMaxValue {
		return &limitError{fmt.Sprintf("would make a string or array longer than %d", TransformMaxValue)}
	}
	return nil
}

func checkIndex(v any) error {
	if n, ok := number(v); ok && (n > TransformMaxIndex || n < -TransformMaxIndex) {
		return &limitError{fmt.Sprintf("uses an array index beyond %d", TransformMaxIndex)}
	}
	return nil
}

// checkSize refuses a value larger than TransformMaxValue (a string's bytes, an array's
// or object's entries) or, in all, than TransformMaxOutput.
func checkSize(v any) error {
	if _, over := sizeOf(v, TransformMaxOutput); over {
		return &limitError{fmt.Sprintf("made a value larger than %d bytes", TransformMaxOutput)}
	}
	switch v := v.(type) {
	case string:
		if len(v) > TransformMaxValue {
			return &limitError{fmt.Sprintf("made a string longer than %d bytes", TransformMaxValue)}
		}
	case []any:
		if len(v) > TransformMaxValue {
			return &limitError{fmt.Sprintf("made an array longer than %d elements", TransformMaxValue)}
		}
	}
	return nil
}

// sizeOf estimates the JSON size of v, stopping once it passes limit.
func sizeOf(v any, limit int) (int, bool) {
	n := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			n += len(v) + 2
		case []any:
			n += 2
			for _, e := range v {
				if !walk(e) {
					return false
				}
				n++
			}
		case map[string]any:
			n += 2
			for k, e := range v {
				n += len(k) + 4
				if !walk(e) {
					return false
				}
			}
		case *big.Int:
			n += v.BitLen()/3 + 1
		default:
			n += 8
		}
		return n <= limit
	}
	ok := walk(v)
	return n, !ok
}

// guardQuery rewrites q in place so that every operation that can build a large value in
// one instruction is checked first (see the Limits).
func guardQuery(q *gojq.Query) {
	walkQueries(reflect.ValueOf(q), func(q *gojq.Query) {
		switch q.Op {
		case gojq.OpMul, gojq.OpAdd:
			fn := fnMul
			if q.Op == gojq.OpAdd {
				fn = fnAdd
			}
			*q = gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: fn, Args: []*gojq.Query{q.Left, q.Right}}}}
		case gojq.OpUpdateMul, gojq.OpUpdateAdd:
			// l op= r is: r as $x | l |= . op $x
			fn := fnMul
			if q.Op == gojq.OpUpdateAdd {
				fn = fnAdd
			}
			call := &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: fn, Args: []*gojq.Query{
				{Term: &gojq.Term{Type: gojq.TermTypeIdentity}},
				{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: varRHS}}},
			}}}}
			*q = gojq.Query{Left: q.Right, Op: gojq.OpPipe, Patterns: []*gojq.Pattern{{Name: varRHS}},
				Right: &gojq.Query{Left: q.Left, Op: gojq.OpModify, Right: call}}
		}
		if t := q.Term; t != nil {
			if t.Type == gojq.TermTypeFunc {
				switch f := t.Func; {
				case f.Name == "setpath" && len(f.Args) == 2:
					f.Name = fnSetpath
				case f.Name == "join" && len(f.Args) == 1:
					f.Name = fnJoin
				case f.Name == "add" && len(f.Args) == 0:
					f.Name = fnAddAll
				case f.Name == "add" && len(f.Args) == 1:
					// add(f) is [f] | add
					*t = gojq.Term{Type: gojq.TermTypeQuery, SuffixList: t.SuffixList, Query: &gojq.Query{
						Left:  &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeArray, Array: &gojq.Array{Query: f.Args[0]}}},
						Op:    gojq.OpPipe,
						Right: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: fnAddAll}}},
					}}
				}
			}
			if (t.Type == gojq.TermTypeFunc && expanding[t.Func.Name]) || t.Type == gojq.TermTypeFormat {
				inner := *t
				inner.SuffixList = nil
				*t = gojq.Term{Type: gojq.TermTypeFunc, SuffixList: t.SuffixList,
					Func: &gojq.Func{Name: fnCheck, Args: []*gojq.Query{{Term: &inner}}}}
			}
		}
	}, func(ix *gojq.Index) {
		for _, p := range []**gojq.Query{&ix.Start, &ix.End} {
			if *p != nil {
				*p = &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: fnIndex, Args: []*gojq.Query{*p}}}}
			}
		}
	})
}

var (
	queryType = reflect.TypeOf(gojq.Query{})
	indexType = reflect.TypeOf(gojq.Index{})
)

// walkQueries calls fq on every *gojq.Query reachable from v, children first, and fi on
// every *gojq.Index (after its queries were visited).
func walkQueries(v reflect.Value, fq func(*gojq.Query), fi func(*gojq.Index)) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		walkQueries(v.Elem(), fq, fi)
		switch v.Elem().Type() {
		case queryType:
			fq(v.Interface().(*gojq.Query))
		case indexType:
			fi(v.Interface().(*gojq.Index))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkQueries(v.Field(i), fq, fi)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkQueries(v.Index(i), fq, fi)
		}
	}
}

// allocBudget is a context for one run that also ends once the process has allocated
// max bytes since the run began. gojq asks Done before every instruction; the allocation
// count is read every checkEvery asks.
type allocBudget struct {
	context.Context
	sample []metrics.Sample
	start  uint64
	max    uint64
	n      int
	over   chan struct{}
	err    error
}

const checkEvery = 256

func newAllocBudget(ctx context.Context, max uint64) *allocBudget {
	b := &allocBudget{Context: ctx, sample: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}, max: max, over: make(chan struct{})}
	metrics.Read(b.sample)
	b.start = b.sample[0].Value.Uint64()
	return b
}

func (b *allocBudget) Done() <-chan struct{} {
	if b.err != nil {
		return b.over
	}
	if b.n++; b.n%checkEvery == 0 {
		metrics.Read(b.sample)
		if b.sample[0].Value.Uint64()-b.start > b.max {
			b.err = &limitError{fmt.Sprintf("allocated more than %d MiB", b.max>>20)}
			close(b.over)
			return b.over
		}
	}
	return b.Context.Done()
}

func (b *allocBudget) Err() error {
	if b.err != nil {
		return b.err
	}
	return b.Context.Err()
}
