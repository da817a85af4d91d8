// Package apps issues and verifies app tokens (PRODUCT.md C7).
//
// An app presents a manifest {appId, displayName, version, signature?} to POST /api/v2/auth
// (the Actyx Auth API's shape) and gets a token. Apps under com.example.* need no signature
// (trial mode, which can be turned off); any other app needs a signature by a developer key
// whose certificate, signed by this server's trust root, covers its app ID. Tokens are
// PASETO v4.public, signed by the server's token key; they name the app, its version, the
// mode, the certificate, issue time, expiry and a token ID, and can be revoked one by one,
// per app and per certificate, on every replica within a second. Only signed tokens are
// recorded; trial tokens, which anybody can ask for (rate-limited per source address), have
// no row each and are revoked per app: every token of the app issued before a time.
package apps

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sesamehq/sesame"
)

// Store is the storage the service needs.
type Store interface {
	CreateAppCert(ctx context.Context, c sesame.AppCert) error
	// GetAppCert returns ErrNotFound for an unknown ID.
	GetAppCert(ctx context.Context, id string) (sesame.AppCert, error)
	ListAppCerts(ctx context.Context, after string, limit int) ([]sesame.AppCert, error)
	// RevokeAppCert revokes a certificate and its tokens; ErrNotFound for an unknown ID.
	RevokeAppCert(ctx context.Context, id string, at time.Time) (int, error)

	// CreateAppTokens records tokens in one transaction, all or none.
	CreateAppTokens(ctx context.Context, ts []sesame.AppToken) error
	ListAppTokens(ctx context.Context, appID, after string, limit int, now time.Time) ([]sesame.AppToken, error)
	// GetAppToken returns ErrNotFound for an unknown ID.
	GetAppToken(ctx context.Context, id string) (sesame.AppToken, error)
	// RevokeAppToken returns ErrNotFound for an unknown ID.
	RevokeAppToken(ctx context.Context, id string, at time.Time) error
	// RevokeAppTokensOf revokes every token of an app issued before at, recorded or not
	// (see AppRevocations), and returns how many recorded ones it revoked.
	RevokeAppTokensOf(ctx context.Context, appID string, at time.Time) (int, error)
	// AppRevocations returns the per-app revocations after afterSeq, in sequence order.
	AppRevocations(ctx context.Context, afterSeq int64) ([]sesame.AppRevocation, error)
	AppTokenRevocations(ctx context.Context, afterSeq int64, afterID string, now time.Time, limit int) ([]sesame.AppTokenRevocation, error)
	PruneAppTokens(ctx context.Context, before time.Time) (int, error)
}

// Auditor records security events: token issue and refusal, certificate issue and
// revocation, token revocation. The audit trail implements it; the request's principal,
// source address and request ID come from ctx. result is "ok" or an error code.
type Auditor interface {
	Record(ctx context.Context, action, target, result string)
}

// Notifier announces a change to every replica (PostgreSQL NOTIFY; nothing on SQLite).
type Notifier interface {
	Notify(ctx context.Context, channel, payload string) error
}

// Channel is where revocations are announced: a replica that hears one syncs at once
// (see Sync) instead of at its next poll.
const Channel = "sesame_app_revocations"

// Audit actions.
const (
	ActionTokenIssue   = "app.token.issue"
	ActionTokenRevoke  = "app.token.revoke"
	ActionTokensRevoke = "app.tokens.revoke" // every token of an app
	ActionCertIssue    = "app.cert.issue"
	ActionCertRevoke   = "app.cert.revoke"
)

// Config configures a Service.
type Config struct {
	Store     Store
	TrustRoot ed25519.PrivateKey // signs developer certificates
	TokenKey  ed25519.PrivateKey // signs app tokens
	TokenTTL  time.Duration      // token validity; 0 means DefaultTokenTTL
	NoTrial   bool               // refuse unsigned com.example.* manifests
	Now       sesame.Clock       // nil means time.Now
	Logger    *slog.Logger
	Audit     Auditor  // nil: no audit
	Notifier  Notifier // nil: other replicas learn of revocations by polling alone
	// MaxStale is how old this replica's view of revocations may be when it accepts a
	// token; 0 means 1 s. PollInterval is how often Run refreshes it; 0 means MaxStale/4.
	MaxStale     time.Duration
	PollInterval time.Duration
	// TrialLimit limits trial tokens per source address; nil: no limit.
	TrialLimit SourceLimiter
}

