package workers_test

import (
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/tasks"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// The money the old worker kept (issue 10): the provider confirmed a
// charge, the confirm was marked done with no payment recorded, the order
// was cancelled and its refund found nothing to refund. The reconciliation
// finds the charge at the provider, records it, owes the refund the flow
// asked for, and once that has run finds the order matching.
func TestReconcilerFindsAndReturnsKeptMoney(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		e := setup(t, dialect, "prepaid-simple", setupOpts{noStart: true})
		o := e.create(payments.MethodVisa)
		sandbox := payments.NewSandbox(e.db.DB)
		confirm := effectID(t, e, o.ID, tasks.TypePaymentConfirm)
		if _, err := sandbox.Confirm(ctx, payments.Request{IdempotencyKey: confirm, OrderID: o.ID, PaymentMethod: payments.MethodVisa,
			Amount: o.Total, Currency: o.Currency}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.CompleteEffect(ctx, confirm, nil); err != nil { // what the old worker did
			t.Fatal(err)
		}
		e.send(o.ID, "cancel", merchant, nil)
		if _, err := e.db.CompleteEffect(ctx, effectID(t, e, o.ID, tasks.TypePaymentRefund), nil); err != nil { // "nothing to refund"
			t.Fatal(err)
		}

		rec := workers.NewReconciler(e.db.DB, nil, workers.ReconcileOptions{Idle: time.Nanosecond})
		res, err := rec.Reconcile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Checked != 1 || res.Recorded != 1 || res.Owed != 1 || res.Unreconciled != 1 {
			t.Fatalf("first pass %+v", res)
		}
		// Looked at again while the refund is owed: not picked (a payment
		// effect is still to run), still unreconciled.
		if res, err = rec.Reconcile(ctx); err != nil || res.Checked != 0 || res.Unreconciled != 1 {
			t.Fatalf("second pass %+v %v", res, err)
		}
		e.start(fleettest.Options{})
		e.waitSettled(o.ID)
		charged, refunded, _ := netCharged(t, e.db.DB, o.ID)
		if charged != o.Total || refunded != o.Total {
			t.Fatalf("charged %d, refunded %d", charged, refunded)
		}
		if res, err = rec.Reconcile(ctx); err != nil || res.Checked != 1 || res.Matched != 1 || res.Unreconciled != 0 {
			t.Fatalf("after the refund %+v %v", res, err)
		}
		if res, err = rec.Reconcile(ctx); err != nil || res.Checked != 0 {
			t.Fatalf("a reconciled order is looked at again: %+v %v", res, err)
		}
	})
}

// Orders whose money is where the flow says are marked reconciled, once,
// and owe nothing: a delivered charge, a cancelled and refunded one, a
// request-approval card check voided.
func TestReconcilerLeavesMatchingOrdersAlone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		e := setup(t, dialect, "prepaid-simple", setupOpts{})
		kept := e.create(payments.MethodVisa)
		e.waitStatus(kept.ID, "paid")
		back := e.create(payments.MethodVisa)
		e.waitStatus(back.ID, "paid")
		e.send(back.ID, "cancel", merchant, nil)
		declined := e.create(payments.MethodChargeDeclined)
		for _, id := range []string{kept.ID, back.ID, declined.ID} {
			e.waitSettled(id)
		}
		e.waitPayments(declined.ID, func(ps []store.Payment) bool { return len(ps) == 1 })
		rec := workers.NewReconciler(e.db.DB, nil, workers.ReconcileOptions{Idle: time.Nanosecond})
		res, err := rec.Reconcile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Checked != 3 || res.Matched != 3 || res.Owed != 0 || res.Recorded != 0 || res.Unreconciled != 0 {
			t.Fatalf("%+v", res)
		}
	})
}

func effectID(t *testing.T, e *env, orderID, typ string) string {
	t.Helper()
	rows, err := e.db.Outbox(t.Context(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Type == typ {
			return rows[i].ID
		}
	}
	t.Fatalf("order %s owes no %s", orderID, typ)
	return ""
}

// A void the provider made in a run that died before recording it is
// recorded by the next run, even when another void of the same hold was
// recorded in between (the chaos suite's case: the card check's void,
// killed after the provider's answer, and the merchant's decline's void).
func TestVoidRunAgainRecordsItsEarlierAnswer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		e := setup(t, dialect, "request-approval", setupOpts{noStart: true})
		o := e.create(payments.MethodVisa)
		sandbox := payments.NewSandbox(e.db.DB)
		pay := func(id string, kind store.PaymentKind, res payments.Result, report func(store.Payment) *store.EffectReport) {
			t.Helper()
			if _, err := e.db.StartEffect(ctx, id, true); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.db.CompletePayment(ctx, id, store.Payment{OrderID: o.ID, StoreID: o.StoreID, IdempotencyKey: id, Kind: kind,
				Amount: 100, Currency: o.Currency, Status: store.PaymentSucceeded, Provider: sandbox.Name(), ProviderRef: res.Reference}, report); err != nil {
				t.Fatal(err)
			}
		}
		auth := effectID(t, e, o.ID, tasks.TypePaymentAuthorize)
		authRes, err := sandbox.Authorize(ctx, payments.Request{IdempotencyKey: auth, OrderID: o.ID, PaymentMethod: payments.MethodVisa, Amount: 100, Currency: o.Currency})
		if err != nil {
			t.Fatal(err)
		}
		pay(auth, store.PaymentAuthorize, authRes, func(p store.Payment) *store.EffectReport {
			return &store.EffectReport{Event: "payment_succeeded", Actor: packline.Actor{Type: packline.ActorPayment, ID: p.Provider}}
		})
		// The card check's void: the provider answered, the run died.
		voidA := effectID(t, e, o.ID, tasks.TypePaymentVoid)
		if _, err := sandbox.Void(ctx, payments.Request{IdempotencyKey: voidA, Reference: authRes.Reference, Amount: 100, Currency: o.Currency}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.StartEffect(ctx, voidA, true); err != nil {
			t.Fatal(err)
		}
		// The merchant declines: another void, which runs and is recorded.
		e.send(o.ID, "decline", merchant, nil)
		voidB := effectID(t, e, o.ID, tasks.TypePaymentVoid)
		resB, err := sandbox.Void(ctx, payments.Request{IdempotencyKey: voidB, Reference: authRes.Reference, Amount: 100, Currency: o.Currency})
		if err != nil {
			t.Fatal(err)
		}
		pay(voidB, store.PaymentVoid, resB, nil)

		e.start(fleettest.Options{})
		e.waitSettled(o.ID)
		keys := map[string]store.PaymentStatus{}
		for _, p := range e.payments(o.ID) {
			keys[p.IdempotencyKey] = p.Status
		}
		if keys[voidA] != store.PaymentSucceeded || keys[voidB] != store.PaymentSucceeded {
			t.Fatalf("payments %+v", e.payments(o.ID))
		}
	})
}
