package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestSealOpenAndRotate(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	old, err := New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal("st_1", "sk_test_123")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "sk_test") {
		t.Fatalf("sealed value shows the plaintext: %s", sealed)
	}
	if got, err := old.Open("st_1", sealed); err != nil || got != "sk_test_123" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := old.Open("st_2", sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened for another owner: %v", err)
	}
	// Rotation: the new key seals, the old one still opens.
	rotated, err := New(newK, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open("st_1", sealed); err != nil || got != "sk_test_123" {
		t.Fatalf("open under old key = %q, %v", got, err)
	}
	re, changed, err := rotated.Reseal("st_1", sealed)
	if err != nil || !changed || KeyID(re) != rotated.Current() {
		t.Fatalf("reseal = %q %v %v", re, changed, err)
	}
	// Without the old key, an old value does not open, and says which key it needs.
	only, _ := New(newK)
	if _, err := only.Open("st_1", sealed); !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), KeyID(sealed)) {
		t.Fatalf("old value opened without its key: %v", err)
	}
	if got, err := only.Open("st_1", re); err != nil || got != "sk_test_123" {
		t.Fatalf("open resealed = %q, %v", got, err)
	}
}

func TestTamperedAndBadKeys(t *testing.T) {
	k, _ := New(newKey(t))
	sealed, _ := k.Seal("st_1", "whsec_abc")
	b := []byte(sealed)
	b[len(b)-3] ^= 1
	if _, err := k.Open("st_1", string(b)); !errors.Is(err, ErrOpen) {
		t.Fatalf("tampered value opened: %v", err)
	}
	if _, err := New("c2hvcnQ="); err == nil {
		t.Fatal("a short key was taken")
	}
	var zero Keyring
	if _, err := zero.Seal("x", "y"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("zero keyring sealed: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvKey, "")
	t.Setenv(EnvOldKeys, newKey(t))
	if _, err := FromEnv(); err == nil {
		t.Fatal("old keys without a current key were taken")
	}
	t.Setenv(EnvKey, newKey(t))
	k, err := FromEnv()
	if err != nil || !k.Ready() {
		t.Fatalf("FromEnv = %v, %v", k, err)
	}
}
