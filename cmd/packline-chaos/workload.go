package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/internal/fleet"
)

// SKUs: every cash-on-delivery store has plenty of plentySKU and little of
// shortSKU, so some orders are refused (stock_short → on_hold). The other
// flows take no stock; their orders buy itemSKU.
const (
	plentySKU      = "TEE"
	shortSKU       = "SHORT"
	itemSKU        = "ITEM"
	plentyStock    = 1_000_000
	orderUnitPrice = 1500
)

// chaosStore is a store of the run, with its webhook endpoint.
type chaosStore struct {
	*fleet.Store
	stock map[string]int64 // initial on_hand by SKU
}

// line is one order line.
type line struct {
	SKU      string
	Quantity int
}

// orderRun is one order's script: what the storefront, merchant and courier
// do to it, and the state it must end in.
type orderRun struct {
	n      int
	script *script
	store  *chaosStore
	key    string // Idempotency-Key, and external_id
	lines  []line
	method string // payment method, "" for none

	// Filled while it runs.
	id       string
	acked    bool   // answered 201 (or 200, a replay of a 201 whose answer was lost)
	replayed bool   // the create was answered 200 (Idempotent-Replayed)
	branch   string // which way a script went where the fleet decides (stock taken or short)
	expect   string // the status the script must leave the order in
	err      error
	done     time.Time
}

// script is one way an order of a flow goes: the steps its actors take,
// one after the other, the last of them saying which state the order must
// end in. A script whose way depends on the fleet (stock taken or short)
// has run instead.
type script struct {
	name   string
	flow   string
	weight int
	method string
	lines  func(r *rand.Rand) []line
	steps  func(d *driver, o *orderRun) []step
	run    func(ctx context.Context, d *driver, o *orderRun) error
}

func plentyLines(r *rand.Rand) []line { return []line{{plentySKU, 1 + r.IntN(3)}} }
func shortLines(r *rand.Rand) []line {
	return []line{{shortSKU, 1 + r.IntN(3)}, {plentySKU, 1}}
}
func itemLines(r *rand.Rand) []line { return []line{{itemSKU, 1 + r.IntN(2)}} }

// Steps more than one script takes.
func (d *driver) codShipped(statuses ...couriers.Status) []step {
	return []step{
		d.merchant("process", nil),
		d.merchant("ship", map[string]any{"courier": sandbox.Name}),
		d.waitFor("ship", fleet.InStatus("shipped")),
		d.courier("delivered", statuses...),
	}
}

func (d *driver) stockTaken() step { return d.waitFor("take its stock", fleet.HasFlag("stock_taken")) }

func (d *driver) inProduction() step {
	return d.waitFor("reach in_production", fleet.InStatus("in_production"))
}

func (d *driver) mtoDelivered(statuses ...couriers.Status) []step {
	return []step{d.inProduction(), d.merchant("ship", nil), d.waitFor("ship", fleet.InStatus("shipped")), d.courier("delivered", statuses...)}
}

func (d *driver) cardChecked() step {
	return d.waitFor("pass its card check", fleet.HasFlag("card_checked"))
}

func (d *driver) charged() step { return d.waitFor("be charged", fleet.HasFlag("paid")) }

func then(steps []step, more ...step) []step { return append(steps[:len(steps):len(steps)], more...) }

