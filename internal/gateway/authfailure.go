package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

// AuthFailure says how a connection's upstream signals a dead credential: providers
// answer 401, 403, 404, or 200 with an error body. A response with one of Statuses, or a
// JSON body whose value at JSONPath is one of Values, makes the gateway force one refresh
// of a refreshable credential (OAuth2) and send the request once more.
type AuthFailure struct {
	// Statuses default to [401] when auth_failure is absent or omits them; [] means none.
	Statuses []int `json:"statuses"`
	// JSONPath is a dotted path into the JSON body ("error", "errors.0.code").
	JSONPath string   `json:"json_path,omitempty"`
	Values   []string `json:"values,omitempty"`
}

// maxAuthFailureBody bounds how much of a JSON response is read to look for a JSON path.
const maxAuthFailureBody = 256 << 10

// check validates and normalizes an auth_failure block.
func (a *AuthFailure) check() error {
	if a.Statuses == nil {
		a.Statuses = []int{http.StatusUnauthorized}
	}
	if len(a.Statuses) > 20 {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q lists more than 20 statuses", "auth_failure.statuses")
	}
	for _, s := range a.Statuses {
		if s < 100 || s > 599 {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q must hold HTTP statuses (100-599)", "auth_failure.statuses")
		}
	}
	if (a.JSONPath == "") != (len(a.Values) == 0) {
		return sesame.Errorf(sesame.CodeInvalidField, "fields %q and %q go together", "auth_failure.json_path", "auth_failure.values")
	}
	if a.JSONPath != "" {
		if len(a.JSONPath) > 256 || slices.Contains(strings.Split(a.JSONPath, "."), "") {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q must be a dotted path such as error.code", "auth_failure.json_path")
		}
		if len(a.Values) > 50 || slices.ContainsFunc(a.Values, func(v string) bool { return len(v) > 256 }) {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q holds at most 50 values of at most 256 bytes", "auth_failure.values")
		}
	}
	return nil
}

// matches reports whether resp signals a rejected credential. To look into a JSON body it
// reads at most maxAuthFailureBody bytes and puts them back in front of the rest, so the
// caller still gets the whole body when it does not match.
func (a *AuthFailure) matches(resp *http.Response) bool {
	statuses := []int{http.StatusUnauthorized}
	if a != nil {
		statuses = a.Statuses
	}
	if slices.Contains(statuses, resp.StatusCode) {
		return true
	}
	if a == nil || a.JSONPath == "" || resp.Body == nil {
		return false
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return false
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthFailureBody+1))
	resp.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	if err != nil || len(head) > maxAuthFailureBody {
		return false
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.UseNumber()
	if dec.Decode(&doc) != nil {
		return false
	}
	v, ok := lookup(doc, a.JSONPath)
	return ok && slices.Contains(a.Values, v)
}

// lookup returns the value at a dotted path, as text: strings as they are, numbers,
// booleans and null as JSON writes them.
func lookup(doc any, path string) (string, bool) {
	for _, seg := range strings.Split(path, ".") {
		switch node := doc.(type) {
		case map[string]any:
			v, ok := node[seg]
			if !ok {
				return "", false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return "", false
			}
			doc = node[i]
		default:
			return "", false
		}
	}
	switch v := doc.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case nil:
		return "null", true
	}
	return "", false
}

// prefixedBody is a response body with its first bytes already read and put back.
type prefixedBody struct {
	io.Reader
	io.Closer
}
