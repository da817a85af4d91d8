// Package auth authenticates inbound requests. API keys look like
//
//	sesame_<32 base62 characters of randomness><6 base62 characters of CRC32 checksum>
//
// (≈190 bits of randomness). The fixed prefix and the checksum let a secret scanner
// recognise a leaked key offline, as GitHub's token format does, and let the server reject
// a mistyped key before any lookup. Keys are stored only as HMAC-SHA256 under a server
// secret and looked up by that hash.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"math/big"
	"strings"

	"github.com/sesamehq/sesame"
)

const (
	// KeyPrefix starts every API key.
	KeyPrefix   = "sesame_"
	randomLen   = 32
	checksumLen = 6
	keyLen      = len(KeyPrefix) + randomLen + checksumLen
	base62      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ErrMalformedKey means the text is not a well-formed key (wrong prefix, length,
// alphabet or checksum).
var ErrMalformedKey = errors.New("malformed API key")

// GenerateKey returns a new random API key.
func GenerateKey() (sesame.Secret, error) {
	b := make([]byte, keyLen)
	copy(b, KeyPrefix)
	max := big.NewInt(int64(len(base62)))
	for i := len(KeyPrefix); i < len(KeyPrefix)+randomLen; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return sesame.Secret{}, err
		}
		b[i] = base62[n.Int64()]
	}
	putChecksum(b[len(KeyPrefix)+randomLen:], b[:len(KeyPrefix)+randomLen])
	return sesame.NewSecret(b), nil
}

func putChecksum(dst, body []byte) {
	c := uint64(crc32.ChecksumIEEE(body))
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = base62[c%62]
		c /= 62
	}
}

// CheckKeyFormat reports whether key is well formed, checksum included, without any
// lookup. It runs in time independent of where a wrong checksum differs.
func CheckKeyFormat(key []byte) error {
	if len(key) != keyLen || !strings.HasPrefix(string(key), KeyPrefix) {
		return ErrMalformedKey
	}
	for _, c := range key[len(KeyPrefix):] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return ErrMalformedKey
		}
	}
	var sum [checksumLen]byte
	putChecksum(sum[:], key[:len(KeyPrefix)+randomLen])
	if !hmac.Equal(sum[:], key[len(KeyPrefix)+randomLen:]) {
		return ErrMalformedKey
	}
	return nil
}

// Hasher computes the stored form of a key: HMAC-SHA256 under a server secret, so a stolen
// database does not allow offline guessing without the secret too.
type Hasher struct {
	secret []byte
}

// NewHasher returns a hasher keyed by secret.
func NewHasher(secret sesame.Secret) *Hasher { return &Hasher{secret: secret.Reveal()} }

// Hash returns the lookup hash of key.
func (h *Hasher) Hash(key []byte) []byte {
	m := hmac.New(sha256.New, h.secret)
	m.Write(key)
	return m.Sum(nil)
}
