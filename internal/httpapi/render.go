package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/sesamehq/sesame"
)

// handlerFunc is a route handler: it writes a response or returns an error to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// statusOf maps every error code to its HTTP status. It is the only such table.
var statusOf = map[sesame.Code]int{
	sesame.CodeInvalidJSON:          http.StatusBadRequest,
	sesame.CodeInvalidArgument:      http.StatusBadRequest,
	sesame.CodeInvalidName:          http.StatusBadRequest,
	sesame.CodeUnknownType:          http.StatusBadRequest,
	sesame.CodeUnknownField:         http.StatusBadRequest,
	sesame.CodeMissingField:         http.StatusBadRequest,
	sesame.CodeInvalidField:         http.StatusBadRequest,
	sesame.CodeSecretRequired:       http.StatusBadRequest,
	sesame.CodeNotFound:             http.StatusNotFound,
	sesame.CodeRouteNotFound:        http.StatusNotFound,
	sesame.CodeAlreadyExists:        http.StatusConflict,
	sesame.CodeConflict:             http.StatusConflict,
	sesame.CodeNotEmpty:             http.StatusConflict,
	sesame.CodeInUse:                http.StatusConflict,
	sesame.CodeProtected:            http.StatusConflict,
	sesame.CodeUnauthenticated:      http.StatusUnauthorized,
	sesame.CodeForbidden:            http.StatusForbidden,
	sesame.CodeMissingPrivilege:     http.StatusForbidden,
	sesame.CodePrivilegeCeiling:     http.StatusForbidden,
	sesame.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	sesame.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	sesame.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	sesame.CodeUnavailable:          http.StatusServiceUnavailable,
	sesame.CodeAuditUnavailable:     http.StatusServiceUnavailable,
	sesame.CodeRateLimited:          http.StatusTooManyRequests,
	sesame.CodeQuotaExceeded:        http.StatusTooManyRequests,
	sesame.CodeForbiddenAddress:     http.StatusForbidden,
	sesame.CodeUpstreamError:        http.StatusBadGateway,
	sesame.CodeUpstreamTimeout:      http.StatusGatewayTimeout,
	sesame.CodeTestFailed:           http.StatusUnprocessableEntity,
	sesame.CodeTransformFailed:      http.StatusBadGateway,
	sesame.CodeUpstreamEncoding:     http.StatusBadGateway,
	sesame.CodeResponseTooLarge:     http.StatusBadGateway,
	// 409, not 401: the grant's state conflicts with the call and a person must act; a 401
	// would tell the caller its own Sesame key was refused.
	sesame.CodeReauthorizationRequired: http.StatusConflict,
	sesame.CodeDestinationLocked:       http.StatusForbidden,
	sesame.CodeInternal:                http.StatusInternalServerError,
	sesame.CodeEndUserNotAllowed:       http.StatusForbidden,
	sesame.CodeOIDCState:               http.StatusBadRequest,
	sesame.CodeOIDCToken:               http.StatusUnauthorized,
	sesame.CodeOIDCProvider:            http.StatusBadGateway,
	sesame.CodeOIDCUser:                http.StatusForbidden,
	// Retryable conditions (PRODUCT.md §4.9): never 500, always with Retry-After.
	sesame.CodeStoreUnavailable:     http.StatusServiceUnavailable,
	sesame.CodeStorageFull:          http.StatusServiceUnavailable,
	sesame.CodeRefreshInProgress:    http.StatusServiceUnavailable,
	sesame.CodeMasterKeyUnavailable: http.StatusServiceUnavailable,
	sesame.CodeRotationRefused:      http.StatusConflict,
	sesame.CodeAgentUnavailable:     http.StatusServiceUnavailable,
	sesame.CodeAgentTargetRefused:   http.StatusForbidden,
	// The app-token codes keep the statuses of the Actyx Auth API they follow (it answers a
	// malformed token with 400).
	sesame.CodeBadRequest:          http.StatusBadRequest,
	sesame.CodeManifestInvalid:     http.StatusBadRequest,
	sesame.CodeAppUnauthorized:     http.StatusUnauthorized,
	sesame.CodeAppMediaType:        http.StatusUnsupportedMediaType,
	sesame.CodeAppPayloadTooLarge:  http.StatusRequestEntityTooLarge,
	sesame.CodeMissingAuthHeader:   http.StatusUnauthorized,
	sesame.CodeUnsupportedAuthType: http.StatusUnauthorized,
	sesame.CodeTokenInvalid:        http.StatusBadRequest,
	sesame.CodeTokenExpired:        http.StatusUnauthorized,
	sesame.CodeTokenUnauthorized:   http.StatusUnauthorized,
}

