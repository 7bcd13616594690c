package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
)

// row is one row of FLOWS.md (or one case of it): an order driven from Start
// to from by path, the event sent by each of actors, and everything the
// transition must produce.
type row struct {
	name    string
	order   []func(*packline.Order)
	path    []ev
	fixture func(*packline.Order) // adjusts the order after path (a state no path rests in)
	from    string
	event   string
	actors  []packline.ActorType // exactly the event's actors in FLOWS.md; each is tried
	data    map[string]any
	scale   float64
	to      string
	effects []string
	steps   []string // default: the one step "event from→to (actor)"
	timers  []string
	flags   []string // when not nil, exactly the flags set after the event
	check   func(t *testing.T, r Result)
}

// Paths of made-to-order: an order with a customizable line goes through
// customization and proofs; a plain one goes straight to production.
var (
	mtoCustomization = []ev{{"payment_succeeded", payment, nil}}
	mtoSubmitted     = then(mtoCustomization, ev{"submit_customization", customer, nil})
	mtoProofSent     = then(mtoSubmitted, ev{"send_proof", merchant, nil})
	mtoProofRejected = then(mtoProofSent, ev{"reject_proof", customer, nil})
	mtoProofApproved = then(mtoProofSent, ev{"approve_proof", customer, nil})
	mtoProduction    = then(mtoProofApproved, ev{"start_production", merchant, nil})
	mtoPlainPaid     = []ev{{"payment_succeeded", payment, nil}}
	mtoLabelled      = then(mtoPlainPaid, ev{"label_created", system, nil})
	mtoShipRequested = then(mtoPlainPaid, ev{"ship", merchant, nil})
	mtoShipped       = then(mtoLabelled, ev{"ship", merchant, nil})
	mtoDelivered     = then(mtoShipped, ev{"deliver", courier, nil})
	mtoCancelledPaid = then(mtoCustomization, ev{"cancel", customer, nil})
	mtoCancelled     = []ev{{"cancel", customer, nil}}
)

var mtoCustom = []func(*packline.Order){customizable}

// restingPaid puts a made-to-order order in paid, a state the automatic
// transitions never let it rest in, to check the rows that list it.
func restingPaid(o *packline.Order) {
	o.Status = "paid"
	o.Flags = packline.Flags{"paid": true}
}

func madeToOrderRows() []row {
	refundFrom := []struct {
		state string
		order []func(*packline.Order)
		path  []ev
	}{
		{"pending_customization", mtoCustom, mtoCustomization},
		{"customization_submitted", mtoCustom, mtoSubmitted},
		{"proof_sent", mtoCustom, mtoProofSent},
		{"proof_rejected", mtoCustom, mtoProofRejected},
		{"proof_approved", mtoCustom, mtoProofApproved},
		{"in_production", mtoCustom, mtoProduction},
		{"shipped", nil, mtoShipped},
		{"delivered", nil, mtoDelivered},
		{"cancelled", mtoCustom, mtoCancelledPaid},
	}
	rows := []row{
		{name: "payment_succeeded with a customizable line", order: mtoCustom,
			from: "pending_payment", event: "payment_succeeded", actors: []packline.ActorType{payment},
			to: "pending_customization",
			effects: []string{"notify:email receipt to:customer", "webhook:deliver order.paid",
				"automatic: webhook:deliver order.pending_customization"},
			steps: []string{"payment_succeeded pending_payment→paid (payment)",
				"automatic paid→pending_customization (system)"},
			flags: []string{"paid"}},
		{name: "payment_succeeded without a customizable line",
			from: "pending_payment", event: "payment_succeeded", actors: []packline.ActorType{payment},
			to: "in_production",
			effects: []string{"notify:email receipt to:customer", "webhook:deliver order.paid",
				"automatic: notify:email production_notice to:customer",
				"automatic: webhook:deliver order.in_production"},
			steps: []string{"payment_succeeded pending_payment→paid (payment)",
				"automatic paid→in_production (system)"},
			flags: []string{"paid"}},
		{from: "pending_payment", event: "payment_failed", actors: []packline.ActorType{payment},
			to: "pending_payment", effects: []string{"notify:email payment_problem to:customer"}, flags: []string{}},
		{order: mtoCustom, path: mtoCustomization,
			from: "pending_customization", event: "submit_customization", actors: []packline.ActorType{customer},
			to:      "customization_submitted",
			effects: []string{"notify:email customization_submitted to:merchant", "webhook:deliver order.customization_submitted"}},
		{order: mtoCustom, path: mtoSubmitted,
			from: "customization_submitted", event: "send_proof", actors: []packline.ActorType{merchant},
			to: "proof_sent", effects: []string{"notify:email proof_request to:customer", "webhook:deliver order.proof_sent"}},
		{order: mtoCustom, path: mtoProofRejected,
			from: "proof_rejected", event: "send_proof", actors: []packline.ActorType{merchant},
			to: "proof_sent", effects: []string{"notify:email proof_request to:customer", "webhook:deliver order.proof_sent"}},
		{order: mtoCustom, path: mtoProofSent,
			from: "proof_sent", event: "approve_proof", actors: []packline.ActorType{customer},
			to: "proof_approved", effects: []string{"webhook:deliver order.proof_approved"}},
		{order: mtoCustom, path: mtoProofSent,
			from: "proof_sent", event: "reject_proof", actors: []packline.ActorType{customer},
			to: "proof_rejected", effects: []string{"notify:email proof_rejected to:merchant", "webhook:deliver order.proof_rejected"}},
		{order: mtoCustom, path: mtoProofApproved,
			from: "proof_approved", event: "start_production", actors: []packline.ActorType{merchant},
			to: "in_production", effects: []string{"notify:email production_notice to:customer", "webhook:deliver order.in_production"}},
		{name: "ship once the label exists", path: mtoLabelled,
			from: "in_production", event: "ship", actors: []packline.ActorType{merchant},
			to: "shipped", effects: []string{"notify:email shipping_notice to:customer", "webhook:deliver order.shipped"},
			flags: []string{"label_exists", "paid"}},
		{name: "ship before the label asks for it", path: mtoPlainPaid,
			from: "in_production", event: "ship", actors: []packline.ActorType{merchant},
			to: "in_production", effects: []string{"courier:label"}, flags: []string{"paid", "ship_requested"}},
		{name: "ship again while the label is being made", path: mtoShipRequested,
			from: "in_production", event: "ship", actors: []packline.ActorType{merchant},
			to: "in_production", effects: []string{}, flags: []string{"paid", "ship_requested"}},
		{name: "label_created ships a requested order", path: mtoShipRequested,
			from: "in_production", event: "label_created", actors: []packline.ActorType{system},
			to: "shipped", effects: []string{"notify:email shipping_notice to:customer", "webhook:deliver order.shipped"},
			flags: []string{"label_exists", "paid", "ship_requested"}},
		{name: "label_created before ship", path: mtoPlainPaid,
			from: "in_production", event: "label_created", actors: []packline.ActorType{system},
			to: "in_production", effects: []string{}, flags: []string{"label_exists", "paid"}},
		{name: "label_created after shipping", path: mtoShipped,
			from: "shipped", event: "label_created", actors: []packline.ActorType{system},
			to: "shipped", effects: []string{}, flags: []string{"label_exists", "paid"}},
		{name: "label_created after delivery", path: mtoDelivered,
			from: "delivered", event: "label_created", actors: []packline.ActorType{system},
			to: "delivered", effects: []string{}},
		{path: mtoShipped, from: "shipped", event: "deliver", actors: []packline.ActorType{courier, merchant},
			to: "delivered", effects: []string{"webhook:deliver order.delivered"}},
		// An unpaid cancellation still owes a refund: of a charge in flight,
		// if any (the refund waits for it and refunds nothing otherwise).
		{name: "cancel unpaid", from: "pending_payment", event: "cancel", actors: []packline.ActorType{merchant, customer},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}, flags: []string{}},
		{name: "cancel paid", fixture: restingPaid, from: "paid", event: "cancel", actors: []packline.ActorType{merchant, customer},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}, flags: []string{"refund_issued"}},
		{name: "refund paid", fixture: restingPaid, from: "paid", event: "refund", actors: []packline.ActorType{merchant},
			to: "refunded", effects: []string{"payment:refund", "webhook:deliver order.refunded"}, flags: []string{"refund_issued"}},
		{name: "expire after 24h", from: "pending_payment", event: "expire", actors: []packline.ActorType{system},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}},
	}
	for _, c := range refundFrom[:6] {
		rows = append(rows, row{name: "cancel from " + c.state + " refunds", order: c.order, path: c.path,
			from: c.state, event: "cancel", actors: []packline.ActorType{merchant, customer},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}})
	}
	for _, c := range refundFrom {
		// Cancelling a paid order already issued the refund: refunding the
		// cancelled order records it and owes no second one.
		effects := []string{"payment:refund", "webhook:deliver order.refunded"}
		if c.state == "cancelled" {
			effects = []string{"webhook:deliver order.refunded"}
		}
		rows = append(rows, row{name: "refund from " + c.state, order: c.order, path: c.path,
			from: c.state, event: "refund", actors: []packline.ActorType{merchant},
			to: "refunded", effects: effects})
	}
	return rows
}