// scripts are the workload, weighted within each flow; flows are picked
// round-robin.
var scripts = []*script{
	// cash-on-delivery
	{name: "cod-deliver", flow: "cash-on-delivery", weight: 4, lines: plentyLines, steps: func(d *driver, o *orderRun) []step {
		return then([]step{d.merchant("log_call", map[string]any{"outcome": "no_answer"}), d.merchant("confirm", nil), d.stockTaken()},
			then(d.codShipped(couriers.StatusInTransit, couriers.StatusOutForDelivery, couriers.StatusDelivered), d.expect("delivered"))...)
	}},
	{name: "cod-short", flow: "cash-on-delivery", weight: 4, lines: shortLines, run: func(ctx context.Context, d *driver, o *orderRun) error {
		if err := d.steps(ctx, o, d.merchant("confirm", nil)); err != nil {
			return err
		}
		st, err := d.watch.Until(ctx, o.id, "take its stock or be put on hold", d.patience, func(s fleet.OrderState) bool {
			return s.Flags["stock_taken"] || s.Status == "on_hold"
		})
		if err != nil {
			return err
		}
		if st.Status == "on_hold" {
			o.branch = "refused"
			return d.steps(ctx, o, d.merchant("cancel", nil), d.expect("cancelled"))
		}
		o.branch = "taken"
		return d.steps(ctx, o, then(d.codShipped(couriers.StatusInTransit, couriers.StatusDelivered), d.expect("delivered"))...)
	}},
	{name: "cod-return", flow: "cash-on-delivery", weight: 1, lines: plentyLines, steps: func(d *driver, o *orderRun) []step {
		return then([]step{d.merchant("confirm", nil), d.stockTaken()},
			then(d.codShipped(couriers.StatusDelivered), d.merchant("return", nil), d.expect("returned"))...)
	}},
	{name: "cod-cancel-pending", flow: "cash-on-delivery", weight: 1, lines: plentyLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.customer("cancel", nil), d.expect("cancelled")}
	}},
	{name: "cod-cancel-taken", flow: "cash-on-delivery", weight: 1, lines: plentyLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.merchant("confirm", nil), d.stockTaken(), d.merchant("cancel", nil), d.expect("cancelled")}
	}},

	// made-to-order
	{name: "mto-deliver", flow: "made-to-order", weight: 4, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return then(d.mtoDelivered(couriers.StatusInTransit, couriers.StatusOutForDelivery, couriers.StatusDelivered), d.expect("delivered"))
	}},
	{name: "mto-cancel-at-once", flow: "made-to-order", weight: 2, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.customer("cancel", nil), d.expect("cancelled")}
	}},
	{name: "mto-cancel-paid", flow: "made-to-order", weight: 2, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.inProduction(), d.merchant("cancel", nil), d.expect("cancelled")}
	}},
	{name: "mto-impatient", flow: "made-to-order", weight: 2, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.awhile("be paid", fleet.HasFlag("paid")), d.customer("cancel", nil), d.expect("cancelled")}
	}},
	{name: "mto-refund", flow: "made-to-order", weight: 1, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return then(d.mtoDelivered(couriers.StatusDelivered), d.merchant("refund", nil), d.expect("refunded"))
	}},
	{name: "mto-declined", flow: "made-to-order", weight: 1, method: "pm_card_chargeDeclined", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.customer("cancel", nil), d.expect("cancelled")}
	}},

	// wholesale
	{name: "ws-paid", flow: "wholesale", weight: 4, lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{
			d.merchant("confirm", nil),
			d.merchant("start_production", nil),
			d.merchant("ship", nil),
			d.waitFor("ship", fleet.InStatus("shipped")),
			d.courier("shipped", couriers.StatusInTransit, couriers.StatusDelivered),
			d.merchant("invoice", nil),
			d.merchant("record_payment", map[string]any{"amount": o.total() / 2, "reference": "chaos-1"}),
			d.merchant("record_payment", map[string]any{"amount": o.total() - o.total()/2, "reference": "chaos-2"}),
			d.expect("paid"),
		}
	}},
	{name: "ws-cancel", flow: "wholesale", weight: 1, lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.merchant("confirm", nil), d.merchant("cancel", nil), d.expect("cancelled")}
	}},

	// request-approval
	{name: "ra-complete", flow: "request-approval", weight: 3, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.cardChecked(), d.merchant("accept", nil), d.charged(), d.merchant("complete", nil), d.expect("completed")}
	}},
	{name: "ra-decline", flow: "request-approval", weight: 1, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.cardChecked(), d.merchant("decline", nil), d.expect("declined")}
	}},
	{name: "ra-cancel-charged", flow: "request-approval", weight: 1, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.cardChecked(), d.merchant("accept", nil), d.charged(), d.customer("cancel", nil), d.expect("canceled")}
	}},
	{name: "ra-impatient", flow: "request-approval", weight: 2, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.cardChecked(), d.merchant("accept", nil), d.awhile("be charged", fleet.HasFlag("paid")), d.customer("cancel", nil), d.expect("canceled")}
	}},
	{name: "ra-retry-payment", flow: "request-approval", weight: 1, method: "pm_card_chargeCustomerFail", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{
			d.cardChecked(),
			d.merchant("accept", nil),
			d.waitFor("have its charge declined", fleet.InStatus("pending_payment")),
			d.customer("retry_payment", map[string]any{"payment_method": "pm_card_visa"}),
			d.charged(),
			d.merchant("complete", nil),
			d.expect("completed"),
		}
	}},
	{name: "ra-card-declined", flow: "request-approval", weight: 1, method: "pm_card_chargeDeclined", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.waitFor("be declined", fleet.InStatus("declined")), d.expect("declined")}
	}},

	// prepaid-simple
	{name: "pp-ship", flow: "prepaid-simple", weight: 4, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{
			d.waitFor("get its label", fleet.HasFlag("label_exists")),
			d.courier("shipped", couriers.StatusInTransit),
			d.customer("leave_feedback", map[string]any{"rating": 4, "comment": "chaos"}),
			d.courier("shipped", couriers.StatusDelivered),
			d.expect("shipped"),
		}
	}},
	{name: "pp-cancel-at-once", flow: "prepaid-simple", weight: 2, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.customer("cancel", nil), d.expect("cancelled")}
	}},
	{name: "pp-impatient", flow: "prepaid-simple", weight: 3, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.awhile("be paid", fleet.HasFlag("paid")), d.customer("cancel", nil), d.expect("cancelled")}
	}},
	{name: "pp-cancel-paid", flow: "prepaid-simple", weight: 1, method: "pm_card_visa", lines: itemLines, steps: func(d *driver, o *orderRun) []step {
		return []step{d.waitFor("be paid", fleet.HasFlag("paid")), d.merchant("cancel", nil), d.expect("cancelled")}
	}},
}