// SourceLimiter counts requests per source address: Take takes one and reports whether it
// is within the limit, and if not, how long until the source may try again.
type SourceLimiter interface {
	Take(source string) (wait time.Duration, ok bool)
}

// DefaultTokenTTL is how long a token is valid unless configured otherwise.
const DefaultTokenTTL = 24 * time.Hour

// Service issues and verifies app tokens and manages developer certificates.
type Service struct {
	store    Store
	root     ed25519.PrivateKey
	rootPub  ed25519.PublicKey
	tokenKey ed25519.PrivateKey
	tokenPub ed25519.PublicKey
	ttl      time.Duration
	trial    bool
	now      sesame.Clock
	log      *slog.Logger
	audit    Auditor
	notifier Notifier
	poll     time.Duration
	trialLim SourceLimiter

	revoked  *revocationView
	verified *cache[verifiedToken]
	records  *recordBatcher
	// manifests remembers signed manifests whose signatures checked out (see checkSignature).
	manifests *cache[checkedManifest]
}

// checkedManifest is what a signed manifest's signatures established.
type checkedManifest struct {
	certID, devPubkey string
	certExpires       time.Time // zero: none
}

type noAudit struct{}

func (noAudit) Record(context.Context, string, string, string) {}

// New returns a service. Call Sync (or Run) before serving, so that revocations made
// before the start are known.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || len(cfg.TrustRoot) != ed25519.PrivateKeySize || len(cfg.TokenKey) != ed25519.PrivateKeySize {
		return nil, errors.New("apps: a store, a trust root and a token key are required")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.TokenTTL < time.Second {
		return nil, fmt.Errorf("apps: token validity %s is shorter than a second", cfg.TokenTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Audit == nil {
		cfg.Audit = noAudit{}
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = cfg.MaxStale / 4
	}
	return &Service{
		store:     cfg.Store,
		root:      cfg.TrustRoot,
		rootPub:   cfg.TrustRoot.Public().(ed25519.PublicKey),
		tokenKey:  cfg.TokenKey,
		tokenPub:  cfg.TokenKey.Public().(ed25519.PublicKey),
		ttl:       cfg.TokenTTL,
		trial:     !cfg.NoTrial,
		now:       cfg.Now,
		log:       cfg.Logger.With("component", "apps"),
		audit:     cfg.Audit,
		notifier:  cfg.Notifier,
		poll:      cfg.PollInterval,
		trialLim:  cfg.TrialLimit,
		revoked:   newRevocationView(cfg.Store, cfg.Now, cfg.MaxStale),
		verified:  newCache[verifiedToken](100_000),
		records:   &recordBatcher{write: cfg.Store.CreateAppTokens},
		manifests: newCache[checkedManifest](10_000),
	}, nil
}

// KeyFromSecret derives an Ed25519 key for purpose from a server secret (see
// vault.ServerSecret): the seed is HMAC-SHA256(secret, "sesame/apps/" + purpose).
func KeyFromSecret(secret sesame.Secret, purpose string) ed25519.PrivateKey {
	mac := hmac.New(sha256.New, secret.Reveal())
	mac.Write([]byte("sesame/apps/" + purpose))
	seed := mac.Sum(nil)
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed)
}

// TrustRoot returns the public half of the trust root that signs developer certificates.
func (s *Service) TrustRoot() ed25519.PublicKey { return s.rootPub }

// --- tokens ---

// Issue checks a manifest and returns a token for it. source is the caller's address, kept
// with the token's record. Errors are *sesame.Error with the Actyx codes:
// ERR_BAD_REQUEST, ERR_PAYLOAD_TOO_LARGE, ERR_MANIFEST_INVALID, ERR_APP_UNAUTHORIZED.
func (s *Service) Issue(ctx context.Context, manifestJSON []byte, source string) (string, error) {
	token, appID, err := s.issue(ctx, manifestJSON, source)
	result := "ok"
	if err != nil {
		result = string(sesame.ErrorCode(err))
	}
	s.audit.Record(ctx, ActionTokenIssue, appID, result)
	return token, err
}

