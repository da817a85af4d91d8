// Package sesame holds Sesame's domain types: workspaces, credentials, principals, the
// error type with its stable codes, and the Secret type that cannot print itself.
// Adapters (storage, HTTP, CLI) live under internal/ and depend on this package, never
// the other way round.
package sesame

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error code. Clients match on it; never rename one.
type Code string

// The error codes. internal/httpapi maps each to an HTTP status in one table.
const (
	CodeInvalidJSON          Code = "invalid_json"
	CodeInvalidArgument      Code = "invalid_argument"
	CodeInvalidName          Code = "invalid_name"
	CodeUnknownType          Code = "unknown_type"
	CodeUnknownField         Code = "unknown_field"
	CodeMissingField         Code = "missing_field"
	CodeInvalidField         Code = "invalid_field"
	CodeSecretRequired       Code = "secret_required"
	CodeNotFound             Code = "not_found"
	CodeAlreadyExists        Code = "already_exists"
	CodeConflict             Code = "conflict"
	CodeNotEmpty             Code = "not_empty"
	CodeInUse                Code = "in_use"
	CodeProtected            Code = "protected"
	CodeUnauthenticated      Code = "unauthenticated"
	CodeForbidden            Code = "forbidden"
	CodeMissingPrivilege     Code = "missing_privilege"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeRouteNotFound        Code = "route_not_found"
	CodeUnavailable          Code = "unavailable"
	CodeRateLimited          Code = "rate_limited"
	CodeForbiddenAddress     Code = "forbidden_address"
	CodeUpstreamError        Code = "upstream_error"
	CodeUpstreamTimeout      Code = "upstream_timeout"
	CodeTestFailed           Code = "connection_test_failed"
	CodeTransformFailed      Code = "transform_failed"
	// CodeReauthorizationRequired means an OAuth2 grant cannot be refreshed (none yet, the
	// provider answered invalid_grant, consent revoked): a person must authorize again.
	// Details["authorize_url"] says where to start.
	CodeReauthorizationRequired Code = "reauthorization_required"
	CodeInternal                Code = "internal"
	// CodeDestinationLocked means a credential may not be sent where a request would send
	// it, or an update would change where it may be sent without its secrets sent again
	// (PRODUCT.md §4.7).
	CodeDestinationLocked Code = "destination_locked"
	// CodeEndUserNotAllowed: an anonymous call named an end user, and the function does not
	// take one from anonymous callers (allowAnonymousEndUser).
	CodeEndUserNotAllowed Code = "end_user_not_allowed"
	// CodeStoreUnavailable means the database cannot be reached or refused the work for a
	// passing reason (restarting, connections reset, busy): retry after Retry-After.
	CodeStoreUnavailable Code = "store_unavailable"
	// CodeStorageFull means the database's disk is full: writes fail, reads keep working.
	// Nothing was changed; retry once space is freed.
	CodeStorageFull Code = "storage_full"
	// CodeRefreshInProgress means another replica is refreshing the OAuth2 token the call
	// needs and did not finish within the wait bound: retry after Retry-After.
	CodeRefreshInProgress Code = "refresh_in_progress"
	// CodeAuditUnavailable: the request's audit event cannot be recorded durably (strict
	// audit mode, or a change whose event the store refused). Retryable: 503, Retry-After.
	CodeAuditUnavailable Code = "audit_unavailable"
	// CodeMasterKeyUnavailable means this replica does not hold the master key a value is
	// sealed under, or the store's primary master key (it changed to one this replica's key
	// file lacks): retry on another replica, or add the key to this one's key file.
	CodeMasterKeyUnavailable Code = "master_key_unavailable"
	// CodeRotationRefused means a master-key rotation would strand a live replica (one that
	// does not hold the new key) or another rotation is unfinished. Details name the replicas.
	CodeRotationRefused Code = "rotation_refused"
)

// CodePrivilegeCeiling refuses a change to what a principal may do that would give or
// take a privilege the actor does not hold, or act on a principal holding a privilege the
// actor lacks (PRODUCT.md §4.6). Details name the privilege, the workspace ("*": all)
// and, when a principal is acted on, the subject.
const CodePrivilegeCeiling Code = "privilege_ceiling"

// The codes of what comes back from an upstream.
const (
	// CodeUpstreamEncoding is an upstream response in a content encoding Sesame cannot
	// decode, so cannot check for injected credential values (anything but gzip and deflate).
	CodeUpstreamEncoding Code = "upstream_encoding_unsupported"
	// CodeResponseTooLarge is an upstream response larger than a function may buffer.
	CodeResponseTooLarge Code = "upstream_response_too_large"
)

// CodeQuotaExceeded means the API key used its quota of calls for the current period: 429,
// with Retry-After the end of the period.
const CodeQuotaExceeded Code = "quota_exceeded"