// Paths of wholesale: an order of 1,000.00 due to ship on 2025-04-01.
var (
	wsConfirmed     = []ev{{"confirm", merchant, nil}}
	wsProduction    = then(wsConfirmed, ev{"start_production", merchant, nil})
	wsLabelled      = then(wsProduction, ev{"label_created", system, nil})
	wsShipRequested = then(wsProduction, ev{"ship", merchant, nil})
	wsShipped       = then(wsLabelled, ev{"ship", merchant, nil})
	wsInvoiced      = then(wsShipped, ev{"invoice", merchant, nil})
	wsPartlyPaid    = then(wsInvoiced, ev{"record_payment", payment, map[string]any{"amount": json.Number("40000")}})
)

var wsOrder = []func(*packline.Order){total(100000), shipDate("2025-04-01")}

func amountPaid(want int64) func(t *testing.T, r Result) {
	return func(t *testing.T, r Result) {
		t.Helper()
		if r.Order.AmountPaid != want {
			t.Errorf("amount paid = %d, want %d", r.Order.AmountPaid, want)
		}
	}
}

func wholesaleRows() []row {
	atRisk := []string{"notify:email ship_date_at_risk to:merchant", "webhook:deliver order.at_risk"}
	return []row{
		{from: "draft", event: "confirm", actors: []packline.ActorType{merchant},
			to: "confirmed", effects: []string{"notify:email order_confirmation to:customer", "webhook:deliver order.confirmed"}},
		{path: wsConfirmed, from: "confirmed", event: "start_production", actors: []packline.ActorType{merchant},
			to: "in_production", effects: []string{"webhook:deliver order.in_production"}},
		{name: "ship once the label exists", path: wsLabelled,
			from: "in_production", event: "ship", actors: []packline.ActorType{merchant},
			to: "shipped", effects: []string{"notify:email shipping_notice to:customer", "webhook:deliver order.shipped"},
			flags: []string{"label_exists"}},
		{name: "ship before the label asks for it", path: wsProduction,
			from: "in_production", event: "ship", actors: []packline.ActorType{merchant},
			to: "in_production", effects: []string{"courier:label"}, flags: []string{"ship_requested"}},
		{name: "ship again while the label is being made", path: wsShipRequested,
			from: "in_production", event: "ship", actors: []packline.ActorType{merchant},
			to: "in_production", effects: []string{}},
		{name: "label_created ships a requested order", path: wsShipRequested,
			from: "in_production", event: "label_created", actors: []packline.ActorType{system},
			to: "shipped", effects: []string{"notify:email shipping_notice to:customer", "webhook:deliver order.shipped"},
			flags: []string{"label_exists", "ship_requested"}},
		{name: "label_created before ship", path: wsProduction,
			from: "in_production", event: "label_created", actors: []packline.ActorType{system},
			to: "in_production", effects: []string{}, flags: []string{"label_exists"}},
		{name: "label_created after shipping", path: wsShipped,
			from: "shipped", event: "label_created", actors: []packline.ActorType{system},
			to: "shipped", effects: []string{}},
		{name: "label_created after invoicing", path: wsInvoiced,
			from: "invoiced", event: "label_created", actors: []packline.ActorType{system},
			to: "invoiced", effects: []string{}},
		{path: wsShipped, from: "shipped", event: "invoice", actors: []packline.ActorType{merchant},
			to: "invoiced", effects: []string{"notify:email invoice to:customer", "webhook:deliver order.invoiced"}},
		{name: "record_payment short of the total", path: wsInvoiced,
			from: "invoiced", event: "record_payment", actors: []packline.ActorType{merchant, payment},
			data: map[string]any{"amount": json.Number("40000"), "reference": "wire 118"},
			to:   "invoiced", effects: []string{}, check: amountPaid(40000)},
		{name: "record_payment reaching the total", path: wsPartlyPaid,
			from: "invoiced", event: "record_payment", actors: []packline.ActorType{merchant, payment},
			data: map[string]any{"amount": json.Number("60000")},
			to:   "paid", effects: []string{"webhook:deliver order.paid"}, check: amountPaid(100000)},
		{name: "record_payment over the total", path: wsInvoiced,
			from: "invoiced", event: "record_payment", actors: []packline.ActorType{merchant, payment},
			data: map[string]any{"amount": float64(150000)},
			to:   "paid", effects: []string{"webhook:deliver order.paid"}, check: amountPaid(150000)},
		{name: "cancel a draft", from: "draft", event: "cancel", actors: []packline.ActorType{merchant},
			to: "cancelled", effects: []string{"webhook:deliver order.cancelled"}},
		{name: "cancel a confirmed order", path: wsConfirmed, from: "confirmed", event: "cancel", actors: []packline.ActorType{merchant},
			to: "cancelled", effects: []string{"webhook:deliver order.cancelled"}},
		{name: "ship date at risk in draft", from: "draft", event: "ship_date_at_risk", actors: []packline.ActorType{system},
			to: "draft", effects: atRisk},
		{name: "ship date at risk when confirmed", path: wsConfirmed, from: "confirmed", event: "ship_date_at_risk",
			actors: []packline.ActorType{system}, to: "confirmed", effects: atRisk},
		{name: "ship date at risk in production", path: wsProduction, from: "in_production", event: "ship_date_at_risk",
			actors: []packline.ActorType{system}, to: "in_production", effects: atRisk},
	}
}

// Paths of request-approval.
var (
	raChecked  = []ev{{"payment_succeeded", payment, nil}}
	raAccepted = then(raChecked, ev{"accept", merchant, nil})
	raCharged  = then(raAccepted, ev{"payment_succeeded", payment, nil})
	raRetry    = then(raAccepted, ev{"payment_failed", payment, nil})
)

func requestApprovalRows() []row {
	voidCheck := []string{"payment:void purpose:card_check", "notify:email request_declined to:customer", "webhook:deliver order.declined"}
	// A cancellation always releases the card check and refunds: both are
	// no-ops when there is nothing to release or refund, and both wait for
	// an authorization or charge still in flight.
	canceled := []string{"payment:void purpose:card_check", "payment:refund", "notify:email request_canceled to:customer", "webhook:deliver order.canceled"}
	return []row{
		{name: "payment_succeeded for the card check voids it",
			from: "received", event: "payment_succeeded", actors: []packline.ActorType{payment},
			to: "received", effects: []string{"payment:void purpose:card_check"}, flags: []string{"card_checked"}},
		{name: "payment_succeeded for the full charge", path: raAccepted,
			from: "accepted", event: "payment_succeeded", actors: []packline.ActorType{payment},
			to: "accepted", effects: []string{}, flags: []string{"card_checked", "paid"}},
		{name: "payment_failed for the card check",
			from: "received", event: "payment_failed", actors: []packline.ActorType{payment},
			to: "declined", effects: []string{"notify:email card_check_failed to:customer", "webhook:deliver order.declined"}},
		{path: raChecked, from: "received", event: "accept", actors: []packline.ActorType{merchant},
			to: "accepted", effects: []string{"payment:capture", "notify:email request_accepted to:customer", "webhook:deliver order.accepted"}},
		{name: "decline after the card check", path: raChecked,
			from: "received", event: "decline", actors: []packline.ActorType{merchant}, to: "declined", effects: voidCheck},
		{name: "decline while the card check is pending",
			from: "received", event: "decline", actors: []packline.ActorType{merchant}, to: "declined", effects: voidCheck},
		{name: "cancel a request", from: "received", event: "cancel", actors: []packline.ActorType{customer},
			to: "canceled", effects: canceled},
		{name: "cancel an accepted request before the charge", path: raAccepted,
			from: "accepted", event: "cancel", actors: []packline.ActorType{customer}, to: "canceled", effects: canceled},
		{name: "cancel a charged request refunds", path: raCharged,
			from: "accepted", event: "cancel", actors: []packline.ActorType{customer},
			to: "canceled", effects: canceled},
		{name: "payment_failed for the full charge", path: raAccepted,
			from: "accepted", event: "payment_failed", actors: []packline.ActorType{payment},
			to: "pending_payment", effects: []string{"notify:email payment_retry to:customer", "webhook:deliver order.pending_payment"},
			timers: []string{"expire +168h0m0s [pending_payment] sv4"}},
		{name: "payment_failed with a timer scale", path: raAccepted, scale: 0.5,
			from: "accepted", event: "payment_failed", actors: []packline.ActorType{payment},
			to: "pending_payment", effects: []string{"notify:email payment_retry to:customer", "webhook:deliver order.pending_payment"},
			timers: []string{"expire +84h0m0s [pending_payment] sv4"}},
		{path: raRetry, from: "pending_payment", event: "retry_payment", actors: []packline.ActorType{customer},
			data: map[string]any{"payment_method": "pm_card_visa"},
			to:   "accepted", effects: []string{"payment:capture", "notify:email status_update to:customer", "webhook:deliver order.accepted"}},
		{name: "expire after 7 days", path: raRetry, from: "pending_payment", event: "expire", actors: []packline.ActorType{system},
			to: "expired", effects: []string{"notify:email request_expired to:customer", "webhook:deliver order.expired"}},
		{path: raCharged, from: "accepted", event: "complete", actors: []packline.ActorType{merchant},
			to: "completed", effects: []string{"notify:email request_completed to:customer", "webhook:deliver order.completed"}},
	}
}

