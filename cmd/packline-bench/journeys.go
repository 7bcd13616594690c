package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/internal/fleet"
)

// The five built-in flows, and the name of the phase that runs them all.
var flowNames = []string{"made-to-order", "wholesale", "request-approval", "cash-on-delivery", "prepaid-simple"}

const mixName = "mix"

// actors play the customer (storefront key), the merchant (merchant key)
// and the courier (signed callbacks) of the benchmark's orders.
type actors struct {
	api           *fleet.Client
	watch         *fleet.Watcher
	courierSecret string
	// patience bounds every wait of a journey for the fleet's work.
	patience time.Duration
}

// order is the part of an API order a journey reads.
type order struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Totals struct {
		Total int64 `json:"total"`
	} `json:"totals"`
}

// journey drives one order of a flow through its lifecycle and returns
// its id.
type journey func(ctx context.Context, a *actors, s *benchStore) (string, error)

// journeys are the lifecycles the benchmark plays, by flow.
var journeys = map[string]journey{
	"cash-on-delivery": cashOnDelivery,
	"made-to-order":    madeToOrder,
	"wholesale":        wholesale,
	"request-approval": requestApproval,
	"prepaid-simple":   prepaidSimple,
}

// cashOnDelivery: the storefront posts, the merchant confirms (stock is
// taken), processes and ships; the courier's label ships the order and its
// callbacks deliver it.
func cashOnDelivery(ctx context.Context, a *actors, s *benchStore) (string, error) {
	o, err := a.create(ctx, s, "cash-on-delivery", "")
	if err != nil {
		return "", err
	}
	return o.ID, a.steps(ctx,
		a.merchant(s, o.ID, "confirm", nil),
		a.waitFor(o.ID, "take its stock", fleet.HasFlag("stock_taken")),
		a.merchant(s, o.ID, "process", nil),
		a.merchant(s, o.ID, "ship", map[string]any{"courier": sandbox.Name}),
		a.waitFor(o.ID, "ship", fleet.InStatus("shipped")),
		a.courier(o.ID, "delivered", couriers.StatusInTransit, couriers.StatusOutForDelivery, couriers.StatusDelivered),
	)
}

// madeToOrder: paid by card (no customisation, so straight to production),
// shipped by the merchant, delivered by the courier.
func madeToOrder(ctx context.Context, a *actors, s *benchStore) (string, error) {
	o, err := a.create(ctx, s, "made-to-order", "pm_card_visa")
	if err != nil {
		return "", err
	}
	return o.ID, a.steps(ctx,
		a.waitFor(o.ID, "reach in_production", fleet.InStatus("in_production")),
		a.merchant(s, o.ID, "ship", nil),
		a.waitFor(o.ID, "ship", fleet.InStatus("shipped")),
		a.courier(o.ID, "delivered", couriers.StatusInTransit, couriers.StatusOutForDelivery, couriers.StatusDelivered),
	)
}

// wholesale: confirmed, produced and shipped by the merchant; the courier
// delivers (tracked, no state change); invoiced and paid in full.
func wholesale(ctx context.Context, a *actors, s *benchStore) (string, error) {
	o, err := a.create(ctx, s, "wholesale", "")
	if err != nil {
		return "", err
	}
	return o.ID, a.steps(ctx,
		a.merchant(s, o.ID, "confirm", nil),
		a.merchant(s, o.ID, "start_production", nil),
		a.merchant(s, o.ID, "ship", nil),
		a.waitFor(o.ID, "ship", fleet.InStatus("shipped")),
		a.courier(o.ID, "shipped", couriers.StatusInTransit, couriers.StatusDelivered),
		a.merchant(s, o.ID, "invoice", nil),
		a.merchant(s, o.ID, "record_payment", map[string]any{"amount": o.Totals.Total, "reference": "bench"}),
		a.waitFor(o.ID, "be paid", fleet.InStatus("paid")),
	)
}

