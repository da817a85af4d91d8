package sesame

import "time"

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
}
