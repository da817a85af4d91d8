package httpapi

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/vault"
)

// Gateway runs connections, functions and the proxy.
type Gateway interface {
	PutConnection(ctx context.Context, ws, name string, body []byte, runTest bool, by vault.Actor) (gateway.ConnectionView, bool, *gateway.TestResult, error)
	GetConnection(ctx context.Context, ws, name string) (gateway.ConnectionView, error)
	ListConnections(ctx context.Context, ws, after string, limit int) ([]gateway.ConnectionView, error)
	DeleteConnection(ctx context.Context, ws, name string) error
	TestConnection(ctx context.Context, ws, name string) (gateway.TestResult, error)
	ConnectionsUsingAgent(ctx context.Context, ws, agent string) ([]string, error)

	PutFunction(ctx context.Context, ws, name string, src []byte) (gateway.FunctionView, bool, error)
	GetFunction(ctx context.Context, ws, name string) (gateway.FunctionView, error)
	ListFunctions(ctx context.Context, ws, after string, limit int) ([]gateway.FunctionView, error)
	DeleteFunction(ctx context.Context, ws, name string) error
	CallFunction(ctx context.Context, ws, name string, args map[string]any) (gateway.CallResult, error)

	Proxy(ctx context.Context, ws, conn string, in *http.Request, rawPath string) (*http.Response, gateway.Connection, error)
	MaxBody(c gateway.Connection) int64
}

