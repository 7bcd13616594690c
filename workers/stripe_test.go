package workers_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/payments/stripetest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// stripeSetup is setup with the store on its own Stripe account, Stripe
// being stripe-mock behind stripetest's proxy, and the fleet paying through
// payments.Accounts as production does.
func stripeSetup(t *testing.T, dialect, flow string, o setupOpts) (*env, *stripetest.Server, *payments.Accounts) {
	t.Helper()
	fake := stripetest.Start(t)
	keys := stripetest.Keyring(t)
	o.noStart = true
	e := setup(t, dialect, flow, o)
	acc := &payments.Accounts{DB: e.db.DB, Keys: keys, StripeURL: fake.URL, Production: true}
	// A test key, in production: the store is marked test.
	if _, err := e.db.SetStoreTestMode(t.Context(), e.store.Name, true); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.PutStripe(t.Context(), e.store.ID, stripetest.Key, "whsec_test_0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	fo := o.fleet
	fo.Deps.Payments = acc
	e.start(fo)
	return e, fake, acc
}

// stripePayments waits for the order's effects to settle and returns its
// payments, checking that every one went through Stripe.
func stripePayments(t *testing.T, e *env, orderID string) []store.Payment {
	t.Helper()
	e.waitSettled(orderID)
	ps := e.payments(orderID)
	for _, p := range ps {
		if p.Provider != "stripe" || p.ProviderRef == "" && p.Status == store.PaymentSucceeded {
			t.Fatalf("payment not made through Stripe: %+v", p)
		}
	}
	return ps
}

// 000: the checkout payment is a confirmed PaymentIntent; cancelling the
// paid order refunds it through Stripe.
func TestStripeMadeToOrderPaidThenCancelRefunds(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e, fake, _ := stripeSetup(t, dialect, "made-to-order", setupOpts{})
		o := e.create(payments.MethodVisa)
		e.waitStatus(o.ID, "in_production")
		e.send(o.ID, "cancel", merchant, nil)
		e.waitStatus(o.ID, "cancelled")
		e.waitPayments(o.ID, func(ps []store.Payment) bool { return len(ps) == 2 })
		ps := stripePayments(t, e, o.ID)
		if ps[0].Kind != "confirm" || ps[0].Status != "succeeded" || ps[0].Amount != 2000 || !strings.HasPrefix(ps[0].ProviderRef, "pi_") ||
			ps[1].Kind != "refund" || ps[1].Status != "succeeded" || ps[1].Amount != 2000 || !strings.HasPrefix(ps[1].ProviderRef, "re_") {
			t.Fatalf("payments %+v", ps)
		}
		pi := fake.Intent(ps[0].ProviderRef)
		if md := pi["metadata"].(map[string]any); md[payments.MetaOrderID] != o.ID || md[payments.MetaStoreID] != e.store.ID || md[payments.MetaEffectID] != ps[0].IdempotencyKey {
			t.Fatalf("intent metadata %v", md)
		}
		if rfs := fake.Refunds(); len(rfs) != 1 || rfs[0]["payment_intent"] != ps[0].ProviderRef {
			t.Fatalf("refunds %v", rfs)
		}
	})
}

// 000: a declined card is an answer: payment_failed with Stripe's code.
func TestStripeMadeToOrderDeclined(t *testing.T) {
	e, _, _ := stripeSetup(t, "sqlite", "made-to-order", setupOpts{})
	o := e.create(payments.MethodChargeDeclinedFunds)
	e.waitEvent(o.ID, "payment_failed")
	ps := stripePayments(t, e, o.ID)
	if len(ps) != 1 || ps[0].Status != "failed" || ps[0].ErrorCode != "insufficient_funds" || e.order(o.ID).Status != "pending_payment" {
		t.Fatalf("payments %+v, status %s", ps, e.order(o.ID).Status)
	}
}

// 002: the 1.00 card check is a manual-capture intent, voided by
// cancelling it; accepting charges (declined: pending_payment); a retry
// with another card charges.
func TestStripeRequestApprovalCheckChargeRetry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e, fake, _ := stripeSetup(t, dialect, "request-approval", setupOpts{})
		o := e.create(payments.MethodChargeCustomerFail)
		e.waitFlag(o.ID, "card_checked")
		e.send(o.ID, "accept", merchant, nil)
		e.waitStatus(o.ID, "pending_payment")
		e.send(o.ID, "retry_payment", customer, map[string]any{"payment_method": payments.MethodVisa})
		e.waitFlag(o.ID, "paid")
		e.send(o.ID, "complete", merchant, nil)
		ps := stripePayments(t, e, o.ID)
		var got []string
		var auth store.Payment
		for _, p := range ps {
			got = append(got, string(p.Kind)+":"+string(p.Status))
			if p.Kind == "authorize" {
				auth = p
			}
		}
		// The void and the first charge run side by side: either order.
		slices.Sort(got)
		want := "authorize:succeeded capture:failed capture:succeeded void:succeeded"
		if strings.Join(got, " ") != want {
			t.Fatalf("payments %s, want %s", strings.Join(got, " "), want)
		}
		pi := fake.Intent(auth.ProviderRef)
		if pi["capture_method"] != "manual" || pi["status"] != "canceled" || auth.Amount != 100 || pi["currency"] != "usd" {
			t.Fatalf("card check intent %v", pi)
		}
	})
}

