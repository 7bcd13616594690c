// Package tasks is the contract between the relay, which turns outbox rows
// into Asynq tasks, and the workers, which run them: the task types (one per
// effect, in domain:verb form, equal to the outbox row's type), the one
// payload every task carries, the queues and their weights, and New, the one
// constructor that sets queue, retries, timeout, TaskID and ProcessAt.
//
// Every task is idempotent by its effect id: the outbox row it names is the
// source of truth, a worker that finds the row done does nothing, and the
// effect id is the idempotency key passed to every outside provider.
package tasks

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/flows"
)

// Task types. Each is the type of the outbox rows it runs; the names are
// stored (in the outbox and in Redis) and are never renamed.
const (
	// TypePaymentAuthorize holds an amount on the customer's payment method
	// (request-approval's 1.00 card check) and reports payment_succeeded or
	// payment_failed. Queue critical; MaxRetry 10; Timeout 30s; idempotency
	// key: the effect id, passed to the provider. A decline is an answer,
	// not an error: it is reported and the task ends. Gives up (row failed)
	// after 10 retries of transient provider errors, or at once (SkipRetry)
	// on a malformed payload or a missing order.
	TypePaymentAuthorize = "payment:authorize"
	// TypePaymentCapture charges the full amount (request-approval's accept
	// and retry_payment) with the newest payment method and reports
	// payment_succeeded or payment_failed. Same policy as authorize.
	TypePaymentCapture = "payment:capture"
	// TypePaymentConfirm asks the provider for the checkout payment of a new
	// order (made-to-order, prepaid-simple) and reports payment_succeeded or
	// payment_failed. Same policy as authorize.
	TypePaymentConfirm = "payment:confirm"
	// TypePaymentVoid releases the card-check authorization. It reports no
	// event; a check already voided, or one that never succeeded, is done.
	// While the authorization it voids is still being run it retries (up to
	// 10 times), so a decline that overtakes the check still releases it.
	TypePaymentVoid = "payment:void"
	// TypePaymentRefund gives back what the order's charges took, less what
	// was refunded. It reports no event. Same policy as authorize.
	TypePaymentRefund = "payment:refund"
	// TypeStockDecrement takes every line of the order from stock or none,
	// and reports stock_taken or stock_short (data: short SKUs). Queue
	// critical; MaxRetry 10; Timeout 15s; idempotency: the stock ledger's one
	// row per (order, sku, kind), written in the transaction that moves the
	// stock, reports the event and marks the row done. Gives up after 10
	// retries of database errors.
	TypeStockDecrement = "stock:decrement"
	// TypeStockRestore gives back what the ledger says the order took, once.
	// Same policy as TypeStockDecrement; reports no event.
	TypeStockRestore = "stock:restore"
	// TypeCourierLabel buys a courier label and reports label_created. Queue
	// default; MaxRetry 12; Timeout 60s; idempotency key: the order id,
	// passed to the courier, so an order gets one label however many effects
	// ask. Gives up (SkipRetry) on an unknown courier or a request the
	// courier refuses (workers/courier.go).
	TypeCourierLabel = "courier:label"
	// TypeNotifyEmail sends one email. Queue low; MaxRetry 8; Timeout 30s;
	// idempotency key: notify.Key(effect id, template), the key of the
	// message's row (one email per transition and template). Its handler
	// is workers.Notifier.
	TypeNotifyEmail = "notify:email"
	// TypeNotifySMS sends one SMS. Same policy as TypeNotifyEmail.
	TypeNotifySMS = "notify:sms"
	// TypeWebhookDeliver delivers one webhook event to one store's
	// endpoints. Queue default; MaxRetry 15; Timeout 30s; the webhook-id is
	// derived from the effect id (webhooks.MessageID), so receivers can drop
	// repeats. The same type runs each attempt of one delivery, as an outbox
	// row of its own due at its retry time (store.WebhookAttemptPurpose);
	// see workers.Webhooks.
	TypeWebhookDeliver = "webhook:deliver"
	// TypeOrderTimer sends a timer's event (expire, request_feedback,
	// ship_date_at_risk) only if the order is still in the state and state
	// version that armed it; a stale timer is done. Queue critical (a late
	// expiry is a visible bug, and timers are cheap); MaxRetry 10; Timeout
	// 15s; idempotency: the event and the row's done mark commit together.
	TypeOrderTimer = "order:timer"
)

// Queues.
const (
	QueueCritical = "critical" // payment, stock, order:timer
	QueueDefault  = "default"  // courier, webhook
	QueueLow      = "low"      // notify
)

// Queues maps each queue to its weight for asynq.Config.Queues: when all
// are busy, critical gets 6 of 10 pickups, default 3, low 1.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}