func (s *Service) issue(ctx context.Context, manifestJSON []byte, source string) (token, appID string, err error) {
	m, err := ParseManifest(manifestJSON)
	if err != nil {
		if ValidAppID(m.AppID) {
			appID = m.AppID
		}
		return "", appID, err
	}
	now := s.now()
	t := sesame.AppToken{AppID: m.AppID, Version: m.Version, Source: source, IssuedAt: now, ExpiresAt: now.Add(s.ttl)}
	switch {
	case s.trial && IsTrialAppID(m.AppID) && m.Signature == "":
		// A trial manifest that carries a signature is checked like any signed one, and
		// refused if it does not verify (as the Actyx node does).
		t.Mode = sesame.AppModeTrial
		if s.trialLim != nil {
			if wait, ok := s.trialLim.Take(source); !ok {
				return "", m.AppID, &sesame.Error{Code: sesame.CodeRateLimited, Message: "too many trial app tokens for this address; retry later", RetryAfter: wait, Limiter: "trial"}
			}
		}
	case m.Signature == "":
		why := "apps outside com.example.* need a manifest signed under a developer certificate (sesame app sign)"
		if IsTrialAppID(m.AppID) {
			why = "trial mode is off on this server, so com.example.* apps need a signed manifest too"
		}
		return "", m.AppID, appUnauthorized(m.AppID, why)
	default:
		t.Mode = sesame.AppModeSigned
		var certExpires time.Time
		if t.CertID, certExpires, err = s.checkSignature(ctx, m, now); err != nil {
			return "", m.AppID, err
		}
		if !certExpires.IsZero() && certExpires.Before(t.ExpiresAt) {
			t.ExpiresAt = certExpires // a token does not outlive its certificate
		}
	}
	t.ID = newID(tokenIDPrefix, now)
	token, err = mintToken(s.tokenKey, t)
	if err != nil {
		return "", m.AppID, err
	}
	// Trial tokens are not recorded: anybody can ask for them, and a row each would let
	// anonymous callers grow the store without bound. They are revoked per app (every
	// token of the app issued before a time; RevokeAppTokens) and expire on their own.
	// Issuing one changes no state, so the request is audited as a read is: its events go
	// to the trail in the background (a loss is recorded there as an audit.gap event, and
	// strict mode still records them durably first) instead of a synchronous commit per
	// token.
	if t.Mode == sesame.AppModeSigned {
		if err := s.records.record(ctx, t); err != nil {
			return "", m.AppID, fmt.Errorf("apps: record token: %w", err)
		}
	} else if in, ok := sesame.AuditIntentFrom(ctx); ok {
		in.MarkNoChange()
	}
	s.log.DebugContext(ctx, "app token issued", "app_id", t.AppID, "version", t.Version, "mode", t.Mode, "token_id", t.ID, "cert_id", t.CertID)
	return token, m.AppID, nil
}

