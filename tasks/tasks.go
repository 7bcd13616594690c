// Package tasks is the contract between the relay, which turns outbox rows
// into Asynq tasks, and the workers, which run them: the task types (one per
// effect of the catalogue in package flows, equal to the outbox row's type),
// the one payload every task carries, the queues' weights, and New, the one
// constructor that sets queue, retries and timeout (from the catalogue),
// TaskID and ProcessAt.
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

// Task types: the effect types of the catalogue (flows.Effects), as the
// strings Asynq and the outbox rows carry. What each does, its policy, its
// idempotency key and the events it reports are in its catalogue entry.
const (
	TypePaymentAuthorize = string(flows.EffectPaymentAuthorize)
	TypePaymentCapture   = string(flows.EffectPaymentCapture)
	TypePaymentConfirm   = string(flows.EffectPaymentConfirm)
	TypePaymentVoid      = string(flows.EffectPaymentVoid)
	TypePaymentRefund    = string(flows.EffectPaymentRefund)
	TypeStockDecrement   = string(flows.EffectStockDecrement)
	TypeStockRestore     = string(flows.EffectStockRestore)
	TypeCourierLabel     = string(flows.EffectCourierLabel)
	TypeNotifyEmail      = string(flows.EffectNotifyEmail)
	TypeNotifySMS        = string(flows.EffectNotifySMS)
	TypeWebhookDeliver   = string(flows.EffectWebhookDeliver)
	TypeOrderTimer       = string(flows.EffectOrderTimer)
)

// Queues, named by the catalogue.
const (
	QueueCritical = flows.QueueCritical
	QueueDefault  = flows.QueueDefault
	QueueLow      = flows.QueueLow
)

// Queues maps each queue to its weight for asynq.Config.Queues: when all
// are busy, critical gets 6 of 10 pickups, default 3, low 1.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}

// Policy is how one task type is run: its catalogue entry's queue, MaxRetry
// and Timeout.
type Policy struct {
	Queue    string
	MaxRetry int
	Timeout  time.Duration
}

// PolicyOf returns the policy of a task type; ok is false for an unknown type.
func PolicyOf(typ string) (Policy, bool) {
	e, ok := flows.EffectOf(flows.EffectType(typ))
	return Policy{Queue: e.Queue, MaxRetry: e.MaxRetry, Timeout: e.Timeout}, ok
}

// Types lists every task type, in catalogue order.
func Types() []string {
	var out []string
	for _, e := range flows.Effects() {
		out = append(out, string(e.Type))
	}
	return out
}

// MaxTimeout is the longest Timeout of any type: a relay must not redeliver a
// task sooner than this after a worker started it.
var MaxTimeout = func() time.Duration {
	var d time.Duration
	for _, e := range flows.Effects() {
		d = max(d, e.Timeout)
	}
	return d
}()

// Payload is what every task carries: the outbox row it runs, with its
// effect or timer, as relay.Task made it from the row. A row's effect and
// timer never change after the commit that wrote them, so a worker runs
// from the payload; the row's status stays the truth, and a worker that
// finds it done or failed (one UPDATE that marks it started) does nothing.
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
	pol, ok := PolicyOf(p.Type)
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
