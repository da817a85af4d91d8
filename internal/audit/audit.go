// Package audit is Sesame's audit trail (PRODUCT.md C8): every call and every change is an
// event in an append-only, hash-chained log that shows any edit, deletion, reordering or
// forgery (Verify), and that can be queried, followed and exported as JSON lines.
//
// There are three ways to record. Record is for the hot path (outbound calls, reads): it
// hands the event to a background writer through a bounded buffer and returns at once,
// never waiting on a full buffer by default; the writer appends what has queued up in one
// transaction per batch. When the store fails, those events go to an fsynced spill file
// (Config.SpillDir) and are replayed in order once it is back; an event that is lost all
// the same (buffer full, spill failing) is counted and recorded in the chain by an
// audit.gap event, which Verify reports. RecordDurable (strict mode) returns once the
// event is committed or spilled. RecordSync is for changes: it returns only once the event
// is committed. A change's event also commits with the change itself, through the outbox
// that the store writes in the change's transactions (sesame.AuditIntent); rows left there
// by a process that died are chained by the writer (drainLoop).
//
// Checkpoints (checkpoint.go) are signed heads kept outside the store; verifying against
// one detects a truncated trail.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesamehq/sesame"
)

// Event is one audit event; see sesame.AuditEvent.
type Event = sesame.AuditEvent

// Filter selects events; see sesame.AuditFilter.
type Filter = sesame.AuditFilter

// Store is the storage the trail needs. internal/store implements it on SQLite and
// PostgreSQL.
type Store interface {
	// AppendAudit appends events in one transaction, serialized with every other append:
	// it calls link with the current head and inserts the events link returns. An event
	// with Outbox set removes that outbox row in the same transaction.
	AppendAudit(ctx context.Context, events []sesame.AuditEvent,
		link func(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error), durable bool) error
	// DrainAuditOutbox chains up to limit outbox rows written before before, in one
	// transaction serialized with appends, and removes them.
	DrainAuditOutbox(ctx context.Context, before time.Time, limit int, fix func(*sesame.AuditEvent),
		link func(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error)) (int, error)
	// CountAuditOutbox returns how many change events wait in the outbox.
	CountAuditOutbox(ctx context.Context) (int64, error)
	// AuditHead returns the newest link.
	AuditHead(ctx context.Context) (sesame.AuditHead, error)
	// ListAudit returns the events that match a filter.
	ListAudit(ctx context.Context, f sesame.AuditFilter) ([]sesame.AuditEvent, error)
	// WalkAudit reads the head, then every event in seq order, from one snapshot.
	WalkAudit(ctx context.Context, head func(sesame.AuditHead) error, each func(*sesame.AuditEvent) error) error
}

// ErrClosed is returned by RecordSync after Close.
var ErrClosed = errors.New("audit: the trail is closed")

// Config holds the trail's dependencies and limits.
type Config struct {
	Store Store
	// Secret is the server secret the event MACs and value HMACs are keyed with
	// (vault.ServerSecret(ctx, "audit-hmac")). Required; New does not keep it.
	Secret sesame.Secret
	Clock  sesame.Clock
	Logger *slog.Logger
	// Buffer is how many events Record can queue; 0 means 16384.
	Buffer int
	// MaxBatch bounds the events appended in one transaction; 0 means 1024.
	MaxBatch int
	// BlockFor is how long Record waits for room when the buffer is full before it drops
	// the event (counted, and recorded as an audit.gap event); 0 means not at all.
	BlockFor time.Duration
	// Linger is how long a background event waits for others to share its commit; 0 means
	// 5 ms, negative means not at all.
	Linger time.Duration
	// SpillDir, if set, is the folder where background events go, appended to a file and
	// fsynced, while the store cannot take them; they are replayed in order once it can.
	// Without it they are retried in memory until the buffer fills, then dropped.
	SpillDir string
	// AttemptTimeout bounds one append; 0 means 10 s.
	AttemptTimeout time.Duration
	// OutboxGrace is how old an outbox row must be before the writer chains it as the event
	// of a request that never ended (the process died); 0 means 1 minute.
	OutboxGrace time.Duration
	// DrainOutboxAtStart chains every outbox row at once when the trail starts: right when
	// no other process can have a request in flight (SQLite).
	DrainOutboxAtStart bool
}

