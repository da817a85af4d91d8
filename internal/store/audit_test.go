package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/store"
)

// The audit store cases run, like storeCases, against every backend on a fresh database.
// The chain itself (hashes, MACs, Verify) is internal/audit's and tested there; these
// cases use a transparent link function and check what the store promises: appends are
// atomic and serialized, events round-trip exactly, filters and order are right, and the
// walk is one snapshot in seq order.
var auditCases = []storeCase{
	{"Append/RoundTripsEveryField", testAuditRoundTrip},
	{"Append/LinksOntoTheHead", testAuditLinksOntoHead},
	{"Append/LinkErrorAppendsNothing", testAuditLinkError},
	{"Append/FailedInsertAppendsNothing", testAuditFailedInsert},
	{"Append/LargeBatch", testAuditLargeBatch},
	{"Append/LinkMayAddEvents", testAuditLinkAdds},
	{"Append/DurableCommit", testAuditDurable},
	{"Append/MissingHeadRowRefused", testAuditMissingHead},
	{"Append/ConcurrentStoresKeepOneChain", testAuditConcurrentStores},
	{"List/Filters", testAuditListFilters},
	{"List/Pagination", testAuditListPagination},
	{"Walk/HeadThenEventsInOrder", testAuditWalk},
	{"Walk/StopsAtCallbackError", testAuditWalkStops},
	{"Outbox/WrittenWithTheChange", testAuditOutboxWithChange},
	{"Outbox/DrainedOnceAndRemoved", testAuditOutboxDrain},
	{"Outbox/GroupCommitWritesEveryEvent", testAuditOutboxGroupCommit},
}

func TestAuditStore(t *testing.T) {
	runCases(t, auditCases, nil)
}

// chainLink is a transparent link function: seq follows the head, prev_hash is the
// previous hash, and the hash names the seq.
func chainLink(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error) {
	seq, prev := head.Seq, head.Hash
	for i := range events {
		seq++
		events[i].Seq, events[i].Version, events[i].PrevHash = seq, 1, prev
		events[i].Hash, events[i].MAC = fmt.Sprintf("h%d", seq), fmt.Sprintf("m%d", seq)
		prev = events[i].Hash
	}
	return events, sesame.AuditHead{Seq: seq, Hash: prev, MAC: fmt.Sprintf("head%d", seq)}, nil
}

func auditEvent(i int) sesame.AuditEvent {
	return sesame.AuditEvent{
		Time:      at(i).Add(time.Duration(i) * time.Nanosecond),
		Workspace: []string{"default", "acme"}[i%2],
		Principal: sesame.PrincipalUser,
		UserID:    fmt.Sprintf("u%d", i%3),
		KeyID:     fmt.Sprintf("k%d", i%3),
		Action:    []string{"credential.put", "credential.delete", "outbound.proxy"}[i%3],
		Target:    fmt.Sprintf("t%d", i),
		Result:    []string{sesame.AuditOK, sesame.AuditOK, sesame.AuditDenied, sesame.AuditError}[i%4],
		Status:    200,
	}
}

func appendAudit(t *testing.T, e *env, events ...sesame.AuditEvent) {
	t.Helper()
	must(t, e.s.AppendAudit(e.ctx, events, chainLink, false))
}

func appendN(t *testing.T, e *env, n int) {
	t.Helper()
	events := make([]sesame.AuditEvent, n)
	for i := range events {
		events[i] = auditEvent(i)
	}
	appendAudit(t, e, events...)
}

func listAudit(t *testing.T, e *env, f sesame.AuditFilter) []sesame.AuditEvent {
	t.Helper()
	got, err := e.s.ListAudit(e.ctx, f)
	must(t, err)
	return got
}

func seqs(events []sesame.AuditEvent) []int64 {
	out := []int64{}
	for _, ev := range events {
		out = append(out, ev.Seq)
	}
	return out
}

