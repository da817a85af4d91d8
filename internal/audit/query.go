package audit

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/sesamehq/sesame"
)

// Verify walks the whole chain in seq order from one snapshot, in constant memory, and
// reports the first broken link: a gap in seq (deleted events), a prev_hash that does not
// match (reordered or inserted events), a hash that does not match the content (an edit),
// a MAC that does not match (a forged event), or a head that does not match the newest
// event (deleted or forged newest events).
func (l *Log) Verify(ctx context.Context) (VerifyResult, error) {
	return l.verify(ctx, nil)
}

// limitsNote says what a verification without a checkpoint cannot see.
const limitsNote = "without a checkpoint, verification cannot tell a truncated trail (the newest events deleted and an older head row put back) from a shorter one: pass a checkpoint kept outside the store (sesame audit checkpoint, or the server log's \"audit checkpoint:\" lines)"

func (l *Log) verify(ctx context.Context, cp *Checkpoint) (VerifyResult, error) {
	v := newVerifier(l.keys)
	v.checkpoint = cp
	err := l.store.WalkAudit(ctx, func(h sesame.AuditHead) error {
		v.setHead(h)
		return nil
	}, func(e *Event) error {
		v.add(e)
		return nil
	})
	if err != nil {
		return VerifyResult{}, err
	}
	res := v.result()
	if cp == nil {
		res.Note = limitsNote
	}
	if n, err := l.store.CountAuditOutbox(ctx); err == nil {
		res.PendingChanges = n
	}
	if !res.OK {
		l.log.Error("audit chain is broken", "seq", res.FirstBroken.Seq, "reason", res.FirstBroken.Reason, "detail", res.FirstBroken.Detail)
	}
	return res, nil
}

// Page is one page of a query.
type Page struct {
	Events []Event
	// More is true when more events match after this page (in the page's order).
	More bool
	// Follow, when not zero, is a seq such that every matching event up to it has been
	// returned by this page or an earlier one: pass it as AfterSeq (ascending) to get only
	// newer events. It is set on ascending pages and on the first descending page.
	Follow int64
}

// pollEvery is how often a waiting query looks for events that other replicas appended;
// this replica's own commits wake it at once.
const pollEvery = 500 * time.Millisecond

// Query returns up to f.Limit events (DefaultLimit if not set) that match f. With
// wait > 0, an ascending query that finds nothing waits up to wait for a matching event
// to be appended (long polling), so that following the trail costs few requests.
func (l *Log) Query(ctx context.Context, f Filter, wait time.Duration) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	var deadline <-chan time.Time
	if wait > 0 && !f.Desc {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		changed := l.changed()
		p, err := l.query(ctx, f)
		if err != nil || len(p.Events) > 0 || deadline == nil {
			return p, err
		}
		// Nothing matched up to p.Follow, so look only after it from now on.
		f.AfterSeq = max(f.AfterSeq, p.Follow)
		poll := time.NewTimer(pollEvery)
		select {
		case <-changed:
		case <-poll.C:
		case <-deadline:
			poll.Stop()
			return p, nil
		case <-ctx.Done():
			poll.Stop()
			return p, nil
		}
		poll.Stop()
	}
}

// DefaultLimit is the page size of a query without a limit.
const DefaultLimit = 100

func (l *Log) query(ctx context.Context, f Filter) (Page, error) {
	// The head is read before the events: every event up to it is committed (appends commit
	// in seq order) and so visible to the list that follows.
	head, err := l.store.AuditHead(ctx)
	if err != nil {
		return Page{}, err
	}
	limit := f.Limit
	f.Limit = limit + 1
	events, err := l.store.ListAudit(ctx, f)
	if err != nil {
		return Page{}, err
	}
	p := Page{Events: events}
	if len(events) > limit {
		p.Events, p.More = events[:limit], true
	}
	switch {
	case !f.Desc && p.More:
		p.Follow = p.Events[len(p.Events)-1].Seq
	case !f.Desc:
		p.Follow = max(f.AfterSeq, head.Seq)
		if n := len(p.Events); n > 0 {
			p.Follow = max(p.Follow, p.Events[n-1].Seq)
		}
		if f.BeforeSeq > 0 {
			p.Follow = min(p.Follow, f.BeforeSeq-1)
		}
	case f.BeforeSeq == 0: // the first descending page starts at the newest event
		p.Follow = head.Seq
		if len(p.Events) > 0 {
			p.Follow = max(p.Follow, p.Events[0].Seq)
		}
	}
	return p, nil
}

// exportPage is how many events Export reads at a time.
const exportPage = 1000

// Export writes every event that matches f (in seq order, ignoring f.Limit and f.Desc) to
// w as JSON lines, reading a page at a time. It stops at the head as it was when it began,
// so an export under load ends. flush, if not nil, is called after each page.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter, flush func()) (int64, error) {
	head, err := l.store.AuditHead(ctx)
	if err != nil {
		return 0, err
	}
	f.Desc, f.Limit = false, exportPage
	if f.BeforeSeq <= 0 || f.BeforeSeq > head.Seq+1 {
		f.BeforeSeq = head.Seq + 1
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var n int64
	for {
		events, err := l.store.ListAudit(ctx, f)
		if err != nil {
			return n, err
		}
		for i := range events {
			if err := enc.Encode(&events[i]); err != nil {
				return n, err
			}
			n++
		}
		if flush != nil {
			flush()
		}
		if len(events) < exportPage {
			return n, nil
		}
		f.AfterSeq = events[len(events)-1].Seq
	}
}