// --- connections ---

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Vault.GetWorkspace(r.Context(), r.PathValue("ws")); err != nil {
		return err
	}
	items, err := s.cfg.Gateway.ListConnections(r.Context(), r.PathValue("ws"), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(c gateway.ConnectionView) string { return c.Name })
	return nil
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Gateway.GetConnection(r.Context(), r.PathValue("ws"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) putConnection(w http.ResponseWriter, r *http.Request) error {
	runTest := true
	if r.URL.Query().Get("test") != "" {
		t, err := boolParam(r, "test")
		if err != nil {
			return err
		}
		runTest = t
	}
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	by, err := s.actor(r)
	if err != nil {
		return err
	}
	c, created, result, err := s.cfg.Gateway.PutConnection(r.Context(), r.PathValue("ws"), r.PathValue("name"), body, runTest, by)
	var tf *gateway.TestFailedError
	if errors.As(err, &tf) {
		writeJSON(w, http.StatusUnprocessableEntity, struct {
			errorBody
			Test gateway.TestResult `json:"test"`
		}{errorBody{Code: sesame.CodeTestFailed, Message: "the connection's test request failed, so it was not saved (pass test=false to save anyway)",
			RequestID: requestIDFrom(r.Context())}, tf.Result})
		return nil
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, struct {
		gateway.ConnectionView
		Test *gateway.TestResult `json:"test,omitempty"`
	}{c, result})
	return nil
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Gateway.DeleteConnection(r.Context(), r.PathValue("ws"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) testConnection(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Gateway.TestConnection(r.Context(), r.PathValue("ws"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// --- functions ---

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Vault.GetWorkspace(r.Context(), r.PathValue("ws")); err != nil {
		return err
	}
	items, err := s.cfg.Gateway.ListFunctions(r.Context(), r.PathValue("ws"), after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, func(f gateway.FunctionView) string { return f.Name })
	return nil
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request) error {
	f, err := s.cfg.Gateway.GetFunction(r.Context(), r.PathValue("ws"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, f)
	return nil
}

var yamlTypes = []string{"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json", "text/json", "text/plain"}

func (s *Server) putFunction(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !contains(yamlTypes, mt) {
			return sesame.Errorf(sesame.CodeUnsupportedMediaType, "Content-Type must be application/yaml or application/json")
		}
	}
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return sesame.Errorf(sesame.CodePayloadTooLarge, "request body is larger than %d bytes", s.cfg.MaxBody)
	}
	if err != nil {
		return sesame.Errorf(sesame.CodeInvalidArgument, "could not read request body")
	}
	f, created, err := s.cfg.Gateway.PutFunction(r.Context(), r.PathValue("ws"), r.PathValue("name"), src)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, f)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Gateway.DeleteFunction(r.Context(), r.PathValue("ws"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) callFunction(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Parameters map[string]any `json:"parameters"`
		User       string         `json:"user"` // the end user whose OAuth2 grant the call uses
	}
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &body); err != nil {
			return err
		}
	}
	ctx, err := endUser(r.Context(), body.User)
	if err != nil {
		return err
	}
	res, err := s.cfg.Gateway.CallFunction(ctx, r.PathValue("ws"), r.PathValue("name"), body.Parameters)
	if p, _ := sesame.PrincipalFrom(r.Context()); p.Kind == sesame.PrincipalAnonymous && sesame.ErrorCode(err) == sesame.CodeNotFound {
		// An anonymous caller learns nothing about what exists.
		return sesame.Errorf(sesame.CodeUnauthenticated, "missing API key: send Authorization: Bearer <key> or X-API-Key")
	}
	if err != nil {
		return err
	}
	if res.Stream != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		if err := res.Stream.WriteResult(w, res, func() { _ = rc.Flush() }); err != nil {
			// Too late for an error status: cut the response so the caller sees it incomplete.
			panic(http.ErrAbortHandler)
		}
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// --- proxy ---

// proxy forwards any request to the connection, streaming both bodies.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) error {
	ws, conn := r.PathValue("ws"), r.PathValue("conn")
	// The path after the connection, as the caller escaped it.
	prefix := "/v1/workspaces/" + ws + "/proxy/" + conn
	rawPath := strings.TrimPrefix(strings.TrimPrefix(r.URL.EscapedPath(), prefix), "/")
	if !strings.HasPrefix(r.URL.EscapedPath(), prefix) {
		return sesame.Errorf(sesame.CodeInvalidArgument, "the proxy path could not be read")
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.Gateway.MaxBody(gateway.Connection{}))
	}
	ctx, err := endUser(r.Context(), r.Header.Get("X-Sesame-User"))
	if err != nil {
		return err
	}
	resp, c, err := s.cfg.Gateway.Proxy(ctx, ws, conn, r, rawPath)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return sesame.Errorf(sesame.CodePayloadTooLarge, "request body is larger than %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	limit := s.cfg.Gateway.MaxBody(c)
	if resp.ContentLength > limit {
		return sesame.Errorf(sesame.CodeUpstreamError, "the upstream response is larger than %d bytes", limit)
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	bp := s.buffers.Get().(*[]byte)
	defer s.buffers.Put(bp)
	buf := *bp
	if rb, ok := resp.Body.(*gateway.RedactedBody); ok && rb.Finite() && r.Method != http.MethodHead && bodyAllowed(resp.StatusCode) {
		// A redacted body has lost its length, and streaming it would cost a flush (a write
		// system call, chunked framing) per read. The upstream sent it with a length, so
		// reading it does not wait on a stream: if it fits in the buffer, send it whole,
		// with its new length, in one write.
		n, rerr := readUpTo(rb, buf)
		switch {
		case rerr == io.EOF:
			if int64(n) > limit {
				return sesame.Errorf(sesame.CodeUpstreamError, "the upstream response is larger than %d bytes", limit)
			}
			h.Set("Content-Length", strconv.Itoa(n))
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(buf[:n])
			return nil
		case rerr != nil:
			// A truncated or undecodable body is never completed with a length: the caller
			// sees it broken, as it would have if streamed.
			w.WriteHeader(resp.StatusCode)
			if n > 0 {
				_, _ = w.Write(buf[:min(int64(n), limit)])
			}
			panic(http.ErrAbortHandler)
		}
		// Larger than the buffer: stream it, starting with what was read.
		w.WriteHeader(resp.StatusCode)
		return s.streamBody(w, resp, buf, n, limit)
	}
	w.WriteHeader(resp.StatusCode)
	return s.streamBody(w, resp, buf, 0, limit)
}

// readUpTo reads from r until buf is full (nil error) or r ends (io.EOF) or fails (that
// error, io.ErrUnexpectedEOF of a truncated body included), and returns how much it read.
func readUpTo(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// bodyAllowed reports whether a response with status code may carry a body (and so a
// Content-Length).
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// streamBody copies resp's body to w through buf, whose first pending bytes were already
// read from it, flushing after each read when the length is unknown.
func (s *Server) streamBody(w http.ResponseWriter, resp *http.Response, buf []byte, pending int, limit int64) error {
	rc := http.NewResponseController(w)
	var written int64
	if pending > 0 {
		written = int64(pending)
		if written > limit {
			panic(http.ErrAbortHandler)
		}
		if _, werr := w.Write(buf[:pending]); werr != nil {
			return nil // the caller went away
		}
		_ = rc.Flush()
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			written += int64(n)
			if written > limit {
				// Too late for an error status: cut the response so the caller sees it incomplete.
				panic(http.ErrAbortHandler)
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the caller went away
			}
			if resp.ContentLength < 0 {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			panic(http.ErrAbortHandler)
		}
	}
}
