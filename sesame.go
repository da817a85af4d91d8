package sesame

import (
	"context"
	"regexp"
	"time"
)

// DefaultWorkspace exists from the first start and cannot be deleted.
const DefaultWorkspace = "default"

// Workspace is a namespace; everything else lives in one.
type Workspace struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

var (
	workspaceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	credentialKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	userName      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
)

// ValidWorkspaceName reports whether s is a valid workspace name: lowercase letters,
// digits, '-' and '_', at most 63 characters, starting with a letter or digit.
func ValidWorkspaceName(s string) bool { return workspaceName.MatchString(s) }

// ValidCredentialKey reports whether s is a valid credential key such as
// "google.oauth" or "weather.basicAuth".
func ValidCredentialKey(s string) bool { return credentialKey.MatchString(s) }

// ValidUserName reports whether s is a valid user name.
func ValidUserName(s string) bool { return userName.MatchString(s) }

// CredentialRecord is a credential as storage holds it: public fields in clear, each
// secret field only as a sealed blob bound to (workspace, key, field).
type CredentialRecord struct {
	Workspace string
	Key       string
	Type      string
	Public    map[string]any
	Secrets   []SealedField
	Version   int64 // incremented on every write; used for compare-and-swap
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SealedField is one secret field of a credential. A nil Blob means the value is missing
// (for example after a workspace copy) and must be supplied again.
type SealedField struct {
	Name      string
	Blob      []byte
	UpdatedAt time.Time
}

// Secret returns the sealed field with the given name.
func (r CredentialRecord) Secret(name string) (SealedField, bool) {
	for _, s := range r.Secrets {
		if s.Name == name {
			return s, true
		}
	}
	return SealedField{}, false
}

// User is an inbound identity.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey is an issued key as storage holds it: never the key, only its hash.
type APIKey struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// CreatedByKey is the key that minted this one (empty for the bootstrap key and keys
	// minted by app tokens). Revoking a key revokes every key it minted, transitively.
	CreatedByKey string `json:"created_by_key,omitempty"`
	// RateLimit and Quota, when set, limit the requests made with the key (KeyLimits).
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	Quota     *Quota     `json:"quota,omitempty"`
}

// RateLimit allows Requests requests per PerSeconds seconds (fixed windows, counted by each
// replica).
type RateLimit struct {
	Requests   int64 `json:"requests"`
	PerSeconds int64 `json:"per_seconds"`
}

// Quota allows Calls requests per PerSeconds seconds (fixed windows from the Unix epoch),
// counted in the store across every replica.
type Quota struct {
	Calls      int64 `json:"calls"`
	PerSeconds int64 `json:"per_seconds"`
}

// KeyLimits are the limits of the key a request was made with.
type KeyLimits struct {
	KeyID string
	Rate  *RateLimit
	Quota *Quota
}

// Limits returns the key's limits, or nil when it has none.
func (k APIKey) Limits() *KeyLimits {
	if k.RateLimit == nil && k.Quota == nil {
		return nil
	}
	return &KeyLimits{KeyID: k.ID, Rate: k.RateLimit, Quota: k.Quota}
}

// Principal kinds.
const (
	PrincipalUser      = "user"
	PrincipalApp       = "app"
	PrincipalAnonymous = "anonymous"
)

// Principal is who makes a request: a user (by API key), an app (by app token), or
// anonymous (an allowAnonymous function).
type Principal struct {
	Kind       string // PrincipalUser, PrincipalApp or PrincipalAnonymous
	UserID     string
	UserName   string
	KeyID      string
	AppID      string
	AppVersion string
	TokenID    string
	// Limits are the limits of the API key, if it has any (nil otherwise).
	Limits *KeyLimits
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of the request, if it was authenticated.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Clock returns the current time. Services take one so tests can move time.
type Clock func() time.Time

// Object is a workspace object as storage holds it: a connection or a function, its body
// (JSON or YAML as given), and the credentials it refers to.
type Object struct {
	Workspace string
	Kind      string
	Name      string
	Body      []byte
	Refs      []string
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}
