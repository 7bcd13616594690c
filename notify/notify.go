// Package notify renders the messages the flows name and sends them.
//
// Every template lives in one place, templates/<name>.tmpl, one file per
// message, with its parts as named blocks: "subject", "text" and "html" for
// an email, "sms" for a text message. Render fills them with an order's data
// (items, totals in the currency's minor units, tracking number and link,
// store name); Check proves at start-up that every notify:* effect of every
// loaded flow names a template that exists for its channel.
//
// Senders are small interfaces: EmailSender (SMTP through go-mail, or the
// Sandbox) and SMSSender (Twilio's API shape, or the Sandbox). They send; they
// do not remember. One message per (transition, template) is the caller's
// guarantee: the notify:* handler keeps a messages row keyed by Key(effect id,
// template), commits it as sent after the provider accepted the message, and
// never sends a key that is already sent. The key is also handed to the
// provider (Message-ID, Idempotency-Key) for providers that can use it.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/flows"
)

// Channel is how a message travels.
type Channel string

// Channels, as the notify:* effect types name them.
const (
	Email Channel = "email"
	SMS   Channel = "sms"
)

// ChannelOf returns the channel of a notify effect type: notify:email →
// Email, notify:sms → SMS.
func ChannelOf(effectType string) (Channel, bool) {
	switch flows.EffectType(effectType) {
	case flows.EffectNotifyEmail:
		return Email, true
	case flows.EffectNotifySMS:
		return SMS, true
	}
	return "", false
}

// Recipients, as flows name them in an effect's "to".
const (
	ToCustomer = "customer"
	ToMerchant = "merchant"
)

// Key is the idempotency key of one message: the effect that owed it and its
// template. The messages table is unique on it.
func Key(effectID, template string) string { return effectID + ":" + template }

// Store is what a message says about the shop.
type Store struct {
	Name string
	// Email and Phone receive the store's merchant notifications; Email is
	// also the Reply-To of customer emails.
	Email string
	Phone string
	// URL is the shop's site, linked in email footers ("" for none).
	URL string
}

// Shipment is the parcel a shipping message is about.
type Shipment struct {
	Courier        string
	TrackingNumber string
	TrackingURL    string
}

// Links are the signed URLs a message may offer; each is omitted when empty.
type Links struct {
	Order    string // the customer's order status page
	Pay      string // retry a failed payment
	Proof    string // review a proof
	Feedback string // leave feedback
	Admin    string // the order in the merchant's dashboard
}

// Request is everything one notify:* effect needs to become a Message.
type Request struct {
	Channel  Channel
	Template string // the effect's template
	To       string // the effect's to: ToCustomer or ToMerchant
	Order    packline.Order
	Store    Store
	Shipment *Shipment // for shipping messages; nil before a label exists
	Links    Links
	// Event is the event that owed the effect and Data its data (the
	// effect's Event and Data): stock_short's short lines, a payment
	// failure's reason.
	Event string
	Data  json.RawMessage
	// Deadline is when the order will expire if nothing happens (a payment
	// retry's last day); zero for none.
	Deadline time.Time
	// Location formats dates; UTC when nil.
	Location *time.Location
}

// Message is a rendered message, ready for a sender and for the messages
// table (GET /v1/orders/{id}/messages shows Subject and Text as the body).
type Message struct {
	Channel  Channel
	Template string
	// To is the email address or E.164 phone number; ToName the person.
	To     string
	ToName string
	// FromName is the display name of an email's sender (the store);
	// ReplyTo where replies go (the store's email).
	FromName string
	ReplyTo  string
	Subject  string // email only
	Text     string // an email's text part, or the SMS body
	HTML     string // email only
}

// Receipt is the provider's answer to an accepted message.
type Receipt struct {
	// ProviderID is the provider's id of the message (SMTP Message-ID, a
	// Twilio SM… sid), kept on the messages row.
	ProviderID string
}

// EmailSender sends an email. key is Key(effect id, template): the same key
// is the same message, which the caller's messages row, not the sender,
// makes sure is sent once. An error wrapping ErrPermanent will fail again on
// retry (the handler gives up with SkipRetry); any other error may not.
type EmailSender interface {
	SendEmail(ctx context.Context, key string, m Message) (Receipt, error)
}

// SMSSender sends a text message; key and errors as for EmailSender.
type SMSSender interface {
	SendSMS(ctx context.Context, key string, m Message) (Receipt, error)
}

// Errors.
var (
	// ErrUnknownTemplate: no template of that name for the channel.
	ErrUnknownTemplate = errors.New("unknown message template")
	// ErrNoRecipient: the customer or store has no address for the
	// channel. The handler records the message as skipped and does not
	// retry.
	ErrNoRecipient = errors.New("no recipient address")
	// ErrPermanent wraps a send failure that a retry will not fix (a
	// rejected address, bad credentials, a refused message).
	ErrPermanent = errors.New("permanent send failure")
)

// permanent wraps err so errors.Is(err, ErrPermanent) holds.
func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}
