package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/notify"
	"github.com/packline/packline/store"
)

// Provider names kept on message rows.
const (
	ProviderSandbox = "sandbox"
	ProviderSMTP    = "smtp"
	ProviderTwilio  = "twilio"
)

// messageLease is how long one worker holds a message while it sends it:
// longer than the notify tasks' 30 s timeout, so a slow send is never
// doubled by a second run, and short enough that a worker that died
// holding it delays the retry by a minute at most.
const messageLease = time.Minute

// ShipmentFinder finds the parcel an order ships in, for the tracking
// number and link of shipping messages. It returns nil when the order has
// no shipment (yet).
type ShipmentFinder interface {
	OrderShipment(ctx context.Context, orderID string) (*notify.Shipment, error)
}

// ShipmentFinderFunc adapts a function to ShipmentFinder.
type ShipmentFinderFunc func(ctx context.Context, orderID string) (*notify.Shipment, error)

// OrderShipment implements ShipmentFinder.
func (f ShipmentFinderFunc) OrderShipment(ctx context.Context, orderID string) (*notify.Shipment, error) {
	return f(ctx, orderID)
}

// NotifierConfig configures a Notifier. Zero values take the defaults noted.
type NotifierConfig struct {
	// Email sends email; nil is the sandbox notifier, which sends nothing:
	// the rendered message, stored as sent with provider "sandbox", is the
	// record (GET /v1/orders/{id}/messages shows it).
	Email notify.EmailSender
	// SMS sends text messages; nil is the sandbox notifier, as for Email.
	SMS notify.SMSSender
	// EmailProvider and SMSProvider name the senders on message rows
	// (default: smtp, twilio or sandbox by the sender's type).
	EmailProvider string
	SMSProvider   string
	// Shipments finds an order's parcel for shipping messages (default:
	// the order's shipment in the database, store.ShipmentOfOrder).
	Shipments ShipmentFinder
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Notifier runs the notify:email and notify:sms effects (Deps.Email and
// Deps.SMS), and sends the store's merchant the notices of the fleet itself
// (a webhook endpoint disabled).
//
// Policy (tasks.TypeNotifyEmail, TypeNotifySMS): queue low, MaxRetry 8,
// Timeout 30 s. Idempotency key: notify.Key(effect id, template), the
// primary key of the message's row, also handed to the provider
// (Message-ID, Idempotency-Key). The message is rendered once, kept as a
// sending row, leased to one worker while it is sent (ClaimMessage), and
// marked sent: a retry, or a second run of the task, finds the row sent or
// skipped and sends nothing. One message per (transition, template).
//
// Gives up: a message with no address for its channel (the customer has no
// phone, the store no email) is kept as skipped, and the task ends without
// error; a template that cannot be rendered, or a send the provider refuses
// for good (notify.ErrPermanent), is kept as failed and the task ends with
// asynq.SkipRetry; after the last retry of transient errors the row is
// failed too. A crash between the provider's accepting the message and the
// sent mark resends it on retry with the same key (at least once).
type Notifier struct {
	db        *store.DB
	email     notify.EmailSender
	sms       notify.SMSSender
	emailProv string
	smsProv   string
	shipments ShipmentFinder
	log       *slog.Logger
}

var _ EffectHandler = (*Notifier)(nil)

// NewNotifier returns a notifier on db.
func NewNotifier(db *store.DB, cfg NotifierConfig) *Notifier {
	n := &Notifier{db: db, email: cfg.Email, sms: cfg.SMS, emailProv: cfg.EmailProvider, smsProv: cfg.SMSProvider,
		shipments: cfg.Shipments, log: cfg.Logger}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.shipments == nil {
		n.shipments = ShipmentFinderFunc(n.orderShipment)
	}
	if n.emailProv == "" {
		n.emailProv = providerName(cfg.Email)
	}
	if n.smsProv == "" {
		n.smsProv = providerName(cfg.SMS)
	}
	return n
}

func providerName(sender any) string {
	switch sender.(type) {
	case nil, *notify.Sandbox:
		return ProviderSandbox
	case *notify.SMTPSender:
		return ProviderSMTP
	case *notify.TwilioSender:
		return ProviderTwilio
	}
	return fmt.Sprintf("%T", sender)
}

// orderShipment is the default ShipmentFinder: the order's shipment, made
// by courier:label.
func (n *Notifier) orderShipment(ctx context.Context, orderID string) (*notify.Shipment, error) {
	sh, err := n.db.ShipmentOfOrder(ctx, orderID)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &notify.Shipment{Courier: sh.Courier, TrackingNumber: sh.TrackingNumber, TrackingURL: sh.TrackingURL}, nil
}

// HandleEffect runs one notify:email or notify:sms effect. It reports no
// event.
func (n *Notifier) HandleEffect(ctx context.Context, e Effect) (*Report, error) {
	ch, ok := notify.ChannelOf(e.Type)
	if !ok {
		return nil, fmt.Errorf("notifier cannot run %s: %w", e.Type, asynq.SkipRetry)
	}
	key := notify.Key(e.ID, e.Effect.Template)
	var (
		m       store.Message
		claimed bool
		err     error
	)
	if e.Runs > 1 {
		// An earlier run may have made the row: it is sent as it was
		// rendered then.
		m, err = n.db.MessageByKey(ctx, key)
	} else {
		err = packline.Errorf(packline.ENOTFOUND, "message %s not made yet", key)
	}
	switch {
	case err == nil:
		if m.Final() {
			return nil, settled(m)
		}
		if m, claimed, err = n.db.ClaimMessage(ctx, key, messageLease); err != nil {
			return nil, err
		}
	case packline.ErrorCode(err) == packline.ENOTFOUND:
		row, err := n.render(ctx, ch, key, e)
		if err != nil {
			return nil, err
		}
		// The row and this run's lease on it commit together.
		if m, claimed, err = n.db.StartMessage(ctx, row, messageLease); err != nil {
			return nil, err
		}
		if m.Status == store.MessageSkipped {
			n.log.InfoContext(ctx, "message skipped", "effect_id", e.ID, "order_id", e.OrderID, "template", m.Template, "reason", m.Error)
		}
	default:
		return nil, err
	}
	if !claimed {
		if m.Final() {
			return nil, settled(m)
		}
		return nil, fmt.Errorf("message %s is being sent by another worker", m.Key)
	}
	if err := n.deliver(ctx, m, e.ID); err != nil {
		return nil, err
	}
	return &Report{Done: true}, nil
}

func (n *Notifier) render(ctx context.Context, ch notify.Channel, key string, e Effect) (store.Message, error) {
	to := e.Effect.To
	if to == "" {
		to = notify.ToCustomer
	}
	row := store.Message{Key: key, OrderID: e.OrderID, StoreID: e.StoreID, EffectID: e.ID, Channel: string(ch),
		Template: e.Effect.Template, RecipientType: to}
	if e.Order == nil {
		return row, fmt.Errorf("render %s: the effect came without its order", key)
	}
	sc, err := n.db.StoreContact(ctx, e.StoreID)
	if err != nil {
		return row, err
	}
	req := notify.Request{Channel: ch, Template: e.Effect.Template, To: to, Order: *e.Order,
		Store: notify.Store{Name: sc.Name, Email: sc.Email, Phone: sc.Phone}, Event: e.Effect.Event, Data: e.Effect.Data}
	if req.Shipment, err = n.shipments.OrderShipment(ctx, e.OrderID); err != nil {
		return row, fmt.Errorf("find the shipment of order %s: %w", e.OrderID, err)
	}
	msg, err := notify.Render(req)
	switch {
	case errors.Is(err, notify.ErrNoRecipient):
		row.Status, row.Error = store.MessageSkipped, err.Error()
	case err != nil:
		row.Status, row.Error = store.MessageFailed, err.Error()
	default:
		row.Status = store.MessageSending
		row.Recipient, row.RecipientName, row.FromName, row.ReplyTo = msg.To, msg.ToName, msg.FromName, msg.ReplyTo
		row.Subject, row.Body, row.HTML = msg.Subject, msg.Text, msg.HTML
	}
	return row, nil
}

// deliver sends a message the caller has claimed (its lease is the
// caller's) and records the outcome. With effectID (the notify effect that
// owes the message) the sent mark and the effect's done mark commit
// together.
func (n *Notifier) deliver(ctx context.Context, m store.Message, effectID string) error {
	ch := notify.Channel(m.Channel)
	msg := notify.Message{Channel: ch, Template: m.Template, To: m.Recipient, ToName: m.RecipientName,
		FromName: m.FromName, ReplyTo: m.ReplyTo, Subject: m.Subject, Text: m.Body, HTML: m.HTML}
	provider, rcpt, err := n.send(ctx, ch, m.Key, msg)
	if err == nil {
		// The provider has the message: the sent mark must be written even
		// if the task's time is up.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return n.db.MarkMessageSentAndDone(wctx, m.Key, provider, rcpt.ProviderID, effectID)
	}
	permanent := errors.Is(err, notify.ErrPermanent)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, hasMax := asynq.GetMaxRetry(ctx)
	final := permanent || (hasMax && retried >= maxRetry)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := n.db.MarkMessageFailed(wctx, m.Key, provider, err.Error(), final); ferr != nil {
		n.log.ErrorContext(ctx, "record message failure", "key", m.Key, "err", ferr)
	}
	if permanent {
		return fmt.Errorf("send %s: %w: %w", m.Key, err, asynq.SkipRetry)
	}
	return fmt.Errorf("send %s: %w", m.Key, err)
}

// settled is a final message's answer to a run of its task: nothing to do,
// but a failed message keeps failing the task, for good.
func settled(m store.Message) error {
	if m.Status == store.MessageFailed {
		return fmt.Errorf("message %s failed: %s: %w", m.Key, m.Error, asynq.SkipRetry)
	}
	return nil
}

func (n *Notifier) send(ctx context.Context, ch notify.Channel, key string, msg notify.Message) (string, notify.Receipt, error) {
	switch {
	case ch == notify.Email && n.email != nil:
		r, err := n.email.SendEmail(ctx, key, msg)
		return n.emailProv, r, err
	case ch == notify.SMS && n.sms != nil:
		r, err := n.sms.SendSMS(ctx, key, msg)
		return n.smsProv, r, err
	case ch == notify.Email || ch == notify.SMS:
		// The sandbox notifier: the stored message is the record.
		h := sha256.Sum256([]byte(key))
		return ProviderSandbox, notify.Receipt{ProviderID: "sandbox_" + hex.EncodeToString(h[:12])}, nil
	}
	return "", notify.Receipt{}, fmt.Errorf("%w: unknown channel %q", notify.ErrPermanent, ch)
}

// StoreNotice is an email to a store's merchant about the store itself,
// not one of its orders.
type StoreNotice struct {
	StoreID string
	// EffectID is the effect during which the fleet found what the notice
	// says.
	EffectID string
	// Key makes the notice once-only (notify.Key of what it is about).
	Key      string
	Template string // a name for the message log, e.g. webhook_endpoint_disabled
	Subject  string
	Text     string
}

// NotifyStore emails a notice to the store's merchant, once per key. A
// store without an email address gets it recorded as skipped, and logged.
func (n *Notifier) NotifyStore(ctx context.Context, sn StoreNotice) error {
	sc, err := n.db.StoreContact(ctx, sn.StoreID)
	if err != nil {
		return err
	}
	row := store.Message{Key: sn.Key, StoreID: sn.StoreID, EffectID: sn.EffectID, Channel: string(notify.Email),
		Template: sn.Template, RecipientType: notify.ToMerchant, Recipient: sc.Email, RecipientName: sc.Name,
		FromName: "packline", Subject: sn.Subject, Body: sn.Text, Status: store.MessageSending}
	if sc.Email == "" {
		row.Status, row.Error = store.MessageSkipped, "the store has no email address (packline stores create --email, or PATCH /v1/store)"
	}
	m, claimed, err := n.db.StartMessage(ctx, row, messageLease)
	if err != nil {
		return err
	}
	switch {
	case m.Status == store.MessageSkipped:
		n.log.WarnContext(ctx, "the store has no email address to be told", "store_id", sn.StoreID, "notice", sn.Template, "key", sn.Key)
		return nil
	case !claimed && m.Final():
		return settled(m)
	case !claimed:
		return fmt.Errorf("message %s is being sent by another worker", m.Key)
	}
	return n.deliver(ctx, m, "")
}
