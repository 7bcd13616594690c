package workers_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/tasks"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// netCharged is what the provider kept: successful charges less refunds.
func netCharged(t *testing.T, db *store.DB, orderID string) (charged, refunded int64, voided bool) {
	t.Helper()
	ps, err := db.Payments(t.Context(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Status != store.PaymentSucceeded {
			continue
		}
		switch p.Kind {
		case store.PaymentCapture, store.PaymentConfirm:
			charged += p.Amount
		case store.PaymentRefund:
			refunded += p.Amount
		case store.PaymentVoid:
			voided = true
		}
	}
	return charged, refunded, voided
}

// allDone reports whether every payment effect of the order is done.
func allDone(t *testing.T, db *store.DB, orderID string) bool {
	t.Helper()
	rows, err := db.Outbox(t.Context(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r.Type, "payment:") {
			continue
		}
		if r.Status != store.EffectDone {
			return false
		}
	}
	return true
}

// A cancellation that lands while a charge is in flight — after the
// provider took the money, before the result reached the order — is
// refunded; one before the charge ran charges nothing; one during the card
// check releases the hold.
func TestCancelDuringChargeKeepsNoMoney(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db := fleettest.OpenDB(t, dialect, store.Options{})
		cust := packline.Actor{Type: packline.ActorCustomer, ID: "key_customer"}
		order := func(flow string) *packline.Order {
			t.Helper()
			s, err := db.CreateStoreWithKeys(ctx, flow, flow, store.NewKey(store.ScopeStorefront), store.NewKey(store.ScopeMerchant))
			if err != nil {
				t.Fatal(err)
			}
			o, _, err := db.CreateOrder(ctx, s.ID, packline.Order{Currency: "USD", PaymentMethod: "pm_card_visa",
				Customer: packline.Customer{Name: "Ada", Email: "ada@example.com"},
				Lines:    []packline.Line{{SKU: "A", Name: "A", Quantity: 1, UnitPrice: 5000}}}, cust, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}

		// Cancelled before the fleet ever runs: nothing is charged.
		early := order("prepaid-simple")
		if _, err := db.ApplyEvent(ctx, early.StoreID, early.ID, store.EventInput{Event: "cancel", Actor: cust}); err != nil {
			t.Fatal(err)
		}

		// Cancelled at the moment the provider answered (the money moved,
		// the order has not heard): the charge is refunded.
		late := order("prepaid-simple")
		// request-approval: cancelled while the 1.00 card check is answered.
		check := order("request-approval")

		var once sync.Map
		hold := func(ctx context.Context, point string, e workers.Effect) {
			if point != "payment:answered" {
				return
			}
			if (e.OrderID == late.ID && e.Type == tasks.TypePaymentConfirm) || (e.OrderID == check.ID && e.Type == tasks.TypePaymentAuthorize) {
				if _, loaded := once.LoadOrStore(e.OrderID, true); !loaded {
					if _, err := db.ApplyEvent(ctx, e.Order.StoreID, e.OrderID, store.EventInput{Event: "cancel", Actor: cust}); err != nil {
						t.Errorf("cancel in flight: %v", err)
					}
				}
			}
		}
		fleettest.Start(t, db.DB, redistest.New(t).Opt(), fleettest.Options{Waker: db.Waker, ListenURL: db.ListenURL(),
			Deps: workers.WithHold(workers.Deps{}, hold)})
		db.Waker.Wake()

		for _, o := range []*packline.Order{early, late, check} {
			fleettest.WaitFor(t, time.Minute, "every effect of "+o.Flow+" order done", func() bool { return allDone(t, db.DB, o.ID) })
			got, err := db.GetOrder(ctx, o.StoreID, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != "cancelled" && got.Status != "canceled" {
				t.Fatalf("%s order is %s", o.Flow, got.Status)
			}
		}
		if c, r, _ := netCharged(t, db.DB, early.ID); c != 0 || r != 0 {
			t.Fatalf("cancelled before the charge: charged %d, refunded %d", c, r)
		}
		if c, r, _ := netCharged(t, db.DB, late.ID); c != 5000 || r != 5000 {
			t.Fatalf("cancelled while charging: charged %d, refunded %d", c, r)
		}
		if _, _, voided := netCharged(t, db.DB, check.ID); !voided {
			t.Fatal("cancelled during the card check: the 1.00 hold was not voided")
		}
	})
}