// Policy is how one task type is run.
type Policy struct {
	Queue    string
	MaxRetry int
	Timeout  time.Duration
}

var policies = map[string]Policy{
	TypePaymentAuthorize: {QueueCritical, 10, 30 * time.Second},
	TypePaymentCapture:   {QueueCritical, 10, 30 * time.Second},
	TypePaymentConfirm:   {QueueCritical, 10, 30 * time.Second},
	TypePaymentVoid:      {QueueCritical, 10, 30 * time.Second},
	TypePaymentRefund:    {QueueCritical, 10, 30 * time.Second},
	TypeStockDecrement:   {QueueCritical, 10, 15 * time.Second},
	TypeStockRestore:     {QueueCritical, 10, 15 * time.Second},
	TypeOrderTimer:       {QueueCritical, 10, 15 * time.Second},
	TypeCourierLabel:     {QueueDefault, 12, 60 * time.Second},
	TypeWebhookDeliver:   {QueueDefault, 15, 30 * time.Second},
	TypeNotifyEmail:      {QueueLow, 8, 30 * time.Second},
	TypeNotifySMS:        {QueueLow, 8, 30 * time.Second},
}

// PolicyOf returns the policy of a task type; ok is false for an unknown type.
func PolicyOf(typ string) (Policy, bool) {
	p, ok := policies[typ]
	return p, ok
}

// Types lists every task type.
func Types() []string {
	out := make([]string, 0, len(policies))
	for t := range policies {
		out = append(out, t)
	}
	return out
}

// MaxTimeout is the longest Timeout of any type: a relay must not redeliver a
// task sooner than this after a worker started it.
const MaxTimeout = 60 * time.Second

// Payload is what every task carries: the outbox row it runs, and the effect
// or timer for logs and handlers that need nothing else. The row in the
// database stays the truth: a worker reads it before acting.
type Payload struct {
	EffectID string        `json:"effect_id"`
	OrderID  string        `json:"order_id"`
	StoreID  string        `json:"store_id"`
	Version  int64         `json:"version"`
	Type     string        `json:"type"`
	Effect   *flows.Effect `json:"effect,omitempty"`
	Timer    *flows.Timer  `json:"timer,omitempty"`
	// Delivery is 1 for the relay's first hand-over, n for the n-th.
	Delivery int `json:"delivery"`
	// CreatedAt is when the row was committed (a webhook's timestamp).
	CreatedAt time.Time `json:"created_at"`
}

// TaskID is the Asynq task id of the n-th delivery of an effect: the effect
// id itself for the first, so the relay re-sending it is a no-op
// (ErrTaskIDConflict), and the effect id with "-r<n>" for a redelivery of a
// task Redis lost (or a worker died holding).
func TaskID(effectID string, delivery int) string {
	if delivery <= 1 {
		return effectID
	}
	return effectID + "-r" + strconv.Itoa(delivery)
}

// EffectIDOf returns the effect id a task id was made from.
func EffectIDOf(taskID string) string {
	if i := strings.LastIndex(taskID, "-r"); i > 0 {
		return taskID[:i]
	}
	return taskID
}

// New returns the task for a payload, with its type's queue, MaxRetry and
// Timeout, TaskID from the effect id and delivery, and, for a timer not yet
// due by this host's clock, ProcessAt its run time. extra options come last
// and win: the relay, which hands over only rows due by the store's clock,
// passes asynq.ProcessIn(0) so that clock skew between hosts never delays a
// due timer.
func New(p Payload, extra ...asynq.Option) (*asynq.Task, error) {
	pol, ok := policies[p.Type]
	if !ok {
		return nil, fmt.Errorf("tasks: unknown task type %q", p.Type)
	}
	if p.EffectID == "" || p.OrderID == "" {
		return nil, fmt.Errorf("tasks: %s task needs an effect id and an order id", p.Type)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: encode %s payload: %w", p.Type, err)
	}
	opts := []asynq.Option{
		asynq.Queue(pol.Queue),
		asynq.MaxRetry(pol.MaxRetry),
		asynq.Timeout(pol.Timeout),
		asynq.TaskID(TaskID(p.EffectID, p.Delivery)),
	}
	if p.Timer != nil && p.Timer.RunAt.After(time.Now()) {
		opts = append(opts, asynq.ProcessAt(p.Timer.RunAt))
	}
	return asynq.NewTask(p.Type, b, append(opts, extra...)...), nil
}

// Parse decodes a task's payload; the error wraps asynq.SkipRetry, since a
// payload that cannot be read never will be.
func Parse(t *asynq.Task) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	if p.EffectID == "" {
		return p, fmt.Errorf("%s payload has no effect id: %w", t.Type(), asynq.SkipRetry)
	}
	return p, nil
}
