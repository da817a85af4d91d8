// Package crypt implements Sesame's envelope encryption (PRODUCT.md §4.1).
//
// Every secret value is sealed with AES-256-GCM under a fresh 256-bit data key; the data
// key is itself sealed (wrapped) with AES-256-GCM under a master key. The blob records the
// master key's ID so that several master keys can be in use during a rotation. The caller
// passes the record's identity (workspace, credential key, field) as associated data, so a
// blob moved to another record or field does not open.
//
// Blob layout, version 1:
//
//	0      1        5           17                    65          77
//	| 0x01 | key ID | wrap nonce | wrapped DEK (32+16) | data nonce | ciphertext + tag |
//
// Rotation re-wraps only the data key: the data ciphertext is copied unchanged, so no
// secret is ever re-encrypted from plaintext.
package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sesamehq/sesame"
)

// KeySize is the size of a master key and of a data key.
const KeySize = 32

const (
	formatV1     = 0x01
	nonceSize    = 12
	tagSize      = 16
	wrappedSize  = KeySize + tagSize
	headerSize   = 1 + 4 + nonceSize + wrappedSize + nonceSize
	minBlobSize  = headerSize + tagSize
	wrapAADLabel = "sesame/dek/v1"
	dataAADLabel = "sesame/data/v1"
)

var (
	// ErrDecrypt means a blob did not open: wrong key, wrong identity, or tampering.
	ErrDecrypt = errors.New("crypt: message authentication failed")
	// ErrUnknownKey means the blob was sealed under a master key this keyring does not hold.
	ErrUnknownKey = errors.New("crypt: blob sealed under an unknown master key")
	// ErrMalformed means the bytes are not a blob.
	ErrMalformed = errors.New("crypt: malformed blob")
)

// KeyID identifies a master key. It is derived from the key by a one-way hash, so it
// can be stored and shown without revealing anything about the key.
type KeyID uint32

func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// MasterKey is a 256-bit key-encryption key.
type MasterKey struct {
	id   KeyID
	aead cipher.AEAD
	raw  []byte
}

// NewMasterKey takes ownership of raw, which must be KeySize bytes.
func NewMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("crypt: master key must be %d bytes, got %d", KeySize, len(raw))
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("sesame/master-key-id/v1\x00"), raw...))
	return &MasterKey{id: KeyID(binary.BigEndian.Uint32(sum[:4])), aead: aead, raw: raw}, nil
}

// GenerateMasterKey returns a new random master key.
func GenerateMasterKey() (*MasterKey, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	return NewMasterKey(raw)
}

// ParseMasterKey decodes the base64 (standard or URL, padded or not) text form of a key.
func ParseMasterKey(text string) (*MasterKey, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(text); err == nil {
			if len(raw) != KeySize {
				return nil, fmt.Errorf("master key must be base64 of %d bytes, got %d bytes", KeySize, len(raw))
			}
			return NewMasterKey(raw)
		}
	}
	return nil, errors.New("master key is not valid base64")
}

// ID returns the key's identifier.
func (k *MasterKey) ID() KeyID { return k.id }

// Encode returns the base64 text form of the key, for a key file.
func (k *MasterKey) Encode() string { return base64.StdEncoding.EncodeToString(k.raw) }

// Wipe zeroes the key material held in Go memory.
func (k *MasterKey) Wipe() { clear(k.raw) }

// String never prints key material.
func (k *MasterKey) String() string { return "master-key:" + k.id.String() }

// GoString never prints key material.
func (k *MasterKey) GoString() string { return k.String() }

