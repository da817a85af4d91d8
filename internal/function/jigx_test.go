package function_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

const jigxEvents = `provider: DATA_PROVIDER_REST
method: GET
url: https://graph.microsoft.com/v1.0/users/{userId}/events
useLocalCall: true
parameters:
  accessToken: {location: header, required: true, type: string, value: microsoft.oauth}
  userId: {location: path, required: true, type: string}
  $top: {location: query, type: number, value: 10}
  $filter: {location: query, type: string, value: =@ctx.datasources.x}
  photo: {location: body, type: image}
  secret: {location: secret, type: string, value: graph.secret}
outputTransform: '$.value.{"id": id}'
records: $.value
continuation:
  when: =$exists($.` + "`@odata.nextLink`" + `)
  url: =$.` + "`@odata.nextLink`" + `
  parameters:
    page: {location: query, type: number, value: =$.page + 1}
`

func TestParseJigx(t *testing.T) {
	f, err := function.Parse("events", []byte(jigxEvents))
	if err != nil {
		t.Fatal(err)
	}
	if f.Provider != function.ProviderREST || !f.UseLocalCall || !f.Paged() || f.BaseURL() != "https://graph.microsoft.com" {
		t.Fatalf("parsed %+v", f)
	}
	if p := f.Parameters["$filter"]; p.Value != nil {
		t.Errorf("a Jigx expression became a default: %q", *p.Value)
	}
	if p := f.Parameters["secret"]; p.Location != "header" || !function.IsAuth("secret", p) {
		t.Errorf("location secret became %+v", p)
	}
	if p := f.Parameters["photo"]; p.Type != "string" {
		t.Errorf("type image became %q", p.Type)
	}
	if got := f.AuthParams(); strings.Join(got, ",") != "accessToken,secret" {
		t.Errorf("auth params %v", got)
	}
	ctx := context.Background()
	page := map[string]any{"page": json.Number("1"), "value": []any{map[string]any{"id": "a"}}, "@odata.nextLink": "https://graph.microsoft.com/v1.0/next?x=1"}
	recs, err := f.PageRecords(ctx, page)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v %v", recs, err)
	}
	next, more, err := f.NextPage(ctx, page)
	if err != nil || !more || next.URL.String() != "https://graph.microsoft.com/v1.0/next?x=1" || next.Query["page"] != "2" {
		t.Fatalf("next %+v %v %v", next, more, err)
	}
	page["@odata.nextLink"] = "https://evil.example/v1.0/next"
	if _, _, err := f.NextPage(ctx, page); sesame.ErrorCode(err) != sesame.CodeUpstreamError {
		t.Fatalf("a nextLink to another origin: %v", err)
	}
	delete(page, "@odata.nextLink")
	if _, more, err := f.NextPage(ctx, page); more || err != nil {
		t.Fatalf("no nextLink: more %v, err %v", more, err)
	}
}

// TestJigxJSONataLimits: what could run without end, or build a value far larger than
// its input in one step, is refused on save (jsonata-go cannot be interrupted).
func TestJigxJSONataLimits(t *testing.T) {
	head := "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://api.example.com/x\noutputTransform: "
	refused := map[string]string{
		"recursion by name":         `'($f := function($n){ $f($n) }; $f(1))'`,
		"Y combinator":              `'(function($f){ $f($f) })(function($f){ $f($f) })'`,
		"calling a parameter":       `'$map([1], function($v){ $v($v) })'`,
		"lambda returned by lambda": `'$map([1], function($v){ function($w){ $w } })'`,
		"shadowing a builtin":       `'$map([1], function($map){ $map([1], $map) })'`,
		"assigning a builtin name":  `'($string := 1; $string)'`,
		"partial application":       `'$substring(?, 0, 1)'`,
		"computed range":            `'[1..$count($)]'`,
		"huge range":                `'[1..100000000]'`,
		"huge pad":                  `'$pad("", 1000000000)'`,
		"computed pad":              `'$pad("", $count($))'`,
		"syntax error":              `'$.value.{'`,
		"empty":                     `'='`,
	}
	for name, expr := range refused {
		_, err := function.Parse("fn", []byte(head+expr+"\n"))
		if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), "line 4: outputTransform: ") {
			t.Errorf("%s: err = %v, want invalid_field at line 4", name, err)
		}
	}
	accepted := []string{
		`'$map($.value, function($v, $i){ $v.name & $string($i) })'`,
		`'$.value[price > 10]^(name).{"n": name, "total": $sum(items.price)}'`,
		`'$.value ~> $filter(function($v){ $v.ok }) ~> $count'`,
		`'$sort($.value, function($a, $b){ $a.n > $b.n })'`,
		`'[1..100].($ * 2)'`,
		`'$pad("x", 10, "-")'`,
		`'($n := $count($.value); {"count": $n})'`,
		`=$.value`,
	}
	for _, expr := range accepted {
		if _, err := function.Parse("fn", []byte(head+expr+"\n")); err != nil {
			t.Errorf("%s: %v", expr, err)
		}
	}
}