// checkSignature verifies a signed manifest and that its certificate is known here and not
// revoked. It returns the certificate's ID and expiry (zero if none).
//
// What the signatures establish depends only on the manifest's fields, its signature and
// this server's trust root, so it is remembered (by the SHA-256 of those fields): an app
// that asks again with the same manifest costs no Ed25519 verification. The certificate's
// expiry and revocation are checked every time.
func (s *Service) checkSignature(ctx context.Context, m Manifest, now time.Time) (string, time.Time, error) {
	key := sha256.Sum256(pae([]byte(m.AppID), []byte(m.DisplayName), []byte(m.Version), []byte(m.Signature)))
	c, ok := s.manifests.get(key)
	if !ok {
		sm, err := parseSignature(m.Signature)
		if err != nil {
			return "", time.Time{}, err
		}
		if err := verifyManifest(s.rootPub, m, sm, now); err != nil {
			return "", time.Time{}, err
		}
		c = checkedManifest{certID: sm.cert.ID, devPubkey: sm.cert.DevPubkey, certExpires: sm.facts.expires}
		s.manifests.put(key, c)
	} else if !c.certExpires.IsZero() && !now.Before(c.certExpires) {
		return "", time.Time{}, appUnauthorized(m.AppID, fmt.Sprintf("certificate %s expired at %s", c.certID, c.certExpires.Format(certTimeLayout)))
	}
	stored, err := s.store.GetAppCert(ctx, c.certID)
	switch {
	case errors.Is(err, sesame.ErrNotFound):
		return "", time.Time{}, appUnauthorized(m.AppID, fmt.Sprintf("certificate %s is not known to this server", c.certID))
	case err != nil:
		return "", time.Time{}, fmt.Errorf("apps: look up certificate: %w", err)
	case stored.RevokedAt != nil:
		return "", time.Time{}, appUnauthorized(m.AppID, fmt.Sprintf("certificate %s was revoked", c.certID))
	case stored.DevPubkey != c.devPubkey:
		return "", time.Time{}, appUnauthorized(m.AppID, fmt.Sprintf("certificate %s does not match the one this server issued", c.certID))
	}
	return c.certID, c.certExpires, nil
}

// VerifyToken checks an app token and returns its app as the principal. Errors are
// *sesame.Error: ERR_TOKEN_INVALID (not a token this server signed), ERR_TOKEN_EXPIRED,
// ERR_TOKEN_UNAUTHORIZED (revoked); or unavailable when the revocation view cannot be
// brought up to date.
func (s *Service) VerifyToken(ctx context.Context, token string) (sesame.Principal, error) {
	if len(token) > MaxTokenLen {
		return sesame.Principal{}, errTokenInvalid
	}
	key := sha256.Sum256([]byte(token))
	v, ok := s.verified.get(key)
	if !ok {
		var err error
		if v, err = parseToken(s.tokenPub, token); err != nil {
			return sesame.Principal{}, errTokenInvalid
		}
		s.verified.put(key, v)
	}
	if !s.now().Before(v.expires) {
		return sesame.Principal{}, errTokenExpired
	}
	revoked, err := s.revoked.revoked(ctx, v)
	if err != nil {
		s.log.ErrorContext(ctx, "cannot bring app token revocations up to date", "err", err)
		return sesame.Principal{}, &sesame.Error{Code: sesame.CodeUnavailable, RetryAfter: sesame.ErrStoreUnavailable.RetryAfter,
			Message: "app tokens cannot be checked right now; retry"}
	}
	if revoked {
		return sesame.Principal{}, errTokenUnauthorized
	}
	return sesame.Principal{Kind: sesame.PrincipalApp, AppID: v.appID, AppVersion: v.version, TokenID: v.tokenID}, nil
}

// ListTokens returns up to limit unexpired tokens after the cursor, all apps' or appID's.
func (s *Service) ListTokens(ctx context.Context, appID, after string, limit int) ([]sesame.AppToken, error) {
	if appID != "" && !ValidAppID(appID) {
		return nil, sesame.Errorf(sesame.CodeInvalidArgument, "app %q is not an app ID", truncate(appID, 80))
	}
	return s.store.ListAppTokens(ctx, appID, after, limit, s.now())
}

// GetToken returns one recorded token (trial tokens have no record).
func (s *Service) GetToken(ctx context.Context, id string) (sesame.AppToken, error) {
	if !ValidTokenID(id) {
		return sesame.AppToken{}, sesame.Errorf(sesame.CodeNotFound, "token %q not found", truncate(id, 80))
	}
	t, err := s.store.GetAppToken(ctx, id)
	if errors.Is(err, sesame.ErrNotFound) {
		return t, sesame.Errorf(sesame.CodeNotFound, "token %q not found (trial tokens have no record: revoke them per app)", id)
	}
	return t, err
}

// RevokeToken revokes one token.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	err := s.revokeToken(ctx, id)
	s.audit.Record(ctx, ActionTokenRevoke, id, resultOf(err))
	return err
}

