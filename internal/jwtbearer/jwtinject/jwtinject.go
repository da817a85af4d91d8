// Package jwtinject puts jwt_bearer credentials into outbound requests (PRODUCT.md C2,
// C4). It is the gateway's Injector for that type: per call it signs a JWT (or reuses one
// until shortly before it expires, when the credential says "reuse"), or exchanges the
// JWT at the credential's token_url for an access token (RFC 7523) and caches that token,
// sealed, until shortly before it expires, with one exchange at a time per credential.
//
// Cached tokens are keyed by workspace, credential, a fingerprint of the credential's
// content (so an edited credential is never served a token made from its old key or
// template) and, when the payload uses them, the end user and the caller.
package jwtinject

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
	"github.com/sesamehq/sesame/internal/jwtbearer"
	"github.com/sesamehq/sesame/internal/ttlcache"
)

// Sealer encrypts what the injector keeps in memory (access tokens and reusable JWTs),
// bound to an identity; *crypt.Keyring satisfies it.
type Sealer interface {
	Seal(plaintext []byte, identity ...string) ([]byte, error)
	Open(blob []byte, identity ...string) ([]byte, error)
}

// Options configure an Injector.
type Options struct {
	// Sealer seals cached tokens. Required.
	Sealer Sealer
	// AllowPrivate lets token_url reach loopback, private, link-local and other
	// non-public addresses. Off in production (SESAME_ALLOW_PRIVATE_TOKEN_URLS turns it
	// on, for tests and development against a local token endpoint).
	AllowPrivate bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one record per token exchange; nil discards.
	Logger *slog.Logger
	// ExchangeTimeout bounds one token exchange; 0 means 30 s.
	ExchangeTimeout time.Duration
	// Transport, if set, replaces the SSRF-safe transport of the exchange client (tests).
	Transport http.RoundTripper
}

// Limits of the caches.
const (
	maxEntries = 10_000
	signerTTL  = 10 * time.Minute
	// failedRefreshPause is how long a token that could not be refreshed early is served
	// before the next try.
	failedRefreshPause = 5 * time.Second
)

// Injector injects jwt_bearer credentials. It is safe for concurrent use.
type Injector struct {
	opts    Options
	now     func() time.Time
	log     *slog.Logger
	client  *http.Client
	fpKey   []byte
	signers *ttlcache.Cache[string, *jwtbearer.Signer]
	serial  atomic.Uint64

	mu      sync.Mutex
	tokens  map[string]entry   // by cache key
	flights map[string]*flight // running exchanges, by cache key
}

// entry is a cached token, sealed.
type entry struct {
	blob      []byte
	refreshAt time.Time // after this, get a new one (in the background while it is valid)
	expiresAt time.Time
	version   string
	wsKey     string // workspace and credential, to drop all of a credential's tokens
}

// flight is one running token exchange; the callers that need its result wait on done.
type flight struct {
	done chan struct{}
	e    entry
	err  error
}

// New returns an injector.
func New(opts Options) *Injector {
	if opts.Sealer == nil {
		panic("jwtinject: Options.Sealer is required")
	}
	in := &Injector{opts: opts, now: opts.Now, log: opts.Logger,
		tokens: map[string]entry{}, flights: map[string]*flight{}}
	if in.now == nil {
		in.now = time.Now
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.opts.ExchangeTimeout <= 0 {
		in.opts.ExchangeTimeout = 30 * time.Second
	}
	in.client = newExchangeClient(opts.AllowPrivate, opts.Transport)
	in.fpKey = make([]byte, 32)
	_, _ = rand.Read(in.fpKey)
	in.signers = ttlcache.New[string, *jwtbearer.Signer](signerTTL, 1000, in.now)
	return in
}

// Inject adds the credential to req: by default as "Authorization: Bearer <token>" (the
// credential's header_name and scheme change that); a function parameter or a
// connection's auth target puts it in the header or query parameter it names.
func (in *Injector) Inject(ctx context.Context, req *http.Request, m credential.Material, t credential.Target) error {
	s, fp, err := in.signer(m)
	if err != nil {
		return err
	}
	o := s.Options()
	vars := jwtbearer.Vars{User: sesame.EndUserFrom(ctx), Caller: caller(ctx), Workspace: m.Workspace, Credential: m.Key}
	var token string
	switch {
	case o.TokenURL != "":
		token, err = in.accessToken(ctx, cacheKey("x", m, fp, o, vars), s, vars, m)
	case o.Reuse:
		token, err = in.reusedJWT(ctx, cacheKey("j", m, fp, o, vars), s, vars, m)
	default:
		token, _, err = s.Sign(vars, in.now())
	}
	if err != nil {
		return err
	}
	return place(req, t, o, token)
}

// ForceRefresh drops the credential's cached tokens (after the upstream refused one), so
// the next call exchanges or signs anew. If the caller's request recorded which token it
// was served (credential.Served) and that token has already been replaced, it does nothing.
func (in *Injector) ForceRefresh(ctx context.Context, m credential.Material) error {
	wsKey := m.Workspace + "\x00" + m.Key
	served, haveServed := credential.ServedFrom(ctx).Get(servedKey(m))
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, e := range in.tokens {
		if e.wsKey != wsKey {
			continue
		}
		if haveServed && e.version != served {
			continue // a newer token than the refused one is already cached
		}
		delete(in.tokens, k)
	}
	return nil
}

// signer returns the credential's signer, built once per content fingerprint.
func (in *Injector) signer(m credential.Material) (*jwtbearer.Signer, string, error) {
	fp := in.fingerprint(m)
	if s, ok := in.signers.Get(fp); ok {
		return s, fp, nil
	}
	s, err := jwtbearer.New(m.Public, m.Secrets, m.Workspace, m.Key)
	if err != nil {
		return nil, "", err
	}
	in.signers.Set(fp, s)
	return s, fp, nil
}

// fingerprint is a keyed hash of everything that makes up the credential: a changed key,
// template or setting gives a new fingerprint, so nothing cached for the old one is used.
func (in *Injector) fingerprint(m credential.Material) string {
	h := hmac.New(sha256.New, in.fpKey)
	write := func(b []byte) {
		var n [8]byte
		h.Write(strconv.AppendInt(n[:0], int64(len(b)), 10))
		h.Write([]byte{0})
		h.Write(b)
	}
	write([]byte(m.Workspace))
	write([]byte(m.Key))
	write([]byte(m.Type))
	pub, _ := json.Marshal(m.Public) // map keys are sorted
	write(pub)
	names := make([]string, 0, len(m.Secrets))
	for name := range m.Secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		write([]byte(name))
		write(m.Secrets[name].Reveal())
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:24])
}

