package apps

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/sesamehq/sesame"
)

// revocationView is this replica's copy of the revoked, unexpired token IDs.
//
// Every revocation commits in the store under a sequence number, in number order (see
// store.revokeTokens), so the view is brought up to date by reading only the revocations
// after the last one it holds: one indexed query that usually returns nothing. A
// background loop (Service.Run) does that every poll interval; and VerifyToken accepts a
// token only while the view is younger than maxStale, syncing inline first if it is not.
// So a token revoked on any replica is refused by every replica within maxStale (1 s by
// default), whether or not the loop keeps up, and a replica that cannot reach the store
// refuses tokens rather than accept a possibly revoked one.
type revocationView struct {
	store    Store
	now      sesame.Clock
	maxStale time.Duration

	mu       sync.RWMutex
	ids      map[string]time.Time // token ID → its expiry
	apps     map[string]time.Time // app ID → tokens issued before this are revoked
	syncedAt time.Time            // wall clock with monotonic reading, at the start of the last sync

	syncMu sync.Mutex // one sync at a time; guards the cursors
	seq    int64
	lastID string
	appSeq int64
}

const revocationPage = 1000

func newRevocationView(st Store, now sesame.Clock, maxStale time.Duration) *revocationView {
	return &revocationView{store: st, now: now, maxStale: maxStale, ids: map[string]time.Time{}, apps: map[string]time.Time{}}
}

// revoked reports whether token t is revoked, by its ID or by a revocation of its app's
// tokens issued before a time (the only way to revoke trial tokens, which have no record).
// It syncs first if the view is stale.
func (v *revocationView) revoked(ctx context.Context, t verifiedToken) (bool, error) {
	v.mu.RLock()
	fresh := !v.syncedAt.IsZero() && time.Since(v.syncedAt) < v.maxStale
	revoked := v.revokedLocked(t)
	v.mu.RUnlock()
	if fresh || revoked {
		return revoked, nil
	}
	if err := v.syncIfOlder(ctx, v.maxStale); err != nil {
		return false, err
	}
	v.mu.RLock()
	revoked = v.revokedLocked(t)
	v.mu.RUnlock()
	return revoked, nil
}

func (v *revocationView) revokedLocked(t verifiedToken) bool {
	if _, ok := v.ids[t.tokenID]; ok {
		return true
	}
	before, ok := v.apps[t.appID]
	return ok && t.issued.Before(before)
}

// syncIfOlder syncs unless another caller finished a sync less than age ago while this
// one waited for its turn.
func (v *revocationView) syncIfOlder(ctx context.Context, age time.Duration) error {
	v.syncMu.Lock()
	defer v.syncMu.Unlock()
	v.mu.RLock()
	fresh := !v.syncedAt.IsZero() && time.Since(v.syncedAt) < age
	v.mu.RUnlock()
	if fresh {
		return nil
	}
	return v.syncLocked(ctx)
}

// sync reads every revocation the view does not hold yet.
func (v *revocationView) sync(ctx context.Context) error {
	v.syncMu.Lock()
	defer v.syncMu.Unlock()
	return v.syncLocked(ctx)
}

func (v *revocationView) syncLocked(ctx context.Context) error {
	start := time.Now()
	for {
		page, err := v.store.AppTokenRevocations(ctx, v.seq, v.lastID, v.now(), revocationPage)
		if err != nil {
			return err
		}
		if len(page) > 0 {
			v.mu.Lock()
			for _, r := range page {
				v.ids[r.TokenID] = r.ExpiresAt
			}
			v.mu.Unlock()
			last := page[len(page)-1]
			v.seq, v.lastID = last.Seq, last.TokenID
		}
		if len(page) < revocationPage {
			break
		}
	}
	apps, err := v.store.AppRevocations(ctx, v.appSeq)
	if err != nil {
		return err
	}
	if len(apps) > 0 {
		v.mu.Lock()
		for _, r := range apps {
			v.apps[r.AppID] = r.Before
		}
		v.mu.Unlock()
		v.appSeq = apps[len(apps)-1].Seq
	}
	v.mu.Lock()
	v.syncedAt = start
	v.mu.Unlock()
	return nil
}

// prune forgets revocations of tokens that have expired: expiry alone refuses them.
func (v *revocationView) prune() {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, exp := range v.ids {
		if !now.Before(exp) {
			delete(v.ids, id)
		}
	}
}

// cache remembers the outcome of a signature check, keyed by the SHA-256 of what was
// checked: tokens whose signature verified (so an app that presents the same token on every
// call pays for the Ed25519 verification once) and signed manifests. Only what the
// signature establishes is cached; expiry and revocation are checked on every use.
// Bounded: a full cache is emptied.
type cache[V any] struct {
	max int
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]V
}

func newCache[V any](max int) *cache[V] {
	return &cache[V]{max: max, m: map[[sha256.Size]byte]V{}}
}

func (c *cache[V]) get(k [sha256.Size]byte) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *cache[V]) put(k [sha256.Size]byte, v V) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = v
	c.mu.Unlock()
}

// prune drops the entries drop selects.
func (c *cache[V]) prune(drop func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.m {
		if drop(v) {
			delete(c.m, k)
		}
	}
}