// play runs the order's script.
func (s *script) play(ctx context.Context, d *driver, o *orderRun) error {
	if s.run != nil {
		return s.run(ctx, d, o)
	}
	return d.steps(ctx, o, s.steps(d, o)...)
}

func (o *orderRun) total() int64 {
	var t int64
	for _, l := range o.lines {
		t += int64(l.Quantity) * orderUnitPrice
	}
	return t
}

// plan is the run's orders: flows round-robin, a script of the flow by
// weight, stores of the flow round-robin. The same seed plans the same
// orders.
func plan(n int, seed uint64, stores map[string][]*chaosStore, runID string) []*orderRun {
	r := rand.New(rand.NewPCG(seed, 1))
	byFlow := map[string][]*script{}
	for _, s := range scripts {
		for range s.weight {
			byFlow[s.flow] = append(byFlow[s.flow], s)
		}
	}
	out := make([]*orderRun, n)
	for i := range out {
		flow := flowNames[i%len(flowNames)]
		s := byFlow[flow][r.IntN(len(byFlow[flow]))]
		st := stores[flow][(i/len(flowNames))%len(stores[flow])]
		out[i] = &orderRun{n: i, script: s, store: st, key: fmt.Sprintf("chaos-%s-%05d", runID, i), lines: s.lines(r), method: s.method}
	}
	return out
}

var flowNames = []string{"made-to-order", "wholesale", "request-approval", "cash-on-delivery", "prepaid-simple"}

// driver plays the storefront, the merchant and the courier of every
// order: every call is retried while the API is down (the storefront with
// the same Idempotency-Key), and every wait for the fleet is bounded by
// patience.
type driver struct {
	api           *fleet.Client
	watch         *fleet.Watcher
	db            *sqlx.DB
	courierSecret string
	patience      time.Duration
}

type step func(ctx context.Context, o *orderRun) error