// Format prints only the key ID, whatever the verb (%d or %x of the struct would otherwise
// walk into the key bytes).
func (k *MasterKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue logs only the key ID.
func (k *MasterKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Keyring holds the master keys this process has, and the ID of the primary: the key new
// blobs are sealed under. The primary is decided by the store (all replicas seal under the
// same key); when it names a key this keyring does not hold, Seal and Rewrap refuse with a
// KeyUnavailableError instead of sealing under another key. It is safe for concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	primary KeyID
	keys    map[KeyID]*MasterKey
}

// NewKeyring returns a keyring whose first key is primary; the others only open.
func NewKeyring(primary *MasterKey, others ...*MasterKey) *Keyring {
	kr := &Keyring{primary: primary.id, keys: map[KeyID]*MasterKey{primary.id: primary}}
	for _, k := range others {
		kr.keys[k.id] = k
	}
	return kr
}

// KeyUnavailableError means a master key that is needed is not on this keyring: a blob is
// sealed under it (Open), or it is the primary (Seal). It is a client error with code
// master_key_unavailable (HTTP 503, retryable) and matches ErrUnknownKey.
type KeyUnavailableError struct {
	ID      KeyID
	Primary bool // the missing key is the primary (sealing is refused)
}

func (e *KeyUnavailableError) Error() string {
	if e.Primary {
		return fmt.Sprintf("this replica does not hold the primary master key %s; add it to the key file", e.ID)
	}
	return fmt.Sprintf("this replica does not hold master key %s, which the value is sealed under", e.ID)
}

// Is makes errors.Is(err, ErrUnknownKey) true.
func (e *KeyUnavailableError) Is(target error) bool { return target == ErrUnknownKey }

// As lets errors.As find the client error behind it.
func (e *KeyUnavailableError) As(target any) bool {
	t, ok := target.(**sesame.Error)
	if !ok {
		return false
	}
	*t = &sesame.Error{Code: sesame.CodeMasterKeyUnavailable, Message: e.Error(), RetryAfter: time.Second,
		Details: map[string]string{"key_id": e.ID.String()}}
	return true
}

// Primary returns the ID of the key new blobs are sealed under (which may be missing:
// see Missing).
func (kr *Keyring) Primary() KeyID {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.primary
}

// Missing reports the primary key's ID when this keyring does not hold it.
func (kr *Keyring) Missing() (KeyID, bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	_, ok := kr.keys[kr.primary]
	return kr.primary, !ok
}

// Keys returns the keys on the ring, primary first (when held).
func (kr *Keyring) Keys() []*MasterKey {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	var out []*MasterKey
	if k, ok := kr.keys[kr.primary]; ok {
		out = append(out, k)
	}
	for id, k := range kr.keys {
		if id != kr.primary {
			out = append(out, k)
		}
	}
	return out
}

// Has reports whether the keyring holds the key id.
func (kr *Keyring) Has(id KeyID) bool {
	_, ok := kr.key(id)
	return ok
}

// IDs returns the IDs of the keys held, primary first.
func (kr *Keyring) IDs() []KeyID {
	keys := kr.Keys()
	out := make([]KeyID, len(keys))
	for i, k := range keys {
		out[i] = k.id
	}
	return out
}

// Add puts k on the ring without making it primary.
func (kr *Keyring) Add(k *MasterKey) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if _, ok := kr.keys[k.id]; !ok {
		kr.keys[k.id] = k
	}
}

// Remove drops the key id from the ring (and wipes it).
func (kr *Keyring) Remove(id KeyID) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if k, ok := kr.keys[id]; ok {
		k.Wipe()
		delete(kr.keys, id)
	}
}

// Replace makes keys the only keys on the ring (a reloaded key file); the primary ID is
// kept, held or not.
func (kr *Keyring) Replace(keys []*MasterKey) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	next := make(map[KeyID]*MasterKey, len(keys))
	for _, k := range keys {
		if old, ok := kr.keys[k.id]; ok {
			next[k.id] = old
			k.Wipe()
		} else {
			next[k.id] = k
		}
	}
	for id, k := range kr.keys {
		if _, ok := next[id]; !ok {
			k.Wipe()
		}
	}
	kr.keys = next
}

// SetPrimary makes id the primary. It reports whether the ring holds that key; if not,
// sealing is refused until it does.
func (kr *Keyring) SetPrimary(id KeyID) bool {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.primary = id
	_, ok := kr.keys[id]
	return ok
}

// Promote makes k the primary key; the previous keys keep opening blobs until Retire.
func (kr *Keyring) Promote(k *MasterKey) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if _, ok := kr.keys[k.id]; !ok {
		kr.keys[k.id] = k
	}
	kr.primary = k.id
}

// Retire drops every key but the primary and wipes them.
func (kr *Keyring) Retire() {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	for id, k := range kr.keys {
		if id != kr.primary {
			k.Wipe()
			delete(kr.keys, id)
		}
	}
}