func testAuditRoundTrip(t *testing.T, e *env) {
	want := sesame.AuditEvent{
		Time: t0, Workspace: "default", Principal: sesame.PrincipalApp, UserID: "u1", KeyID: "k1",
		AppID: "com.example.app", Action: "outbound.proxy", Target: "weather", Result: sesame.AuditError,
		Code: "upstream_timeout", Status: 504, UpstreamStatus: 503, LatencyMicros: 1234567890123,
		Source: "192.0.2.1", RequestID: "req-1", Detail: "GET api.example.com ✓",
	}
	appendAudit(t, e, want)
	want.Seq, want.Version, want.PrevHash, want.Hash, want.MAC = 1, 1, "0000000000000000000000000000000000000000000000000000000000000000", "h1", "m1"
	got := listAudit(t, e, sesame.AuditFilter{})
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !got[0].Time.Equal(t0) || got[0].Time.Nanosecond() != t0.Nanosecond() {
		t.Fatalf("time lost precision: %v", got[0].Time)
	}
	h, err := e.s.AuditHead(e.ctx)
	must(t, err)
	if h != (sesame.AuditHead{Seq: 1, Hash: "h1", MAC: "head1"}) {
		t.Fatalf("head = %+v", h)
	}
}

func testAuditLinksOntoHead(t *testing.T, e *env) {
	appendN(t, e, 3)
	var seen sesame.AuditHead
	err := e.s.AppendAudit(e.ctx, []sesame.AuditEvent{auditEvent(3), auditEvent(4)}, func(h sesame.AuditHead, evs []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error) {
		seen = h
		return chainLink(h, evs)
	}, false)
	must(t, err)
	if seen != (sesame.AuditHead{Seq: 3, Hash: "h3", MAC: "head3"}) {
		t.Fatalf("link saw head %+v", seen)
	}
	got := listAudit(t, e, sesame.AuditFilter{AfterSeq: 3})
	if !reflect.DeepEqual(seqs(got), []int64{4, 5}) || got[0].PrevHash != "h3" || got[1].PrevHash != "h4" {
		t.Fatalf("got %+v", got)
	}
}

func testAuditLinkError(t *testing.T, e *env) {
	appendN(t, e, 2)
	boom := errors.New("boom")
	err := e.s.AppendAudit(e.ctx, []sesame.AuditEvent{auditEvent(9)}, func(h sesame.AuditHead, evs []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error) {
		return nil, h, boom
	}, false)
	wantIs(t, err, boom)
	if n := e.count(t, `SELECT COUNT(*) FROM audit_events`); n != 2 {
		t.Fatalf("%d events after a failed append, want 2", n)
	}
	if h, _ := e.s.AuditHead(e.ctx); h.Seq != 2 {
		t.Fatalf("head moved to %d", h.Seq)
	}
}

// testAuditFailedInsert makes the second of two inserted chunks fail (a duplicate seq):
// neither the first chunk nor the head may remain.
func testAuditFailedInsert(t *testing.T, e *env) {
	appendN(t, e, 1)
	events := make([]sesame.AuditEvent, 300)
	for i := range events {
		events[i] = auditEvent(i)
	}
	err := e.s.AppendAudit(e.ctx, events, func(h sesame.AuditHead, evs []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error) {
		evs, h, err := chainLink(h, evs)
		evs[299].Seq = 2 // collides with evs[0], in the second INSERT
		return evs, h, err
	}, false)
	if err == nil {
		t.Fatal("a duplicate seq was accepted")
	}
	if n := e.count(t, `SELECT COUNT(*) FROM audit_events`); n != 1 {
		t.Fatalf("%d events after a failed append, want 1", n)
	}
	if h, _ := e.s.AuditHead(e.ctx); h.Seq != 1 || h.Hash != "h1" {
		t.Fatalf("head moved to %+v", h)
	}
}

func testAuditLargeBatch(t *testing.T, e *env) {
	appendN(t, e, 1000) // four INSERT statements
	got := listAudit(t, e, sesame.AuditFilter{})
	if len(got) != 1000 || got[0].Seq != 1 || got[999].Seq != 1000 || got[999].PrevHash != "h999" {
		t.Fatalf("got %d events", len(got))
	}
	for i, ev := range got {
		if ev.Target != fmt.Sprintf("t%d", i) {
			t.Fatalf("event %d has target %q", ev.Seq, ev.Target)
		}
	}
}