// Log is the audit trail. It is safe for concurrent use.
type Log struct {
	store          Store
	keys           keys
	clock          sesame.Clock
	log            *slog.Logger
	blockFor       time.Duration
	maxBatch       int
	linger         time.Duration
	attemptTimeout time.Duration
	outboxGrace    time.Duration
	spill          *spillFile // nil without Config.SpillDir; used by the writer only

	// mu is held for reading while an event is handed to the writer, and for writing by
	// Close, so that nothing is sent on ch after it is closed.
	mu     sync.RWMutex
	closed bool
	ch     chan item

	runCtx    context.Context // the writer's; cancelled when Close gives up waiting
	cancelRun context.CancelFunc
	done      chan struct{} // closed when the writer has exited
	drainDone chan struct{} // closed when the outbox drainer has exited

	committed, dropped, failures atomic.Int64
	appends                      atomic.Int64 // append transactions committed
	writing                      atomic.Int64 // events in the batch the writer is committing
	spilled, replayed, gapEvents atomic.Int64
	spillPending                 atomic.Int64
	// unreported counts dropped events no audit.gap event has recorded yet.
	unreported  atomic.Int64
	degradedAt  atomic.Int64 // unix nanos of the last failure to record durably (store and spill); 0 after a success
	lastDropLog atomic.Int64 // unix nanos

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every commit
}

type item struct {
	ev   Event
	done chan error // nil for Record
	// spillOK: a spill to the local file is durable enough for this waiter (RecordDurable);
	// otherwise (RecordSync, changes) only the store is.
	spillOK bool
}

// mustCommit reports whether only the store will do for it.
func (it item) mustCommit() bool { return it.done != nil && !it.spillOK }

