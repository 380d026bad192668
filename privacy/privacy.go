// Package privacy holds recstream's pseudonymous user ids.
//
// With privacy.pseudonymize_key set, the ingest consumer replaces every
// user id by
//
//	hex(HMAC-SHA256(key, user_id))[:privacy.pseudonymize_length]
//
// before anything is stored or published, so Redis keys, lists, refresh
// requests and logs carry only the pseudonym. A reader (the web tier)
// computes the same function to find a user's list; see docs/keys.md and
// docs/security.md (key rotation).
package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// DefaultLength is the default number of hex characters kept (128 bits).
const DefaultLength = 32

// Pseudonymizer maps user ids to keyed pseudonyms. The zero value (no key)
// is the identity.
type Pseudonymizer struct {
	key    []byte
	length int
}

// New returns a Pseudonymizer with key, keeping length hex characters
// (16..64; other values take DefaultLength). An empty key gives the
// identity.
func New(key string, length int) Pseudonymizer {
	if length < 16 || length > 64 {
		length = DefaultLength
	}
	if key == "" {
		return Pseudonymizer{}
	}
	return Pseudonymizer{key: []byte(key), length: length}
}

// Enabled reports whether ids are replaced.
func (p Pseudonymizer) Enabled() bool { return len(p.key) > 0 }

// ID returns the pseudonym of id (id itself when disabled).
func (p Pseudonymizer) ID(id string) string {
	if len(p.key) == 0 {
		return id
	}
	return Pseudonym(p.key, p.length, id)
}

// Pseudonym is hex(HMAC-SHA256(key, id)) truncated to length hex characters.
func Pseudonym(key []byte, length int, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))[:length]
}