func testAuditLinkAdds(t *testing.T, e *env) {
	err := e.s.AppendAudit(e.ctx, []sesame.AuditEvent{auditEvent(1)}, func(h sesame.AuditHead, evs []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error) {
		extra := auditEvent(7)
		extra.Action = "audit.head_invalid"
		return chainLink(h, append([]sesame.AuditEvent{extra}, evs...))
	}, false)
	must(t, err)
	got := listAudit(t, e, sesame.AuditFilter{})
	if len(got) != 2 || got[0].Action != "audit.head_invalid" || got[1].Target != "t1" {
		t.Fatalf("got %+v", got)
	}
}

func testAuditDurable(t *testing.T, e *env) {
	must(t, e.s.AppendAudit(e.ctx, []sesame.AuditEvent{auditEvent(1)}, chainLink, true))
	appendN(t, e, 1) // and the connection still works for ordinary writes
	createWorkspace(t, e, "after-durable")
	if n := e.count(t, `SELECT COUNT(*) FROM audit_events`); n != 2 {
		t.Fatalf("%d events", n)
	}
}

func testAuditMissingHead(t *testing.T, e *env) {
	rawExec(t, e.raw(t), `DELETE FROM audit_head`)
	err := e.s.AppendAudit(e.ctx, []sesame.AuditEvent{auditEvent(1)}, chainLink, false)
	if err == nil {
		t.Fatal("appended without a head row")
	}
	if n := e.count(t, `SELECT COUNT(*) FROM audit_events`); n != 0 {
		t.Fatalf("%d events", n)
	}
}

// testAuditConcurrentStores appends from two stores on one database (two replicas) at
// once: every event must link to the one before it, with no gap and no duplicate.
func testAuditConcurrentStores(t *testing.T, e *env) {
	stores := []*store.Store{e.s, e.reopen(t)}
	const writers, batches, perBatch = 8, 10, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range batches {
				evs := make([]sesame.AuditEvent, perBatch)
				for i := range evs {
					evs[i] = auditEvent(w)
				}
				if err := stores[w%2].AppendAudit(e.ctx, evs, chainLink, false); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := listAudit(t, e, sesame.AuditFilter{})
	if len(got) != writers*batches*perBatch {
		t.Fatalf("%d events, want %d", len(got), writers*batches*perBatch)
	}
	prev := "0000000000000000000000000000000000000000000000000000000000000000"
	for i, ev := range got {
		if ev.Seq != int64(i+1) || ev.PrevHash != prev {
			t.Fatalf("event %d: seq %d prev %q, want seq %d prev %q", i, ev.Seq, ev.PrevHash, i+1, prev)
		}
		prev = ev.Hash
	}
	if h, _ := e.s.AuditHead(e.ctx); h.Seq != int64(len(got)) || h.Hash != prev {
		t.Fatalf("head %+v after %d events", h, len(got))
	}
}

func testAuditListFilters(t *testing.T, e *env) {
	appendN(t, e, 12) // times at(0)..at(11); workspaces alternate; users u0,u1,u2; actions cycle
	special := auditEvent(12)
	special.AppID, special.Principal, special.Action = "com.example.app", sesame.PrincipalApp, "credentialXput"
	appendAudit(t, e, special)
	cases := []struct {
		name string
		f    sesame.AuditFilter
		want []int64
	}{
		{"all", sesame.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}},
		{"workspace", sesame.AuditFilter{Workspace: "acme"}, []int64{2, 4, 6, 8, 10, 12}},
		{"user", sesame.AuditFilter{UserID: "u1"}, []int64{2, 5, 8, 11}},
		{"key", sesame.AuditFilter{KeyID: "k2"}, []int64{3, 6, 9, 12}},
		{"app", sesame.AuditFilter{AppID: "com.example.app"}, []int64{13}},
		{"principal", sesame.AuditFilter{Principal: sesame.PrincipalApp}, []int64{13}},
		{"action exact", sesame.AuditFilter{Action: "credential.put"}, []int64{1, 4, 7, 10}},
		{"action prefix", sesame.AuditFilter{Action: "credential.*"}, []int64{1, 2, 4, 5, 7, 8, 10, 11}},
		{"action prefix has no wildcards", sesame.AuditFilter{Action: "credential_*"}, []int64{}},
		{"action star", sesame.AuditFilter{Action: "*"}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}},
		{"result", sesame.AuditFilter{Result: sesame.AuditDenied}, []int64{3, 7, 11}},
		{"since", sesame.AuditFilter{Since: at(10)}, []int64{11, 12, 13}},
		{"until", sesame.AuditFilter{Until: at(2)}, []int64{1, 2}},
		{"since and until", sesame.AuditFilter{Since: at(3), Until: at(5)}, []int64{4, 5}},
		{"after and before", sesame.AuditFilter{AfterSeq: 3, BeforeSeq: 6}, []int64{4, 5}},
		{"combined", sesame.AuditFilter{Workspace: "default", Action: "credential.*", Result: sesame.AuditOK}, []int64{1, 5}},
		{"desc", sesame.AuditFilter{Desc: true, Limit: 3}, []int64{13, 12, 11}},
		{"desc before", sesame.AuditFilter{Desc: true, BeforeSeq: 5, Limit: 2}, []int64{4, 3}},
		{"limit", sesame.AuditFilter{Limit: 2, AfterSeq: 10}, []int64{11, 12}},
		{"no match", sesame.AuditFilter{Workspace: "nope"}, []int64{}},
	}
	for _, c := range cases {
		if got := seqs(listAudit(t, e, c.f)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got seqs %v, want %v", c.name, got, c.want)
		}
	}
}

