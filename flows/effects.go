package flows

import (
	"slices"
	"time"

	"github.com/packline/packline"
)

// This file is the effect catalogue: every effect type the fleet runs, how it
// is run (queue, retries, timeout), how it stays idempotent, and the events
// it may report to its order. It is the one list: package tasks derives its
// task types and policies from it, the loader checks flows against it, and
// the workers report the events named here. To add an effect type, add a
// constant and an entry below, then its handler in workers.

// EffectType is the type of an effect, in domain:verb form: the type of its
// outbox rows and the Asynq task type that runs it. The names are stored (in
// the outbox and in Redis) and are never renamed.
type EffectType string

// The effect types.
const (
	EffectPaymentAuthorize EffectType = "payment:authorize"
	EffectPaymentCapture   EffectType = "payment:capture"
	EffectPaymentConfirm   EffectType = "payment:confirm"
	EffectPaymentVoid      EffectType = "payment:void"
	EffectPaymentRefund    EffectType = "payment:refund"
	EffectStockDecrement   EffectType = "stock:decrement"
	EffectStockRestore     EffectType = "stock:restore"
	EffectCourierLabel     EffectType = "courier:label"
	EffectNotifyEmail      EffectType = "notify:email"
	EffectNotifySMS        EffectType = "notify:sms"
	EffectWebhookDeliver   EffectType = "webhook:deliver"
	EffectOrderTimer       EffectType = "order:timer"
)

// EventName is the name of a flow event. Most are a flow's own vocabulary;
// the constants below are the ones packline itself sends by name.
type EventName string

// Events reported by effects (see EffectInfo.Reports). A flow that owes the
// effect must declare them; the loader checks.
const (
	// EventPaymentSucceeded: the provider took the payment (data:
	// payment_id). Reported by payment:authorize, capture and confirm.
	EventPaymentSucceeded EventName = "payment_succeeded"
	// EventPaymentFailed: the provider declined (data: payment_id,
	// error_code). Reported by payment:authorize, capture and confirm.
	EventPaymentFailed EventName = "payment_failed"
	// EventStockTaken: every line of the order was taken from stock.
	// Reported by stock:decrement.
	EventStockTaken EventName = "stock_taken"
	// EventStockShort: a line could not be filled (data: the short SKUs);
	// nothing was taken. Reported by stock:decrement.
	EventStockShort EventName = "stock_short"
	// EventLabelCreated: the order's courier label exists (data: courier,
	// tracking_number, label_url). Reported by courier:label.
	EventLabelCreated EventName = "label_created"
)

// Events a courier's tracking status implies (couriers.FlowEvent), sent as
// the courier actor to flows that declare them; a flow without one ignores
// that status.
const (
	EventShip    EventName = "ship"
	EventDeliver EventName = "deliver"
	EventReturn  EventName = "return"
)

// EventRetryPayment is the event that carries a customer's new payment
// method (data.payment_method), which the next charge of the order uses.
const EventRetryPayment EventName = "retry_payment"

// Queues an effect may run on. Package tasks gives them their weights.
const (
	QueueCritical = "critical" // payment, stock, order:timer
	QueueDefault  = "default"  // courier, webhook
	QueueLow      = "low"      // notify
)

// Owing says how an effect comes to be owed, and so whether a flow file may
// name it under effects.
type Owing int

const (
	// OwedByFlow effects are named by a flow's transitions and on_create.
	OwedByFlow Owing = iota
	// OwedByStateChange effects are owed by the engine on every change of
	// state; a flow names the webhook type instead (webhook: on a
	// transition).
	OwedByStateChange
	// OwedByTimer effects are a flow's timers, armed by the engine.
	OwedByTimer
)

// EffectInfo is one entry of the catalogue.
type EffectInfo struct {
	Type EffectType
	// Queue, MaxRetry and Timeout are how its task runs (tasks.New).
	Queue    string
	MaxRetry int
	Timeout  time.Duration
	// IdempotencyKey says how the effect is kept from acting twice: the key
	// it passes to the outside world, or what it relies on instead.
	IdempotencyKey string
	// Reports lists the events the effect may report to its order, sent as
	// Reporter. The report commits with the effect's done mark.
	Reports  []EventName
	Reporter packline.ActorType
	// Owed says how the effect comes to be owed.
	Owed Owing
	// Message marks the notify effects, which take a template and a
	// recipient (to: customer or merchant).
	Message bool
	// FixedAmount marks the effect that may name an amount of its own
	// (payment:authorize's 1.00 card check); others charge what the order
	// says.
	FixedAmount bool
	// Money marks the payment effects. A worker records their start
	// durably, and a run that follows an earlier start asks the provider
	// for the answer under the effect id, whatever state the order is in
	// now: the earlier run may have moved the money before it died.
	Money bool
	// ReversedBy is the effect that gives back what this one took or
	// holds (a charge is refunded, a hold voided): what a payment the order
	// refused owes.
	ReversedBy EffectType
}

// The policies shared by several entries.
const (
	paymentRetries, paymentTimeout = 10, 30 * time.Second
	stockRetries, stockTimeout     = 10, 15 * time.Second
	notifyRetries, notifyTimeout   = 8, 30 * time.Second
)