// The codes of the on-premise agent (PRODUCT.md C11).
const (
	// CodeAgentUnavailable: the agent a connection names has no live link to this replica,
	// or the link dropped during the call. Retryable: 503 with Retry-After.
	CodeAgentUnavailable Code = "agent_unavailable"
	// CodeAgentTargetRefused: the agent refused the target, which is outside its own
	// allowlist.
	CodeAgentTargetRefused Code = "agent_target_refused"
)

// The codes of the app-token API (PRODUCT.md C7). They follow the Actyx Auth API's names, so
// that clients written for it understand them.
const (
	CodeBadRequest          Code = "ERR_BAD_REQUEST"            // the body is not a JSON object
	CodeManifestInvalid     Code = "ERR_MANIFEST_INVALID"       // a manifest field or its signature is malformed
	CodeAppUnauthorized     Code = "ERR_APP_UNAUTHORIZED"       // the manifest is well formed but not trusted
	CodeAppMediaType        Code = "ERR_UNSUPPORTED_MEDIA_TYPE" // POST /api/v2/auth without application/json
	CodeAppPayloadTooLarge  Code = "ERR_PAYLOAD_TOO_LARGE"      // a manifest over the size limit
	CodeMissingAuthHeader   Code = "ERR_MISSING_AUTH_HEADER"    // no Authorization header where a token is needed
	CodeUnsupportedAuthType Code = "ERR_UNSUPPORTED_AUTH_TYPE"  // an Authorization scheme other than Bearer
	CodeTokenInvalid        Code = "ERR_TOKEN_INVALID"          // not a token, or not one this server signed
	CodeTokenExpired        Code = "ERR_TOKEN_EXPIRED"          // a valid token past its expiry
	CodeTokenUnauthorized   Code = "ERR_TOKEN_UNAUTHORIZED"     // a valid token that was revoked
)

// Error is an error meant for the client: a stable code and a message that never holds a
// secret. Errors that are not *Error are internal and reach clients only as "internal error".
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when set, tells the client when to try again (HTTP Retry-After).
	RetryAfter time.Duration
	// Details are extra machine-readable facts for the client (for example the URL to
	// re-authorize at). Like Message, they never hold a secret.
	Details map[string]string
	// Limiter names the limit that refused the request ("auth_failures", "trial",
	// "connection", "anonymous"…), for metrics; it is not shown to the client.
	Limiter string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is makes errors.Is(err, &Error{Code: c}) match on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Errorf returns a client error with the given code.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinel errors that storage returns; services wrap or translate them.
var (
	ErrNotFound      = &Error{Code: CodeNotFound}
	ErrAlreadyExists = &Error{Code: CodeAlreadyExists}
	ErrConflict      = &Error{Code: CodeConflict}
	// ErrStoreUnavailable and ErrStorageFull are the store's retryable faults; the store
	// wraps the driver's error in them, so errors.Is matches and clients see the code.
	ErrStoreUnavailable = &Error{Code: CodeStoreUnavailable, RetryAfter: 2 * time.Second,
		Message: "the database is unavailable (restarting or unreachable); nothing was changed, retry shortly"}
	ErrStorageFull = &Error{Code: CodeStorageFull, RetryAfter: 30 * time.Second,
		Message: "the database's disk is full; nothing was changed, reads still work, retry once space is freed"}
)

// Retryable reports whether code names a passing condition of the server (its store, a
// lease) rather than a fault of the request: the answer is a 503 or 507 with Retry-After.
func Retryable(code Code) bool {
	switch code {
	case CodeUnavailable, CodeStoreUnavailable, CodeStorageFull, CodeRefreshInProgress, CodeAgentUnavailable:
		return true
	}
	return false
}

// ErrorCode returns the code of the client error in err's chain, or CodeInternal.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// The codes of sign-in through an OpenID Connect identity provider (issue 16). They are the
// reason codes of failed sign-in audit events, and what the console says.
const (
	// CodeOIDCState: the callback's state is unknown, already used, expired, or not the one
	// this browser started (a replayed or forged callback, or login CSRF).
	CodeOIDCState Code = "oidc_state_invalid"
	// CodeOIDCToken: the provider's answer did not verify (signature, issuer, audience,
	// expiry, nonce, the RFC 9207 iss parameter, or a missing or unverified claim).
	CodeOIDCToken Code = "oidc_token_invalid"
	// CodeOIDCProvider: the provider could not be reached or refused (error parameter,
	// failed code exchange).
	CodeOIDCProvider Code = "oidc_provider_error"
	// CodeOIDCUser: the identity is valid but is no Sesame user that may sign in (unknown
	// and --oidc-create-users off, or disabled).
	CodeOIDCUser Code = "oidc_user_refused"
)
