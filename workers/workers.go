// Package workers runs the effects that order transitions owe: one Asynq
// handler per task type of package tasks, one file per domain (payment.go,
// stock.go, timer.go, and external.go where the courier, notification and
// webhook handlers plug in), the mux with its middleware, and the server.
//
// Every handler follows one protocol, in run: decode the payload, mark the
// outbox row started, and do nothing when it is done or failed already; do
// the work idempotently (the effect id is the idempotency key); then report
// the result to the order and mark the row done in one transaction, so a
// task run twice, or by two workers at once, changes the world once. A
// failed run records attempts and last_error; the last one (or a permanent
// error, wrapped in asynq.SkipRetry) marks the row failed.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
	"github.com/packline/packline/tasks"
)

// Deps is what the handlers need. DB is required; the rest have defaults or
// are optional.
type Deps struct {
	DB *store.DB
	// Payments picks each store's payment provider (payments.Accounts: its
	// own Stripe account, else the sandbox); nil means the sandbox on DB
	// for every store.
	Payments payments.Resolver
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics observes each task run; nil observes nothing.
	Metrics Metrics

	// The handlers of the effects that talk to the outside world, written
	// with the couriers, notify and webhooks packages. A nil one registers
	// no handler: its rows are not relayed (see HandledTypes) and stay
	// pending, visible in the outbox, never faked.
	Courier  EffectHandler // courier:label; reports label_created
	Email    EffectHandler // notify:email
	SMS      EffectHandler // notify:sms
	Webhooks EffectHandler // webhook:deliver

	// hold, when set, is called at named points in the middle of a task:
	// "payment:answered" (the provider has answered; nothing is recorded
	// yet) and "stock:before_commit" (stock is moved inside the open
	// transaction). Only this package's tests set it (WithHold, in
	// export_test.go), to kill a worker at a known point.
	hold func(ctx context.Context, point string, e Effect)
}

// Effect is one effect a handler runs: the outbox row, decoded.
type Effect struct {
	// ID is the effect id: the idempotency key for every outside call.
	ID      string
	Type    string
	OrderID string
	StoreID string
	// Version is the order version whose transition owed the effect.
	Version int64
	// Effect is the effect's payload (template, recipient, webhook type,
	// amount, the event that owed it and its data); zero for a timer.
	Effect flows.Effect
	// Order is the order as it is now (nil for stock and timer handlers,
	// which read what they need inside their transaction).
	Order *packline.Order
	// CreatedAt is when the transition that owed the effect committed.
	CreatedAt time.Time
	// Retry is how many times Asynq retried this task before.
	Retry int
	// Runs counts the runs a worker began of the effect, this one
	// included, across deliveries and crashes (Retry restarts at 0 when the
	// relay hands a lost task over again).
	Runs int
}

// Report is what an outside effect tells its order: an event (e.g.
// label_created) with optional data, sent as the system actor. A nil Report
// reports nothing.
type Report struct {
	Event string
	Data  map[string]any
	Note  string
	// Done says the handler marked the row done itself, in the
	// transaction that recorded its outside call (the notifier's sent
	// mark): there is nothing left to report or mark.
	Done bool
}

// EffectHandler runs one kind of outside effect. It must pass e.ID to the
// outside service as the idempotency key (or webhook-id), so that a retry
// after a crash does not act twice. A returned error retries the task,
// unless it wraps asynq.SkipRetry.
type EffectHandler interface {
	HandleEffect(ctx context.Context, e Effect) (*Report, error)
}

// OrderReader is an EffectHandler that reads what it needs of the order
// itself: it is handed no Effect.Order, which saves the two reads.
type OrderReader interface {
	EffectHandler
	ReadsOrder()
}

// EffectHandlerFunc adapts a function to EffectHandler.
type EffectHandlerFunc func(ctx context.Context, e Effect) (*Report, error)

// HandleEffect implements EffectHandler.
func (f EffectHandlerFunc) HandleEffect(ctx context.Context, e Effect) (*Report, error) {
	return f(ctx, e)
}

// Metrics observes task runs. metrics.ObserveEffect fits, through MetricsFunc.
type Metrics interface {
	ObserveEffect(taskType, outcome string, d time.Duration)
}

// MetricsFunc adapts a function to Metrics.
type MetricsFunc func(taskType, outcome string, d time.Duration)

// ObserveEffect implements Metrics.
func (f MetricsFunc) ObserveEffect(taskType, outcome string, d time.Duration) {
	f(taskType, outcome, d)
}

// HandledTypes lists the task types a mux built from deps handles: payment,
// stock and timers always, courier, notify and webhook ones when their
// handler is set. Give it to the relay (relay.Options.Types) so the rows of
// the other types stay pending in the database rather than fail in Redis.
func HandledTypes(deps Deps) []string {
	out := []string{
		tasks.TypePaymentAuthorize, tasks.TypePaymentCapture, tasks.TypePaymentConfirm,
		tasks.TypePaymentVoid, tasks.TypePaymentRefund,
		tasks.TypeStockDecrement, tasks.TypeStockRestore,
		tasks.TypeOrderTimer,
	}
	for _, x := range deps.external() {
		if x.h != nil {
			out = append(out, x.typ)
		}
	}
	return out
}

type external struct {
	typ string
	h   EffectHandler
}