// catalogue lists every effect type, in the order of the docs.
var catalogue = []EffectInfo{
	{
		// Holds an amount on the customer's payment method (request-approval's
		// 1.00 card check). A decline is an answer, not an error: it is
		// reported and the task ends. Gives up after MaxRetry retries of
		// transient provider errors, or at once on a malformed payload or a
		// missing order.
		Money: true, Type: EffectPaymentAuthorize, Queue: QueueCritical, MaxRetry: paymentRetries, Timeout: paymentTimeout,
		IdempotencyKey: "the effect id, passed to the provider and kept as the payment row's key",
		Reports:        []EventName{EventPaymentSucceeded, EventPaymentFailed}, Reporter: packline.ActorPayment,
		FixedAmount: true, ReversedBy: EffectPaymentVoid,
	},
	{
		// Charges the full amount (request-approval's accept and
		// retry_payment) with the newest payment method.
		Money: true, Type: EffectPaymentCapture, Queue: QueueCritical, MaxRetry: paymentRetries, Timeout: paymentTimeout,
		IdempotencyKey: "the effect id, passed to the provider and kept as the payment row's key",
		Reports:        []EventName{EventPaymentSucceeded, EventPaymentFailed}, Reporter: packline.ActorPayment,
		ReversedBy: EffectPaymentRefund,
	},
	{
		// Asks the provider for the checkout payment of a new order
		// (made-to-order, prepaid-simple).
		Money: true, Type: EffectPaymentConfirm, Queue: QueueCritical, MaxRetry: paymentRetries, Timeout: paymentTimeout,
		IdempotencyKey: "the effect id, passed to the provider and kept as the payment row's key",
		Reports:        []EventName{EventPaymentSucceeded, EventPaymentFailed}, Reporter: packline.ActorPayment,
		ReversedBy: EffectPaymentRefund,
	},
	{
		// Releases the card-check authorization; a check already voided, or
		// one that never succeeded, is done. While the authorization it voids
		// is still running it retries, so a decline that overtakes the check
		// still releases it.
		Money: true, Type: EffectPaymentVoid, Queue: QueueCritical, MaxRetry: paymentRetries, Timeout: paymentTimeout,
		IdempotencyKey: "the effect id, passed to the provider and kept as the payment row's key",
	},
	{
		// Gives back what the order's charges took, less what was refunded.
		Money: true, Type: EffectPaymentRefund, Queue: QueueCritical, MaxRetry: paymentRetries, Timeout: paymentTimeout,
		IdempotencyKey: "the effect id, passed to the provider and kept as the payment row's key",
	},
	{
		// Takes every line of the order from stock, or none.
		Type: EffectStockDecrement, Queue: QueueCritical, MaxRetry: stockRetries, Timeout: stockTimeout,
		IdempotencyKey: "the stock ledger's one row per (order, sku, kind), written in the transaction that moves the stock, reports the event and marks the row done",
		Reports:        []EventName{EventStockTaken, EventStockShort}, Reporter: packline.ActorSystem,
	},
	{
		// Gives back what the ledger says the order took, once.
		Type: EffectStockRestore, Queue: QueueCritical, MaxRetry: stockRetries, Timeout: stockTimeout,
		IdempotencyKey: "the stock ledger's one row per (order, sku, kind), as for stock:decrement",
	},
	{
		// Buys the order's courier label. Gives up at once on an unknown
		// courier or a request the courier refuses (workers/courier.go).
		Type: EffectCourierLabel, Queue: QueueDefault, MaxRetry: 12, Timeout: 60 * time.Second,
		IdempotencyKey: "the order id, passed to the courier, so an order gets one label however many effects ask",
		Reports:        []EventName{EventLabelCreated}, Reporter: packline.ActorSystem,
	},
	{
		// Sends one email (workers.Notifier).
		Type: EffectNotifyEmail, Queue: QueueLow, MaxRetry: notifyRetries, Timeout: notifyTimeout,
		IdempotencyKey: "notify.Key(effect id, template), the key of the message's row: one message per transition and template",
		Message:        true,
	},
	{
		// Sends one SMS (workers.Notifier).
		Type: EffectNotifySMS, Queue: QueueLow, MaxRetry: notifyRetries, Timeout: notifyTimeout,
		IdempotencyKey: "notify.Key(effect id, template), the key of the message's row: one message per transition and template",
		Message:        true,
	},
	{
		// Delivers one webhook event to one store's endpoints. Each attempt
		// runs as an outbox row of its own, due at its retry time
		// (store.WebhookAttemptPurpose; workers.Webhooks).
		Type: EffectWebhookDeliver, Queue: QueueDefault, MaxRetry: 15, Timeout: 30 * time.Second,
		IdempotencyKey: "the webhook-id, derived from the effect id (webhooks.MessageID), so receivers can drop repeats",
		Owed:           OwedByStateChange,
	},
	{
		// Sends a timer's event (expire, request_feedback,
		// ship_date_at_risk) as the system, only if the order is still in the
		// state and state version that armed it; a stale timer is done. Queue
		// critical: a late expiry is a visible bug, and timers are cheap. The
		// event it reports is the timer's own, checked with the timer.
		Type: EffectOrderTimer, Queue: QueueCritical, MaxRetry: 10, Timeout: 15 * time.Second,
		IdempotencyKey: "the event and the row's done mark commit together",
		Owed:           OwedByTimer,
	},
}

// catalogueByType indexes catalogue.
var catalogueByType = func() map[EffectType]EffectInfo {
	m := make(map[EffectType]EffectInfo, len(catalogue))
	for _, e := range catalogue {
		m[e.Type] = e
	}
	return m
}()

// EffectOf returns the catalogue entry of an effect type; ok is false for a
// type not in the catalogue.
func EffectOf(t EffectType) (e EffectInfo, ok bool) {
	e, ok = catalogueByType[t]
	e.Reports = slices.Clone(e.Reports)
	return e, ok
}

// Effects lists the catalogue, every effect type once.
func Effects() []EffectInfo {
	out := make([]EffectInfo, len(catalogue))
	for i, e := range catalogue {
		e.Reports = slices.Clone(e.Reports)
		out[i] = e
	}
	return out
}
