package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/internal/testhook"
	"github.com/packline/packline/metrics"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
	"github.com/packline/packline/tasks"
)

// payment runs the payment:* tasks (policies in package tasks). The effect
// id is the provider's idempotency key and the payments row's key, so a
// task run twice charges once and records one attempt. The provider's
// answer, the result event (payment_succeeded or payment_failed, for
// authorize, capture and confirm) and the row's done mark commit together
// (store.CompletePayment); an answer the order no longer takes is recorded
// all the same and owes its reversal. A decline is an answer, reported to
// the order; only a provider that cannot answer makes the task retry.
func (w *worker) payment(ctx context.Context, e Effect) error {
	o := e.Order
	kind, _ := store.PaymentKindOf(e.Type)
	pay, err := w.pays.For(ctx, o.StoreID)
	if err != nil {
		return fmt.Errorf("payment provider of order %s: %w", o.ID, err)
	}
	req := payments.Request{IdempotencyKey: e.ID, OrderID: o.ID, StoreID: o.StoreID, Currency: o.Currency, Purpose: e.Effect.Purpose, Amount: e.Effect.Amount,
		Reason: dataString(e.Effect.Data, "reason")}
	var (
		res    payments.Result
		report func(store.Payment) *store.EffectReport
	)
	if e.Runs > 1 && (e.Type == tasks.TypePaymentVoid || e.Type == tasks.TypePaymentRefund) {
		// An earlier run may have voided or refunded before it died: its
		// answer is recorded as it is, whatever the order's money looks
		// like now (another reversal recorded since would make this one
		// look needless, and leave the provider's record unmatched).
		if done, err := w.recordEarlierAnswer(ctx, e, pay, kind); done || err != nil {
			return err
		}
	}
	switch e.Type {
	case tasks.TypePaymentAuthorize, tasks.TypePaymentCapture, tasks.TypePaymentConfirm:
		if e.Runs <= 1 && !w.takesPaymentResult(o) {
			// The order moved on (cancelled, expired) before the charge
			// ever ran (this is the first run, and starts are recorded
			// durably): charging now would take money no transition would
			// see. A cancellation that races past this check is covered:
			// the answer it refuses owes its reversal.
			w.log.InfoContext(ctx, "order no longer takes a payment result; not charging",
				"effect_id", e.ID, "order_id", o.ID, "status", o.Status)
			return w.complete(ctx, e, nil)
		}
		// A later run asks the provider whatever the order's state: an
		// earlier run may have moved the money before it died, and asking
		// again under the same key returns that answer.
		if req.Amount == 0 {
			req.Amount = o.Total
		}
		if req.PaymentMethod, err = w.paymentMethod(ctx, e); err != nil {
			return err
		}
		switch e.Type {
		case tasks.TypePaymentAuthorize:
			res, err = pay.Authorize(ctx, req)
		case tasks.TypePaymentCapture:
			res, err = pay.Capture(ctx, req)
		default:
			res, err = pay.Confirm(ctx, req)
		}
		report = store.PaymentResult
	case tasks.TypePaymentVoid:
		auth, done, verr := w.voidTarget(ctx, e)
		if verr != nil || done {
			if verr != nil {
				return verr
			}
			return w.complete(ctx, e, nil)
		}
		req.Reference, req.Amount, req.Purpose = auth.ProviderRef, auth.Amount, auth.Purpose
		res, err = pay.Void(ctx, req)
	case tasks.TypePaymentRefund:
		ref, amount, rerr := w.refundTarget(ctx, e)
		if rerr != nil {
			return rerr
		}
		if amount <= 0 {
			return w.complete(ctx, e, nil)
		}
		req.Reference, req.Amount = ref, amount
		res, err = pay.Refund(ctx, req)
	default:
		return fmt.Errorf("no payment operation for %s: %w", e.Type, asynq.SkipRetry)
	}
	outcome := metrics.Outcome(err)
	if err == nil && !res.OK() {
		outcome = "declined"
	}
	metrics.PaymentCall(pay.Name(), string(kind), outcome)
	if errors.Is(err, payments.ErrNoReference) {
		return fmt.Errorf("%s payment of order %s: %w: %w", kind, o.ID, err, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("%s payment of order %s: %w", kind, o.ID, err)
	}
	w.pause(ctx, "payment:answered", e)

	status := store.PaymentSucceeded
	if !res.OK() {
		status = store.PaymentFailed
	}
	if w.hold != nil {
		ctx = testhook.WithBeforeCommit(ctx, func(ctx context.Context) { w.pause(ctx, "payment:before_commit", e) })
	}
	out, _, err := w.db.CompletePayment(ctx, e.ID, store.Payment{
		OrderID: o.ID, StoreID: o.StoreID, IdempotencyKey: e.ID, Kind: kind, Purpose: req.Purpose,
		Amount: req.Amount, Currency: o.Currency, Status: status, ErrorCode: res.ErrorCode,
		Provider: pay.Name(), ProviderRef: res.Reference, PaymentMethod: req.PaymentMethod,
	}, report)
	if err != nil {
		return err
	}
	w.logOutcome(ctx, e, out)
	return nil
}

// recordEarlierAnswer records what the provider did under the effect's key
// in an earlier run, if it did anything, and finishes the effect with it;
// done reports that it did.
func (w *worker) recordEarlierAnswer(ctx context.Context, e Effect, pay payments.Provider, kind store.PaymentKind) (done bool, err error) {
	op, found, err := pay.Lookup(ctx, e.ID)
	if err != nil {
		return false, fmt.Errorf("look up %s %s: %w", kind, e.ID, err)
	}
	if !found {
		return false, nil
	}
	if store.PaymentKind(op.Kind) != kind {
		return false, fmt.Errorf("idempotency key %s was used for a %s, not a %s: %w", e.ID, op.Kind, kind, asynq.SkipRetry)
	}
	status := store.PaymentSucceeded
	if !op.OK() {
		status = store.PaymentFailed
	}
	out, _, err := w.db.CompletePayment(ctx, e.ID, store.Payment{
		OrderID: e.OrderID, StoreID: e.StoreID, IdempotencyKey: e.ID, Kind: kind, Purpose: e.Effect.Purpose,
		Amount: op.Amount, Currency: op.Currency, Status: status, ErrorCode: op.ErrorCode,
		Provider: pay.Name(), ProviderRef: op.Reference, PaymentMethod: op.PaymentMethod,
	}, nil)
	if err != nil {
		return false, err
	}
	w.logOutcome(ctx, e, out)
	return true, nil
}

// takesPaymentResult reports whether the order, as it is now, would take
// payment_succeeded or payment_failed from the payment provider.
func (w *worker) takesPaymentResult(o *packline.Order) bool {
	f := w.db.Flows().Get(o.Flow)
	if f == nil {
		return false
	}
	for _, ev := range f.AllowedEvents(o, packline.ActorPayment) {
		if name := flows.EventName(ev); name == flows.EventPaymentSucceeded || name == flows.EventPaymentFailed {
			return true
		}
	}
	return false
}

// paymentMethod is the newest payment method of the order: the one the
// event that owed the effect carried (retry_payment's data.payment_method),
// else the newest retry_payment on the timeline, else the order's own.
func (w *worker) paymentMethod(ctx context.Context, e Effect) (string, error) {
	if m := dataString(e.Effect.Data, "payment_method"); m != "" {
		return m, nil
	}
	tl, err := w.db.Timeline(ctx, e.OrderID)
	if err != nil {
		return "", err
	}
	for i := len(tl) - 1; i >= 0; i-- {
		if flows.EventName(tl[i].Event) == flows.EventRetryPayment {
			if m := dataString(tl[i].Data, "payment_method"); m != "" {
				return m, nil
			}
		}
	}
	return e.Order.PaymentMethod, nil
}

func dataString(raw json.RawMessage, key string) string {
	if len(raw) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

// errAuthorizationRunning retries a void that overtook the authorization it
// is meant to release.
var errAuthorizationRunning = errors.New("the authorization to void has not answered yet")

// voidTarget finds the authorization a void releases: the order's newest
// successful authorization, as the provider made it. done is set when there
// is nothing to void (the check failed, or a void succeeded already, so an
// already voided check is done); an authorization still running makes the
// void retry.
func (w *worker) voidTarget(ctx context.Context, e Effect) (auth store.Payment, done bool, err error) {
	rows, err := w.db.Outbox(ctx, e.OrderID)
	if err != nil {
		return auth, false, err
	}
	for _, r := range rows {
		if r.Type == tasks.TypePaymentAuthorize && !r.Final() {
			return auth, false, errAuthorizationRunning
		}
	}
	ps, err := w.payments(ctx, e, rows, tasks.TypePaymentAuthorize)
	if err != nil {
		return auth, false, err
	}
	found := false
	for _, p := range ps {
		switch {
		case p.Kind == store.PaymentVoid && p.Status == store.PaymentSucceeded && p.IdempotencyKey != e.ID:
			return auth, true, nil
		case p.Kind == store.PaymentAuthorize && p.Status == store.PaymentSucceeded:
			auth, found = p, true
		}
	}
	return auth, !found, nil
}

// errChargeRunning retries a refund that overtook a charge of the same order:
// a cancellation owes its refund at once, and the charge it races may still
// take money.
var errChargeRunning = errors.New("a charge of this order has not finished yet")

// errRefundRunning retries a refund while an older refund of the same order
// is still to run: refunds of one order run one after the other, so each
// sees what the ones before it gave back.
var errRefundRunning = errors.New("an earlier refund of this order has not finished yet")

// refundTarget returns the charge to refund (the newest successful capture
// or confirm) and the amount: the effect's, or what the charges took less
// what was refunded already, as the provider made them. While a capture or
// confirm of the order, or an older refund, is still running it returns
// errChargeRunning or errRefundRunning, so the refund sees their results.
func (w *worker) refundTarget(ctx context.Context, e Effect) (ref string, amount int64, err error) {
	rows, err := w.db.Outbox(ctx, e.OrderID)
	if err != nil {
		return "", 0, err
	}
	for _, r := range rows {
		if r.Final() || r.ID == e.ID {
			continue
		}
		switch {
		case r.Type == tasks.TypePaymentCapture || r.Type == tasks.TypePaymentConfirm:
			return "", 0, errChargeRunning
		case r.Type == tasks.TypePaymentRefund && (r.CreatedAt.Before(e.CreatedAt) || r.CreatedAt.Equal(e.CreatedAt) && r.ID < e.ID):
			return "", 0, errRefundRunning
		}
	}
	ps, err := w.payments(ctx, e, rows, tasks.TypePaymentCapture, tasks.TypePaymentConfirm)
	if err != nil {
		return "", 0, err
	}
	var charged, refunded int64
	for _, p := range ps {
		if p.Status != store.PaymentSucceeded {
			continue
		}
		switch p.Kind {
		case store.PaymentCapture, store.PaymentConfirm:
			charged += p.Amount
			ref = p.ProviderRef
		case store.PaymentRefund:
			if p.IdempotencyKey == e.ID {
				// This effect's own refund, recorded by an earlier run that
				// died before marking the row done: nothing more to do.
				return "", 0, nil
			}
			refunded += p.Amount
		}
	}
	amount = charged - refunded
	if e.Effect.Amount > 0 && e.Effect.Amount < amount {
		amount = e.Effect.Amount
	}
	return ref, amount, nil
}

// payments returns the order's payments as the provider made them: the
// recorded ones, and for every finished effect of the given types that
// has no record, what the provider did under its key, recorded now (an
// effect that died between the provider's answer and its commit, before
// the fix that made those one transaction, left none).
func (w *worker) payments(ctx context.Context, e Effect, rows []store.OutboxRow, types ...string) ([]store.Payment, error) {
	ps, err := w.db.Payments(ctx, e.OrderID)
	if err != nil {
		return nil, err
	}
	pay, err := w.pays.For(ctx, e.StoreID)
	if err != nil {
		return nil, err
	}
	missing, err := MissingPayments(ctx, w.db, pay, e.OrderID, e.StoreID, rows, ps, types...)
	if err != nil {
		return nil, err
	}
	for _, p := range missing {
		w.log.WarnContext(ctx, "payment found at the provider, not in the records: recorded now",
			"effect_id", e.ID, "order_id", e.OrderID, "payment_key", p.IdempotencyKey, "kind", p.Kind, "status", p.Status)
	}
	return append(ps, missing...), nil
}

// MissingPayments asks the provider about every finished payment effect of
// the given types among rows that has no payment in ps, and records what it
// did: the payments found at the provider only.
func MissingPayments(ctx context.Context, db *store.DB, pay payments.Provider, orderID, storeID string, rows []store.OutboxRow, ps []store.Payment, types ...string) ([]store.Payment, error) {
	recorded := make(map[string]bool, len(ps))
	for _, p := range ps {
		recorded[p.IdempotencyKey] = true
	}
	var found []store.Payment
	for _, r := range rows {
		if !r.Final() || recorded[r.ID] || !slices.Contains(types, r.Type) {
			continue
		}
		op, ok, err := pay.Lookup(ctx, r.ID)
		if err != nil {
			return nil, fmt.Errorf("look up payment %s of order %s: %w", r.ID, orderID, err)
		}
		if !ok || "payment:"+op.Kind != r.Type {
			continue
		}
		status := store.PaymentSucceeded
		if !op.OK() {
			status = store.PaymentFailed
		}
		var purpose string
		if eff, err := r.Effect(); err == nil {
			purpose = eff.Purpose
		}
		p, err := db.RecordPayment(ctx, store.Payment{OrderID: orderID, StoreID: storeID, IdempotencyKey: r.ID, Kind: store.PaymentKind(op.Kind),
			Purpose: purpose, Amount: op.Amount, Currency: op.Currency, Status: status, ErrorCode: op.ErrorCode,
			Provider: pay.Name(), ProviderRef: op.Reference, PaymentMethod: op.PaymentMethod})
		if err != nil {
			return nil, err
		}
		found = append(found, p)
	}
	return found, nil
}
