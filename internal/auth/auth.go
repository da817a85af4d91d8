package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesamehq/sesame"
)

// Store is the storage authentication needs.
type Store interface {
	CountUsers(ctx context.Context) (int, error)
	CreateUserWithKey(ctx context.Context, u sesame.User, k sesame.APIKey, grants ...sesame.Grant) error
	APIKeyByHash(ctx context.Context, hash []byte) (sesame.APIKey, sesame.User, error)
	TouchAPIKeys(ctx context.Context, lastUse map[string]time.Time) error
}

// Authenticator verifies API keys.
type Authenticator struct {
	store  Store
	hasher *Hasher
	now    sesame.Clock
	log    *slog.Logger

	mu      sync.Mutex
	lastUse map[string]time.Time // key ID → last use, flushed in batches

	// keys caches verified keys by their text, so a warm request costs a map lookup, not a
	// hash and a query. Invalidate clears it on every access change, here or on another
	// replica (revocation, disabling a user).
	// An entry is used for at most maxAge, so a replica that missed a notification heals.
	cacheMu sync.RWMutex
	keys    map[string]cachedKey
	gen     uint64 // counts invalidations: a lookup that raced one is not cached
	maxAge  time.Duration

	hits, misses atomic.Uint64 // key cache lookups, for metrics
}

// CacheStats reports how many well-formed presented keys were answered from the key cache
// (hits) and how many had to be looked up in the store (misses).
func (a *Authenticator) CacheStats() (hits, misses uint64) {
	return a.hits.Load(), a.misses.Load()
}

type cachedKey struct {
	key    sesame.APIKey
	user   sesame.User
	loaded time.Time
	limits *sesame.KeyLimits // nil for a key without limits
}

// DefaultMaxAge is how long a verified key is used from the cache before it is looked up
// again, unless SetMaxAge says otherwise.
const DefaultMaxAge = 30 * time.Second

// New returns an authenticator.
func New(st Store, h *Hasher, now sesame.Clock, log *slog.Logger) *Authenticator {
	if now == nil {
		now = time.Now
	}
	return &Authenticator{store: st, hasher: h, now: now, log: log, lastUse: map[string]time.Time{}, keys: map[string]cachedKey{}, maxAge: DefaultMaxAge}
}

// SetMaxAge sets how long a verified key may be used from the cache (see DefaultMaxAge).
// Call it before serving.
func (a *Authenticator) SetMaxAge(d time.Duration) {
	if d > 0 {
		a.maxAge = d
	}
}

// Errors returned by Authenticate. Each is a client error; the message is the same for
// every unknown, revoked or expired key so that a caller learns nothing from it.
var (
	ErrNoCredentials = sesame.Errorf(sesame.CodeUnauthenticated, "missing API key: send Authorization: Bearer <key> or X-API-Key")
	ErrInvalidKey    = sesame.Errorf(sesame.CodeUnauthenticated, "invalid API key")
)

// KeyFromRequest extracts the presented key from Authorization (with or without the
// Bearer scheme) or X-API-Key.
func KeyFromRequest(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return strings.TrimSpace(k)
	}
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if scheme, rest, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(rest)
	}
	return h
}

