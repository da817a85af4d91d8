package apps

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/sesamehq/sesame"
)

// recordBatcher writes token records with group commit. Issue hands over its record and
// waits until the transaction holding it commits, so no token is ever returned without its
// record (listing and revocation need it). A caller that finds no write in flight becomes
// the writer: it commits everything pending (up to maxBatch) in one transaction, again and
// again until its own record is in, then hands the writer's role to the oldest waiting
// caller. Under concurrent load one commit serves many tokens; a lone caller pays for one
// commit, as it would without batching; and no caller writes for others indefinitely.
type recordBatcher struct {
	write func(ctx context.Context, ts []sesame.AppToken) error

	mu      sync.Mutex
	pending []pendingRecord
	writing bool
}

type pendingRecord struct {
	t      sesame.AppToken
	intent *sesame.AuditIntent // the audit event of the request that issues it (nil outside requests)
	done   chan error          // receives the outcome, or errYouWrite
}

// maxBatch bounds one transaction.
const maxBatch = 512

// errYouWrite hands the writer's role to a waiting caller; it never leaves this file.
var errYouWrite = errors.New("apps: take over writing token records")

func (b *recordBatcher) record(ctx context.Context, t sesame.AppToken) error {
	done := make(chan error, 1)
	b.mu.Lock()
	intent, _ := sesame.AuditIntentFrom(ctx)
	b.pending = append(b.pending, pendingRecord{t: t, intent: intent, done: done})
	if b.writing {
		b.mu.Unlock()
		// Waiting does not watch ctx: a caller handed the writer's role must take it, and a
		// batch takes one transaction.
		if err := <-done; err != errYouWrite {
			return err
		}
		b.mu.Lock()
	}
	b.writing = true
	// Let callers that are ready to record join this batch before it is taken: without a
	// blocking point they would not run until the write is done. Alone, this returns at once.
	b.mu.Unlock()
	runtime.Gosched()
	b.mu.Lock()
	// A batch holds other callers' records: it must not fail because this caller left.
	wctx := context.WithoutCancel(ctx)
	var mine error
	written := false
	for !written {
		n := min(len(b.pending), maxBatch)
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		ts := make([]sesame.AppToken, len(batch))
		var intents []*sesame.AuditIntent
		for i, p := range batch {
			ts[i] = p.t
			if p.intent != nil {
				intents = append(intents, p.intent)
			}
		}
		// Every caller's audit event commits with its token (PRODUCT.md §4.8), not only
		// the writer's.
		err := b.write(sesame.WithAuditIntents(wctx, intents...), ts)
		for _, p := range batch {
			if p.done == done {
				mine, written = err, true
				continue
			}
			p.done <- err
		}
		b.mu.Lock()
	}
	if len(b.pending) > 0 {
		b.pending[0].done <- errYouWrite
	} else {
		b.writing = false
		b.pending = nil
	}
	b.mu.Unlock()
	return mine
}
