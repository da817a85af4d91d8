package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"unicode/utf8"

	"github.com/sesamehq/sesame"
)

// The chain. Every event stores the hash of its predecessor:
//
//	hash = SHA-256(canonical(event))     canonical includes prev_hash and seq
//	mac  = HMAC-SHA256(chainKey, "sesame.audit.event.v1" 0x00 hash)
//
// The hashes alone make an edit, deletion or reordering visible to anyone holding the
// events (an export can be checked offline). The MAC, under a key derived from a server
// secret that the database holds only sealed by the master key, makes a forged event
// visible even when the forger recomputed every hash after it. The head row (newest seq
// and hash, with its own MAC) makes deleting the newest events visible.

// Version is the current canonical encoding. A new encoding gets a new version; events keep
// the version they were written with, and Verify knows every version.
const Version = 1

// genesisHash is the prev_hash of the first event.
const genesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// maxField bounds every string field, in bytes.
const maxField = 1024

// Break reasons: what Verify found at the first broken link.
const (
	ReasonMissing      = "missing"             // a gap in seq: events were deleted
	ReasonPrevMismatch = "prev_hash_mismatch"  // the link to the predecessor is wrong: events were reordered or inserted
	ReasonHashMismatch = "hash_mismatch"       // the event's content does not match its hash: it was edited
	ReasonMACMismatch  = "mac_mismatch"        // the hash was recomputed without the server's key: a forged event
	ReasonVersion      = "unknown_version"     // an encoding version this server does not know
	ReasonHead         = "head_mismatch"       // the head does not match the newest event: the tail was deleted or forged
	ReasonTruncated    = "truncated"           // the chain ends before a checkpoint's seq: the newest events were deleted
	ReasonCheckpoint   = "checkpoint_mismatch" // the event at a checkpoint's seq has another hash: the chain was rewritten
)

// actionHeadInvalid is the event the appender records when it finds the head row
// tampered with, so that the evidence stays in the chain after later appends.
const actionHeadInvalid = "audit.head_invalid"

// canonical appends the version-1 encoding of e to buf: a fixed tag, then every field in a
// fixed order, integers as 8-byte big-endian, strings as a 4-byte big-endian length and
// their bytes. Unlike JSON it has exactly one form for each event.
func canonical(buf []byte, e *sesame.AuditEvent) []byte {
	buf = append(buf, "sesame.audit.v1\x00"...)
	str := func(s string) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	num := func(n int64) { buf = binary.BigEndian.AppendUint64(buf, uint64(n)) }
	str(e.PrevHash)
	num(e.Seq)
	num(e.Time.UnixNano())
	str(e.Workspace)
	str(e.Principal)
	str(e.UserID)
	str(e.KeyID)
	str(e.AppID)
	str(e.Action)
	str(e.Target)
	str(e.Result)
	str(e.Code)
	num(int64(e.Status))
	num(int64(e.UpstreamStatus))
	num(e.LatencyMicros)
	str(e.Source)
	str(e.RequestID)
	str(e.Detail)
	return buf
}

// hashEvent returns the hex SHA-256 of e's canonical encoding, or "" for a version it does
// not know. buf is scratch space, returned for reuse.
func hashEvent(buf []byte, e *sesame.AuditEvent) (string, []byte) {
	var h [64]byte
	ok, buf := hashEventInto(&h, buf, e)
	if !ok {
		return "", buf
	}
	return string(h[:]), buf
}

func hashEventInto(dst *[64]byte, buf []byte, e *sesame.AuditEvent) (bool, []byte) {
	if e.Version != Version {
		return false, buf
	}
	buf = canonical(buf[:0], e)
	sum := sha256.Sum256(buf)
	hex.Encode(dst[:], sum[:])
	return true, buf
}

// keys are derived from the server secret, one per use.
type keys struct {
	chain []byte // event and head MACs
	value []byte // HMAC of values that identify secrets
}

func deriveKeys(secret []byte) keys {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	return keys{chain: derive("sesame audit chain key v1"), value: derive("sesame audit value key v1")}
}

func (k keys) eventMAC(h string) string {
	m := hmac.New(sha256.New, k.chain)
	m.Write([]byte("sesame.audit.event.v1\x00"))
	m.Write([]byte(h))
	return hex.EncodeToString(m.Sum(nil))
}

