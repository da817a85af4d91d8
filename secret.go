package sesame

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// Secret holds a secret value. It cannot print, log or marshal itself: String, GoString,
// Format, MarshalJSON, MarshalText and LogValue all redact. The only way to the bytes is
// Reveal, which marks every place that handles plaintext.
type Secret struct {
	b []byte
}

// NewSecret wraps b. The caller must not use b afterwards.
func NewSecret(b []byte) Secret { return Secret{b: b} }

// Reveal returns the secret bytes. Do not retain or print them.
func (s Secret) Reveal() []byte { return s.b }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// Wipe overwrites the secret bytes with zeros.
func (s Secret) Wipe() { clear(s.b) }

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