// New returns a trail and starts its writer. Close it to flush.
func New(cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: no store")
	}
	if cfg.Secret.IsZero() {
		return nil, errors.New("audit: no server secret")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 16384
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.BlockFor < 0 {
		cfg.BlockFor = 0
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.OutboxGrace <= 0 {
		cfg.OutboxGrace = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Log{
		store:          cfg.Store,
		keys:           deriveKeys(cfg.Secret.Reveal()),
		clock:          cfg.Clock,
		log:            cfg.Logger.With("component", "audit"),
		blockFor:       cfg.BlockFor,
		maxBatch:       cfg.MaxBatch,
		linger:         cfg.Linger,
		attemptTimeout: cfg.AttemptTimeout,
		outboxGrace:    cfg.OutboxGrace,
		ch:             make(chan item, cfg.Buffer),
		runCtx:         ctx,
		cancelRun:      cancel,
		done:           make(chan struct{}),
		drainDone:      make(chan struct{}),
		notify:         make(chan struct{}),
	}
	if cfg.SpillDir != "" {
		sp, err := openSpill(cfg.SpillDir)
		if err != nil {
			cancel()
			return nil, err
		}
		l.spill = sp
		l.spillPending.Store(sp.pending)
		if sp.pending > 0 {
			l.log.Warn("audit events spilled while the store was unavailable will be replayed", "events", sp.pending, "file", sp.path)
		}
	}
	go l.run()
	go l.drainLoop(cfg.DrainOutboxAtStart)
	return l, nil
}

// HMAC returns the HMAC-SHA256 of value under a key derived from the server secret, as
// "hmac:<hex>". Record values that identify a secret (a presented key that failed, a
// token ID meant to stay private) only this way: equal values give equal HMACs, so
// events can be correlated, but the value cannot be recovered or checked without the key.
func (l *Log) HMAC(value string) string {
	m := hmac.New(sha256.New, l.keys.value)
	m.Write([]byte(value))
	return "hmac:" + hex.EncodeToString(m.Sum(nil))
}

// Record queues e for the background writer and returns without waiting for the database.
// If the buffer is full it waits up to Config.BlockFor (by default not at all), then drops
// the event: the drop is counted, logged, and recorded in the chain as an audit.gap event
// as soon as the store takes events again. A zero e.Time is set to now.
func (l *Log) Record(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = l.clock()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.drop(1, "the trail is closed")
		return
	}
	select {
	case l.ch <- item{ev: e}:
		return
	default:
	}
	if l.blockFor <= 0 {
		l.drop(1, "the buffer is full")
		return
	}
	t := time.NewTimer(l.blockFor)
	defer t.Stop()
	// The caller's context is not watched: a request that ends (a client that hangs up)
	// still gets its event.
	select {
	case l.ch <- item{ev: e}:
	case <-t.C:
		l.drop(1, "the buffer is full")
	}
}

// RecordSync records e and returns once it is committed, or with the error that kept it
// from being committed. Use it for changes, before acknowledging them. If ctx ends first it
// returns ctx's error; the event may still be written.
func (l *Log) RecordSync(ctx context.Context, e Event) error {
	return l.recordWait(ctx, e, false)
}

// RecordDurable records e and returns once it is durable: committed to the store or, while
// the store cannot take it, written and fsynced to the spill file (Config.SpillDir) to be
// replayed. Strict mode records every request this way.
func (l *Log) RecordDurable(ctx context.Context, e Event) error {
	return l.recordWait(ctx, e, l.spill != nil)
}

// Degraded reports whether the trail's last attempt to make an event durable failed both
// in the store and in the spill file, less than degradedFor ago: strict mode refuses
// requests without running them meanwhile; after that, requests try again (and probe).
func (l *Log) Degraded() bool {
	at := l.degradedAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < degradedFor
}

// degradedFor is how long a failure to record durably makes Degraded true.
const degradedFor = 2 * time.Second

func (l *Log) recordWait(ctx context.Context, e Event, spillOK bool) error {
	if e.Time.IsZero() {
		e.Time = l.clock()
	}
	done := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.ch <- item{ev: e, done: done, spillOK: spillOK}:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return fmt.Errorf("audit: event not recorded: %w", ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: event not confirmed (it may still be recorded): %w", ctx.Err())
	}
}

// Close stops taking events and waits until every queued event is written or ctx ends;
// then it gives up and reports how many were lost. Close is idempotent.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.ch)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		l.cancelRun()
		<-l.drainDone
		return nil
	case <-ctx.Done():
	}
	before := l.dropped.Load()
	l.cancelRun()
	<-l.done
	<-l.drainDone
	return fmt.Errorf("audit: close: %w; %d queued event(s) were not written", ctx.Err(), l.dropped.Load()-before)
}

// Stats counts what the trail did since New.
type Stats struct {
	Queued       int   `json:"queued"`        // waiting for the writer now
	Writing      int64 `json:"writing"`       // in the batch the writer is committing now
	Committed    int64 `json:"committed"`     // appended to the chain (replayed ones included)
	Appends      int64 `json:"appends"`       // append transactions that committed them (each holds a batch)
	Dropped      int64 `json:"dropped"`       // lost: buffer full, closed, the spill file failing, or the store failing until Close gave up
	Failures     int64 `json:"failures"`      // failed append attempts (each retried)
	Spilled      int64 `json:"spilled"`       // written to the spill file while the store failed
	Replayed     int64 `json:"replayed"`      // replayed from the spill file into the chain
	SpillPending int64 `json:"spill_pending"` // in the spill file now, waiting to be replayed
	GapEvents    int64 `json:"gap_events"`    // audit.gap events written (each records a number of drops)
}