// Authenticate checks a presented key and returns its principal.
func (a *Authenticator) Authenticate(ctx context.Context, key string) (sesame.Principal, error) {
	if key == "" {
		return sesame.Principal{}, ErrNoCredentials
	}
	now := a.now()
	a.cacheMu.RLock()
	c, ok := a.keys[key]
	gen := a.gen
	a.cacheMu.RUnlock()
	if ok && (now.Sub(c.loaded) >= a.maxAge || now.Before(c.loaded)) {
		ok = false
	}
	if ok {
		a.hits.Add(1)
	} else {
		if CheckKeyFormat([]byte(key)) != nil {
			return sesame.Principal{}, ErrInvalidKey // rejected before any lookup
		}
		a.misses.Add(1)
		k, u, err := a.store.APIKeyByHash(ctx, a.hasher.Hash([]byte(key)))
		if errors.Is(err, sesame.ErrNotFound) {
			return sesame.Principal{}, ErrInvalidKey
		}
		if err != nil {
			return sesame.Principal{}, fmt.Errorf("auth: look up key: %w", err)
		}
		c = cachedKey{key: k, user: u, loaded: now, limits: k.Limits()}
		a.cacheMu.Lock()
		if a.gen == gen { // not invalidated while this was looked up
			if len(a.keys) >= 100_000 {
				clear(a.keys)
			}
			a.keys[key] = c
		}
		a.cacheMu.Unlock()
	}
	k, u := c.key, c.user
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) || u.Disabled {
		return sesame.Principal{}, ErrInvalidKey
	}
	a.mu.Lock()
	a.lastUse[k.ID] = now
	a.mu.Unlock()
	return sesame.Principal{Kind: sesame.PrincipalUser, UserID: u.ID, UserName: u.Name, KeyID: k.ID, Limits: c.limits}, nil
}

// Touch records a use of the key keyID now (a console session acting as it), flushed
// with the other last-use times.
func (a *Authenticator) Touch(keyID string) {
	now := a.now()
	a.mu.Lock()
	a.lastUse[keyID] = now
	a.mu.Unlock()
}

// Invalidate forgets every cached key, so the next use of each is checked against the store.
func (a *Authenticator) Invalidate() {
	a.cacheMu.Lock()
	clear(a.keys)
	a.gen++
	a.cacheMu.Unlock()
}

// Flush writes the recorded last-use times.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.mu.Lock()
	batch := a.lastUse
	a.lastUse = map[string]time.Time{}
	a.mu.Unlock()
	return a.store.TouchAPIKeys(ctx, batch)
}

// Run flushes last-use times every interval until ctx ends, then once more.
func (a *Authenticator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.Flush(context.WithoutCancel(ctx)); err != nil {
				a.log.Warn("flush key last use", "err", err)
			}
			return
		case <-t.C:
			if err := a.Flush(ctx); err != nil {
				a.log.Warn("flush key last use", "err", err)
			}
		}
	}
}

// NewID returns a random identifier with the given prefix, such as "usr_" or "key_".
func NewID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return prefix + hex.EncodeToString(b)
}

// Bootstrap creates the admin user and its first key on an empty store. If adminKey is
// set it must be well formed and is used as the key; otherwise one is generated. It
// returns the key to print once, or a zero Secret if the store already had users.
func (a *Authenticator) Bootstrap(ctx context.Context, adminKey string) (sesame.Secret, error) {
	n, err := a.store.CountUsers(ctx)
	if err != nil {
		return sesame.Secret{}, err
	}
	if n > 0 {
		return sesame.Secret{}, nil
	}
	var key sesame.Secret
	if adminKey != "" {
		if CheckKeyFormat([]byte(adminKey)) != nil {
			return sesame.Secret{}, fmt.Errorf("SESAME_ADMIN_KEY is not a well-formed key (want %s followed by 38 base62 characters with a valid checksum; `sesame keys new-api-key` makes one)", KeyPrefix)
		}
		key = sesame.NewSecret([]byte(adminKey))
	} else if key, err = GenerateKey(); err != nil {
		return sesame.Secret{}, err
	}
	now := a.now().UTC()
	u := sesame.User{ID: NewID("usr_"), Name: "admin", CreatedAt: now}
	k := sesame.APIKey{ID: NewID("key_"), UserID: u.ID, Name: "bootstrap", Hash: a.hasher.Hash(key.Reveal()), CreatedAt: now}
	grant := sesame.Grant{ID: NewID("grt_"), Role: "admin", SubjectKind: sesame.SubjectUser, Subject: u.ID, Workspace: sesame.AllWorkspaces, CreatedAt: now}
	if err := a.store.CreateUserWithKey(ctx, u, k, grant); err != nil {
		if errors.Is(err, sesame.ErrAlreadyExists) {
			return sesame.Secret{}, nil // another replica bootstrapped first
		}
		return sesame.Secret{}, err
	}
	return key, nil
}