// 004: prepaid, then cancelled: confirm and refund through Stripe.
func TestStripePrepaidSimpleCancelRefunds(t *testing.T) {
	e, _, _ := stripeSetup(t, "sqlite", "prepaid-simple", setupOpts{})
	o := e.create(payments.MethodVisa)
	e.waitFlag(o.ID, "paid")
	e.send(o.ID, "cancel", customer, nil)
	e.waitPayments(o.ID, func(ps []store.Payment) bool { return len(ps) == 2 })
	ps := stripePayments(t, e, o.ID)
	if ps[0].Kind != "confirm" || ps[1].Kind != "refund" || ps[1].Amount != ps[0].Amount || ps[1].Status != "succeeded" {
		t.Fatalf("payments %+v", ps)
	}
}

// The reconciliation asks Stripe: a payment Stripe made whose record was
// lost is found by Lookup and recorded.
func TestStripeReconcileRecordsWhatStripeMade(t *testing.T) {
	e, _, acc := stripeSetup(t, "sqlite", "prepaid-simple", setupOpts{})
	o := e.create(payments.MethodVisa)
	e.waitFlag(o.ID, "paid")
	e.waitSettled(o.ID)
	ctx := t.Context()
	if _, err := e.db.SQL().ExecContext(ctx, e.db.SQL().Rebind(`DELETE FROM payments WHERE order_id = ?`), o.ID); err != nil {
		t.Fatal(err)
	}
	rec := workers.NewReconciler(e.db.DB, acc, workers.ReconcileOptions{Idle: time.Nanosecond})
	fleettest.WaitFor(t, wait, "the reconciliation to record the payment", func() bool {
		res, err := rec.Reconcile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res.Recorded == 1
	})
	ps := e.payments(o.ID)
	if len(ps) != 1 || ps[0].Provider != "stripe" || ps[0].Kind != "confirm" || ps[0].Status != "succeeded" || !strings.HasPrefix(ps[0].ProviderRef, "pi_") {
		t.Fatalf("payments %+v", ps)
	}
}

// One store's Stripe down does not stop the reconciliation of the other
// stores (in production, a store with no account is still asked of what
// the sandbox did for it); the store's orders are looked at again later.
func TestStripeReconcileOneStoreDown(t *testing.T) {
	e, fake, acc := stripeSetup(t, "sqlite", "prepaid-simple", setupOpts{})
	ctx := t.Context()
	o := e.create(payments.MethodVisa)
	e.waitFlag(o.ID, "paid")
	e.waitSettled(o.ID)
	if _, err := e.db.SQL().ExecContext(ctx, e.db.SQL().Rebind(`DELETE FROM payments WHERE order_id = ?`), o.ID); err != nil {
		t.Fatal(err)
	}
	cod, _, _, err := e.db.CreateStore(ctx, "cod", "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.db.CreateOrder(ctx, cod.ID, packline.Order{Currency: "USD", Customer: packline.Customer{Name: "Bo", Email: "bo@example.com"},
		Lines: []packline.Line{line("MUG-1", 1)}}, customer, nil); err != nil {
		t.Fatal(err)
	}
	rec := workers.NewReconciler(e.db.DB, acc, workers.ReconcileOptions{Idle: time.Nanosecond})
	time.Sleep(10 * time.Millisecond)
	fake.FailNext(503) // the SDK does not retry Stripe's own 5xx answers: the task (or the next pass) does
	res, err := rec.Reconcile(ctx)
	if err == nil || !strings.Contains(err.Error(), o.ID) || res.Checked != 1 || res.Matched != 1 {
		t.Fatalf("pass with one store's Stripe down: %+v %v", res, err)
	}
	res, err = rec.Reconcile(ctx)
	if err != nil || res.Recorded != 1 {
		t.Fatalf("pass with Stripe back: %+v %v", res, err)
	}
}