// Stats returns the trail's counters.
func (l *Log) Stats() Stats {
	return Stats{Queued: len(l.ch), Writing: l.writing.Load(), Committed: l.committed.Load(), Appends: l.appends.Load(), Dropped: l.dropped.Load(), Failures: l.failures.Load(),
		Spilled: l.spilled.Load(), Replayed: l.replayed.Load(), SpillPending: l.spillPending.Load(), GapEvents: l.gapEvents.Load()}
}

func (l *Log) drop(n int, why string) {
	total := l.dropped.Add(int64(n))
	l.unreported.Add(int64(n))
	now := time.Now().UnixNano()
	last := l.lastDropLog.Load()
	if now-last >= int64(10*time.Second) && l.lastDropLog.CompareAndSwap(last, now) {
		l.log.Error("audit events dropped; an audit.gap event will record how many", "why", why, "dropped_total", total)
	}
}

// changed returns a channel closed at the next commit.
func (l *Log) changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notify
}

func (l *Log) wake() {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	close(l.notify)
	l.notify = make(chan struct{})
}

// run is the writer: it takes whatever has queued up (at most maxBatch events) and appends
// it in one transaction, until the channel is closed and drained.
func (l *Log) run() {
	defer close(l.done)
	defer l.cancelRun()
	lk := &linker{keys: l.keys, now: func() Event { return Event{Time: l.clock()} }}
	defer l.finish(lk)
	batch := make([]item, 0, l.maxBatch)
	events := make([]Event, 0, l.maxBatch)
	for {
		var it item
		var ok bool
		if l.spill != nil && l.spill.pending > 0 {
			// Spilled events wait: retry the replay now and then even when nothing new comes.
			t := time.NewTimer(max(time.Until(l.spill.nextTry), 50*time.Millisecond))
			select {
			case it, ok = <-l.ch:
				t.Stop()
			case <-t.C:
				l.replay(lk)
				continue
			}
		} else {
			it, ok = <-l.ch
		}
		if !ok {
			return
		}
		batch = append(batch[:0], it)
		open := true
		// Background events linger a little for company: a commit per few events would
		// cost more than the events themselves. A RecordSync caller never waits for that,
		// but everything already queued joins its commit (group commit): concurrent
		// changes share one transaction, and on SQLite one fsync, instead of taking turns.
		var linger <-chan time.Time
		if it.done == nil && l.linger > 0 {
			linger = time.After(l.linger)
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case it, ok := <-l.ch:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, it)
				if it.done != nil {
					linger = nil // someone waits: take what is queued, no more
				}
			default:
				if linger == nil {
					break fill
				}
				select {
				case it, ok := <-l.ch:
					if !ok {
						open = false
						break fill
					}
					batch = append(batch, it)
					if it.done != nil {
						linger = nil
					}
				case <-linger:
					break fill
				}
			}
		}
		l.writing.Store(int64(len(batch)))
		l.commit(lk, batch, events)
		l.writing.Store(0)
		clear(batch) // let the events go
		if !open {
			return
		}
	}
}

// syncAttempts is how many times an append is tried before RecordSync callers get the
// error; Record's events are spilled (with a spill folder) or retried until Close gives up.
const syncAttempts = 3

// ActionGap is the event that records how many events were lost; its Detail starts with
// the number.
const ActionGap = "audit.gap"

func (l *Log) gapEvent(n int64) Event {
	e := Event{Time: l.clock(), Action: ActionGap, Result: sesame.AuditError, Code: "events_dropped",
		Detail: fmt.Sprintf("%d audit event(s) were lost: the buffer was full, or the store and the spill file both failed", n)}
	normalize(&e)
	return e
}