func (d *driver) steps(ctx context.Context, o *orderRun, steps ...step) error {
	for _, s := range steps {
		if err := s(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// create posts the order with its Idempotency-Key until it is answered.
func (d *driver) create(ctx context.Context, o *orderRun) error {
	lines := make([]any, len(o.lines))
	for i, l := range o.lines {
		lines[i] = map[string]any{"sku": l.SKU, "name": "Chaos " + l.SKU, "quantity": l.Quantity, "unit_price": orderUnitPrice}
	}
	body := map[string]any{
		"flow": o.script.flow, "currency": "USD", "external_id": o.key,
		"customer":         map[string]any{"name": "Chaos Customer", "email": "customer@chaos.example.com", "phone": "+12025550100"},
		"shipping_address": map[string]any{"line1": "1 Chaos St", "city": "Springfield", "postal_code": "12345", "country": "US"},
		"lines":            lines,
	}
	if o.method != "" {
		body["payment"] = map[string]any{"method": o.method}
	}
	var res struct {
		ID string `json:"id"`
	}
	err := d.api.Send(ctx, fleet.Request{Route: "POST /v1/orders", Method: "POST", Path: "/v1/orders", Key: o.store.Storefront,
		Header: map[string]string{"Idempotency-Key": o.key}, Body: body, Out: &res, Want: http.StatusCreated})
	var ae *fleet.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusOK && ae.Unsure {
		// The replay of a create whose first answer was lost.
		o.replayed = true
		if err = json.Unmarshal([]byte(ae.Body), &res); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	o.id, o.acked = res.ID, true
	return nil
}

func (d *driver) merchant(event string, data map[string]any) step {
	return func(ctx context.Context, o *orderRun) error {
		return d.event(ctx, o, o.store.Merchant, "merchant", event, data)
	}
}

func (d *driver) customer(event string, data map[string]any) step {
	return func(ctx context.Context, o *orderRun) error {
		return d.event(ctx, o, o.store.Storefront, "customer", event, data)
	}
}

// event sends one event as a careful client does: with the order's version
// as expected_version, so a retry after a lost answer can never apply it a
// second time (a merchant's record_payment would record the payment twice).
// A 409 after an attempt that went unanswered is success when the order's
// timeline has one more of the event from that actor than before: the
// first attempt took effect, its answer was lost. A 409 because the fleet
// moved the order meanwhile (a worker's report) is sent again at the new
// version.
func (d *driver) event(ctx context.Context, o *orderRun, key, actor, event string, data map[string]any) error {
	count := func() (int, error) {
		var n int
		err := d.db.GetContext(ctx, &n, marker+`SELECT count(*) FROM timeline WHERE order_id = $1 AND event = $2 AND actor_type = $3`,
			o.id, event, actor)
		return n, err
	}
	var err error
	for range 20 {
		var version int64
		if err := d.db.GetContext(ctx, &version, marker+`SELECT version FROM orders WHERE id = $1`, o.id); err != nil {
			return fmt.Errorf("%s %s: read the order's version: %w", actor, event, err)
		}
		before, cerr := count()
		if cerr != nil {
			return fmt.Errorf("%s %s: read the timeline: %w", actor, event, cerr)
		}
		body := map[string]any{"event": event, "expected_version": version}
		if data != nil {
			body["data"] = data
		}
		err = d.api.Call(ctx, "POST /v1/orders/{id}/events", "POST", "/v1/orders/"+o.id+"/events", key, body, nil, http.StatusOK)
		var ae *fleet.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
			break
		}
		if after, cerr := count(); cerr == nil && after > before {
			return nil // an attempt whose answer was lost took effect
		}
		var now int64
		if qerr := d.db.GetContext(ctx, &now, marker+`SELECT version FROM orders WHERE id = $1`, o.id); qerr != nil || now == version {
			break // a 409 for another reason: the state does not allow it
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", actor, event, err)
	}
	return nil
}

func (d *driver) waitFor(what string, cond func(fleet.OrderState) bool) step {
	return func(ctx context.Context, o *orderRun) error {
		_, err := d.watch.Until(ctx, o.id, what, d.patience, cond)
		return err
	}
}

// impatience is how long an impatient customer waits before cancelling:
// long enough for a healthy fleet to take the payment, short against a
// killed worker's lost task, so some cancel while their payment effect is
// stuck somewhere between the provider and the database.
const impatience = 1500 * time.Millisecond

// awhile waits for cond for impatience at most, and goes on either way.
func (d *driver) awhile(what string, cond func(fleet.OrderState) bool) step {
	return func(ctx context.Context, o *orderRun) error {
		_, err := d.watch.Until(ctx, o.id, what, impatience, cond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.branch = "waited"
		if err != nil {
			o.branch = "gave up waiting"
		}
		return nil
	}
}

// courier posts the sandbox courier's signed callbacks for the order's
// shipment and wants the order in orderStatus after the last.
func (d *driver) courier(orderStatus string, statuses ...couriers.Status) step {
	return func(ctx context.Context, o *orderRun) error {
		got, err := d.api.CourierCallbacks(ctx, d.courierSecret, o.id, statuses...)
		if err == nil && got != orderStatus {
			err = fmt.Errorf("order is %s after the courier's %s, want %s", got, statuses[len(statuses)-1], orderStatus)
		}
		return err
	}
}

// expect records the state the script leaves the order in.
func (d *driver) expect(status string) step {
	return func(_ context.Context, o *orderRun) error {
		o.expect = status
		return nil
	}
}

// drive starts the orders evenly over d (at most inflight at once) and
// waits for every script to end.
func drive(ctx context.Context, dr *driver, orders []*orderRun, over time.Duration, inflight int, progress func(done int)) {
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	finished := 0
	start := time.Now()
	for i, o := range orders {
		due := start.Add(time.Duration(float64(over) * float64(i) / float64(len(orders))))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(due)):
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o.err = dr.create(ctx, o)
			if o.err == nil {
				o.err = o.script.play(ctx, dr, o)
			}
			o.done = time.Now()
			mu.Lock()
			finished++
			n := finished
			mu.Unlock()
			progress(n)
		}()
	}
	wg.Wait()
}
