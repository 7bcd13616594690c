package flows

import (
	"testing"
	"time"

	"github.com/packline/packline"
)

// BenchmarkApply measures one event through the engine: the pure part of
// every transition.
func BenchmarkApply(b *testing.B) {
	r, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	f := r.Get("cash-on-delivery")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start, err := f.Start(packline.Order{Currency: "USD", Lines: []packline.Line{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 100}}},
		packline.Actor{Type: packline.ActorCustomer}, now, 1)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Event: "confirm", Actor: packline.Actor{Type: packline.ActorMerchant}, Now: now}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Apply(start.Order, in); err != nil {
			b.Fatal(err)
		}
	}
}