// errorBody is the shape of every error response.
type errorBody struct {
	Code      sesame.Code       `json:"code"`
	Message   string            `json:"message"`
	Details   map[string]string `json:"details,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// handle adapts a handlerFunc, rendering its error. Client errors are shown as they are;
// anything else is logged with the request ID and shown only as "internal error".
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.renderError(w, r, err)
		}
	})
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	id := requestIDFrom(r.Context())
	body := errorBody{Code: sesame.CodeInternal, Message: "internal error", RequestID: id}
	if s.cfg.Classify != nil {
		err = s.cfg.Classify(err)
	}
	var e *sesame.Error
	if errors.As(err, &e) && e.Code != sesame.CodeInternal {
		body.Code, body.Message, body.Details = e.Code, e.Message, e.Details
		if e.Limiter != "" {
			setLimiterForLog(r.Context(), e.Limiter)
		}
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		}
	} else {
		s.log.ErrorContext(r.Context(), "request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	status, ok := statusOf[body.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	setErrorForLog(r.Context(), body.Code)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// readBody reads a JSON request body of at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return nil, sesame.Errorf(sesame.CodeUnsupportedMediaType, "Content-Type must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, sesame.Errorf(sesame.CodePayloadTooLarge, "request body is larger than %d bytes", max)
	}
	if err != nil {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "could not read request body")
	}
	return body, nil
}

// decodeJSON reads a JSON body into v, refusing unknown fields and trailing data.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	return unmarshalStrict(body, v)
}

func unmarshalStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return sesame.Errorf(sesame.CodeInvalidJSON, "field %q has the wrong JSON type", te.Field)
		case len(err.Error()) > 20 && err.Error()[:20] == "json: unknown field ":
			return sesame.Errorf(sesame.CodeUnknownField, "unknown field %s", truncate(err.Error()[20:], 64))
		}
		return sesame.Errorf(sesame.CodeInvalidJSON, "request body is not valid JSON")
	}
	// Only whitespace may follow the value. (dec.More() would let a stray "}" or "]" through.)
	if len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return sesame.Errorf(sesame.CodeInvalidJSON, "request body must hold a single JSON object")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// page is the shape of every list response.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pageParams reads ?limit= and ?cursor=. The cursor is opaque to clients.
func pageParams(r *http.Request) (after string, limit int, err error) {
	limit = defaultPageSize
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageSize {
			return "", 0, sesame.Errorf(sesame.CodeInvalidArgument, "limit must be an integer from 1 to %d", maxPageSize)
		}
		limit = n
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return "", 0, sesame.Errorf(sesame.CodeInvalidArgument, "cursor is not valid; pass next_cursor from the previous page")
		}
		after = string(b)
	}
	return after, limit, nil
}

// writePage renders items, fetched with limit+1 to learn whether another page exists.
func writePage[T any](w http.ResponseWriter, items []T, limit int, keyOf func(T) string) {
	p := page[T]{Items: items}
	if p.Items == nil {
		p.Items = []T{}
	}
	if len(items) > limit {
		p.Items = items[:limit]
		p.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(keyOf(items[limit-1])))
	}
	writeJSON(w, http.StatusOK, p)
}