// cacheKey names a cached token: its kind ("x" exchanged, "j" signed JWT), the
// credential, its fingerprint, and the per-call values the payload uses.
func cacheKey(kind string, m credential.Material, fp string, o jwtbearer.Options, v jwtbearer.Vars) string {
	var b strings.Builder
	for _, p := range []string{kind, m.Workspace, m.Key, fp} {
		b.WriteString(p)
		b.WriteByte(0)
	}
	if o.UsesUser() {
		b.WriteString("u=" + v.User)
		b.WriteByte(0)
	}
	if o.UsesCaller() {
		b.WriteString("c=" + v.Caller)
		b.WriteByte(0)
	}
	return b.String()
}

func servedKey(m credential.Material) string { return "jwt_bearer/" + m.Workspace + "/" + m.Key }

// caller is the value of {{caller}}: the authenticated user's name or the app's ID.
func caller(ctx context.Context) string {
	p, ok := sesame.PrincipalFrom(ctx)
	if !ok {
		return ""
	}
	switch p.Kind {
	case sesame.PrincipalApp:
		return p.AppID
	case sesame.PrincipalUser:
		if p.UserName != "" {
			return p.UserName
		}
		return p.UserID
	}
	return ""
}

// margin is how long before expiry a token of lifetime d is replaced: a tenth of its
// life, at least a second and at most a minute.
func margin(d time.Duration) time.Duration {
	return min(max(d/10, time.Second), time.Minute)
}

// reusedJWT returns a cached signed JWT while it has life left, else signs and caches one.
func (in *Injector) reusedJWT(ctx context.Context, key string, s *jwtbearer.Signer, v jwtbearer.Vars, m credential.Material) (string, error) {
	now := in.now()
	if tok, ok := in.cached(ctx, key, now, m); ok {
		return tok, nil
	}
	tok, exp, err := s.Sign(v, now)
	if err != nil {
		return "", err
	}
	if d := exp.Sub(now); d > 0 {
		if e, err := in.newEntry(key, m, tok, now, d); err == nil {
			in.store(key, e)
			credential.ServedFrom(ctx).Set(servedKey(m), e.version)
		}
	}
	return tok, nil
}

// cached returns the token cached under key if it is before its refresh time.
func (in *Injector) cached(ctx context.Context, key string, now time.Time, m credential.Material) (string, bool) {
	in.mu.Lock()
	e, ok := in.tokens[key]
	in.mu.Unlock()
	if !ok || !now.Before(e.refreshAt) {
		return "", false
	}
	tok, err := in.open(e, key)
	if err != nil {
		return "", false
	}
	credential.ServedFrom(ctx).Set(servedKey(m), e.version)
	return tok, true
}

func (in *Injector) newEntry(key string, m credential.Material, tok string, now time.Time, life time.Duration) (entry, error) {
	blob, err := in.opts.Sealer.Seal([]byte(tok), "jwt_bearer-cache", key)
	if err != nil {
		return entry{}, err
	}
	return entry{
		blob: blob, refreshAt: now.Add(life - margin(life)), expiresAt: now.Add(life),
		version: strconv.FormatUint(in.serial.Add(1), 10), wsKey: m.Workspace + "\x00" + m.Key,
	}, nil
}

func (in *Injector) open(e entry, key string) (string, error) {
	pt, err := in.opts.Sealer.Open(e.blob, "jwt_bearer-cache", key)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// store caches e under key, dropping the tokens of the credential's older content and,
// when the cache is full, expired entries (or everything, if none has expired).
func (in *Injector) store(key string, e entry) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.storeLocked(key, e)
}

func (in *Injector) storeLocked(key string, e entry) {
	head, kind := keyHead(key), key[:strings.IndexByte(key, 0)+1]
	for k, old := range in.tokens {
		// Same kind and credential, another fingerprint: made from content since changed.
		if old.wsKey == e.wsKey && strings.HasPrefix(k, kind) && keyHead(k) != head {
			delete(in.tokens, k)
		}
	}
	if len(in.tokens) >= maxEntries {
		now := in.now()
		for k, old := range in.tokens {
			if !now.Before(old.expiresAt) {
				delete(in.tokens, k)
			}
		}
		if len(in.tokens) >= maxEntries {
			clear(in.tokens)
		}
	}
	in.tokens[key] = e
}

// keyHead is a cache key up to its fingerprint: kind, workspace, credential, fingerprint.
func keyHead(k string) string {
	n := 0
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			if n++; n == 4 {
				return k[:i]
			}
		}
	}
	return k
}
