package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Sandbox is the embedded default sender for both channels: it sends
// nothing and remembers what it was given, in memory. In dev the messages
// table (GET /v1/orders/{id}/messages) is where a person reads them; tests
// of the fleet read Sent. It is safe for concurrent use.
type Sandbox struct {
	mu   sync.Mutex
	sent []SentMessage
}

// SentMessage is one message the Sandbox was asked to send.
type SentMessage struct {
	Key     string
	Message Message
}

var (
	_ EmailSender = (*Sandbox)(nil)
	_ SMSSender   = (*Sandbox)(nil)
)

// SendEmail implements EmailSender.
func (s *Sandbox) SendEmail(ctx context.Context, key string, m Message) (Receipt, error) {
	return s.send(ctx, key, m)
}

// SendSMS implements SMSSender.
func (s *Sandbox) SendSMS(ctx context.Context, key string, m Message) (Receipt, error) {
	return s.send(ctx, key, m)
}

func (s *Sandbox) send(ctx context.Context, key string, m Message) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	s.mu.Lock()
	s.sent = append(s.sent, SentMessage{Key: key, Message: m})
	s.mu.Unlock()
	h := sha256.Sum256([]byte(key))
	return Receipt{ProviderID: "sandbox_" + hex.EncodeToString(h[:12])}, nil
}

// Sent returns every message sent so far, in order. A message sent twice
// appears twice: the Sandbox does not hide a caller's duplicate.
func (s *Sandbox) Sent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentMessage(nil), s.sent...)
}
