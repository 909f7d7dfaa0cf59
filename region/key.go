package region

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/tv42/zbase32"
)

// ErrBadKey means a key string is not a z-base-32 encoded 32-byte key.
var ErrBadKey = errors.New("malformed key")

// EncodedKeyLen is the length of a z-base-32 encoded 32-byte key.
const EncodedKeyLen = 52

// EncodePublicKey returns the z-base-32 form of pub, as rustpatcher writes it.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return zbase32.EncodeToString(pub)
}

// EncodeSecretKey returns the z-base-32 form of the key's 32-byte seed, which
// is what key files hold.
func EncodeSecretKey(key ed25519.PrivateKey) string {
	return zbase32.EncodeToString(key.Seed())
}

// ParsePublicKey decodes a z-base-32 public key. Surrounding white space is
// ignored.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeKey(s)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

// ParseSecretKey decodes a z-base-32 seed, as written by EncodeSecretKey, into
// a signing key. Surrounding white space is ignored.
func ParseSecretKey(s string) (ed25519.PrivateKey, error) {
	b, err := decodeKey(s)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(b), nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != EncodedKeyLen {
		return nil, fmt.Errorf("%w: %d characters, want %d z-base-32 characters", ErrBadKey, len(s), EncodedKeyLen)
	}
	b, err := zbase32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want %d", ErrBadKey, len(b), ed25519.SeedSize)
	}
	// z-base-32 of 32 bytes has 4 spare bits; accept only the canonical form
	// so that every key has exactly one spelling.
	if zbase32.EncodeToString(b) != s {
		return nil, fmt.Errorf("%w: not the canonical z-base-32 spelling", ErrBadKey)
	}
	return b, nil
}
