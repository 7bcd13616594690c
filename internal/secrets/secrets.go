// Package secrets seals short secrets (a store's payment provider keys, and
// whatever else must be kept at rest but read back) with AES-256-GCM under a
// key from the environment, and opens them again.
//
// A sealed value is "v1:<key id>:<base64 nonce|ciphertext>". The key id is
// the first 8 hex digits of the SHA-256 of the key, so a value names the key
// that sealed it without revealing it. Rotation: put the new key in
// PACKLINE_SECRET_KEY and the old one(s) in PACKLINE_SECRET_KEYS_OLD
// (comma-separated); values sealed under an old key still open, new values
// are sealed under the new key, and Keyring.Reseal moves an old value onto
// it (a value rewritten by its owner is resealed as it is written). Once no
// stored value names an old key it can be dropped from the environment.
//
// The store id (or another owner's name) is bound to the value as
// additional data: a sealed value copied onto another row does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables the keyring is read from.
const (
	EnvKey     = "PACKLINE_SECRET_KEY"
	EnvOldKeys = "PACKLINE_SECRET_KEYS_OLD"
)

const version = "v1"

// ErrNoKey is returned when there is no key to seal or open with.
var ErrNoKey = errors.New("secrets: no key (set " + EnvKey + " to 32 random bytes, base64)")

// ErrOpen is returned for a value that does not open: a wrong or unknown
// key, a value changed or moved to another owner.
var ErrOpen = errors.New("secrets: the value does not open with any known key")

// Keyring seals with its current key and opens with it or an old one. The
// zero Keyring has no key: it refuses to seal or open.
type Keyring struct {
	current string // key id
	aeads   map[string]cipher.AEAD
}

// FromEnv reads the keyring from PACKLINE_SECRET_KEY and
// PACKLINE_SECRET_KEYS_OLD. With neither set it returns the zero Keyring
// and no error: whatever needs a secret refuses then, saying so.
func FromEnv() (*Keyring, error) { return FromGetenv(os.Getenv) }

// FromGetenv is FromEnv reading the environment through getenv.
func FromGetenv(getenv func(string) string) (*Keyring, error) {
	cur := strings.TrimSpace(getenv(EnvKey))
	var old []string
	for _, k := range strings.Split(getenv(EnvOldKeys), ",") {
		if k = strings.TrimSpace(k); k != "" {
			old = append(old, k)
		}
	}
	if cur == "" {
		if len(old) > 0 {
			return nil, fmt.Errorf("secrets: %s is set and %s is not: the current key is needed to seal", EnvOldKeys, EnvKey)
		}
		return &Keyring{}, nil
	}
	return New(cur, old...)
}

// New returns a keyring sealing with current and opening with current or
// any of old. Each key is 32 bytes, standard base64.
func New(current string, old ...string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, s := range append([]string{current}, old...) {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 32 {
			name := EnvKey
			if i > 0 {
				name = fmt.Sprintf("%s[%d]", EnvOldKeys, i-1)
			}
			return nil, fmt.Errorf("secrets: %s must be 32 bytes, standard base64 (openssl rand -base64 32)", name)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := keyID(raw)
		if i == 0 {
			k.current = id
		}
		k.aeads[id] = aead
	}
	return k, nil
}

func keyID(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:4])
}

// Ready reports whether the keyring can seal.
func (k *Keyring) Ready() bool { return k != nil && k.current != "" }

// Seal seals plaintext for owner (bound as additional data).
func (k *Keyring) Seal(owner, plaintext string) (string, error) {
	if !k.Ready() {
		return "", ErrNoKey
	}
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plaintext), []byte(owner))
	return version + ":" + k.current + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// Open opens a value Seal made for owner, under the current key or an old one.
func (k *Keyring) Open(owner, sealed string) (string, error) {
	if k == nil || len(k.aeads) == 0 {
		return "", ErrNoKey
	}
	v, rest, ok := strings.Cut(sealed, ":")
	id, b64, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || v != version {
		return "", ErrOpen
	}
	aead, ok := k.aeads[id]
	if !ok {
		return "", fmt.Errorf("%w (sealed under key %s, not in %s or %s)", ErrOpen, id, EnvKey, EnvOldKeys)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", ErrOpen
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(owner))
	if err != nil {
		return "", ErrOpen
	}
	return string(pt), nil
}

// KeyID returns the id of the key a sealed value names ("" when it is not
// a sealed value).
func KeyID(sealed string) string {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 || parts[0] != version {
		return ""
	}
	return parts[1]
}

// Current is the id of the key new values are sealed under.
func (k *Keyring) Current() string {
	if k == nil {
		return ""
	}
	return k.current
}

// Reseal opens sealed and seals it again under the current key; changed is
// false when it was sealed under the current key already.
func (k *Keyring) Reseal(owner, sealed string) (out string, changed bool, err error) {
	if KeyID(sealed) == k.Current() {
		return sealed, false, nil
	}
	pt, err := k.Open(owner, sealed)
	if err != nil {
		return "", false, err
	}
	out, err = k.Seal(owner, pt)
	return out, err == nil, err
}