func (d Deps) external() []external {
	return []external{
		{tasks.TypeCourierLabel, d.Courier},
		{tasks.TypeNotifyEmail, d.Email},
		{tasks.TypeNotifySMS, d.SMS},
		{tasks.TypeWebhookDeliver, d.Webhooks},
	}
}

// worker holds the handlers' dependencies.
type worker struct {
	db   *store.DB
	pays payments.Resolver
	log  *slog.Logger
	hold func(ctx context.Context, point string, e Effect)
}

// NewMux returns the mux with every handler deps allows registered, and the
// logging, metrics and panic-recovery middleware.
func NewMux(deps Deps) *asynq.ServeMux {
	if deps.DB == nil {
		panic("workers: Deps.DB is required")
	}
	w := &worker{db: deps.DB, pays: deps.Payments, log: deps.Logger, hold: deps.hold}
	if w.pays == nil {
		w.pays = payments.Single(payments.NewSandbox(deps.DB))
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	mux := asynq.NewServeMux()
	mux.Use(logging(w.log, deps.Metrics), recovery(w.log))
	for _, typ := range []string{tasks.TypePaymentAuthorize, tasks.TypePaymentCapture, tasks.TypePaymentConfirm,
		tasks.TypePaymentVoid, tasks.TypePaymentRefund} {
		mux.Handle(typ, w.run(true, w.payment))
	}
	mux.Handle(tasks.TypeStockDecrement, w.run(false, w.stockDecrement))
	mux.Handle(tasks.TypeStockRestore, w.run(false, w.stockRestore))
	mux.Handle(tasks.TypeOrderTimer, w.run(false, w.timer))
	for _, x := range deps.external() {
		if x.h != nil {
			_, selfReading := x.h.(OrderReader)
			mux.Handle(x.typ, w.run(!selfReading, w.outside(x.h)))
		}
	}
	return mux
}

// run wraps a handler in the protocol every effect follows (see the package
// doc). withOrder loads the order for the handler.
func (w *worker) run(withOrder bool, fn func(ctx context.Context, e Effect) error) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
		p, err := tasks.Parse(t)
		if err != nil {
			return err
		}
		info, _ := flows.EffectOf(flows.EffectType(p.Type))
		start, err := w.db.StartEffect(ctx, p.EffectID, info.Money)
		if packline.ErrorCode(err) == packline.ENOTFOUND {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		if err != nil {
			return err
		}
		if start.Final {
			return nil
		}
		defer func() {
			if r := recover(); r != nil {
				w.log.ErrorContext(ctx, "task panicked", "effect_id", p.EffectID, "type", t.Type(), "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic in %s: %v", t.Type(), r)
			}
			if err != nil {
				w.failed(ctx, p.EffectID, err)
			}
		}()
		// The task carries the row as the relay read it; the row's effect
		// and timer never change after the commit that wrote them, so the
		// worker reads nothing more of it.
		e := Effect{ID: p.EffectID, Type: p.Type, OrderID: p.OrderID, StoreID: p.StoreID, Version: p.Version, CreatedAt: p.CreatedAt, Runs: start.Runs}
		e.Retry, _ = asynq.GetRetryCount(ctx)
		if p.Type != store.TimerType {
			if p.Effect == nil {
				return fmt.Errorf("%s task %s carries no effect: %w", p.Type, p.EffectID, asynq.SkipRetry)
			}
			e.Effect = *p.Effect
		}
		if withOrder {
			e.Order, err = w.db.GetOrder(ctx, p.StoreID, p.OrderID)
			if packline.ErrorCode(err) == packline.ENOTFOUND {
				return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
			if err != nil {
				return err
			}
		}
		return fn(ctx, e)
	})
}

// failed records a failed run on the row; the last retry, or a permanent
// error, marks it failed.
func (w *worker) failed(ctx context.Context, id string, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, known := asynq.GetMaxRetry(ctx)
	// Outside an Asynq server (a task run by hand) no retry budget is
	// known: only a permanent error is final.
	final := errors.Is(err, asynq.SkipRetry) || (known && retried >= maxRetry)
	// The task's context may be past its deadline; the record must still be
	// written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ferr := w.db.FailEffect(ctx, id, err.Error(), final); ferr != nil {
		w.log.ErrorContext(ctx, "record effect failure", "effect_id", id, "err", ferr)
	}
}

// complete reports an effect's result and marks it done, logging what the
// order made of it.
func (w *worker) complete(ctx context.Context, e Effect, rep *store.EffectReport) error {
	out, err := w.db.CompleteEffect(ctx, e.ID, rep)
	if err != nil {
		return err
	}
	w.logOutcome(ctx, e, out)
	return nil
}

func (w *worker) logOutcome(ctx context.Context, e Effect, out store.EffectOutcome) {
	switch {
	case out.AlreadyDone:
		w.log.DebugContext(ctx, "effect was done already", "effect_id", e.ID, "type", e.Type, "order_id", e.OrderID)
	case out.Refused != nil:
		w.log.InfoContext(ctx, "order did not take the effect's result", "effect_id", e.ID, "type", e.Type,
			"order_id", e.OrderID, "reason", packline.ErrorMessage(out.Refused))
	}
}

func (w *worker) pause(ctx context.Context, point string, e Effect) {
	if w.hold != nil {
		w.hold(ctx, point, e)
	}
}

func systemActor(effectID string) packline.Actor {
	return packline.Actor{Type: packline.ActorSystem, ID: effectID}
}