func (k keys) headMAC(seq int64, h string) string {
	m := hmac.New(sha256.New, k.chain)
	m.Write([]byte("sesame.audit.head.v1\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	m.Write([]byte(h))
	return hex.EncodeToString(m.Sum(nil))
}

func macEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// headProblem says what is wrong with a head read from the store, or "".
func (k keys) headProblem(h sesame.AuditHead) string {
	switch {
	case h.Seq < 0:
		return "the head row is missing"
	case h.Seq == 0 && (h.Hash != genesisHash || h.MAC != ""):
		return "the head was changed while the chain is empty"
	case h.Seq > 0 && !macEqual(h.MAC, k.headMAC(h.Seq, h.Hash)):
		return fmt.Sprintf("the head (seq %d) does not carry the server's MAC: it was rewritten", h.Seq)
	}
	return ""
}

// normalize makes e storable and hashable: valid UTF-8 without NUL bytes (PostgreSQL
// refuses NUL in text), fields at most maxField bytes, time in UTC.
func normalize(e *sesame.AuditEvent) {
	e.Version = Version
	e.Time = e.Time.UTC()
	for _, f := range []*string{&e.Workspace, &e.Principal, &e.UserID, &e.KeyID, &e.AppID, &e.Action,
		&e.Target, &e.Result, &e.Code, &e.Source, &e.RequestID, &e.Detail} {
		*f = clean(*f)
	}
	if e.LatencyMicros < 0 {
		e.LatencyMicros = 0
	}
	if e.Result == "" {
		e.Result = sesame.AuditOK
	}
}

func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) > maxField {
		cut := maxField
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// linker chains events onto the head the store read under its lock.
type linker struct {
	keys keys
	buf  []byte
	now  func() sesame.AuditEvent // makes the tamper-evidence event
}

func (l *linker) link(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error) {
	if problem := l.keys.headProblem(head); problem != "" {
		if head.Seq < 0 {
			// The store cannot append without a head row; it reports that itself.
			return nil, head, fmt.Errorf("audit: %s", problem)
		}
		// Keep the evidence in the chain: appending on a rewritten head would otherwise
		// bless it with a fresh MAC.
		ev := l.now()
		ev.Action, ev.Result, ev.Code = actionHeadInvalid, sesame.AuditError, ReasonHead
		ev.Detail = clean(problem)
		normalize(&ev)
		events = append([]sesame.AuditEvent{ev}, events...)
	}
	prev, seq := head.Hash, head.Seq
	if seq == 0 {
		prev = genesisHash
	}
	for i := range events {
		e := &events[i]
		seq++
		e.Seq, e.PrevHash = seq, prev
		e.Hash, l.buf = hashEvent(l.buf, e)
		e.MAC = l.keys.eventMAC(e.Hash)
		prev = e.Hash
	}
	return events, sesame.AuditHead{Seq: seq, Hash: prev, MAC: l.keys.headMAC(seq, prev)}, nil
}

// Broken is the first broken link Verify found.
type Broken struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// VerifyResult is what Verify reports.
type VerifyResult struct {
	OK          bool    `json:"ok"`
	Events      int64   `json:"events"` // how many events the chain holds
	Head        Head    `json:"head"`
	FirstBroken *Broken `json:"first_broken,omitempty"`
	// Checkpoint is the checkpoint verified against, if one was given.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Gaps are the audit.gap events: where the trail itself records that events were lost.
	Gaps []Gap `json:"gaps,omitempty"`
	// Lost is the sum of the events the gaps record.
	Lost int64 `json:"lost,omitempty"`
	// PendingChanges counts change events in the outbox, not chained yet.
	PendingChanges int64 `json:"pending_changes,omitempty"`
	// Note says what this verification could not check.
	Note string `json:"note,omitempty"`
}

// Gap is an audit.gap event: the trail records that events were lost there.
type Gap struct {
	Seq    int64  `json:"seq"`
	Lost   int64  `json:"lost"`
	Detail string `json:"detail"`
}

// Head is the newest link as Verify found it.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// verifier checks a chain fed to it in seq order, in constant memory.
type verifier struct {
	keys   keys
	head   sesame.AuditHead
	next   int64  // the seq the next event must have
	prev   string // the hash the next event must link to
	events int64
	broken *Broken
	buf    []byte
	mac    hash.Hash // HMAC under the chain key, reset for each event
	sum    []byte

	checkpoint     *Checkpoint
	checkpointSeen bool
	gaps           []Gap
	lost           int64
}

func newVerifier(k keys) *verifier {
	return &verifier{keys: k, next: 1, prev: genesisHash, mac: hmac.New(sha256.New, k.chain)}
}

// macOK reports whether mac is the event MAC of hash, without allocating.
func (v *verifier) macOK(h, mac string) bool {
	v.mac.Reset()
	v.mac.Write([]byte("sesame.audit.event.v1\x00"))
	v.mac.Write([]byte(h))
	v.sum = v.mac.Sum(v.sum[:0])
	var want [64]byte
	hex.Encode(want[:], v.sum)
	return hmac.Equal(want[:], []byte(mac))
}

func (v *verifier) fail(seq int64, reason, format string, args ...any) {
	if v.broken == nil {
		v.broken = &Broken{Seq: seq, Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
}

func (v *verifier) setHead(h sesame.AuditHead) { v.head = h }

func (v *verifier) add(e *sesame.AuditEvent) {
	v.events++
	switch {
	case e.Seq > v.next:
		if v.next == e.Seq-1 {
			v.fail(v.next, ReasonMissing, "event %d is missing: it was deleted", v.next)
		} else {
			v.fail(v.next, ReasonMissing, "events %d to %d are missing: they were deleted", v.next, e.Seq-1)
		}
	case e.Seq < v.next: // cannot happen with seq as the primary key, read in order
		v.fail(e.Seq, ReasonPrevMismatch, "event %d appears out of order", e.Seq)
	case e.PrevHash != v.prev:
		v.fail(e.Seq, ReasonPrevMismatch, "event %d does not link to event %d: events were reordered or inserted", e.Seq, e.Seq-1)
	case e.Version != Version:
		v.fail(e.Seq, ReasonVersion, "event %d has encoding version %d, which this server does not know", e.Seq, e.Version)
	default:
		var h [64]byte
		_, v.buf = hashEventInto(&h, v.buf, e)
		switch {
		case string(h[:]) != e.Hash:
			v.fail(e.Seq, ReasonHashMismatch, "event %d does not match its hash: it was edited", e.Seq)
		case !v.macOK(e.Hash, e.MAC):
			v.fail(e.Seq, ReasonMACMismatch, "event %d does not carry the server's MAC: it was forged", e.Seq)
		case e.Action == actionHeadInvalid:
			v.fail(e.Seq, ReasonHead, "event %d records that the head was found rewritten before it: %s", e.Seq, e.Detail)
		case e.Action == ActionGap:
			var n int64
			_, _ = fmt.Sscanf(e.Detail, "%d", &n)
			v.lost += n
			if len(v.gaps) < 100 {
				v.gaps = append(v.gaps, Gap{Seq: e.Seq, Lost: n, Detail: e.Detail})
			}
		}
	}
	if cp := v.checkpoint; cp != nil && e.Seq == cp.Seq {
		v.checkpointSeen = true
		if e.Hash != cp.Hash {
			v.fail(e.Seq, ReasonCheckpoint, "event %d does not have the hash the checkpoint records: the chain was rewritten after the checkpoint was taken", e.Seq)
		}
	}
	v.next, v.prev = e.Seq+1, e.Hash
}

func (v *verifier) result() VerifyResult {
	last := v.next - 1
	switch {
	case v.head.Seq < 0:
		v.fail(last+1, ReasonHead, "the head row is missing")
	case last < v.head.Seq:
		v.fail(last+1, ReasonHead, "the head records seq %d but the newest event is %d: the newest events were deleted", v.head.Seq, last)
	case last > v.head.Seq:
		v.fail(v.head.Seq+1, ReasonHead, "events after the head (seq %d) were added outside the chain", v.head.Seq)
	case last > 0 && v.head.Hash != v.prev:
		v.fail(last, ReasonHead, "the head's hash does not match event %d", last)
	default:
		if p := v.keys.headProblem(v.head); p != "" {
			v.fail(last, ReasonHead, "%s", p)
		}
	}
	if cp := v.checkpoint; cp != nil && !v.checkpointSeen && cp.Seq > 0 {
		if last < cp.Seq {
			v.fail(last+1, ReasonTruncated, "the chain ends at seq %d but the checkpoint records seq %d: the newest events were deleted and the head put back", last, cp.Seq)
		} else {
			v.fail(cp.Seq, ReasonTruncated, "event %d, which the checkpoint records, is missing", cp.Seq)
		}
	}
	return VerifyResult{OK: v.broken == nil, Events: v.events, Head: Head{Seq: v.head.Seq, Hash: v.head.Hash}, FirstBroken: v.broken,
		Checkpoint: v.checkpoint, Gaps: v.gaps, Lost: v.lost}
}