// requestApproval: the card check passes, the merchant accepts (the full
// charge is captured) and completes.
func requestApproval(ctx context.Context, a *actors, s *benchStore) (string, error) {
	o, err := a.create(ctx, s, "request-approval", "pm_card_visa")
	if err != nil {
		return "", err
	}
	return o.ID, a.steps(ctx,
		a.waitFor(o.ID, "pass its card check", fleet.HasFlag("card_checked")),
		a.merchant(s, o.ID, "accept", nil),
		a.waitFor(o.ID, "be charged", fleet.HasFlag("paid")),
		a.merchant(s, o.ID, "complete", nil),
	)
}

// prepaidSimple: paid by card, labelled at once; the courier's pick-up
// ships it; the customer leaves feedback; the courier delivers (tracked).
func prepaidSimple(ctx context.Context, a *actors, s *benchStore) (string, error) {
	o, err := a.create(ctx, s, "prepaid-simple", "pm_card_visa")
	if err != nil {
		return "", err
	}
	return o.ID, a.steps(ctx,
		a.waitFor(o.ID, "get its label", fleet.HasFlag("label_exists")),
		a.courier(o.ID, "shipped", couriers.StatusInTransit),
		a.customer(s, o.ID, "leave_feedback", map[string]any{"rating": 5, "comment": "bench"}),
		a.courier(o.ID, "shipped", couriers.StatusDelivered),
	)
}

// step is one thing an actor does, or waits for.
type step func(ctx context.Context) error

func (a *actors) steps(ctx context.Context, steps ...step) error {
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return err
		}
	}
	return nil
}

// create is the storefront posting an order of flow.
func (a *actors) create(ctx context.Context, s *benchStore, flow, paymentMethod string) (order, error) {
	var o order
	err := a.api.Call(ctx, "POST /v1/orders", "POST", "/v1/orders", s.Storefront, orderBody(flow, paymentMethod), &o, http.StatusCreated)
	return o, err
}

// orderBody is a one-line order of benchSKU.
func orderBody(flow, paymentMethod string) map[string]any {
	b := map[string]any{
		"flow": flow, "currency": "USD",
		"customer":         map[string]any{"name": "Bench Customer", "email": "customer@bench.example.com", "phone": "+12025550100"},
		"shipping_address": map[string]any{"line1": "1 Bench St", "city": "Springfield", "postal_code": "12345", "country": "US"},
		"lines":            []any{map[string]any{"sku": benchSKU, "name": "Bench tee", "quantity": 1, "unit_price": 1500}},
	}
	if paymentMethod != "" {
		b["payment"] = map[string]any{"method": paymentMethod}
	}
	return b
}

func (a *actors) merchant(s *benchStore, id, event string, data map[string]any) step {
	return a.event(s.Merchant, id, event, data)
}

func (a *actors) customer(s *benchStore, id, event string, data map[string]any) step {
	return a.event(s.Storefront, id, event, data)
}

func (a *actors) event(key, id, event string, data map[string]any) step {
	return func(ctx context.Context) error {
		body := map[string]any{"event": event}
		if data != nil {
			body["data"] = data
		}
		return a.api.Call(ctx, "POST /v1/orders/{id}/events", "POST", "/v1/orders/"+id+"/events", key, body, nil, http.StatusOK)
	}
}

func (a *actors) waitFor(id, what string, cond func(fleet.OrderState) bool) step {
	return func(ctx context.Context) error {
		_, err := a.watch.Until(ctx, id, what, a.patience, cond)
		return err
	}
}

// courier posts the sandbox courier's signed callbacks for the order's
// shipment and wants the order in orderStatus after the last.
func (a *actors) courier(id, orderStatus string, statuses ...couriers.Status) step {
	return func(ctx context.Context) error {
		got, err := a.api.CourierCallbacks(ctx, a.courierSecret, id, statuses...)
		if err == nil && got != orderStatus {
			err = fmt.Errorf("order %s is %s after the courier's %s, want %s", id, got, statuses[len(statuses)-1], orderStatus)
		}
		return err
	}
}
