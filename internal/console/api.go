package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

// recorder is an in-memory http.ResponseWriter for an API call made on a page's behalf.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// apiError is an API error answer ({"code", "message"}) with its status.
type apiError struct {
	Status  int         `json:"-"`
	Code    sesame.Code `json:"code"`
	Message string      `json:"message"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// call sends one request to the API as the signed-in principal and decodes a 2xx JSON
// answer into out (if not nil). A non-2xx answer is returned as *apiError. The request
// carries the browser's address, so the audit event names the same source as an API call.
func (c *Console) call(r *http.Request, p sesame.Principal, method, path string, body, out any) error {
	rec, err := c.raw(r.Context(), r, p, method, path, body)
	if err != nil {
		return err
	}
	if rec.status < 200 || rec.status > 299 {
		e := &apiError{Status: rec.status}
		if json.Unmarshal(rec.body.Bytes(), e) != nil || e.Code == "" {
			e.Code, e.Message = sesame.CodeInternal, "internal error"
		}
		return e
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return fmt.Errorf("console: decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

func (c *Console) raw(ctx context.Context, r *http.Request, p sesame.Principal, method, path string, body any) (*recorder, error) {
	var rd io.Reader
	contentType := "application/json"
	if y, ok := body.(yamlBody); ok {
		rd, contentType = strings.NewReader(string(y)), "application/yaml"
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	if ua := r.Header.Get("User-Agent"); ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeAs(rec, req, p)
	return rec, nil
}

// yamlBody is a request body sent as application/yaml, as it is (a function's source).
type yamlBody string

func itoa(n int) string { return strconv.Itoa(n) }

var jsonUnmarshal = json.Unmarshal

// listPageSize is how many items a console list shows: the API's first page of this size.
const listPageSize = 500

// listOf reads the first page of a list route at path (a path without a query) through the
// API as p.
func listOf[T any](c *Console, r *http.Request, p sesame.Principal, path string) ([]T, error) {
	var list struct {
		Items []T `json:"items"`
	}
	err := c.call(r, p, http.MethodGet, path+"?limit="+strconv.Itoa(listPageSize), nil, &list)
	return list.Items, err
}