// Paths of cash-on-delivery.
var (
	codConfirmed     = []ev{{"confirm", merchant, nil}}
	codStockTaken    = then(codConfirmed, ev{"stock_taken", system, nil})
	codOnHold        = then(codConfirmed, ev{"stock_short", system, map[string]any{"skus": []any{"MUG"}}})
	codProcessing    = then(codStockTaken, ev{"process", merchant, nil})
	codLabelled      = then(codProcessing, ev{"label_created", system, nil})
	codShipRequested = then(codProcessing, ev{"ship", merchant, nil})
	codShipped       = then(codLabelled, ev{"ship", courier, map[string]any{"courier": "yalidine"}})
	codDelivered     = then(codShipped, ev{"deliver", courier, nil})
)

func cashOnDeliveryRows() []row {
	restore := []string{"stock:restore", "webhook:deliver order.cancelled"}
	cancelled := []string{"webhook:deliver order.cancelled"}
	var rows []row
	for _, outcome := range []string{"no_answer", "busy", "postponed", "fake", "confirmed"} {
		data := map[string]any{"outcome": outcome}
		rows = append(rows, row{name: "log_call " + outcome, from: "pending", event: "log_call",
			actors: []packline.ActorType{merchant}, data: data, to: "pending", effects: []string{}, flags: []string{},
			check: func(t *testing.T, r Result) {
				t.Helper()
				if got, want := string(r.Steps[0].Data), `{"outcome":"`+outcome+`"}`; got != want {
					t.Errorf("timeline data = %s, want %s", got, want)
				}
			}})
	}
	return append(rows, []row{
		{name: "confirm takes stock", from: "pending", event: "confirm", actors: []packline.ActorType{merchant},
			to: "confirmed", effects: []string{"stock:decrement", "webhook:deliver order.confirmed"}, flags: []string{}},
		{name: "confirm again after a shortage", path: codOnHold, from: "on_hold", event: "confirm", actors: []packline.ActorType{merchant},
			to: "confirmed", effects: []string{"stock:decrement", "webhook:deliver order.confirmed"}},
		{path: codConfirmed, from: "confirmed", event: "stock_taken", actors: []packline.ActorType{system},
			to: "confirmed", effects: []string{}, flags: []string{"stock_taken"}},
		{path: codConfirmed, from: "confirmed", event: "stock_short", actors: []packline.ActorType{system},
			data: map[string]any{"skus": []any{"MUG"}},
			to:   "on_hold", effects: []string{"notify:email stock_short to:merchant", "webhook:deliver order.on_hold"},
			check: func(t *testing.T, r Result) {
				t.Helper()
				if got := string(r.Effects[0].Data); got != `{"skus":["MUG"]}` {
					t.Errorf("stock_short email data = %s, want the short SKUs", got)
				}
			}},
		{name: "process once stock is taken", path: codStockTaken, from: "confirmed", event: "process",
			actors: []packline.ActorType{merchant}, to: "processing", effects: []string{"webhook:deliver order.processing"}},
		{name: "ship once the label exists", path: codLabelled, from: "processing", event: "ship",
			actors: []packline.ActorType{merchant, courier}, data: map[string]any{"courier": "yalidine"},
			to: "shipped", effects: []string{"notify:sms shipped_tracking to:customer", "webhook:deliver order.shipped"},
			flags: []string{"label_exists", "stock_taken"}},
		{name: "ship before the label asks for it", path: codProcessing, from: "processing", event: "ship",
			actors: []packline.ActorType{merchant, courier},
			to:     "processing", effects: []string{"courier:label"}, flags: []string{"ship_requested", "stock_taken"}},
		{name: "ship again while the label is being made", path: codShipRequested, from: "processing", event: "ship",
			actors: []packline.ActorType{merchant, courier}, to: "processing", effects: []string{}},
		{name: "label_created ships a requested order", path: codShipRequested, from: "processing", event: "label_created",
			actors: []packline.ActorType{system},
			to:     "shipped", effects: []string{"notify:sms shipped_tracking to:customer", "webhook:deliver order.shipped"},
			flags: []string{"label_exists", "ship_requested", "stock_taken"}},
		{name: "label_created before ship", path: codProcessing, from: "processing", event: "label_created",
			actors: []packline.ActorType{system}, to: "processing", effects: []string{}, flags: []string{"label_exists", "stock_taken"}},
		{name: "label_created after shipping", path: codShipped, from: "shipped", event: "label_created",
			actors: []packline.ActorType{system}, to: "shipped", effects: []string{}},
		{name: "label_created after delivery", path: codDelivered, from: "delivered", event: "label_created",
			actors: []packline.ActorType{system}, to: "delivered", effects: []string{}},
		{path: codShipped, from: "shipped", event: "deliver", actors: []packline.ActorType{courier, merchant},
			to: "delivered", effects: []string{"webhook:deliver order.delivered"}},
		{name: "return from shipped", path: codShipped, from: "shipped", event: "return", actors: []packline.ActorType{courier, merchant},
			to: "returned", effects: []string{"stock:restore", "webhook:deliver order.returned"}},
		{name: "return from delivered", path: codDelivered, from: "delivered", event: "return", actors: []packline.ActorType{courier, merchant},
			to: "returned", effects: []string{"stock:restore", "webhook:deliver order.returned"}},
		{name: "cancel pending", from: "pending", event: "cancel", actors: []packline.ActorType{merchant, customer},
			to: "cancelled", effects: cancelled},
		{name: "cancel confirmed before stock is taken", path: codConfirmed, from: "confirmed", event: "cancel",
			actors: []packline.ActorType{merchant, customer}, to: "cancelled", effects: cancelled},
		{name: "cancel confirmed after stock is taken", path: codStockTaken, from: "confirmed", event: "cancel",
			actors: []packline.ActorType{merchant, customer}, to: "cancelled", effects: restore},
		{name: "cancel on hold", path: codOnHold, from: "on_hold", event: "cancel",
			actors: []packline.ActorType{merchant, customer}, to: "cancelled", effects: cancelled},
		{name: "cancel processing", path: codProcessing, from: "processing", event: "cancel",
			actors: []packline.ActorType{merchant, customer}, to: "cancelled", effects: restore},
		{name: "expire after 14 days", from: "pending", event: "expire", actors: []packline.ActorType{system},
			to: "cancelled", effects: cancelled},
	}...)
}

// Paths of prepaid-simple.
var (
	psPaid          = []ev{{"payment_succeeded", payment, nil}}
	psLabelled      = then(psPaid, ev{"label_created", system, nil})
	psShipRequested = then(psPaid, ev{"ship", merchant, nil})
	psShipped       = then(psLabelled, ev{"ship", merchant, nil})
)