func (kr *Keyring) key(id KeyID) (*MasterKey, bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	k, ok := kr.keys[id]
	return k, ok
}

func (kr *Keyring) primaryKey() (*MasterKey, error) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	k, ok := kr.keys[kr.primary]
	if !ok {
		return nil, &KeyUnavailableError{ID: kr.primary, Primary: true}
	}
	return k, nil
}

func wrapAAD(id KeyID) []byte {
	return binary.BigEndian.AppendUint32([]byte(wrapAADLabel), uint32(id))
}

// dataAAD frames the identity parts with their lengths so that ("a.b","c") and
// ("a","b.c") can never collide.
func dataAAD(identity []string) []byte {
	aad := []byte(dataAADLabel)
	for _, p := range identity {
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(p)))
		aad = append(aad, p...)
	}
	return aad
}

// Seal encrypts plaintext under a fresh data key wrapped by the primary master key,
// bound to identity.
func (kr *Keyring) Seal(plaintext []byte, identity ...string) ([]byte, error) {
	mk, err := kr.primaryKey()
	if err != nil {
		return nil, err
	}

	dek := make([]byte, KeySize)
	defer clear(dek)
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	if _, err := rand.Read(out[5 : 5+nonceSize]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(out[headerSize-nonceSize : headerSize]); err != nil {
		return nil, err
	}
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], uint32(mk.id))
	mk.aead.Seal(out[5+nonceSize:5+nonceSize], out[5:5+nonceSize], dek, wrapAAD(mk.id))
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, out[headerSize-nonceSize:headerSize], plaintext, dataAAD(identity)), nil
}

func (kr *Keyring) unwrap(blob []byte) (dek []byte, id KeyID, err error) {
	if len(blob) < minBlobSize || blob[0] != formatV1 {
		return nil, 0, ErrMalformed
	}
	id = KeyID(binary.BigEndian.Uint32(blob[1:5]))
	mk, ok := kr.key(id)
	if !ok {
		return nil, id, &KeyUnavailableError{ID: id}
	}
	dek, err = mk.aead.Open(nil, blob[5:5+nonceSize], blob[5+nonceSize:5+nonceSize+wrappedSize], wrapAAD(id))
	if err != nil {
		return nil, id, ErrDecrypt
	}
	return dek, id, nil
}

// Open decrypts a blob sealed for identity.
func (kr *Keyring) Open(blob []byte, identity ...string) ([]byte, error) {
	dek, _, err := kr.unwrap(blob)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, blob[headerSize-nonceSize:headerSize], blob[headerSize:], dataAAD(identity))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// KeyIDOf returns the ID of the master key a blob is sealed under.
func KeyIDOf(blob []byte) (KeyID, error) {
	if len(blob) < minBlobSize || blob[0] != formatV1 {
		return 0, ErrMalformed
	}
	return KeyID(binary.BigEndian.Uint32(blob[1:5])), nil
}

// Rewrap returns blob with its data key re-wrapped under the primary master key. The data
// ciphertext is copied unchanged. changed is false if the blob already uses the primary.
func (kr *Keyring) Rewrap(blob []byte) (out []byte, changed bool, err error) {
	return kr.RewrapTo(kr.Primary())(blob)
}

// RewrapTo returns a function that re-wraps blobs under the key target, whatever the
// primary is by the time it runs (a rotation names its target once).
func (kr *Keyring) RewrapTo(target KeyID) func(blob []byte) ([]byte, bool, error) {
	return func(blob []byte) ([]byte, bool, error) {
		mk, ok := kr.key(target)
		if !ok {
			return nil, false, &KeyUnavailableError{ID: target, Primary: true}
		}
		if id, err := KeyIDOf(blob); err == nil && id == target {
			return blob, false, nil
		}
		dek, _, err := kr.unwrap(blob)
		if err != nil {
			return nil, false, err
		}
		defer clear(dek)
		out := make([]byte, len(blob))
		copy(out, blob)
		binary.BigEndian.PutUint32(out[1:5], uint32(mk.id))
		if _, err := rand.Read(out[5 : 5+nonceSize]); err != nil {
			return nil, false, err
		}
		mk.aead.Seal(out[5+nonceSize:5+nonceSize], out[5:5+nonceSize], dek, wrapAAD(mk.id))
		return out, true, nil
	}
}
