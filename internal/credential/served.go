package credential

import (
	"context"
	"sync"
)

// Served records, for one outbound request, which version of each fetched credential (an
// OAuth2 access token) an injector put into it. When the upstream rejects the request, a
// forced refresh then renews that version only: callers that failed together with the
// same token cause one refresh, and a caller whose token was already replaced just
// retries with the new one. It holds versions, never token values.
type Served struct {
	mu sync.Mutex
	m  map[string]string
}

type servedKey struct{}

// WithServed returns a context that records what injectors serve for one request.
func WithServed(ctx context.Context) (context.Context, *Served) {
	s := &Served{m: map[string]string{}}
	return context.WithValue(ctx, servedKey{}, s), s
}

// ServedFrom returns the request's record, or nil if the caller keeps none.
func ServedFrom(ctx context.Context) *Served {
	s, _ := ctx.Value(servedKey{}).(*Served)
	return s
}

// Set records that version of the material called key was served.
func (s *Served) Set(key, version string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = version
}

// Get returns the version of key that was served.
func (s *Served) Get(key string) (string, bool) {
	if s == nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}