// appendEvents appends events to the chain, preceded by an audit.gap event if drops are
// unreported, within one attempt's time.
func (l *Log) appendEvents(lk *linker, events []Event, durable bool) error {
	gap := l.unreported.Swap(0)
	if gap > 0 {
		events = append([]Event{l.gapEvent(gap)}, events...)
	}
	ctx, cancel := context.WithTimeout(l.runCtx, l.attemptTimeout)
	defer cancel()
	err := l.runCtx.Err()
	if err == nil {
		err = l.store.AppendAudit(ctx, events, lk.link, durable)
	}
	if err != nil {
		l.unreported.Add(gap)
		return err
	}
	if gap > 0 {
		l.gapEvents.Add(1)
		l.log.Warn("recorded an audit.gap event", "lost", gap)
	}
	l.appends.Add(1)
	l.degradedAt.Store(0)
	return nil
}

func (l *Log) commit(lk *linker, batch []item, events []Event) {
	for i := range batch {
		normalize(&batch[i].ev)
	}
	if l.spill != nil && l.spill.pending > 0 {
		// Older events wait in the spill file: they go first, to keep the order.
		l.replay(lk)
		if l.spill.pending > 0 {
			kept := l.spillItems(batch)
			if len(kept) > 0 {
				l.commitStore(lk, kept, events)
			}
			return
		}
	}
	l.commitStore(lk, batch, events)
}