func testAuditListPagination(t *testing.T, e *env) {
	appendN(t, e, 25)
	var all []int64
	after := int64(0)
	for {
		page := listAudit(t, e, sesame.AuditFilter{AfterSeq: after, Limit: 10, Workspace: "default"})
		all = append(all, seqs(page)...)
		if len(page) < 10 {
			break
		}
		after = page[len(page)-1].Seq
	}
	want := []int64{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("pages gave %v, want %v", all, want)
	}
}

func testAuditWalk(t *testing.T, e *env) {
	var heads []sesame.AuditHead
	var got []int64
	walk := func() {
		heads, got = nil, nil
		must(t, e.s.WalkAudit(e.ctx, func(h sesame.AuditHead) error {
			if len(got) > 0 {
				t.Fatal("head after events")
			}
			heads = append(heads, h)
			return nil
		}, func(ev *sesame.AuditEvent) error {
			got = append(got, ev.Seq)
			return nil
		}))
	}
	walk()
	if len(heads) != 1 || heads[0].Seq != 0 || len(got) != 0 {
		t.Fatalf("empty chain: heads %+v events %v", heads, got)
	}
	appendN(t, e, 7)
	walk()
	if len(heads) != 1 || heads[0].Seq != 7 || !reflect.DeepEqual(got, []int64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("heads %+v events %v", heads, got)
	}
	// A walk in progress does not block appends (it reads a snapshot).
	n := 0
	must(t, e.s.WalkAudit(e.ctx, func(sesame.AuditHead) error { return nil }, func(ev *sesame.AuditEvent) error {
		if n == 0 {
			appendN(t, e, 1)
		}
		n++
		return nil
	}))
	if n != 7 {
		t.Fatalf("the walk saw %d events, want the 7 of its snapshot", n)
	}
	rawExec(t, e.raw(t), `DELETE FROM audit_head`)
	walk()
	if heads[0].Seq != -1 {
		t.Fatalf("a missing head row gave %+v, want seq -1", heads[0])
	}
}