// TestJigxTransformOutputCap: a JSONata result larger than TransformMaxOutput is refused.
func TestJigxTransformOutputCap(t *testing.T) {
	f, err := function.Parse("fn", []byte("provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://api.example.com/x\noutputTransform: '[$, $, $]'\n"))
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", function.TransformMaxOutput/2)
	_, err = f.Transform(context.Background(), big)
	if sesame.ErrorCode(err) != function.CodeTransformFailed || strings.Contains(err.Error(), "xxxx") {
		t.Fatalf("err = %v, want transform_failed", err)
	}
	v, err := f.Transform(context.Background(), "ok")
	if err != nil || len(v.([]any)) != 3 {
		t.Fatalf("%v %v", v, err)
	}
}

func TestJigxInputTransformBuildsBody(t *testing.T) {
	f, err := function.Parse("fn", []byte(`provider: DATA_PROVIDER_REST
method: POST
url: https://api.example.com/items
parameters:
  key: {location: header, type: string, value: api.key}
  name: {location: body, required: true, type: string}
  n: {location: body, type: number, value: 2}
inputTransform: '{"item": {"name": name, "double": n * 2}}'
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Build(map[string]any{"name": "a"}, map[string]sesame.Secret{"key": sesame.NewSecret([]byte("SECRET-VALUE"))})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Body) != `{"item":{"double":4,"name":"a"}}` || r.Header.Get("key") != "SECRET-VALUE" || r.ContentType != "application/json" {
		t.Fatalf("body %s, header %v", r.Body, r.Header)
	}
	// The credential is not among the transform's input.
	f2, err := function.Parse("fn", []byte(`provider: DATA_PROVIDER_REST
method: POST
url: https://api.example.com/items
parameters:
  key: {location: header, type: string, value: api.key}
inputTransform: '{"all": $string($)}'
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err = f2.Build(nil, map[string]sesame.Secret{"key": sesame.NewSecret([]byte("SECRET-VALUE"))})
	if err != nil || strings.Contains(string(r.Body), "SECRET") {
		t.Fatalf("body %s, err %v", r.Body, err)
	}
}

func TestJigxRefusesOtherProviders(t *testing.T) {
	_, err := function.Parse("fn", []byte("provider: DATA_PROVIDER_SQL\nmethod: GET\nurl: https://api.example.com/x\n"))
	if sesame.ErrorCode(err) != sesame.CodeInvalidField || !strings.Contains(err.Error(), `line 1: provider: provider "DATA_PROVIDER_SQL" is not supported`) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseJigx(f *testing.F) {
	for _, seed := range []string{
		jigxEvents,
		"provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://a.example/x\n",
		"provider: DATA_PROVIDER_REST\nmethod: POST\nurl: https://a.example/x/{id}\nparameters:\n  id: {location: path, required: true}\n  basicAuth: {location: header, value: a.basic}\ninputTransform: '{\"a\": id}'\n",
		"provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://a.example/x\ncontinuation:\n  when: =$.more\n  url: https://a.example/x?p=2\n",
		"provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://a.example/x\noutputTransform: '$map($.v, function($x){ $x.a })'\n",
		"provider: DATA_PROVIDER_SQL\n",
		"provider: DATA_PROVIDER_REST\nurl: [\n",
		jigxSampleShapes,
		"provider: DATA_PROVIDER_REST\nmethod: PATCH\nurl: https://a.example/p\nparameters:\n  file: {location: body, type: image}\nconversions:\n  - {property: file, from: local-uri, to: buffer}\n",
		"provider: DATA_PROVIDER_REST\nmethod: GET\nformat: pdf\nurl: https://a.example/p/$value\noutputTransform: '$.{\"d\": $.data, \"u\": $.inputs.u.value}'\nparameters:\n  u: {location: path}\n  accessToken: {type: jigx, value: jigx}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		fn, err := function.Parse("fn", []byte(src))
		if err != nil {
			if sesame.ErrorCode(err) == sesame.CodeInternal || sesame.ErrorCode(err) == "" {
				t.Fatalf("Parse gave an error without a code: %v", err)
			}
			return
		}
		if fn.InputTransform == "" {
			_, _ = fn.Build(nil, nil) // must not panic
		}
		b, err := json.Marshal(fn)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if len(b) > function.MaxSourceSize || fn.Provider == "" {
			return
		}
		again, err := function.Parse("fn", b)
		if err != nil {
			t.Fatalf("the JSON form of a valid Jigx function does not parse: %v\nYAML:\n%s\nJSON:\n%s", err, src, b)
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Fatalf("JSON round trip changed the function:\n%s\n%s", b, b2)
		}
	})
}

// jigxSampleShapes has the fields and usages of Jigx's public samples.
const jigxSampleShapes = `provider: DATA_PROVIDER_REST
method: GET
url: https://graph.microsoft.com/v1.0/me/calendars/{calendarId}/events
outputTransform: $
useLocalCall: true
parameters:
  accessToken:
    location: header
    required: true
    type: string
    value: microsoft.OAuth #a comment after a value
  calendarId:
    type: string
    location: path
    required: true
  userId:
    type: string
    location: path
  $top:
    type: string
    location: query
    value: 100
  $filter: {location: query, type: string, value: =@ctx.jig.inputs.filter}
records: =$.value
continuation:
  when: =$."@odata.nextLink"
  url: =$."@odata.nextLink"
  parameters:
    accessToken:
      location: header
      required: true
      type: string
      value: microsoft.OAuth
errorTransform: |
  {
    "error": "No events"
  }
forRowsInRange: {}
disableTokenRefresh: true
`

func TestParseJigxSampleShapes(t *testing.T) {
	f, err := function.Parse("events", []byte(jigxSampleShapes))
	if err != nil {
		t.Fatal(err)
	}
	if !f.HasErrorTransform() || f.Binary() || !f.Paged() {
		t.Fatalf("parsed %+v", f)
	}
	// The continuation's accessToken repeats the function's: it is no query or header
	// value of the next page.
	next, more, err := f.NextPage(context.Background(), map[string]any{"@odata.nextLink": "https://graph.microsoft.com/v1.0/me/calendars/c/events?$skiptoken=2"})
	if err != nil || !more || next.URL == nil || next.URL.Query().Get("$skiptoken") != "2" || len(next.Query) != 0 || len(next.Header) != 0 {
		t.Fatalf("next %+v %v %v", next, more, err)
	}
	// userId is declared in location path and unused by the url, as Jigx allows.
	r, err := f.Build(map[string]any{"calendarId": "c1", "userId": "u/../x"}, nil)
	if err != nil || r.Path != "/v1.0/me/calendars/c1/events" || r.Inputs["userId"] != "u/../x" || r.Inputs["accessToken"] != nil {
		t.Fatalf("built %s %v: %v", r.Path, r.Inputs, err)
	}
	v, err := f.TransformError(context.Background(), map[string]any{"error": "x"})
	if b, _ := json.Marshal(v); err != nil || string(b) != `{"error":"No events"}` {
		t.Fatalf("errorTransform: %s %v", b, err)
	}

	p, err := function.Parse("notify", []byte("provider: DATA_PROVIDER_REST\nmethod: POST\nurl: https://api.example.com/n\nparameters:\n  accessToken: {location: header, type: jigx, value: jigx, required: true}\n"))
	if err != nil || !p.PlatformToken("accessToken") || !function.IsAuth("accessToken", p.Parameters["accessToken"]) || *p.Parameters["accessToken"].Value != "jigx" {
		t.Fatalf("type jigx: %+v %v", p, err)
	}
}

func TestJigxSampleShapeErrorsNameLineAndField(t *testing.T) {
	base := "provider: DATA_PROVIDER_REST\nmethod: GET\nurl: https://graph.example.com/v1.0/x\nparameters:\n  accessToken: {location: header, type: string, value: graph.oauth}\n"
	cases := []struct{ name, src, code, want string }{
		{"text format", base + "format: text\n", "invalid_field", "line 6: format: must be one of json, pdf"},
		{"binary with records", base + "format: pdf\nrecords: $.value\n", "invalid_field", "format: a binary response (format: pdf) cannot have records"},
		{"bad errorTransform", base + "errorTransform: '{\"a\": '\n", "invalid_field", "line 6: errorTransform: is not a valid JSONata expression"},
		{"continuation with another credential", base + "continuation:\n  when: =$.next\n  parameters:\n    accessToken: {location: header, type: string, value: other.oauth}\n",
			"invalid_field", "line 9: continuation.parameters.accessToken: a continuation's credential parameter must repeat the function's parameter \"accessToken\""},
		{"continuation with a credential the function lacks", base + "continuation:\n  when: =$.next\n  parameters:\n    basicAuth: {value: graph.oauth}\n",
			"invalid_field", "line 9: continuation.parameters.basicAuth: a continuation's credential parameter must repeat"},
		{"conversions not a list", base + "conversions: {property: file}\n", "invalid_field", "line 6: conversions: must be a list"},
		{"conversion without property", base + "conversions:\n  - from: local-uri\n    to: buffer\n", "missing_field", "line 7: conversions[0].property: is required"},
		{"buffer body with another body parameter", base + "  file: {location: body, type: image}\n  name: {location: body}\nconversions:\n  - {property: file, from: local-uri, to: buffer}\n",
			"invalid_field", "line 9: conversions[0]: parameter \"file\" is sent as the request body (buffer), so no other parameter can be in location body"},
		{"buffer body with an inputTransform", base + "  file: {location: body, type: image}\ninputTransform: '{\"f\": file}'\nconversions:\n  - {property: file, from: local-uri, to: buffer}\n",
			"invalid_field", "line 9: conversions[0]: a body parameter sent as the request body (buffer) cannot be used with an inputTransform"},
		{"quoted step in a bad expression", base + "records: '$.\"a\" +'\n", "invalid_field", "line 6: records: is not a valid JSONata expression"},
	}
	for _, c := range cases {
		_, err := function.Parse("fn", []byte(c.src))
		if string(sesame.ErrorCode(err)) != c.code || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %s: %s", c.name, err, c.code, c.want)
		}
	}
	// Sesame's own format still refuses a path parameter its path does not use.
	_, err := function.Parse("fn", []byte("url: https://api.example.com/x\nmethod: GET\nparameters:\n  id: {location: path}\n"))
	if err == nil || !strings.Contains(err.Error(), "parameters.id.location: is path but the url has no {id}") {
		t.Errorf("Sesame format, unused path parameter: %v", err)
	}
}

func TestJigxBufferBody(t *testing.T) {
	src := "provider: DATA_PROVIDER_REST\nmethod: PATCH\nurl: https://graph.example.com/v1.0/me/photo/$value\nparameters:\n" +
		"  accessToken: {location: header, type: string, value: graph.oauth}\n  Content-Type: {location: header, value: image/png}\n" +
		"  file: {location: body, type: image, required: true}\nconversions:\n  - property: file\n    from: local-uri\n    to: buffer\n    convertHeicToJpg: true\n  - {property: data, from: base64, to: local-uri}\n"
	f, err := function.Parse("photo", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"AAEC/w==", "AAEC_w", "data:image/png;base64,AAEC/w=="} {
		r, err := f.Build(map[string]any{"file": v}, nil)
		if err != nil || string(r.Body) != "\x00\x01\x02\xff" || r.ContentType != "image/png" {
			t.Errorf("%s: body %q (%s): %v", v, r.Body, r.ContentType, err)
		}
	}
	for _, v := range []any{"not base64!", 12, "data:image/png,AAEC"} {
		if _, err := f.Build(map[string]any{"file": v}, nil); sesame.ErrorCode(err) != sesame.CodeInvalidField && sesame.ErrorCode(err) != sesame.CodeInvalidArgument {
			t.Errorf("%v: %v", v, err)
		}
	}
}
