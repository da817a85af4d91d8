// Package audit is Sesame's audit trail (PRODUCT.md C8): every call and every change is an
// event in an append-only, hash-chained log that shows any edit, deletion, reordering or
// forgery (Verify), and that can be queried, followed and exported as JSON lines.
//
// There are two ways to record. Record is for the hot path (outbound calls, reads): it hands
// the event to a background writer through a bounded buffer and returns at once; the writer
// appends what has queued up in one transaction per batch, so a call costs no database
// round trip of its own. RecordSync is for changes: it returns only once the event is
// committed (batched with whatever else is queued), so a change that was acknowledged is
// never missing from the trail.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	// it calls link with the current head and inserts the events link returns.
	AppendAudit(ctx context.Context, events []sesame.AuditEvent,
		link func(head sesame.AuditHead, events []sesame.AuditEvent) ([]sesame.AuditEvent, sesame.AuditHead, error), durable bool) error
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
	// the event (counted and logged); 0 means 100 ms.
	BlockFor time.Duration
	// Linger is how long a background event waits for others to share its commit; 0 means
	// 5 ms, negative means not at all.
	Linger time.Duration
}

// Log is the audit trail. It is safe for concurrent use.
type Log struct {
	store    Store
	keys     keys
	clock    sesame.Clock
	log      *slog.Logger
	blockFor time.Duration
	maxBatch int
	linger   time.Duration

	// mu is held for reading while an event is handed to the writer, and for writing by
	// Close, so that nothing is sent on ch after it is closed.
	mu     sync.RWMutex
	closed bool
	ch     chan item

	runCtx    context.Context // the writer's; cancelled when Close gives up waiting
	cancelRun context.CancelFunc
	done      chan struct{} // closed when the writer has exited

	committed, dropped, failures atomic.Int64
	lastDropLog                  atomic.Int64 // unix nanos

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every commit
}

type item struct {
	ev   Event
	done chan error // nil for Record
}

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
	if cfg.BlockFor <= 0 {
		cfg.BlockFor = 100 * time.Millisecond
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Log{
		store:     cfg.Store,
		keys:      deriveKeys(cfg.Secret.Reveal()),
		clock:     cfg.Clock,
		log:       cfg.Logger.With("component", "audit"),
		blockFor:  cfg.BlockFor,
		maxBatch:  cfg.MaxBatch,
		linger:    cfg.Linger,
		ch:        make(chan item, cfg.Buffer),
		runCtx:    ctx,
		cancelRun: cancel,
		done:      make(chan struct{}),
		notify:    make(chan struct{}),
	}
	go l.run()
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
// If the buffer is full it waits up to Config.BlockFor for room, then drops the event,
// counting and logging the drop. A zero e.Time is set to now.
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
	case l.ch <- item{ev: e, done: done}:
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
		return nil
	case <-ctx.Done():
	}
	before := l.dropped.Load()
	l.cancelRun()
	<-l.done
	return fmt.Errorf("audit: close: %w; %d queued event(s) were not written", ctx.Err(), l.dropped.Load()-before)
}

// Stats counts what the trail did since New.
type Stats struct {
	Queued    int   `json:"queued"`    // waiting for the writer now
	Committed int64 `json:"committed"` // appended to the chain
	Dropped   int64 `json:"dropped"`   // lost: buffer full, closed, or the store failing until Close gave up
	Failures  int64 `json:"failures"`  // failed append attempts (each retried)
}

// Stats returns the trail's counters.
func (l *Log) Stats() Stats {
	return Stats{Queued: len(l.ch), Committed: l.committed.Load(), Dropped: l.dropped.Load(), Failures: l.failures.Load()}
}

func (l *Log) drop(n int, why string) {
	total := l.dropped.Add(int64(n))
	now := time.Now().UnixNano()
	last := l.lastDropLog.Load()
	if now-last >= int64(10*time.Second) && l.lastDropLog.CompareAndSwap(last, now) {
		l.log.Error("audit events dropped", "why", why, "dropped_total", total)
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
	batch := make([]item, 0, l.maxBatch)
	events := make([]Event, 0, l.maxBatch)
	for {
		it, ok := <-l.ch
		if !ok {
			return
		}
		batch = append(batch[:0], it)
		open := true
		// Background events linger a little for company: a commit per few events would
		// cost more than the events themselves. A RecordSync caller never waits for that.
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
					break fill
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
						break fill
					}
				case <-linger:
					break fill
				}
			}
		}
		l.commit(lk, batch, events)
		clear(batch) // let the events go
		if !open {
			return
		}
	}
}

// syncAttempts is how many times an append is tried before RecordSync callers get the
// error; Record's events are retried until Close gives up.
const syncAttempts = 3

func (l *Log) commit(lk *linker, batch []item, events []Event) {
	durable := false
	for _, it := range batch {
		durable = durable || it.done != nil
	}
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		events = events[:0]
		for _, it := range batch {
			normalize(&it.ev)
			events = append(events, it.ev)
		}
		err := l.runCtx.Err()
		if err == nil {
			err = l.store.AppendAudit(l.runCtx, events, lk.link, durable)
		}
		if err == nil {
			l.committed.Add(int64(len(events)))
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
			for _, it := range batch {
				if it.done != nil {
					it.done <- fmt.Errorf("audit: the trail closed before the event was written: %w", err)
				}
			}
			l.drop(len(batch), "the trail closed while the store was failing")
			return
		}
		l.log.Error("audit append failed; retrying", "events", len(batch), "attempt", attempt, "err", err)
		if durable && attempt >= syncAttempts {
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
