package audit

import (
	"context"
	"strings"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/gateway"
)

// Request is what the HTTP layer knows about the request an event belongs to.
type Request struct {
	ID     string // the request ID echoed in X-Request-Id
	Source string // the caller's address
	// Call, if set, receives the request's first outbound call instead of a separate
	// event: the request's own event then carries the upstream status, so a proxied call
	// costs one event, not two.
	Call *Call
}

// Call is an outbound call folded into its request's event.
type Call struct {
	Taken          bool
	UpstreamStatus int
	Code           string
	Detail         string
}

type requestKey struct{}

// WithRequest returns a context carrying r, so that events recorded further down (the
// gateway's outbound calls) name the request they belong to.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request carried by ctx.
func RequestFrom(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(requestKey{}).(Request)
	return r, ok
}

// FromContext returns an event with what ctx knows filled in: the principal (kind, user,
// key, app) and the request (ID, source). The caller adds the action, target and result.
func FromContext(ctx context.Context) Event {
	var e Event
	if p, ok := sesame.PrincipalFrom(ctx); ok {
		e.Principal, e.UserID, e.KeyID, e.AppID = p.Kind, p.UserID, p.KeyID, p.AppID
	}
	if r, ok := RequestFrom(ctx); ok {
		e.RequestID, e.Source = r.ID, r.Source
	}
	return e
}

// ResultOf maps an error code to an event result: no code is ok; a refusal of who the
// caller is or what they may do is denied; anything else is an error.
func ResultOf(code sesame.Code) string {
	switch code {
	case "":
		return sesame.AuditOK
	case sesame.CodeUnauthenticated, sesame.CodeForbidden, sesame.CodeMissingPrivilege, sesame.CodeForbiddenAddress,
		sesame.CodeRateLimited, sesame.CodeMissingAuthHeader, sesame.CodeUnsupportedAuthType, sesame.CodeTokenInvalid,
		sesame.CodeTokenExpired, sesame.CodeTokenUnauthorized, sesame.CodeAppUnauthorized:
		return sesame.AuditDenied
	}
	return sesame.AuditError
}

var _ gateway.Recorder = (*Log)(nil)

// RecordCall records an outbound call the gateway made (gateway.Recorder) with Record, as
// action "outbound.function", "outbound.proxy" or "outbound.test". The upstream's status is
// UpstreamStatus; the request ID and source come from ctx (see WithRequest).
func (l *Log) RecordCall(ctx context.Context, r gateway.CallRecord) {
	e := FromContext(ctx)
	if e.UserID == "" {
		e.UserID, e.KeyID = r.UserID, r.KeyID
	}
	if e.Principal == "" && r.UserID != "" {
		e.Principal = sesame.PrincipalUser
	}
	e.Time, e.Workspace, e.Action, e.Target = r.Time, r.Workspace, "outbound."+r.Kind, r.Target
	e.UpstreamStatus, e.LatencyMicros = r.Status, r.Latency.Microseconds()
	e.Code, e.Result = r.Error, ResultOf(sesame.Code(r.Error))
	e.Detail = strings.TrimSpace(r.Method + " " + r.Host)
	if r.Connection != "" && r.Connection != r.Target {
		e.Detail = "connection " + r.Connection + ": " + e.Detail
	}
	if req, ok := RequestFrom(ctx); ok && req.Call != nil && !req.Call.Taken {
		*req.Call = Call{Taken: true, UpstreamStatus: e.UpstreamStatus, Code: e.Code, Detail: e.Detail}
		return
	}
	l.Record(ctx, e)
}
