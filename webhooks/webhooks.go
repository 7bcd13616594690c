// Package webhooks delivers signed webhooks to merchants' endpoints, per
// Standard Webhooks (https://www.standardwebhooks.com): headers webhook-id,
// webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256 of
// "<id>.<timestamp>.<body>">" with the endpoint's whsec_ secret), and a body
// {"type", "timestamp", "data"}.
//
// The package holds no state. The webhook:deliver handler finds the store's
// endpoints whose filters Match the event, keeps one delivery row per
// (message id, endpoint), calls Client.Deliver for an attempt, records the
// Result, and asks Decide what follows (the next attempt per NextRetry, or
// the endpoint disabled per ShouldDisable): Deliver never retries by
// itself, so every attempt is logged and survives a worker restart.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// secretBytes is the length of a new secret's key (Standard Webhooks asks
// for 24 to 64 bytes).
const secretBytes = 32

// Endpoint is a merchant's webhook endpoint.
type Endpoint struct {
	ID     string
	URL    string
	Secret string   // whsec_…
	Events []string // filters: "order.*", "order.shipped", "*"
}

// Wants reports whether the endpoint subscribes to the event type.
func (e Endpoint) Wants(eventType string) bool { return Match(e.Events, eventType) }

// Message is one event to deliver. The same message (same ID, type,
// timestamp and data) is sent on every attempt and to every endpoint, so a
// receiver de-duplicates on webhook-id.
type Message struct {
	// ID is the webhook-id: MessageID of the webhook:deliver effect.
	ID string
	// Type is the event type, e.g. order.shipped.
	Type string
	// Timestamp is when the event happened (the transition's commit time),
	// not the attempt: the attempt's time is the webhook-timestamp header.
	Timestamp time.Time
	// Data is the payload's data: the order as GET /v1/orders/{id} shows it.
	Data json.RawMessage
}

// Body is the message's JSON body: {"type", "timestamp", "data"}.
func (m Message) Body() ([]byte, error) {
	data := m.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	b, err := json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{m.Type, m.Timestamp.UTC().Format(time.RFC3339Nano), data})
	if err != nil {
		return nil, fmt.Errorf("webhook %s body: %w", m.ID, err)
	}
	return b, nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// MessageID is the stable webhook-id of the event owed by one
// webhook:deliver effect: "msg_" and 26 characters derived from the effect
// id, so a retried task, a replay, and every endpoint see the same id.
func MessageID(effectID string) string {
	h := sha256.Sum256([]byte("packline-webhook|" + effectID))
	return "msg_" + idEncoding.EncodeToString(h[:16])
}

// NewSecret returns a new endpoint secret: whsec_ and 32 random bytes in
// base64, shown to the merchant once.
func NewSecret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ErrInvalidSecret: not a whsec_ secret of 24 to 64 bytes.
var ErrInvalidSecret = errors.New("invalid webhook secret")

// ParseSecret returns the key of a whsec_ secret.
func ParseSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it must start with %s", ErrInvalidSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrInvalidSecret)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("%w: the key must be 24 to 64 bytes, not %d", ErrInvalidSecret, len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message body sent at
// ts: "v1," and the base64 HMAC-SHA256 of "<msgID>.<unix ts>.<body>" keyed
// with the secret's key. A secret that ParseSecret refuses is used as raw
// bytes (after any whsec_ prefix), so Sign never fails; endpoints get their
// secrets from NewSecret, which ParseSecret always accepts.
func Sign(secret string, msgID string, ts time.Time, body []byte) string {
	key, err := ParseSecret(secret)
	if err != nil {
		key = []byte(strings.TrimPrefix(secret, SecretPrefix))
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Match reports whether any filter selects the event type: "*" selects
// every event, "order.*" every event whose type starts with "order.", and
// anything else exactly its own type.
func Match(filters []string, eventType string) bool {
	for _, f := range filters {
		switch {
		case f == "*":
			return true
		case strings.HasSuffix(f, ".*"):
			if strings.HasPrefix(eventType, strings.TrimSuffix(f, "*")) {
				return true
			}
		case f == eventType:
			return true
		}
	}
	return false
}

// ValidFilter checks an event filter as an endpoint is created: "*", or
// dot-separated lower-case words ([a-z0-9_]) of which the last may be "*".
func ValidFilter(f string) error {
	if f == "*" {
		return nil
	}
	parts := strings.Split(f, ".")
	for i, p := range parts {
		if p == "*" && i == len(parts)-1 && i > 0 {
			continue
		}
		if p == "" {
			return fmt.Errorf("event filter %q: empty part", f)
		}
		for _, c := range p {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return fmt.Errorf("event filter %q: only a-z, 0-9, _ and a final .* are allowed", f)
			}
		}
	}
	return nil
}