func (s *Service) revokeToken(ctx context.Context, id string) error {
	if !ValidTokenID(id) {
		return sesame.Errorf(sesame.CodeNotFound, "token %q not found", truncate(id, 80))
	}
	err := s.store.RevokeAppToken(ctx, id, s.now())
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Errorf(sesame.CodeNotFound, "token %q not found (trial tokens have no record: revoke them per app)", id)
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "app token revoked", "token_id", id)
	return s.syncAfterRevoke(ctx)
}

// RevokeAppTokens revokes every unexpired token of an app and returns how many. The app
// can ask for new tokens afterwards; to keep a signed app out, revoke its certificate.
func (s *Service) RevokeAppTokens(ctx context.Context, appID string) (int, error) {
	n, err := s.revokeAppTokens(ctx, appID)
	s.audit.Record(ctx, ActionTokensRevoke, appID, resultOf(err))
	return n, err
}

func (s *Service) revokeAppTokens(ctx context.Context, appID string) (int, error) {
	if !ValidAppID(appID) {
		return 0, sesame.Errorf(sesame.CodeInvalidField, "app %q is not an app ID", truncate(appID, 80))
	}
	n, err := s.store.RevokeAppTokensOf(ctx, appID, s.now())
	if err != nil {
		return 0, err
	}
	s.log.InfoContext(ctx, "app tokens revoked", "app_id", appID, "count", n)
	return n, s.syncAfterRevoke(ctx)
}

// syncAfterRevoke makes a revocation effective on this replica at once and announces it;
// other replicas sync when they hear it, and within MaxStale in any case.
func (s *Service) syncAfterRevoke(ctx context.Context) error {
	if err := s.revoked.sync(ctx); err != nil {
		return fmt.Errorf("apps: revocation stored, but this replica could not reload revocations: %w", err)
	}
	if s.notifier != nil {
		if err := s.notifier.Notify(ctx, Channel, ""); err != nil {
			s.log.WarnContext(ctx, "announce app token revocation (other replicas see it at their next poll)", "err", err)
		}
	}
	return nil
}

func resultOf(err error) string {
	if err != nil {
		return string(sesame.ErrorCode(err))
	}
	return "ok"
}

// --- developer certificates ---

// CertRequest asks for a developer certificate.
type CertRequest struct {
	DevPubkey string     `json:"dev_pubkey"`
	Domains   []string   `json:"domains"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CertView is a developer certificate as the API shows it; Certificate is the document
// the developer signs manifests with.
type CertView struct {
	ID          string          `json:"id"`
	DevPubkey   string          `json:"dev_pubkey"`
	Domains     []string        `json:"domains"`
	IssuedAt    time.Time       `json:"issued_at"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	RevokedAt   *time.Time      `json:"revoked_at,omitempty"`
	Certificate json.RawMessage `json:"certificate"`
}

func certView(c sesame.AppCert) CertView {
	return CertView{ID: c.ID, DevPubkey: c.DevPubkey, Domains: c.Domains, IssuedAt: c.IssuedAt,
		ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt, Certificate: json.RawMessage(c.Body)}
}

// IssueCert issues a developer certificate signed by the trust root.
func (s *Service) IssueCert(ctx context.Context, req CertRequest) (CertView, error) {
	v, err := s.issueCert(ctx, req)
	s.audit.Record(ctx, ActionCertIssue, v.ID, resultOf(err))
	return v, err
}

