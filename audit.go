package sesame

import (
	"context"
	"sync/atomic"
	"time"
)

// Audit results.
const (
	AuditOK     = "ok"
	AuditDenied = "denied"
	AuditError  = "error"
)

// AuditEvent is one entry of the audit trail (PRODUCT.md C8): who did what, when, and how
// it ended. Values that would identify a secret appear only as HMACs. Seq, Version,
// PrevHash, Hash and MAC are set when the event is appended to the chain.
type AuditEvent struct {
	Seq            int64     `json:"seq"`
	Version        int       `json:"v"`
	Time           time.Time `json:"time"`
	Workspace      string    `json:"workspace,omitempty"`
	Principal      string    `json:"principal,omitempty"` // PrincipalUser, PrincipalApp or PrincipalAnonymous
	UserID         string    `json:"user_id,omitempty"`
	KeyID          string    `json:"key_id,omitempty"`
	AppID          string    `json:"app_id,omitempty"`
	Action         string    `json:"action"` // e.g. "credential.put", "outbound.proxy", "auth.failed"
	Target         string    `json:"target,omitempty"`
	Result         string    `json:"result"`         // AuditOK, AuditDenied or AuditError
	Code           string    `json:"code,omitempty"` // the error code, when the result is not ok
	Status         int       `json:"status,omitempty"`
	UpstreamStatus int       `json:"upstream_status,omitempty"`
	LatencyMicros  int64     `json:"latency_us,omitempty"`
	Source         string    `json:"source,omitempty"` // the caller's address
	RequestID      string    `json:"request_id,omitempty"`
	Detail         string    `json:"detail,omitempty"` // extra non-secret context, e.g. "GET api.example.com"
	PrevHash       string    `json:"prev_hash"`
	Hash           string    `json:"hash"`
	MAC            string    `json:"mac"`
	// Outbox, when set, names the outbox row (see AuditIntent) that this event completes:
	// the append removes that row in the same transaction. Not part of the chain.
	Outbox string `json:"-"`
}

// AuditHead is the newest link of the audit chain, kept apart from the events so that
// deleting the newest events is detected too. MAC authenticates (Seq, Hash).
type AuditHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	MAC  string `json:"mac"`
}

// AuditFilter selects audit events. Zero fields match everything.
type AuditFilter struct {
	Since, Until time.Time // Since <= time < Until
	Workspace    string
	Principal    string
	UserID       string
	KeyID        string
	AppID        string
	Action       string // exact, or a prefix when it ends in "*" ("credential.*")
	Result       string
	AfterSeq     int64 // only events with seq > AfterSeq
	BeforeSeq    int64 // if > 0, only events with seq < BeforeSeq
	Desc         bool  // newest first
	Limit        int
	// Workspaces, if not nil, limits the events to these workspaces (a reader's scope:
	// events of other workspaces and server-wide events are left out).
	Workspaces []string
}

// AuditIntent is the audit event of a change request while it runs. The HTTP layer puts it
// in the request's context (WithAuditIntent); every write transaction the store commits for
// that request also writes the intent's event into the audit outbox, in the same
// transaction, so that a committed change always has its event: either the final one that
// the request records when it ends (which removes the outbox row as it is chained), or,
// if the process dies first, the outbox row, which the audit writer chains later.
//
// It carries data only: the store writes it with its own statements.
type AuditIntent struct {
	ID string // the outbox row's key
	// Event is what is known before the request ends: action, target, workspace, request
	// ID, source, time, and the principal once authenticated (SetPrincipal).
	Event    AuditEvent
	wrote    atomic.Bool
	noChange atomic.Bool
}

// SetPrincipal records who makes the request.
func (i *AuditIntent) SetPrincipal(p Principal) {
	i.Event.Principal, i.Event.UserID, i.Event.KeyID, i.Event.AppID = p.Kind, p.UserID, p.KeyID, p.AppID
}

// MarkWritten records that a transaction carrying the intent committed.
func (i *AuditIntent) MarkWritten() { i.wrote.Store(true) }

// Written reports whether a transaction carrying the intent committed: the request
// changed something, and its outbox row exists until the final event is chained.
func (i *AuditIntent) Written() bool { return i.wrote.Load() }

// MarkNoChange records that the request, although sent as a change, changes no state: what
// it made needs no row anywhere (a trial app token is valid by its signature alone, and is
// revoked per app). Its event is then recorded as a read's is (in the background, with
// losses recorded in the chain; durably first in strict mode) instead of being waited for.
// It does not override Written: a request that also commits a change is recorded as one.
func (i *AuditIntent) MarkNoChange() { i.noChange.Store(true) }

// NoChange reports whether MarkNoChange was called.
func (i *AuditIntent) NoChange() bool { return i.noChange.Load() }

type auditIntentKey struct{}

// WithAuditIntent returns a context whose store transactions write i's event to the outbox.
func WithAuditIntent(ctx context.Context, i *AuditIntent) context.Context {
	return WithAuditIntents(ctx, i)
}

// WithAuditIntents is WithAuditIntent for a transaction that carries the changes of several
// requests (group commit): it writes every one's event.
func WithAuditIntents(ctx context.Context, is ...*AuditIntent) context.Context {
	return context.WithValue(ctx, auditIntentKey{}, is)
}

// AuditIntentFrom returns the intent of the request ctx belongs to.
func AuditIntentFrom(ctx context.Context) (*AuditIntent, bool) {
	is := AuditIntentsFrom(ctx)
	if len(is) != 1 {
		return nil, false
	}
	return is[0], true
}

// AuditIntentsFrom returns every intent ctx carries.
func AuditIntentsFrom(ctx context.Context) []*AuditIntent {
	is, _ := ctx.Value(auditIntentKey{}).([]*AuditIntent)
	return is
}
