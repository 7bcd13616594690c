package store_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

var merchantActor = packline.Actor{Type: packline.ActorMerchant, ID: "m"}

// effectOf returns the id of the order's newest outbox row of typ.
func effectOf(t *testing.T, db *store.DB, orderID, typ string) string {
	t.Helper()
	rows, err := db.Outbox(t.Context(), orderID)
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

func confirmed(t *testing.T, db *store.DB, s store.Store, lines ...packline.Line) *packline.Order {
	t.Helper()
	ctx := t.Context()
	o := placed(t, db, s.ID, newOrder("", lines...))
	if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "confirm", Actor: merchantActor}); err != nil {
		t.Fatal(err)
	}
	return o
}

// Decrements racing for too little stock take it all-or-nothing: the
// on-hand count never goes below zero and matches the ledger.
func TestTakeStockConcurrentAllOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		db.SetStock(ctx, s.ID, "A", 20)
		db.SetStock(ctx, s.ID, "B", 9)
		var ids []string
		for range 12 {
			// Two SKUs, in both orders of lines, so row locks are taken in
			// one order whatever the lines say.
			o := confirmed(t, db, s, packline.Line{SKU: "B", Name: "b", Quantity: 1, UnitPrice: 1}, packline.Line{SKU: "A", Name: "a", Quantity: 2, UnitPrice: 1})
			ids = append(ids, effectOf(t, db, o.ID, "stock:decrement"))
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := db.TakeStock(ctx, id); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		a, _ := db.GetStock(ctx, s.ID, "A")
		b, _ := db.GetStock(ctx, s.ID, "B")
		takenA, _, _ := db.StockMoved(ctx, s.ID, "A")
		takenB, _, _ := db.StockMoved(ctx, s.ID, "B")
		// A allows 10 orders, B 9: nine orders are filled.
		if a.OnHand != 2 || b.OnHand != 0 || takenA != 18 || takenB != 9 {
			t.Fatalf("A %d (taken %d), B %d (taken %d)", a.OnHand, takenA, b.OnHand, takenB)
		}
	})
}

// A decrement whose order moved on (cancelled before the worker ran) takes
// nothing, and is done with the reason.
func TestTakeStockForAnOrderThatMovedOn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		db.SetStock(ctx, s.ID, "MUG-1", 5)
		o := confirmed(t, db, s)
		id := effectOf(t, db, o.ID, "stock:decrement")
		if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "cancel", Actor: merchantActor}); err != nil {
			t.Fatal(err)
		}
		out, _, err := db.TakeStock(ctx, id)
		if err != nil || out.Refused == nil || out.Applied {
			t.Fatalf("outcome %+v %v", out, err)
		}
		if st, _ := db.GetStock(ctx, s.ID, "MUG-1"); st.OnHand != 5 {
			t.Fatalf("on hand %d", st.OnHand)
		}
		row, _ := db.Effect(ctx, id)
		if row.Status != store.EffectDone || !strings.Contains(row.LastError, "stock_taken not applied") {
			t.Fatalf("row %+v", row)
		}
		// The restore the cancel owed (none: stock was not taken) and a
		// second run change nothing.
		if out, _, err := db.TakeStock(ctx, id); err != nil || !out.AlreadyDone {
			t.Fatalf("second run %+v %v", out, err)
		}
	})
}

// A timer whose order left the state is done without acting.
func TestFireTimerStale(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o := confirmed(t, db, s) // pending → confirmed: the pending expiry is stale
		id := effectOf(t, db, o.ID, store.TimerType)
		out, err := db.FireTimer(ctx, id)
		if err != nil || out.Refused == nil {
			t.Fatalf("%+v %v", out, err)
		}
		if got, _ := db.GetOrder(ctx, s.ID, o.ID); got.Status != "confirmed" {
			t.Fatalf("status %s", got.Status)
		}
	})
}

// Claims take due rows of the given types only, once.
func TestClaimDueEffects(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o := placed(t, db, s.ID, newOrder(""))
		rows, err := db.ClaimDueEffects(ctx, 10, []string{"notify:email", store.TimerType})
		if err != nil || len(rows) != 1 || rows[0].Type != "notify:email" || rows[0].Deliveries != 1 || rows[0].OrderID != o.ID {
			t.Fatalf("claimed %+v %v", rows, err)
		}
		again, err := db.ClaimDueEffects(ctx, 10, nil)
		if err != nil || len(again) != 1 || again[0].Type != "webhook:deliver" {
			t.Fatalf("second claim %+v %v", again, err)
		}
		if err := db.ReleaseEffect(ctx, rows[0].ID, "redis down"); err != nil {
			t.Fatal(err)
		}
		if row, _ := db.Effect(ctx, rows[0].ID); row.Status != store.EffectPending || row.LastError != "redis down" {
			t.Fatalf("released %+v", row)
		}
		if err := db.FailEffect(ctx, again[0].ID, "boom", true); err != nil {
			t.Fatal(err)
		}
		if row, _ := db.Effect(ctx, again[0].ID); row.Status != store.EffectFailed || row.Attempts != 1 {
			t.Fatalf("failed %+v", row)
		}
	})
}

// A payment attempt is recorded once per idempotency key.
func TestRecordPaymentOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o := placed(t, db, s.ID, newOrder(""))
		p := store.Payment{OrderID: o.ID, StoreID: s.ID, IdempotencyKey: "eff_1", Kind: "confirm", Amount: 2500, Currency: "USD",
			Status: "succeeded", Provider: "sandbox"}
		a, err := db.RecordPayment(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		p.Status = "failed"
		b, err := db.RecordPayment(ctx, p)
		if err != nil || b.ID != a.ID || b.Status != "succeeded" {
			t.Fatalf("second record %+v %v", b, err)
		}
		ps, err := db.Payments(ctx, o.ID)
		if err != nil || len(ps) != 1 {
			t.Fatalf("payments %+v %v", ps, err)
		}
	})
}