// commitStore appends batch to the chain, retrying. With a spill folder, the events that
// may be spilled go there after the first failure; the rest (changes) are retried.
func (l *Log) commitStore(lk *linker, batch []item, events []Event) {
	durable := false
	for _, it := range batch {
		durable = durable || it.done != nil
	}
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		events = events[:0]
		for _, it := range batch {
			events = append(events, it.ev)
		}
		err := l.appendEvents(lk, events, durable)
		if err == nil {
			l.committed.Add(int64(len(batch)))
			for _, it := range batch {
				if it.done != nil {
					it.done <- nil
				}
			}
			l.wake()
			return
		}
		l.failures.Add(1)
		if l.runCtx.Err() != nil {
			if l.spill != nil {
				// Close gave up on the store: keep what may be spilled for the next start.
				batch = l.spillItems(batch)
			}
			for _, it := range batch {
				if it.done != nil {
					it.done <- fmt.Errorf("audit: the trail closed before the event was written: %w", err)
				}
			}
			l.drop(len(batch), "the trail closed while the store was failing")
			return
		}
		l.log.Error("audit append failed; retrying", "events", len(batch), "attempt", attempt, "err", err)
		if l.spill != nil {
			batch = l.spillItems(batch)
			if len(batch) == 0 {
				return
			}
		}
		if durable && attempt >= syncAttempts {
			l.degradedAt.Store(time.Now().UnixNano())
			// The waiting changes get the error (their handlers answer with it); the rest retry.
			kept := batch[:0]
			for _, it := range batch {
				if it.done != nil {
					it.done <- fmt.Errorf("audit: event not recorded: %w", err)
				} else {
					kept = append(kept, it)
				}
			}
			clear(batch[len(kept):])
			batch, durable = kept, false
			if len(batch) == 0 {
				return
			}
		}
		select {
		case <-time.After(backoff):
		case <-l.runCtx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// finish runs as the writer stops: a last try to replay the spill file, then keepGap.
func (l *Log) finish(lk *linker) {
	if l.spill != nil && l.spill.pending > 0 && l.runCtx.Err() == nil {
		l.spill.nextTry = time.Time{}
		l.replay(lk)
	}
	l.keepGap()
}

// keepGap, as the writer stops, writes the drops no audit.gap event has recorded yet to
// the spill file as one, so that the next start chains it.
func (l *Log) keepGap() {
	n := l.unreported.Load()
	if n == 0 || l.spill == nil {
		return
	}
	if err := l.spill.write([]Event{l.gapEvent(n)}); err != nil {
		l.log.Error("audit: cannot keep the record of lost events for the next start", "lost", n, "err", err)
		return
	}
	l.unreported.Add(-n)
	l.spillPending.Store(l.spill.pending)
}

// spillItems writes the events of batch that may be spilled to the spill file and returns
// the others (changes, which only the store may take). If the spill fails, those events
// are dropped (counted, and recorded later as an audit.gap event) and their waiters get
// the error.
func (l *Log) spillItems(batch []item) []item {
	var kept, out []item
	var events []Event
	for _, it := range batch {
		if it.mustCommit() {
			kept = append(kept, it)
		} else {
			out = append(out, it)
			events = append(events, it.ev)
		}
	}
	if len(out) == 0 {
		return kept
	}
	if err := l.spill.write(events); err != nil {
		l.degradedAt.Store(time.Now().UnixNano())
		l.log.Error("audit spill failed; events are lost", "events", len(out), "err", err)
		for _, it := range out {
			if it.done != nil {
				it.done <- fmt.Errorf("audit: event not recorded: the store and the spill file both failed: %w", err)
			}
		}
		l.drop(len(out), "the store and the spill file both failed")
		return kept
	}
	l.degradedAt.Store(0)
	l.spilled.Add(int64(len(out)))
	l.spillPending.Store(l.spill.pending)
	for _, it := range out {
		if it.done != nil {
			it.done <- nil
		}
	}
	return kept
}

// replay appends the spilled events to the chain in order, a batch per transaction, when
// a retry is due. It stops at the first failure and tries again later.
func (l *Log) replay(lk *linker) {
	if time.Now().Before(l.spill.nextTry) {
		return
	}
	for l.spill.pending > 0 {
		events, next, err := l.spill.read(l.maxBatch)
		if err == nil && len(events) == 0 {
			// The file ends early (cut short outside the server): nothing more to replay.
			err = l.spill.advance(next, l.spill.pending)
			l.spillPending.Store(0)
			if err != nil {
				l.log.Error("audit spill: cannot reset the spill file", "err", err)
			}
			break
		}
		if err == nil {
			err = l.appendEvents(lk, events, true)
		}
		if err != nil {
			l.failures.Add(1)
			l.spill.retryLater()
			return
		}
		if err := l.spill.advance(next, int64(len(events))); err != nil {
			l.log.Error("audit spill: cannot record the replay's progress", "err", err)
		}
		l.replayed.Add(int64(len(events)))
		l.committed.Add(int64(len(events)))
		l.spillPending.Store(l.spill.pending)
		l.wake()
	}
	l.log.Info("audit: replayed the spilled events", "replayed_total", l.replayed.Load())
}

// drainLoop chains, now and then, the outbox rows of requests that never ended.
func (l *Log) drainLoop(all bool) {
	defer close(l.drainDone)
	lk := &linker{keys: l.keys, now: func() Event { return Event{Time: l.clock()} }}
	if all {
		l.drainOutbox(lk, l.clock().Add(time.Second))
	}
	every := min(max(l.outboxGrace/2, 100*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.runCtx.Done():
			return
		case <-t.C:
			l.drainOutbox(lk, l.clock().Add(-l.outboxGrace))
		}
	}
}

func (l *Log) drainOutbox(lk *linker, before time.Time) {
	for {
		ctx, cancel := context.WithTimeout(l.runCtx, l.attemptTimeout)
		n, err := l.store.DrainAuditOutbox(ctx, before, l.maxBatch, func(e *Event) {
			normalize(e)
			e.Detail = clean(strings.TrimSpace("the change committed but its request did not finish (the server stopped?) " + e.Detail))
		}, lk.link)
		cancel()
		if err != nil {
			if l.runCtx.Err() == nil {
				l.log.Warn("audit outbox: cannot chain pending change events yet", "err", err)
			}
			return
		}
		if n == 0 {
			return
		}
		l.committed.Add(int64(n))
		l.log.Warn("audit outbox: chained the events of changes whose requests did not finish", "events", n)
		l.wake()
	}
}
