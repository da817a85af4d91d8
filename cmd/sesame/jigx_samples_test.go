package main

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sesamehq/sesame/internal/oauthtest"
	"github.com/sesamehq/sesame/internal/testpg"
)

// photoBytes is the start of the binary body the Graph imitation returns for a photo.
var photoBytes = []byte{0x89, 'P', 'N', 'G', 0x00, 0xff, 0xfe, 0x01}

// graphLike is an httptest TLS upstream imitating Microsoft Graph as Jigx's samples call
// it ("@odata.nextLink" paging, a binary photo, $batch) and a coin price API. Where an
// answer carries the request's Authorization header, it is an attempt to show the caller
// the injected token.
type graphLike struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func (g *graphLike) requests(path string) []seenRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []seenRequest
	for _, s := range g.seen {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

func newGraphLike(t *testing.T) *graphLike {
	g := &graphLike{}
	g.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seenRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), RawQ: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)}
		g.mu.Lock()
		g.seen = append(g.seen, s)
		g.mu.Unlock()
		auth := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		skip, _ := strconv.Atoi(s.Query.Get("$skiptoken"))
		switch s.Path {
		case "/v1.0/me/calendars/cal1/events":
			next := ""
			if skip < 4 {
				next = fmt.Sprintf(`,"@odata.nextLink":%q`, fmt.Sprintf("https://%s/v1.0/me/calendars/cal1/events?$top=2&$skiptoken=%d", r.Host, skip+2))
			}
			fmt.Fprintf(w, `{"@odata.context":"x","value":[{"id":"e%d","subject":"Event %d"},{"id":"e%d","subject":%q}]%s}`, skip+1, skip+1, skip+2, auth, next)
		case "/v1.0/me/photo/$value":
			if r.Method == http.MethodPatch {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Content-Type", "image/png")
			w.Write(append(append(append([]byte(nil), photoBytes...), auth...), 0x00, 0x42))
		case "/v1.0/$batch":
			var batch struct {
				Requests []struct{ ID, URL string }
			}
			if json.Unmarshal(body, &batch) != nil || len(batch.Requests) == 0 {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"error":{"code":"BadRequest","message":"no requests","echo":%q}}`, auth)
				return
			}
			var out []string
			for _, q := range batch.Requests {
				list := strings.TrimSuffix(strings.TrimPrefix(q.URL, "/me/todo/lists/"), "/tasks")
				out = append(out, fmt.Sprintf(`{"id":%q,"status":200,"body":{"@odata.context":"https://graph/v1.0/$metadata#users('u')/todo/lists('%s')/tasks","value":[{"title":"task of %s"}]}}`,
					q.ID, list, list))
			}
			fmt.Fprintf(w, `{"responses":[%s]}`, strings.Join(out, ","))
		case "/v1.0/me/insights/trending":
			next := ""
			if skip == 0 {
				next = fmt.Sprintf(`,"nextLink":%q`, fmt.Sprintf("https://%s/v1.0/me/insights/trending?$top=2&$skiptoken=2", r.Host))
			}
			fmt.Fprintf(w, `{"value":[{"id":"d%d"},{"id":"d%d"}]%s}`, skip+1, skip+2, next)
		case "/products/BTC-EUR/candles":
			fmt.Fprint(w, `[[1700000060,1,2,3,41000.125,5],[1700000000,1,2,3,41234.5,10]]`)
		case "/v2.0/tool/organizations/org-1/notifications":
			fmt.Fprint(w, `{"sent":true}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"not found"}`)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

// TestJigxSampleShapesRun saves and runs functions written in the shapes of Jigx's public
// samples (testdata/jigx/samples: a Graph calendar with "@odata.nextLink" continuation
// and the credential repeated under continuation, a binary profile photo with format: pdf
// and $.inputs, $batch with an errorTransform, trending with a continuation credential, a
// coin history whose path parameter the url does not use, a notification with Jigx's
// platform token) through the real server, on SQLite and PostgreSQL. Each also carries an
// attack: the upstream reflects the injected token into records, binary bodies and error
// bodies, and the caller must never read it.
func TestJigxSampleShapesRun(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testJigxSampleShapes(t) })
	t.Run("postgres", func(t *testing.T) { testJigxSampleShapes(t, "--postgres", testpg.URL(t)) })
}

func testJigxSampleShapes(t *testing.T, args ...string) {
	up := newGraphLike(t)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	p := oauthtest.New(t, oauthtest.Options{})
	env := map[string]string{"SESAME_ALLOW_PRIVATE_TOKEN_URLS": "true"}
	s := startServerTrusting(t, roots, env, append([]string{"--data", t.TempDir()}, args...)...)
	p.AddClient("sesame-app", oauthClientSecret, s.URL+"/")
	var seen bytes.Buffer // every response the caller got
	do := func(t *testing.T, method, path, body string, want int) response {
		t.Helper()
		r := s.do(method, path, body)
		fmt.Fprintf(&seen, "%v\n%s\n", r.Header, r.Body)
		return mustStatus(t, r, want)
	}
	put := func(t *testing.T, name, src string) response {
		t.Helper()
		r := putYAML(s, "default", name, src)
		fmt.Fprintf(&seen, "%v\n%s\n", r.Header, r.Body)
		return r
	}
	fixture := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", "jigx", "samples", name+".jigx"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), "https://UPSTREAM", up.URL)
	}
	type result struct {
		Status int             `json:"status"`
		Pages  int             `json:"pages"`
		Body   json.RawMessage `json:"body"`
	}
	call := func(t *testing.T, name, params string, want int) result {
		t.Helper()
		r := do(t, "POST", "/v1/workspaces/default/functions/"+name+"/call", `{"parameters":`+params+`}`, want)
		var res result
		if want == 200 {
			if err := json.Unmarshal(r.Body, &res); err != nil {
				t.Fatalf("%s: %v: %s", name, err, r.Body)
			}
		}
		return res
	}

	do(t, "PUT", "/v1/workspaces/default/credentials/graph.OAuth", fmt.Sprintf(
		`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"sesame-app","client_secret":%q,"token_url":%q,"scopes":["read"]}}`,
		oauthClientSecret, p.TokenURL()), 201)
	do(t, "PUT", "/v1/workspaces/default/connections/graph?test=false", fmt.Sprintf(
		`{"base_uri":%q,"credential":"graph.OAuth","allow_private_networks":true}`, up.URL+"/v1.0"), 201)
	do(t, "PUT", "/v1/workspaces/default/connections/coins?test=false", fmt.Sprintf(`{"base_uri":%q,"allow_private_networks":true}`, up.URL), 201)
	for _, name := range []string{"calendar-events", "profile-photo", "update-photo", "todo-tasks", "trending", "coin-history"} {
		if r := put(t, name, fixture(name)); r.Status != 201 {
			t.Errorf("save %s: %d %s", name, r.Status, r.Body)
		}
	}

	t.Run("calendar: records over @odata.nextLink pages, the credential repeated under continuation", func(t *testing.T) {
		res := call(t, "calendar-events", `{"calendarId":"cal1"}`, 200)
		var events []map[string]any
		if err := json.Unmarshal(res.Body, &events); err != nil || res.Pages != 3 || len(events) != 6 || events[0]["id"] != "e1" || events[4]["id"] != "e5" {
			t.Fatalf("result %d pages: %s", res.Pages, res.Body)
		}
		pages := up.requests("/v1.0/me/calendars/cal1/events")
		if len(pages) != 3 || pages[0].Query.Get("$top") != "2" || pages[2].Query.Get("$skiptoken") != "4" {
			t.Fatalf("upstream got %d pages", len(pages))
		}
		for i, pg := range pages {
			if !strings.HasPrefix(pg.Header.Get("Authorization"), "Bearer ") || pg.Header.Get("accessToken") != "" || pg.Query.Has("accessToken") {
				t.Fatalf("page %d: Authorization %q, accessToken header %q, query %q", i+1, pg.Header.Get("Authorization"), pg.Header.Get("accessToken"), pg.RawQ)
			}
		}
		if bytes.Contains(res.Body, []byte("Bearer")) {
			t.Fatalf("the reflected token reached the caller: %s", res.Body)
		}
		// The continuation's credential parameter is the function's: a caller cannot set it.
		call(t, "calendar-events", `{"calendarId":"cal1","accessToken":"Bearer mine"}`, 400)
	})

	t.Run("paged: an error page goes through the errorTransform, redacted", func(t *testing.T) {
		src := fixture("calendar-events") + "errorTransform: |\n  {\"error\": \"No events\", \"upstream\": $.error}\n"
		mustStatus(t, put(t, "calendar-errors", src), 201)
		res := call(t, "calendar-errors", `{"calendarId":"nowhere"}`, 200)
		if res.Status != 404 || string(res.Body) != `{"error":"No events","upstream":"not found"}` {
			t.Fatalf("result %d %s", res.Status, res.Body)
		}
	})

	t.Run("a continuation credential must repeat the function's own", func(t *testing.T) {
		do(t, "PUT", "/v1/workspaces/default/credentials/other.OAuth", `{"type":"bearer","fields":{"token":"other-token-CANARY-5d1a"}}`, 201)
		for _, c := range []struct{ name, from, to string }{
			{"another credential", "      value: graph.OAuth\n", "      value: other.OAuth\n"},
			{"a credential the function does not have", "    accessToken:\n      location: header\n      required: true\n      type: string\n      value: graph.OAuth\n",
				"    apiToken:\n      location: header\n      required: true\n      type: credential\n      value: graph.OAuth\n"},
		} {
			src := strings.Replace(fixture("calendar-events"), c.from, c.to, 1)
			r := put(t, "calendar-other", src)
			if r.Status != 400 || !strings.Contains(string(r.Body), "continuation.parameters.") || !strings.Contains(string(r.Body), "must repeat the function's parameter") {
				t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
			}
		}
	})

	t.Run("trending: continuation with $.nextLink and the credential", func(t *testing.T) {
		res := call(t, "trending", `{}`, 200)
		var items []map[string]any
		if err := json.Unmarshal(res.Body, &items); err != nil || res.Pages != 2 || len(items) != 4 || items[3]["id"] != "d4" {
			t.Fatalf("result %d pages: %s", res.Pages, res.Body)
		}
		for _, pg := range up.requests("/v1.0/me/insights/trending") {
			if !strings.HasPrefix(pg.Header.Get("Authorization"), "Bearer ") {
				t.Fatal("a page carried no token")
			}
		}
	})

	t.Run("profile photo: a binary response comes back as base64 with $.inputs", func(t *testing.T) {
		res := call(t, "profile-photo", `{"userId":"adele@contoso.example"}`, 200)
		var out struct{ Data, UserID string }
		if err := json.Unmarshal(res.Body, &out); err != nil || out.UserID != "adele@contoso.example" {
			t.Fatalf("result %s", res.Body)
		}
		data, err := base64.StdEncoding.DecodeString(out.Data)
		if err != nil || !bytes.HasPrefix(data, photoBytes) || !bytes.HasSuffix(data, []byte{0x00, 0x42}) {
			t.Fatalf("data %q", data)
		}
		// The photo's bytes held the injected Authorization value: base64 must not smuggle it out.
		got := up.requests("/v1.0/me/photo/$value")
		tok := strings.TrimPrefix(got[len(got)-1].Header.Get("Authorization"), "Bearer ")
		if tok == "" || bytes.Contains(data, []byte(tok)) {
			t.Fatalf("token %q; the photo handed back held it: %v", tok, bytes.Contains(data, []byte(tok)))
		}
		// userId is declared in location path but the url has no {userId}: the path is the url's.
		if len(got) != 1 || got[0].Path != "/v1.0/me/photo/$value" {
			t.Fatalf("upstream got %d requests, path %q", len(got), got[0].Path)
		}
		// Without an outputTransform the result is {"data": base64}.
		src := strings.Replace(fixture("profile-photo"), "outputTransform:", "# outputTransform:", 1)
		mustStatus(t, put(t, "profile-photo-raw", src), 201)
		res = call(t, "profile-photo-raw", `{"userId":"u1"}`, 200)
		var raw map[string]string
		if err := json.Unmarshal(res.Body, &raw); err != nil || len(raw) != 1 || raw["data"] == "" {
			t.Fatalf("raw result %s", res.Body)
		}
	})

	t.Run("update photo: a body parameter converted to buffer is the request body", func(t *testing.T) {
		photo := append(append([]byte(nil), photoBytes...), "jpeg bytes"...)
		for _, value := range []string{base64.StdEncoding.EncodeToString(photo), "data:image/jpeg;base64," + base64.RawURLEncoding.EncodeToString(photo)} {
			res := call(t, "update-photo", fmt.Sprintf(`{"file":%q}`, value), 200)
			got := up.requests("/v1.0/me/photo/$value")
			last := got[len(got)-1]
			if res.Status != 204 || last.Method != "PATCH" || last.Body != string(photo) || last.Header.Get("Content-Type") != "image/jpeg" ||
				!strings.HasPrefix(last.Header.Get("Authorization"), "Bearer ") {
				t.Fatalf("result %d; upstream got %s %q (%s)", res.Status, last.Method, last.Body, last.Header.Get("Content-Type"))
			}
		}
		n := len(up.requests("/v1.0/me/photo/$value"))
		r := do(t, "POST", "/v1/workspaces/default/functions/update-photo/call", `{"parameters":{"file":"not base64!"}}`, 400)
		if !strings.Contains(string(r.Body), `parameter \"file\" must be the file's bytes in base64`) || len(up.requests("/v1.0/me/photo/$value")) != n {
			t.Fatalf("bad base64: %s", r.Body)
		}
	})

	t.Run("todo tasks: $batch output, and the errorTransform on an error status", func(t *testing.T) {
		res := call(t, "todo-tasks", `{"batch":{"requests":[{"id":"1","method":"GET","url":"/me/todo/lists/L%3D1/tasks"},{"id":"2","method":"GET","url":"/me/todo/lists/L2/tasks"}]}}`, 200)
		var tasks []map[string]any
		if err := json.Unmarshal(res.Body, &tasks); err != nil || len(tasks) != 2 || tasks[0]["listId"] != "L=1" || tasks[1]["title"] != "task of L2" {
			t.Fatalf("result %s", res.Body)
		}
		b := up.requests("/v1.0/$batch")[0]
		if b.Method != "POST" || b.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(b.Body, `{"requests":[`) {
			t.Fatalf("upstream got %s %q %s", b.Method, b.Header.Get("Content-Type"), b.Body)
		}
		// An empty batch: the upstream's 400 goes through the errorTransform, and its
		// echo of the token (which the errorTransform passes on) is redacted.
		res = call(t, "todo-tasks", `{"batch":{"requests":[]}}`, 200)
		var e struct {
			Error    string
			Upstream struct{ Code, Echo string }
		}
		if err := json.Unmarshal(res.Body, &e); err != nil || res.Status != 400 || e.Error != "No lists" || e.Upstream.Code != "BadRequest" {
			t.Fatalf("error result %d %s", res.Status, res.Body)
		}
		if e.Upstream.Echo != "[redacted]" {
			t.Fatalf("the reflected token reached the caller through the errorTransform: %s", res.Body)
		}
	})

	t.Run("coin history: a path parameter the url does not use", func(t *testing.T) {
		res := call(t, "coin-history", `{}`, 200)
		want := `[{"close":"41000.12500000","ms":1700000060000},{"close":"41234.50000000","ms":1700000000000}]`
		var v any
		if err := json.Unmarshal(res.Body, &v); err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(v); string(b) != want {
			t.Fatalf("result %s, want %s", b, want)
		}
		// The caller's value does not change the url: the parameter is unused, as in Jigx.
		call(t, "coin-history", `{"symbol":"ETH-EUR/../../v1.0/me"}`, 200)
		for _, rq := range up.requests("/products/BTC-EUR/candles") {
			if rq.RawQ != "" {
				t.Fatalf("query %q", rq.RawQ)
			}
		}
		if n := len(up.requests("/products/BTC-EUR/candles")); n != 2 {
			t.Fatalf("upstream got %d candle requests", n)
		}
	})

	t.Run("type jigx: the platform token is a credential named so, or a clear refusal", func(t *testing.T) {
		r := put(t, "send-notice", fixture("send-notice"))
		if r.Status != 400 || !strings.Contains(string(r.Body), "parameters.accessToken.type: jigx is the Jigx platform's own token") ||
			!strings.Contains(string(r.Body), `create a credential named \"jigx\"`) {
			t.Fatalf("save without a jigx credential: %d %s", r.Status, r.Body)
		}
		do(t, "PUT", "/v1/workspaces/default/credentials/jigx", `{"type":"bearer","fields":{"token":"jigx-platform-CANARY-0b7e"}}`, 201)
		mustStatus(t, put(t, "send-notice", fixture("send-notice")), 201)
		res := call(t, "send-notice", `{"title":"Hi","text":"There","emails":["a@example.com"]}`, 200)
		n := up.requests("/v2.0/tool/organizations/org-1/notifications")
		if !strings.Contains(string(res.Body), `"sent":true`) || len(n) != 1 || n[0].Header.Get("Authorization") != "Bearer jigx-platform-CANARY-0b7e" ||
			n[0].Body != `{"content":{"text":"There","title":"Hi"},"emails":["a@example.com"]}` {
			t.Fatalf("result %s; upstream got %d: %v %s", res.Body, len(n), n[0].Header, n[0].Body)
		}
		call(t, "send-notice", `{"title":"Hi","text":"There","emails":[],"accessToken":"x"}`, 400)
	})

	secrets := []string{oauthClientSecret, "other-token-CANARY-5d1a", "jigx-platform-CANARY-0b7e"}
	for _, item := range p.Issued() {
		_, v, _ := strings.Cut(item, ":")
		secrets = append(secrets, v)
	}
	if len(p.Issued()) == 0 {
		t.Fatal("the provider issued no token: the leak check proves nothing")
	}
	for _, secret := range secrets {
		if secret != "" && bytes.Contains(seen.Bytes(), []byte(secret)) {
			t.Fatalf("a response held a secret")
		}
	}
}