func prepaidSimpleRows() []row {
	shipped := []string{"notify:email shipping_confirmation to:customer", "webhook:deliver order.shipped"}
	feedback := []string{"request_feedback +72h0m0s [shipped] sv4"}
	return []row{
		{name: "payment_succeeded makes the label at once", from: "pending", event: "payment_succeeded",
			actors: []packline.ActorType{payment}, to: "paid",
			effects: []string{"courier:label", "notify:email status_update to:customer", "webhook:deliver order.paid"},
			flags:   []string{"paid"}},
		{from: "pending", event: "payment_failed", actors: []packline.ActorType{payment},
			to: "pending", effects: []string{"notify:email payment_problem to:customer"}},
		{name: "ship once the label exists", path: psLabelled, from: "paid", event: "ship",
			actors: []packline.ActorType{merchant, courier}, to: "shipped", effects: shipped, timers: feedback,
			flags: []string{"label_exists", "paid"}},
		{name: "ship before the label waits for it", path: psPaid, from: "paid", event: "ship",
			actors: []packline.ActorType{merchant, courier}, to: "paid", effects: []string{},
			flags: []string{"paid", "ship_requested"}},
		{name: "label_created ships a requested order", path: psShipRequested, from: "paid", event: "label_created",
			actors: []packline.ActorType{system}, to: "shipped", effects: shipped, timers: feedback,
			flags: []string{"label_exists", "paid", "ship_requested"}},
		{name: "label_created before ship", path: psPaid, from: "paid", event: "label_created",
			actors: []packline.ActorType{system}, to: "paid", effects: []string{}, flags: []string{"label_exists", "paid"}},
		{name: "label_created after shipping", path: psShipped, from: "shipped", event: "label_created",
			actors: []packline.ActorType{system}, to: "shipped", effects: []string{}},
		{name: "cancel unpaid", from: "pending", event: "cancel", actors: []packline.ActorType{merchant, customer},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}},
		{name: "cancel paid refunds", path: psPaid, from: "paid", event: "cancel", actors: []packline.ActorType{merchant, customer},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}},
		{name: "feedback request 3 days after shipping", path: psShipped, from: "shipped", event: "request_feedback",
			actors: []packline.ActorType{system}, to: "shipped", effects: []string{"notify:email feedback_request to:customer"}},
		{path: psShipped, from: "shipped", event: "leave_feedback", actors: []packline.ActorType{customer},
			data: map[string]any{"rating": json.Number("5"), "comment": "Lovely prints"},
			to:   "shipped", effects: []string{}},
		{name: "expire after 24h", from: "pending", event: "expire", actors: []packline.ActorType{system},
			to: "cancelled", effects: []string{"payment:refund", "webhook:deliver order.cancelled"}},
	}
}

var flowRows = map[string]func() []row{
	"made-to-order":    madeToOrderRows,
	"wholesale":        wholesaleRows,
	"request-approval": requestApprovalRows,
	"cash-on-delivery": cashOnDeliveryRows,
	"prepaid-simple":   prepaidSimpleRows,
}

// defaultOrders are the orders each flow's rows start from.
var defaultOrders = map[string][]func(*packline.Order){
	"wholesale": wsOrder,
}

// TestFlowRows sends every event of FLOWS.md from every state it lists, by
// each actor allowed to send it, and checks the state it leads to, the
// effects, webhooks, timeline steps, timers, flags and versions it produces;
// every other actor must be refused.
func TestFlowRows(t *testing.T) {
	t.Parallel()
	r := builtin(t)
	for name, rows := range flowRows {
		f := r.Get(name)
		for _, rw := range rows() {
			label := rw.name
			if label == "" {
				label = rw.event + " from " + rw.from
			}
			t.Run(name+"/"+label, func(t *testing.T) {
				t.Parallel()
				runRow(t, f, rw)
			})
		}
	}
}

func runRow(t *testing.T, f *Flow, rw row) {
	t.Helper()
	o := newOrder(append(slices.Clone(defaultOrders[f.Name]), rw.order...)...)
	o = reach(t, f, o, rw.path)
	if rw.fixture != nil {
		rw.fixture(&o)
	}
	if o.Status != rw.from {
		t.Fatalf("the path leads to %s, not %s", o.Status, rw.from)
	}
	e := f.Event(rw.event)
	if e == nil {
		t.Fatalf("flow %s has no event %s", f.Name, rw.event)
	}
	if !slices.Equal(e.Actors, rw.actors) {
		t.Errorf("event %s is sent by %v, FLOWS.md says %v", rw.event, e.Actors, rw.actors)
	}
	for _, a := range rw.actors {
		t.Run(string(a), func(t *testing.T) {
			actor := packline.Actor{Type: a, ID: string(a) + "_7"}
			in := Input{Event: rw.event, Actor: actor, Data: rw.data, Note: "by the book", Now: t1, TimerScale: rw.scale}
			before := cloneOrder(o)
			res, err := f.Apply(o, in)
			if err != nil {
				t.Fatalf("%s by %s from %s: %v", rw.event, a, rw.from, err)
			}
			sameOrder(t, "Apply", o, before)
			got := res.Order
			if got.Status != rw.to {
				t.Errorf("status = %s, want %s", got.Status, rw.to)
			}
			if got.Version != o.Version+1 {
				t.Errorf("version = %d, want %d (one more than %d)", got.Version, o.Version+1, o.Version)
			}
			wantSV := o.StateVersion
			if rw.to != rw.from {
				wantSV = got.Version
			}
			if got.StateVersion != wantSV {
				t.Errorf("state version = %d, want %d", got.StateVersion, wantSV)
			}
			if !got.UpdatedAt.Equal(t1) || !got.CreatedAt.Equal(t0) {
				t.Errorf("created/updated at = %v/%v, want %v/%v", got.CreatedAt, got.UpdatedAt, t0, t1)
			}
			equalStrings(t, "effects", effectStrings(res.Effects, rw.event), rw.effects)
			steps := rw.steps
			if steps == nil {
				steps = []string{fmt.Sprintf("%s %s→%s (%s)", rw.event, rw.from, rw.to, a)}
			}
			equalStrings(t, "steps", stepStrings(res.Steps), steps)
			equalStrings(t, "timers", timerStrings(res.Timers, t1), rw.timers)
			if rw.flags != nil {
				equalStrings(t, "flags", flagList(got.Flags), rw.flags)
			}
			if s := res.Steps[0]; s.Actor != actor || s.Note != "by the book" || string(s.Data) != string(mustJSON(t, rw.data)) {
				t.Errorf("first step = %+v, want actor %v, the note and data %s", s, actor, mustJSON(t, rw.data))
			}
			for _, s := range res.Steps[1:] {
				if s.Actor.Type != system || s.Data != nil {
					t.Errorf("automatic step %+v: want the system actor and no data", s)
				}
			}
			for _, ef := range res.Effects {
				if ef.Event == rw.event && string(ef.Data) != string(mustJSON(t, rw.data)) {
					t.Errorf("effect %s carries data %s, want the event's %s", ef.Type, ef.Data, mustJSON(t, rw.data))
				}
			}
			if rw.check != nil {
				rw.check(t, res)
			}
		})
	}
	for _, a := range allActors {
		if slices.Contains(rw.actors, a) {
			continue
		}
		in := Input{Event: rw.event, Actor: packline.Actor{Type: a}, Data: rw.data, Now: t1}
		pe := refused(t, f, o, in)
		if pe.Code != packline.ECONFLICT {
			t.Errorf("%s by %s: code %s, want %s", rw.event, a, pe.Code, packline.ECONFLICT)
		}
		if want := f.AllowedEvents(&o, a); !slices.Equal(pe.AllowedEvents, want) {
			t.Errorf("%s by %s: allowed events %q, want those of the %s: %q", rw.event, a, pe.AllowedEvents, a, want)
		}
		if want := fmt.Sprintf("event %s cannot be sent by a %s", rw.event, a); pe.Message != want {
			t.Errorf("%s by %s: message %q, want %q", rw.event, a, pe.Message, want)
		}
	}
}

// TestRowsCoverEveryTransition fails when a flow gains a transition, an
// event or a source state that no row of TestFlowRows exercises.
func TestRowsCoverEveryTransition(t *testing.T) {
	t.Parallel()
	r := builtin(t)
	for name, rows := range flowRows {
		f := r.Get(name)
		covered := map[string]bool{}
		for _, rw := range rows() {
			covered[rw.event+" from "+rw.from] = true
		}
		for _, e := range f.Events {
			for _, tr := range e.Transitions {
				for _, s := range tr.From {
					if !covered[e.Name+" from "+s] {
						t.Errorf("%s: no row sends %s from %s", name, e.Name, s)
					}
				}
			}
		}
	}
}

