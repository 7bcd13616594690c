package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// pay-no-refund is a flow whose cancel owes nothing: only the payment
// effect itself can see that a charge came too late.
const payNoRefund = `
name: pay-no-refund
title: Pay, or cancel without a refund
description: A test flow.
initial: pending
on_create:
  - payment:confirm
states:
  pending:   {description: "Awaiting payment"}
  paid:      {terminal: true, description: "Paid"}
  cancelled: {terminal: true, description: "Cancelled"}
events:
  payment_succeeded:
    actors: [payment]
    transitions:
      - {from: pending, to: paid}
  payment_failed:
    actors: [payment]
    transitions:
      - {from: pending}
  cancel:
    actors: [merchant]
    transitions:
      - {from: pending, to: cancelled}
`

func paymentStore(t *testing.T, dialect, flow string) (*store.DB, store.Store) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pay-no-refund.yaml"), []byte(payNoRefund), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := flows.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t, dialect, store.Options{Flows: reg})
	s, _, _, err := db.CreateStore(t.Context(), "shop", flow)
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}

// effectsOf returns the order's outbox rows of typ, oldest first.
func effectsOf(t *testing.T, db *store.DB, orderID, typ string) []store.OutboxRow {
	t.Helper()
	rows, err := db.Outbox(t.Context(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.OutboxRow
	for _, r := range rows {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func paymentReport(p store.Payment) *store.EffectReport {
	ev := "payment_succeeded"
	if p.Status != store.PaymentSucceeded {
		ev = "payment_failed"
	}
	return &store.EffectReport{Event: ev, Actor: packline.Actor{Type: packline.ActorPayment, ID: p.Provider}, Data: map[string]any{"payment_id": p.ID}}
}

// A charge that answers after the order was cancelled is recorded, and owes
// its refund in the same commit, once; one whose flow owes a refund already
// owes none more; a decline owes nothing.
func TestCompletePaymentTheOrderRefusedOwesItsReversal(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		merchant := packline.Actor{Type: packline.ActorMerchant, ID: "key_m"}
		charge := func(t *testing.T, db *store.DB, o *packline.Order, status store.PaymentStatus) (store.EffectOutcome, store.Payment, string) {
			t.Helper()
			id := effectOf(t, db, o.ID, "payment:confirm")
			if _, err := db.StartEffect(ctx, id, true); err != nil {
				t.Fatal(err)
			}
			out, p, err := db.CompletePayment(ctx, id, store.Payment{OrderID: o.ID, StoreID: o.StoreID, IdempotencyKey: id,
				Kind: store.PaymentConfirm, Amount: o.Total, Currency: o.Currency, Status: status, Provider: "sandbox", ProviderRef: "ch_1"}, paymentReport)
			if err != nil {
				t.Fatal(err)
			}
			return out, p, id
		}

		t.Run("flow owes no refund", func(t *testing.T) {
			db, s := paymentStore(t, dialect, "pay-no-refund")
			o := placed(t, db, s.ID, newOrder(""))
			if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "cancel", Actor: merchant}); err != nil {
				t.Fatal(err)
			}
			out, p, id := charge(t, db, o, store.PaymentSucceeded)
			if out.Refused == nil || p.Status != store.PaymentSucceeded || p.IdempotencyKey != id {
				t.Fatalf("outcome %+v payment %+v", out, p)
			}
			refunds := effectsOf(t, db, o.ID, "payment:refund")
			if len(refunds) != 1 || refunds[0].ID != store.ReversalID(id) || refunds[0].Status != store.EffectPending {
				t.Fatalf("refunds %+v", refunds)
			}
			eff, err := refunds[0].Effect()
			if err != nil || eff.Amount != o.Total {
				t.Fatalf("refund effect %+v %v", eff, err)
			}
			if ps, _ := db.Payments(ctx, o.ID); len(ps) != 1 {
				t.Fatalf("payments %+v", ps)
			}
			tl, _ := db.Timeline(ctx, o.ID)
			if last := tl[len(tl)-1]; last.Event != "note" || last.Actor.Type != packline.ActorPayment {
				t.Fatalf("last timeline entry %+v", last)
			}
			// Run again: already done, nothing more owed.
			if again, _, _ := charge(t, db, o, store.PaymentSucceeded); !again.AlreadyDone {
				t.Fatalf("second run %+v", again)
			}
			if n := len(effectsOf(t, db, o.ID, "payment:refund")); n != 1 {
				t.Fatalf("%d refunds owed", n)
			}
		})

		t.Run("flow owes the refund already", func(t *testing.T) {
			db, s := paymentStore(t, dialect, "prepaid-simple")
			o := placed(t, db, s.ID, newOrder(""))
			if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "cancel", Actor: merchant}); err != nil {
				t.Fatal(err)
			}
			if out, _, _ := charge(t, db, o, store.PaymentSucceeded); out.Refused == nil {
				t.Fatalf("outcome %+v", out)
			}
			if refunds := effectsOf(t, db, o.ID, "payment:refund"); len(refunds) != 1 {
				t.Fatalf("refunds %+v", refunds)
			}
		})

		t.Run("decline", func(t *testing.T) {
			db, s := paymentStore(t, dialect, "pay-no-refund")
			o := placed(t, db, s.ID, newOrder(""))
			if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "cancel", Actor: merchant}); err != nil {
				t.Fatal(err)
			}
			if _, p, _ := charge(t, db, o, store.PaymentFailed); p.Status != store.PaymentFailed {
				t.Fatalf("payment %+v", p)
			}
			if refunds := effectsOf(t, db, o.ID, "payment:refund"); len(refunds) != 0 {
				t.Fatalf("refunds %+v", refunds)
			}
		})

		t.Run("taken", func(t *testing.T) {
			db, s := paymentStore(t, dialect, "pay-no-refund")
			o := placed(t, db, s.ID, newOrder(""))
			out, _, _ := charge(t, db, o, store.PaymentSucceeded)
			if !out.Applied || out.Order.Status != "paid" {
				t.Fatalf("outcome %+v", out)
			}
			if refunds := effectsOf(t, db, o.ID, "payment:refund"); len(refunds) != 0 {
				t.Fatalf("refunds %+v", refunds)
			}
		})
	})
}
