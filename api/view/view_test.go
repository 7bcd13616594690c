package view

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
)

func TestBuild(t *testing.T) {
	t.Parallel()
	reg, err := flows.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	placed := &packline.Order{ID: "ord_1", StoreID: "st_1", Flow: "prepaid-simple", Status: "pending", Currency: "EUR",
		Lines: []packline.Line{{SKU: "MUG", Quantity: 2, UnitPrice: 450}}, Subtotal: 900, Total: 900, PaymentMethod: "card"}
	shipped := &packline.Order{ID: "ord_2", StoreID: "st_1", Flow: "no-such-flow", Status: "shipped", Currency: "EUR"}
	pays := map[string][]store.Payment{"ord_1": {{ID: "pay_1", Kind: "confirm", Status: "succeeded"}}}
	ships := map[string][]store.Shipment{"ord_2": {{ID: "shp_1", Courier: "sandbox", TrackingNumber: "SBX1", Status: couriers.StatusInTransit,
		StatusAt: at, Events: []store.ShipmentEvent{{Status: couriers.StatusInTransit, CourierStatus: "scanned", OccurredAt: at}}}}}

	vs := build(reg, []*packline.Order{placed, shipped}, pays, ships, packline.ActorMerchant, "https://api.example/")
	if len(vs) != 2 {
		t.Fatalf("%d views of two orders", len(vs))
	}
	a, b := vs[0], vs[1]
	if a.Totals.Total != 900 || a.Totals.Currency != "EUR" || len(a.Lines) != 1 || a.Lines[0].Total != 900 ||
		a.Payment == nil || a.Payment.Method != "card" || len(a.Payments) != 1 || len(a.Shipments) != 0 || len(a.AllowedEvents) == 0 {
		t.Errorf("placed order's view %+v", a)
	}
	if b.Payments == nil || len(b.Payments) != 0 || b.Payment != nil || b.AllowedEvents == nil || len(b.AllowedEvents) != 0 {
		t.Errorf("an order without payments or a known flow: payments %v, payment %v, allowed %v", b.Payments, b.Payment, b.AllowedEvents)
	}
	if len(b.Shipments) != 1 || b.Shipments[0].LabelURL != "https://api.example/v1/shipments/shp_1/label.pdf" ||
		b.Shipments[0].Status != "in_transit" || len(b.Shipments[0].Events) != 1 || b.Shipments[0].Events[0].CourierStatus != "scanned" {
		t.Errorf("shipment view %+v", b.Shipments)
	}
	// Empty lists are [] in the JSON, never null.
	raw, _ := json.Marshal(b)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"payments", "allowed_events", "lines"} {
		if _, ok := m[k].([]any); !ok {
			t.Errorf("%s is %v in the JSON, want a list", k, m[k])
		}
	}
}
