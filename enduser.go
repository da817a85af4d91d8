package sesame

import "context"

// An end user is the person on whose behalf a call is made, as the calling application
// names them: OAuth2 grants can be per workspace or per end user, and the end user of a
// call selects the grant. It is not a Sesame user and is never authenticated by Sesame.

type endUserKey struct{}

// WithEndUser returns a context whose calls act for end user id ("" means the workspace's
// own grant).
func WithEndUser(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, endUserKey{}, id)
}

// EndUserFrom returns the end user a call acts for, or "" for the workspace.
func EndUserFrom(ctx context.Context) string {
	id, _ := ctx.Value(endUserKey{}).(string)
	return id
}

// ValidEndUser reports whether id can name an end user: 1-256 bytes of letters, digits
// and . _ @ : | + = - (enough for e-mail addresses, UUIDs and "provider|id" forms).
func ValidEndUser(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' ||
			c == '@' || c == ':' || c == '|' || c == '+' || c == '=' || c == '-') {
			return false
		}
	}
	return true
}