// TestContract pins what FLOWS.md names: the flows, their initial and
// terminal states, and their events.
func TestContract(t *testing.T) {
	t.Parallel()
	r := builtin(t)
	if got, want := r.Names(), []string{"cash-on-delivery", "made-to-order", "prepaid-simple", "request-approval", "wholesale"}; !slices.Equal(got, want) {
		t.Fatalf("flows = %q, want %q", got, want)
	}
	tests := []struct {
		flow, initial, seed string
		states, terminal    []string
		events              []string
	}{
		{"made-to-order", "pending_payment", "000",
			[]string{"pending_payment", "paid", "pending_customization", "customization_submitted", "proof_sent", "proof_rejected", "proof_approved", "in_production", "shipped", "delivered", "cancelled", "refunded"},
			[]string{"refunded"},
			[]string{"payment_succeeded", "payment_failed", "submit_customization", "send_proof", "approve_proof", "reject_proof", "start_production", "ship", "label_created", "deliver", "cancel", "refund", "expire"}},
		{"wholesale", "draft", "001",
			[]string{"draft", "confirmed", "in_production", "shipped", "invoiced", "paid", "cancelled"},
			[]string{"paid", "cancelled"},
			[]string{"confirm", "start_production", "ship", "label_created", "invoice", "record_payment", "cancel", "ship_date_at_risk"}},
		{"request-approval", "received", "002",
			[]string{"received", "accepted", "declined", "canceled", "pending_payment", "expired", "completed"},
			[]string{"declined", "canceled", "expired", "completed"},
			[]string{"payment_succeeded", "payment_failed", "accept", "decline", "cancel", "retry_payment", "expire", "complete"}},
		{"cash-on-delivery", "pending", "003",
			[]string{"pending", "confirmed", "on_hold", "processing", "shipped", "delivered", "returned", "cancelled"},
			[]string{"returned", "cancelled"},
			[]string{"log_call", "confirm", "stock_taken", "stock_short", "process", "ship", "label_created", "deliver", "return", "cancel", "expire"}},
		{"prepaid-simple", "pending", "004",
			[]string{"pending", "paid", "shipped", "cancelled"},
			[]string{"cancelled"},
			[]string{"payment_succeeded", "payment_failed", "ship", "label_created", "cancel", "request_feedback", "leave_feedback", "expire"}},
	}
	for _, tt := range tests {
		f := r.Get(tt.flow)
		if f.Initial != tt.initial || f.Seed != tt.seed {
			t.Errorf("%s: initial %s seed %s, want %s %s", tt.flow, f.Initial, f.Seed, tt.initial, tt.seed)
		}
		var states, terminal, events []string
		for _, s := range f.States {
			states = append(states, s.Name)
			if s.Terminal {
				terminal = append(terminal, s.Name)
			}
		}
		for _, e := range f.Events {
			events = append(events, e.Name)
		}
		equalStrings(t, tt.flow+" states", states, tt.states)
		equalStrings(t, tt.flow+" terminal states", terminal, tt.terminal)
		equalStrings(t, tt.flow+" events", events, tt.events)
	}
}

// TestStart checks what opening an order owes: the initial state, its
// effects and webhook, the first timeline entry and the timers.
func TestStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flow    string
		order   []func(*packline.Order)
		scale   float64
		status  string
		effects []string
		timers  []string
	}{
		{name: "made-to-order", flow: "made-to-order", status: "pending_payment",
			effects: []string{"payment:confirm", "webhook:deliver order.pending_payment"},
			timers:  []string{"expire +24h0m0s [pending_payment] sv1"}},
		{name: "made-to-order scaled timer", flow: "made-to-order", scale: 0.00001, status: "pending_payment",
			effects: []string{"payment:confirm", "webhook:deliver order.pending_payment"},
			timers:  []string{"expire +864ms [pending_payment] sv1"}},
		{name: "wholesale with a ship date", flow: "wholesale", order: wsOrder, status: "draft",
			effects: []string{"webhook:deliver order.draft"},
			// 2025-04-01 less 3 days is 2025-03-29 00:00 UTC, 615h after t0 (09:00 on 03-03).
			timers: []string{"ship_date_at_risk +615h0m0s [draft confirmed in_production] sv0"}},
		{name: "wholesale ship date scaled", flow: "wholesale", order: wsOrder, scale: 0.5, status: "draft",
			effects: []string{"webhook:deliver order.draft"},
			timers:  []string{"ship_date_at_risk +307h30m0s [draft confirmed in_production] sv0"}},
		{name: "wholesale ship date already at risk", flow: "wholesale", order: []func(*packline.Order){shipDate("2025-03-04")},
			status: "draft", effects: []string{"webhook:deliver order.draft"},
			timers: []string{"ship_date_at_risk +0s [draft confirmed in_production] sv0"}},
		{name: "wholesale without a ship date", flow: "wholesale", status: "draft",
			effects: []string{"webhook:deliver order.draft"}},
		{name: "request-approval USD card check", flow: "request-approval", status: "received",
			effects: []string{"payment:authorize amount:100 purpose:card_check", "notify:email request_received to:customer", "webhook:deliver order.received"}},
		{name: "request-approval JPY card check", flow: "request-approval", order: []func(*packline.Order){currency("JPY")}, status: "received",
			effects: []string{"payment:authorize amount:1 purpose:card_check", "notify:email request_received to:customer", "webhook:deliver order.received"}},
		{name: "request-approval KWD card check", flow: "request-approval", order: []func(*packline.Order){currency("KWD")}, status: "received",
			effects: []string{"payment:authorize amount:1000 purpose:card_check", "notify:email request_received to:customer", "webhook:deliver order.received"}},
		{name: "cash-on-delivery", flow: "cash-on-delivery", status: "pending",
			effects: []string{"notify:email new_order to:merchant", "webhook:deliver order.pending"},
			timers:  []string{"expire +336h0m0s [pending] sv1"}},
		{name: "prepaid-simple", flow: "prepaid-simple", status: "pending",
			effects: []string{"notify:email receipt to:customer", "payment:confirm", "webhook:deliver order.pending"},
			timers:  []string{"expire +24h0m0s [pending] sv1"}},
	}
	r := builtin(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := r.Get(tt.flow)
			o := newOrder(tt.order...)
			o.Flags = packline.Flags{"stale": true} // a caller's flags survive, copied
			actor := packline.Actor{Type: customer, ID: "storefront"}
			res, err := f.Start(o, actor, t0, tt.scale)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Order
			if got.Status != tt.status || got.Flow != tt.flow || got.Version != 1 || got.StateVersion != 1 {
				t.Errorf("order = %s/%s v%d sv%d, want %s/%s v1 sv1", got.Flow, got.Status, got.Version, got.StateVersion, tt.flow, tt.status)
			}
			if !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) {
				t.Errorf("created/updated = %v/%v, want %v", got.CreatedAt, got.UpdatedAt, t0)
			}
			got.Flags["other"] = true
			if o.Flags["other"] {
				t.Error("Start shares the caller's flags map")
			}
			equalStrings(t, "effects", effectStrings(res.Effects, "created"), tt.effects)
			equalStrings(t, "steps", stepStrings(res.Steps), []string{"created →" + tt.status + " (customer)"})
			equalStrings(t, "timers", timerStrings(res.Timers, t0), tt.timers)
			if res.Steps[0].Actor != actor {
				t.Errorf("created by %v, want %v", res.Steps[0].Actor, actor)
			}
		})
	}
}