func (s *Service) issueCert(ctx context.Context, req CertRequest) (CertView, error) {
	if req.DevPubkey == "" {
		return CertView{}, sesame.Errorf(sesame.CodeMissingField, "field %q is required: the developer's public key (sesame app keygen prints it)", "dev_pubkey")
	}
	if _, err := ParsePublicKey(req.DevPubkey); err != nil {
		return CertView{}, sesame.Errorf(sesame.CodeInvalidField, "dev_pubkey: %v", err)
	}
	if len(req.Domains) == 0 {
		return CertView{}, sesame.Errorf(sesame.CodeMissingField, "field %q is required: the app IDs the certificate may sign, such as com.acme.*", "domains")
	}
	if err := checkDomains(req.Domains); err != nil {
		return CertView{}, sesame.Errorf(sesame.CodeInvalidField, "domains: %v", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	c := Certificate{Format: certFormat, ID: newID(certIDPrefix, now), DevPubkey: req.DevPubkey,
		Domains: append([]string(nil), req.Domains...), Issued: now.Format(certTimeLayout)}
	rec := sesame.AppCert{ID: c.ID, DevPubkey: c.DevPubkey, Domains: c.Domains, IssuedAt: now}
	if req.ExpiresAt != nil {
		exp := req.ExpiresAt.UTC().Truncate(time.Second)
		if !exp.After(now) {
			return CertView{}, sesame.Errorf(sesame.CodeInvalidField, "expires_at must be in the future")
		}
		c.Expires = exp.Format(certTimeLayout)
		rec.ExpiresAt = &exp
	}
	signCertificate(s.root, &c)
	body, err := json.Marshal(c)
	if err != nil {
		return CertView{}, err
	}
	rec.Body = body
	if err := s.store.CreateAppCert(ctx, rec); err != nil {
		return CertView{}, err
	}
	s.log.InfoContext(ctx, "developer certificate issued", "cert_id", c.ID, "domains", c.Domains)
	return certView(rec), nil
}

// GetCert returns a developer certificate.
func (s *Service) GetCert(ctx context.Context, id string) (CertView, error) {
	c, err := s.store.GetAppCert(ctx, id)
	if errors.Is(err, sesame.ErrNotFound) {
		return CertView{}, sesame.Errorf(sesame.CodeNotFound, "certificate %q not found", truncate(id, 80))
	}
	if err != nil {
		return CertView{}, err
	}
	return certView(c), nil
}

// ListCerts returns up to limit certificates with IDs after the cursor.
func (s *Service) ListCerts(ctx context.Context, after string, limit int) ([]CertView, error) {
	cs, err := s.store.ListAppCerts(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]CertView, len(cs))
	for i, c := range cs {
		out[i] = certView(c)
	}
	return out, nil
}

// RevokeCert revokes a developer certificate: manifests signed under it are refused from
// now on, and every unexpired token issued under it is revoked. It returns how many.
func (s *Service) RevokeCert(ctx context.Context, id string) (int, error) {
	n, err := s.revokeCert(ctx, id)
	s.audit.Record(ctx, ActionCertRevoke, id, resultOf(err))
	return n, err
}

func (s *Service) revokeCert(ctx context.Context, id string) (int, error) {
	n, err := s.store.RevokeAppCert(ctx, id, s.now())
	if errors.Is(err, sesame.ErrNotFound) {
		return 0, sesame.Errorf(sesame.CodeNotFound, "certificate %q not found", truncate(id, 80))
	}
	if err != nil {
		return 0, err
	}
	s.log.InfoContext(ctx, "developer certificate revoked", "cert_id", id, "tokens_revoked", n)
	return n, s.syncAfterRevoke(ctx)
}

// --- background ---

// Sync brings this replica's view of revocations up to date.
func (s *Service) Sync(ctx context.Context) error { return s.revoked.sync(ctx) }

// pruneEvery is how often Run forgets expired tokens.
const pruneEvery = time.Hour

// Run keeps the revocation view fresh until ctx ends, and hourly deletes the records of
// tokens that expired over an hour ago.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	lastPrune := time.Now()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.revoked.syncIfOlder(ctx, s.poll/2); err != nil {
			if !failing && ctx.Err() == nil {
				s.log.Warn("cannot refresh app token revocations; tokens are refused until it works again", "err", err)
			}
			failing = true
			continue
		} else if failing {
			s.log.Info("app token revocations refreshed again")
			failing = false
		}
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			s.revoked.prune()
			now := s.now()
			s.verified.prune(func(v verifiedToken) bool { return !now.Before(v.expires) })
			if n, err := s.store.PruneAppTokens(ctx, s.now().Add(-time.Hour)); err != nil {
				s.log.Warn("prune expired app tokens", "err", err)
			} else if n > 0 {
				s.log.Info("pruned expired app tokens", "count", n)
			}
		}
	}
}