func testAuditWalkStops(t *testing.T, e *env) {
	appendN(t, e, 5)
	stop := errors.New("stop")
	n := 0
	err := e.s.WalkAudit(e.ctx, func(sesame.AuditHead) error { return nil }, func(*sesame.AuditEvent) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	wantIs(t, err, stop)
	if n != 2 {
		t.Fatalf("walked %d events after the error", n)
	}
	err = e.s.WalkAudit(e.ctx, func(sesame.AuditHead) error { return stop }, func(*sesame.AuditEvent) error {
		t.Fatal("walked events after the head callback failed")
		return nil
	})
	wantIs(t, err, stop)
}

func outboxCount(t *testing.T, e *env) int64 {
	t.Helper()
	n, err := e.s.CountAuditOutbox(e.ctx)
	must(t, err)
	return n
}

// testAuditOutboxWithChange: a write carrying an audit intent commits the intent's event
// in the outbox with it, once however many transactions it takes; a failed write leaves
// neither; an append of the final event removes the row.
func testAuditOutboxWithChange(t *testing.T, e *env) {
	in := &sesame.AuditIntent{ID: "req-1", Event: sesame.AuditEvent{Time: at(1), Action: "workspace.create", Target: "ws1"}}
	ctx := sesame.WithAuditIntent(e.ctx, in)
	must(t, e.s.CreateWorkspace(ctx, sesame.Workspace{Name: "ws1", CreatedAt: at(1)}))
	must(t, e.s.CreateWorkspace(ctx, sesame.Workspace{Name: "ws2", CreatedAt: at(1)}))
	if !in.Written() || outboxCount(t, e) != 1 {
		t.Fatalf("written %v, %d outbox rows, want 1", in.Written(), outboxCount(t, e))
	}
	failed := &sesame.AuditIntent{ID: "req-2", Event: sesame.AuditEvent{Time: at(2), Action: "workspace.create"}}
	err := e.s.CreateWorkspace(sesame.WithAuditIntent(e.ctx, failed), sesame.Workspace{Name: "ws1", CreatedAt: at(2)})
	if err == nil || failed.Written() || outboxCount(t, e) != 1 {
		t.Fatalf("a failed write: err %v, written %v, %d outbox rows", err, failed.Written(), outboxCount(t, e))
	}
	final := auditEvent(1)
	final.Outbox = in.ID
	appendAudit(t, e, final)
	if n := outboxCount(t, e); n != 0 {
		t.Fatalf("%d outbox rows after the final event", n)
	}
}

// testAuditOutboxGroupCommit: one transaction carrying several requests' changes writes
// every request's event.
func testAuditOutboxGroupCommit(t *testing.T, e *env) {
	a := &sesame.AuditIntent{ID: "a", Event: sesame.AuditEvent{Time: at(1), Action: "x"}}
	b := &sesame.AuditIntent{ID: "b", Event: sesame.AuditEvent{Time: at(1), Action: "x"}}
	must(t, e.s.CreateWorkspace(sesame.WithAuditIntents(e.ctx, a, b), sesame.Workspace{Name: "ws1", CreatedAt: at(1)}))
	if !a.Written() || !b.Written() || outboxCount(t, e) != 2 {
		t.Fatalf("written %v %v, %d outbox rows, want 2", a.Written(), b.Written(), outboxCount(t, e))
	}
}

// testAuditOutboxDrain: rows older than the cut-off are chained (principal and all) and
// removed; newer ones wait.
func testAuditOutboxDrain(t *testing.T, e *env) {
	for i, name := range []string{"old", "new"} {
		in := &sesame.AuditIntent{ID: name, Event: sesame.AuditEvent{Time: at(i * 10), Action: "workspace.create", Target: name}}
		in.SetPrincipal(sesame.Principal{Kind: sesame.PrincipalUser, UserID: "u7"})
		ctx := sesame.WithAuditIntent(e.ctx, in)
		must(t, e.s.CreateWorkspace(ctx, sesame.Workspace{Name: name, CreatedAt: at(i)}))
	}
	fix := func(ev *sesame.AuditEvent) { ev.Detail = "unfinished" }
	n, err := e.s.DrainAuditOutbox(e.ctx, at(5), 100, fix, chainLink)
	must(t, err)
	got := listAudit(t, e, sesame.AuditFilter{})
	if n != 1 || len(got) != 1 || got[0].Target != "old" || got[0].UserID != "u7" || got[0].Detail != "unfinished" || outboxCount(t, e) != 1 {
		t.Fatalf("drained %d: %+v, %d left", n, got, outboxCount(t, e))
	}
	n, err = e.s.DrainAuditOutbox(context.WithoutCancel(e.ctx), at(100), 100, fix, chainLink)
	must(t, err)
	if n != 1 || outboxCount(t, e) != 0 || len(listAudit(t, e, sesame.AuditFilter{})) != 2 {
		t.Fatalf("second drain: %d", n)
	}
}