// TestRefused checks events that are refused: from the wrong state, by the
// wrong actor, unknown, or with a guard that does not hold. A state conflict
// lists the events the actor may send instead.
func TestRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flow    string
		order   []func(*packline.Order)
		path    []ev
		send    ev
		code    string
		field   string
		allowed []string
		msg     string
	}{
		{name: "ship before payment", flow: "made-to-order", send: ev{"ship", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event ship is not allowed in state pending_payment"},
		{name: "payment event from the customer", flow: "made-to-order", send: ev{"payment_succeeded", customer, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event payment_succeeded cannot be sent by a customer"},
		{name: "timer event from the merchant", flow: "made-to-order", send: ev{"expire", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event expire cannot be sent by a merchant"},
		{name: "payment events for the payment provider", flow: "made-to-order", send: ev{"deliver", payment, nil},
			code: packline.ECONFLICT, allowed: []string{"payment_succeeded", "payment_failed"}, msg: "event deliver cannot be sent by a payment"},
		{name: "customer ships", flow: "made-to-order", path: mtoPlainPaid, send: ev{"ship", customer, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event ship cannot be sent by a customer"},
		{name: "merchant submits the customization", flow: "made-to-order", order: mtoCustom, path: mtoCustomization,
			send: ev{"submit_customization", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel", "refund"}, msg: "event submit_customization cannot be sent by a merchant"},
		{name: "proof approved before it is sent", flow: "made-to-order", order: mtoCustom, path: mtoSubmitted,
			send: ev{"approve_proof", customer, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event approve_proof is not allowed in state customization_submitted"},
		{name: "cancel after shipping", flow: "made-to-order", path: mtoShipped, send: ev{"cancel", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"deliver", "refund"}, msg: "event cancel is not allowed in state shipped"},
		{name: "refund of an unpaid cancelled order", flow: "made-to-order", path: mtoCancelled, send: ev{"refund", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event refund is not possible in state cancelled yet: needs refund issued"},
		{name: "nothing after refunded", flow: "made-to-order", path: then(mtoShipped, ev{"refund", merchant, nil}),
			send: ev{"deliver", courier, nil}, code: packline.ECONFLICT, allowed: []string{}, msg: "event deliver is not allowed in state refunded"},
		{name: "unknown event", flow: "made-to-order", send: ev{"teleport", merchant, nil},
			code: packline.EINVALID, field: "event", allowed: []string{"cancel"}, msg: `unknown event "teleport" for flow made-to-order`},
		{name: "a state name is not an event", flow: "wholesale", send: ev{"paid", payment, nil},
			code: packline.EINVALID, field: "event", allowed: []string{}, msg: `unknown event "paid" for flow wholesale`},
		{name: "customer cancels wholesale", flow: "wholesale", send: ev{"cancel", customer, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event cancel cannot be sent by a customer"},
		{name: "cancel in production", flow: "wholesale", path: wsProduction, send: ev{"cancel", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"ship"}, msg: "event cancel is not allowed in state in_production"},
		{name: "payment before the invoice", flow: "wholesale", path: wsShipped,
			send: ev{"record_payment", merchant, map[string]any{"amount": json.Number("100")}},
			code: packline.ECONFLICT, allowed: []string{"invoice"}, msg: "event record_payment is not allowed in state shipped"},
		{name: "ship date at risk once shipped", flow: "wholesale", path: wsShipped, send: ev{"ship_date_at_risk", system, nil},
			code: packline.ECONFLICT, allowed: []string{"label_created"}, msg: "event ship_date_at_risk is not allowed in state shipped"},
		{name: "merchant cancels a request", flow: "request-approval", send: ev{"cancel", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"decline"}, msg: "event cancel cannot be sent by a merchant"},
		{name: "second card check success", flow: "request-approval", path: raChecked, send: ev{"payment_succeeded", payment, nil},
			code: packline.ECONFLICT, allowed: []string{"payment_failed"}, msg: "event payment_succeeded is not possible in state received yet: needs not card checked"},
		{name: "complete before the charge", flow: "request-approval", path: raAccepted, send: ev{"complete", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event complete is not possible in state accepted yet: needs paid"},
		{name: "accept a declined request", flow: "request-approval", path: []ev{{"decline", merchant, nil}}, send: ev{"accept", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event accept is not allowed in state declined"},
		{name: "retry before a failure", flow: "request-approval", path: raAccepted,
			send: ev{"retry_payment", customer, map[string]any{"payment_method": "pm_card_visa"}},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event retry_payment is not allowed in state accepted"},
		{name: "process before stock is taken", flow: "cash-on-delivery", path: codConfirmed, send: ev{"process", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event process is not possible in state confirmed yet: needs stock taken"},
		{name: "confirm twice", flow: "cash-on-delivery", path: codConfirmed, send: ev{"confirm", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event confirm is not allowed in state confirmed"},
		{name: "log a call once confirmed", flow: "cash-on-delivery", path: codConfirmed,
			send: ev{"log_call", merchant, map[string]any{"outcome": "busy"}},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event log_call is not allowed in state confirmed"},
		{name: "courier confirms", flow: "cash-on-delivery", send: ev{"confirm", courier, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event confirm cannot be sent by a courier"},
		{name: "cancel once shipped", flow: "cash-on-delivery", path: codShipped, send: ev{"cancel", customer, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event cancel is not allowed in state shipped"},
		{name: "feedback before shipping", flow: "prepaid-simple", path: psPaid,
			send: ev{"leave_feedback", customer, map[string]any{"rating": json.Number("4")}},
			code: packline.ECONFLICT, allowed: []string{"cancel"}, msg: "event leave_feedback is not allowed in state paid"},
		{name: "ship before payment", flow: "prepaid-simple", send: ev{"ship", courier, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event ship is not allowed in state pending"},
		{name: "cancel once shipped", flow: "prepaid-simple", path: psShipped, send: ev{"cancel", merchant, nil},
			code: packline.ECONFLICT, allowed: []string{}, msg: "event cancel is not allowed in state shipped"},
	}
	r := builtin(t)
	for _, tt := range tests {
		t.Run(tt.flow+"/"+tt.name, func(t *testing.T) {
			t.Parallel()
			f := r.Get(tt.flow)
			o := reach(t, f, newOrder(append(slices.Clone(defaultOrders[tt.flow]), tt.order...)...), tt.path)
			before := cloneOrder(o)
			pe := refused(t, f, o, tt.send.input(t1))
			sameOrder(t, "refused Apply", o, before)
			if pe.Code != tt.code || pe.Field != tt.field || pe.Message != tt.msg {
				t.Errorf("error = %s %q (field %q), want %s %q (field %q)", pe.Code, pe.Message, pe.Field, tt.code, tt.msg, tt.field)
			}
			equalStrings(t, "allowed events", pe.AllowedEvents, tt.allowed)
		})
	}
}

// TestEventData checks the data an event declares: required fields, types,
// enums, bounds and lengths, and no undeclared fields.
func TestEventData(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		flow  string
		path  []ev
		event string
		actor packline.ActorType
		data  map[string]any
		field string // "" when the data is valid
		msg   string
	}{
		{"outcome missing", "cash-on-delivery", nil, "log_call", merchant, nil, "data.outcome", "log_call needs data.outcome"},
		{"outcome outside the enum", "cash-on-delivery", nil, "log_call", merchant, map[string]any{"outcome": "maybe"},
			"data.outcome", "must be one of no_answer, busy, postponed, fake, confirmed"},
		{"outcome not a string", "cash-on-delivery", nil, "log_call", merchant, map[string]any{"outcome": json.Number("3")},
			"data.outcome", "must be a string"},
		{"outcome null", "cash-on-delivery", nil, "log_call", merchant, map[string]any{"outcome": nil}, "data.outcome", "log_call needs data.outcome"},
		{"undeclared field with log_call", "cash-on-delivery", nil, "log_call", merchant, map[string]any{"outcome": "busy", "x": "y"},
			"data.x", "event log_call takes no field x"},
		{"courier too long", "cash-on-delivery", codLabelled, "ship", merchant, map[string]any{"courier": long(65)},
			"data.courier", "must be at most 64 bytes"},
		{"courier of 64 bytes", "cash-on-delivery", codLabelled, "ship", merchant, map[string]any{"courier": long(64)}, "", ""},
		{"courier not a string", "cash-on-delivery", codLabelled, "ship", courier, map[string]any{"courier": true}, "data.courier", "must be a string"},
		{"rating 1", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": float64(1)}, "", ""},
		{"rating 5", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": json.Number("5")}, "", ""},
		{"rating as a Go int", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": 3}, "", ""},
		{"rating 0", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": json.Number("0")}, "data.rating", "must be at least 1"},
		{"rating 6", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": json.Number("6")}, "data.rating", "must be at most 5"},
		{"rating missing", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"comment": "ok"}, "data.rating", "leave_feedback needs data.rating"},
		{"rating as a string", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": "5"}, "data.rating", "must be an integer"},
		{"rating with a fraction", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": json.Number("4.5")}, "data.rating", "must be an integer"},
		{"rating float with a fraction", "prepaid-simple", psShipped, "leave_feedback", customer, map[string]any{"rating": 4.5}, "data.rating", "must be an integer"},
		{"comment too long", "prepaid-simple", psShipped, "leave_feedback", customer,
			map[string]any{"rating": json.Number("5"), "comment": long(2001)}, "data.comment", "must be at most 2000 bytes"},
		{"comment not a string", "prepaid-simple", psShipped, "leave_feedback", customer,
			map[string]any{"rating": json.Number("5"), "comment": json.Number("7")}, "data.comment", "must be a string"},
		{"undeclared field with feedback", "prepaid-simple", psShipped, "leave_feedback", customer,
			map[string]any{"rating": json.Number("5"), "photo": "x.jpg"}, "data.photo", "event leave_feedback takes no field photo"},
		{"amount missing", "wholesale", wsInvoiced, "record_payment", merchant, map[string]any{"reference": "r"}, "data.amount", "record_payment needs data.amount"},
		{"amount as a string", "wholesale", wsInvoiced, "record_payment", merchant, map[string]any{"amount": "100"}, "data.amount", "must be an integer"},
		{"amount with a fraction", "wholesale", wsInvoiced, "record_payment", payment, map[string]any{"amount": json.Number("10.5")}, "data.amount", "must be an integer"},
		{"amount in exponent form", "wholesale", wsInvoiced, "record_payment", payment, map[string]any{"amount": json.Number("1e3")}, "data.amount", "must be an integer"},
		{"amount zero", "wholesale", wsInvoiced, "record_payment", merchant, map[string]any{"amount": json.Number("0")}, "data.amount", "must be at least 1"},
		{"amount negative", "wholesale", wsInvoiced, "record_payment", merchant, map[string]any{"amount": json.Number("-500")}, "data.amount", "must be at least 1"},
		{"amount beyond int64", "wholesale", wsInvoiced, "record_payment", merchant, map[string]any{"amount": json.Number("9223372036854775808")}, "data.amount", "must be an integer"},
		{"amount float beyond int64", "wholesale", wsInvoiced, "record_payment", merchant, map[string]any{"amount": float64(1 << 63)}, "data.amount", "must be an integer"},
		{"amount overflowing the amount paid", "wholesale", wsPartlyPaid, "record_payment", merchant,
			map[string]any{"amount": json.Number(fmt.Sprint(int64(math.MaxInt64)))}, "data.amount", "amount would overflow the amount paid"},
		{"reference too long", "wholesale", wsInvoiced, "record_payment", merchant,
			map[string]any{"amount": json.Number("1"), "reference": long(201)}, "data.reference", "must be at most 200 bytes"},
		{"undeclared field with a payment", "wholesale", wsInvoiced, "record_payment", merchant,
			map[string]any{"amount": json.Number("1"), "x": 1}, "data.x", "event record_payment takes no field x"},
		{"payment method missing", "request-approval", raRetry, "retry_payment", customer, nil, "data.payment_method", "retry_payment needs data.payment_method"},
		{"payment method not a string", "request-approval", raRetry, "retry_payment", customer, map[string]any{"payment_method": json.Number("12")}, "data.payment_method", "must be a string"},
		{"payment method too long", "request-approval", raRetry, "retry_payment", customer, map[string]any{"payment_method": long(256)}, "data.payment_method", "must be at most 255 bytes"},
		{"undeclared fields, all named", "prepaid-simple", psShipped, "leave_feedback", customer,
			map[string]any{"rating": json.Number("5"), "photo": "x.jpg", "emoji": "y"}, "data.emoji", "event leave_feedback takes no fields emoji, photo"},
		// An event that declares no data takes none from a merchant or
		// customer: it would be stored on the timeline unchecked.
		{"merchant data on an event that declares none", "cash-on-delivery", nil, "confirm", merchant,
			map[string]any{"x": "y"}, "data.x", "event confirm takes no field x"},
		{"customer data on an event that declares none", "cash-on-delivery", nil, "cancel", customer,
			map[string]any{"reason": "r", "b": true}, "data.b", "event cancel takes no fields b, reason"},
		{"empty data on an event that declares none", "cash-on-delivery", nil, "confirm", merchant, map[string]any{}, "", ""},
		// Events that declare no data take whatever a worker reports.
		{"data on an event that declares none", "cash-on-delivery", codConfirmed, "stock_short", system,
			map[string]any{"skus": []any{"MUG", "CAP"}}, "", ""},
	}
	r := builtin(t)
	for _, tt := range tests {
		t.Run(tt.flow+"/"+tt.name, func(t *testing.T) {
			t.Parallel()
			f := r.Get(tt.flow)
			o := reach(t, f, newOrder(defaultOrders[tt.flow]...), tt.path)
			in := ev{tt.event, tt.actor, tt.data}.input(t1)
			if tt.field == "" {
				if _, err := f.Apply(o, in); err != nil {
					t.Fatalf("valid data refused: %v", err)
				}
				return
			}
			pe := refused(t, f, o, in)
			if pe.Code != packline.EINVALID || pe.Field != tt.field || pe.Message != tt.msg {
				t.Errorf("error = %s %q (field %q), want %s %q (field %q)", pe.Code, pe.Message, pe.Field, packline.EINVALID, tt.msg, tt.field)
			}
		})
	}
}

// TestVersions drives whole lifecycles and checks that every Apply adds
// exactly one to the version, and the state version moves only with the
// state (automatic transitions included).
func TestVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flow  string
		order []func(*packline.Order)
		path  []ev
	}{
		{"made-to-order", mtoCustom, then(mtoProduction, ev{"ship", merchant, nil}, ev{"ship", merchant, nil},
			ev{"label_created", system, nil}, ev{"deliver", courier, nil}, ev{"refund", merchant, nil})},
		{"made-to-order", nil, then([]ev{{"payment_failed", payment, nil}}, mtoDelivered...)},
		{"wholesale", wsOrder, then(then([]ev{{"ship_date_at_risk", system, nil}}, wsPartlyPaid...),
			ev{"record_payment", merchant, map[string]any{"amount": json.Number("60000")}})},
		{"request-approval", nil, then(raRetry, ev{"retry_payment", customer, map[string]any{"payment_method": "pm_card_visa"}},
			ev{"payment_succeeded", payment, nil}, ev{"complete", merchant, nil})},
		{"cash-on-delivery", nil, then([]ev{{"log_call", merchant, map[string]any{"outcome": "busy"}}}, then(codDelivered, ev{"return", courier, nil})...)},
		{"prepaid-simple", nil, then(psShipped, ev{"request_feedback", system, nil}, ev{"leave_feedback", customer, map[string]any{"rating": 4}})},
	}
	r := builtin(t)
	for _, tt := range tests {
		t.Run(tt.flow, func(t *testing.T) {
			t.Parallel()
			f := r.Get(tt.flow)
			o := start(t, f, newOrder(append(slices.Clone(defaultOrders[tt.flow]), tt.order...)...)).Order
			for i, e := range tt.path {
				res, err := f.Apply(o, e.input(t1))
				if err != nil {
					t.Fatalf("step %d %s: %v", i+1, e.name, err)
				}
				n := res.Order
				if n.Version != o.Version+1 {
					t.Errorf("step %d %s: version %d → %d", i+1, e.name, o.Version, n.Version)
				}
				moved := n.Status != o.Status
				if moved && n.StateVersion != n.Version || !moved && n.StateVersion != o.StateVersion {
					t.Errorf("step %d %s (%s→%s): state version %d → %d at version %d", i+1, e.name, o.Status, n.Status, o.StateVersion, n.StateVersion, n.Version)
				}
				for _, tm := range res.Timers {
					if len(tm.States) == 1 && tm.States[0] == n.Status && tm.StateVersion != n.StateVersion {
						t.Errorf("step %d: timer %s armed for state version %d, the order entered %s at %d", i+1, tm.Event, tm.StateVersion, n.Status, n.StateVersion)
					}
				}
				o = n
			}
			if want := int64(len(tt.path) + 1); o.Version != want {
				t.Errorf("final version %d, want %d", o.Version, want)
			}
		})
	}
}

func TestScale(t *testing.T) {
	t.Parallel()
	week := 7 * 24 * time.Hour
	tests := []struct {
		scale float64
		want  time.Duration
	}{
		{0, week},
		{1, week},
		{-2, week},
		{0.5, week / 2},
		{2, 2 * week},
		{0.00001, 6048 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Scale(week, tt.scale); got != tt.want {
			t.Errorf("Scale(7d, %v) = %v, want %v", tt.scale, got, tt.want)
		}
	}
}

// TestAllowedEventsAreAccepted walks every order state reachable in each
// flow (with the flags and amounts that come with it) and checks, for every
// actor and event, that AllowedEvents lists the event exactly when Apply,
// given valid data, accepts it.
func TestAllowedEventsAreAccepted(t *testing.T) {
	t.Parallel()
	variants := map[string][][]func(*packline.Order){
		"made-to-order":    {nil, mtoCustom},
		"wholesale":        {wsOrder},
		"request-approval": {nil},
		"cash-on-delivery": {nil},
		"prepaid-simple":   {nil},
	}
	// States no order rests in: paid is left at once by an automatic transition.
	transient := map[string]bool{"made-to-order/paid": true}
	r := builtin(t)
	for name, orders := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := r.Get(name)
			reached := map[string]bool{}
			for _, opts := range orders {
				queue := []packline.Order{start(t, f, newOrder(opts...)).Order}
				seen := map[string]bool{}
				for len(queue) > 0 {
					o := queue[0]
					queue = queue[1:]
					key := fmt.Sprintf("%s %v %d", o.Status, flagList(o.Flags), o.AmountPaid)
					if seen[key] {
						continue
					}
					seen[key] = true
					reached[o.Status] = true
					var accepted []string
					for _, a := range allActors {
						allowed := f.AllowedEvents(&o, a)
						for _, e := range f.Events {
							res, err := f.Apply(o, Input{Event: e.Name, Actor: packline.Actor{Type: a}, Data: validData(e, o), Now: t1})
							listed := slices.Contains(allowed, e.Name)
							switch {
							case listed && err != nil:
								t.Errorf("%s: AllowedEvents(%s) lists %s but Apply refuses it: %v", key, a, e.Name, err)
							case !listed && err == nil:
								t.Errorf("%s: Apply accepts %s from a %s but AllowedEvents does not list it", key, e.Name, a)
							}
							if err == nil {
								queue = append(queue, res.Order)
								if !slices.Contains(accepted, e.Name) {
									accepted = append(accepted, e.Name)
								}
							}
						}
					}
					var inFlowOrder []string
					for _, e := range f.Events {
						if slices.Contains(accepted, e.Name) {
							inFlowOrder = append(inFlowOrder, e.Name)
						}
					}
					equalStrings(t, key+": AllowedEvents for any actor", f.AllowedEvents(&o, ""), inFlowOrder)
				}
			}
			for _, s := range f.States {
				if !reached[s.Name] && !transient[name+"/"+s.Name] {
					t.Errorf("state %s was never reached", s.Name)
				}
			}
		})
	}
}

// validData is data an event accepts: each declared field with a valid
// value; a payment is half the order total.
func validData(e *Event, o packline.Order) map[string]any {
	if len(e.Data) == 0 {
		return nil
	}
	data := map[string]any{}
	for _, d := range e.Data {
		switch d.Type {
		case "string":
			data[d.Name] = "x"
			if len(d.Enum) > 0 {
				data[d.Name] = d.Enum[0]
			}
		case "integer":
			n := int64(1)
			if d.Min != nil {
				n = *d.Min
			}
			if d.Name == "amount" {
				n = max(1, o.Total/2)
			}
			data[d.Name] = json.Number(fmt.Sprint(n))
		case "boolean":
			data[d.Name] = true
		}
	}
	return data
}

// Test helpers: orders, paths and compact forms of what Apply returns.

// Short names for the actor types of FLOWS.md.
const (
	customer = packline.ActorCustomer
	merchant = packline.ActorMerchant
	courier  = packline.ActorCourier
	payment  = packline.ActorPayment
	system   = packline.ActorSystem
)

var allActors = []packline.ActorType{customer, merchant, courier, payment, system}

// t0 is when test orders are created; t1 when the event under test is sent.
var (
	t0 = time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(90 * time.Minute)
)

func builtin(t *testing.T) *Registry {
	t.Helper()
	r, err := Builtin()
	if err != nil {
		t.Fatalf("load built-in flows: %v", err)
	}
	return r
}

func builtinFlow(t *testing.T, name string) *Flow {
	t.Helper()
	f := builtin(t).Get(name)
	if f == nil {
		t.Fatalf("no built-in flow %q", name)
	}
	return f
}

// newOrder is a plain USD order of two mugs (25.00); opts adjust it.
func newOrder(opts ...func(*packline.Order)) packline.Order {
	o := packline.Order{
		ID:       "ord_test",
		StoreID:  "st_test",
		Currency: "USD",
		Customer: packline.Customer{Name: "Ada", Email: "ada@example.com", Phone: "+213555000111"},
		Lines:    []packline.Line{{SKU: "MUG", Name: "Mug", Quantity: 2, UnitPrice: 1250}},
		Subtotal: 2500,
		Total:    2500,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// customizable adds a line that needs personalisation.
func customizable(o *packline.Order) {
	o.Lines = append(o.Lines, packline.Line{SKU: "ENGRAVED", Name: "Engraved pen", Quantity: 1, UnitPrice: 900, Customizable: true})
	o.Subtotal += 900
	o.Total += 900
}

func currency(code string) func(*packline.Order) {
	return func(o *packline.Order) { o.Currency = code }
}

func total(n int64) func(*packline.Order) {
	return func(o *packline.Order) { o.Subtotal, o.Total = n, n }
}

func shipDate(d string) func(*packline.Order) {
	return func(o *packline.Order) { o.ShipDate = d }
}

// ev is one event of a path.
type ev struct {
	name  string
	actor packline.ActorType
	data  map[string]any
}

func (e ev) input(now time.Time) Input {
	return Input{Event: e.name, Actor: packline.Actor{Type: e.actor, ID: string(e.actor) + "_1"}, Data: e.data, Now: now}
}

// then returns path followed by more events, without sharing path's array.
func then(path []ev, more ...ev) []ev {
	return append(slices.Clip(path), more...)
}

// start opens an order's lifecycle at t0 and fails the test on error.
func start(t *testing.T, f *Flow, o packline.Order) Result {
	t.Helper()
	r, err := f.Start(o, packline.Actor{Type: customer, ID: "storefront"}, t0, 0)
	if err != nil {
		t.Fatalf("%s: start: %v", f.Name, err)
	}
	return r
}

// reach starts o and sends it every event of path, each of which must be
// accepted, one minute apart.
func reach(t *testing.T, f *Flow, o packline.Order, path []ev) packline.Order {
	t.Helper()
	o = start(t, f, o).Order
	for i, e := range path {
		r, err := f.Apply(o, e.input(t0.Add(time.Duration(i+1)*time.Minute)))
		if err != nil {
			t.Fatalf("%s: path step %d (%s by %s from %s): %v", f.Name, i+1, e.name, e.actor, o.Status, err)
		}
		o = r.Order
	}
	return o
}

// refused applies in and returns the *packline.Error it must fail with.
func refused(t *testing.T, f *Flow, o packline.Order, in Input) *packline.Error {
	t.Helper()
	r, err := f.Apply(o, in)
	if err == nil {
		t.Fatalf("%s: %s by %s from %s: accepted (to %s), want refused", f.Name, in.Event, in.Actor.Type, o.Status, r.Order.Status)
	}
	var pe *packline.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: %s: error %T %v is not a *packline.Error", f.Name, in.Event, err, err)
	}
	return pe
}

// effectStrings writes effects compactly: "notify:email receipt to:customer",
// "webhook:deliver order.paid", "payment:authorize amount:100
// purpose:card_check". An effect owed by another event than event (an
// automatic transition) is prefixed with that event.
func effectStrings(es []Effect, event string) []string {
	out := []string{}
	for _, e := range es {
		parts := []string{e.Type}
		if e.Template != "" {
			parts = append(parts, e.Template)
		}
		if e.To != "" {
			parts = append(parts, "to:"+e.To)
		}
		if e.Webhook != "" {
			parts = append(parts, e.Webhook)
		}
		if e.Amount != 0 {
			parts = append(parts, fmt.Sprintf("amount:%d", e.Amount))
		}
		if e.Purpose != "" {
			parts = append(parts, "purpose:"+e.Purpose)
		}
		s := strings.Join(parts, " ")
		if e.Event != event {
			s = e.Event + ": " + s
		}
		out = append(out, s)
	}
	return out
}

// stepStrings writes steps as "event from→to (actor)".
func stepStrings(ss []Step) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s %s→%s (%s)", s.Event, s.From, s.To, s.Actor.Type))
	}
	return out
}

// timerStrings writes timers as "event +delay [states] svN", the delay
// counted from now.
func timerStrings(ts []Timer, now time.Time) []string {
	out := []string{}
	for _, x := range ts {
		out = append(out, fmt.Sprintf("%s +%s %v sv%d", x.Event, x.RunAt.Sub(now), x.States, x.StateVersion))
	}
	return out
}

// flagList is the flags that are set, sorted.
func flagList(f packline.Flags) []string {
	out := []string{}
	for k, v := range f {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// cloneOrder deep-copies the parts of an order Apply could change in place.
func cloneOrder(o packline.Order) packline.Order {
	c := o
	c.Flags = o.Flags.Clone()
	c.Lines = slices.Clone(o.Lines)
	return c
}

func sameOrder(t *testing.T, what string, got, want packline.Order) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: the order passed to Apply was changed:\n got  %+v\n want %+v", what, got, want)
	}
}

func mustJSON(t *testing.T, v map[string]any) json.RawMessage {
	t.Helper()
	if len(v) == 0 {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
