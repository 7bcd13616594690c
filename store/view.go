package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/packline/packline"
)

// OrderView is an order as GET /v1/orders/{id} shows it (API.md) and as its
// webhooks carry it: built in one place so the two can never disagree, and
// here, where both the API and the worker that delivers webhooks reach it.
type OrderView struct {
	ID              string                   `json:"id"`
	Store           string                   `json:"store"`
	Flow            string                   `json:"flow"`
	Status          string                   `json:"status"`
	Version         int64                    `json:"version"`
	ExternalID      string                   `json:"external_id,omitempty"`
	Currency        string                   `json:"currency"`
	Customer        packline.Customer        `json:"customer"`
	ShippingAddress *packline.Address        `json:"shipping_address,omitempty"`
	Lines           []ViewLine               `json:"lines"`
	Totals          packline.Totals          `json:"totals"`
	ShipDate        string                   `json:"ship_date,omitempty"`
	Payment         *ViewPayment             `json:"payment,omitempty"`
	Notes           string                   `json:"notes,omitempty"`
	Metadata        json.RawMessage          `json:"metadata,omitempty"`
	Payments        []Payment                `json:"payments"`
	Shipments       []ViewShipment           `json:"shipments"`
	AllowedEvents   []string                 `json:"allowed_events"`
	Timeline        []packline.TimelineEntry `json:"timeline,omitempty"`
	CreatedAt       time.Time                `json:"created_at"`
	UpdatedAt       time.Time                `json:"updated_at"`
}

// ViewShipment is an entry of an order's shipments[].
type ViewShipment struct {
	ID             string              `json:"id"`
	Courier        string              `json:"courier"`
	TrackingNumber string              `json:"tracking_number"`
	TrackingURL    string              `json:"tracking_url,omitempty"`
	LabelURL       string              `json:"label_url"`
	Status         string              `json:"status"`
	StatusAt       time.Time           `json:"status_at"`
	Events         []ViewTrackingEvent `json:"events"`
}

// ViewTrackingEvent is one tracking update of a shipment.
type ViewTrackingEvent struct {
	Status        string    `json:"status"`
	CourierStatus string    `json:"courier_status,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// ViewLine is an order line with its total.
type ViewLine struct {
	packline.Line
	Total int64 `json:"total"`
}

// ViewPayment is the payment method the order was placed with.
type ViewPayment struct {
	Method string `json:"method"`
}

// LabelPath is the API path of a shipment's printable label.
func LabelPath(shipmentID string) string { return "/v1/shipments/" + shipmentID + "/label.pdf" }

// ViewOrder builds o's representation as an actor of type actor sees it
// (allowed_events are the ones it may send), with its payments, shipments
// and timeline. Label URLs are baseURL (the API's public URL) and the
// label's path.
func (db *DB) ViewOrder(ctx context.Context, o *packline.Order, actor packline.ActorType, baseURL string) (OrderView, error) {
	vs, err := db.ViewOrders(ctx, []*packline.Order{o}, actor, baseURL)
	if err != nil {
		return OrderView{}, err
	}
	v := vs[0]
	if v.Timeline, err = db.Timeline(ctx, o.ID); err != nil {
		return v, err
	}
	return v, nil
}

// ViewOrders builds the representations of a page of orders, as ViewOrder
// does but without timelines, reading the payments and shipments of the
// whole page at once (three queries, whatever its size).
func (db *DB) ViewOrders(ctx context.Context, orders []*packline.Order, actor packline.ActorType, baseURL string) ([]OrderView, error) {
	out := make([]OrderView, 0, len(orders))
	if len(orders) == 0 {
		return out, nil
	}
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	payments, err := db.paymentsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	shipments, err := db.shipmentsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	return db.views(orders, payments, shipments, actor, baseURL), nil
}

// ViewNewOrder is ViewOrder for an order just created: it has no payments
// and no shipments yet, so only its timeline is read.
func (db *DB) ViewNewOrder(ctx context.Context, o *packline.Order, actor packline.ActorType, baseURL string) (OrderView, error) {
	v := db.views([]*packline.Order{o}, nil, nil, actor, baseURL)[0]
	var err error
	if v.Timeline, err = db.Timeline(ctx, o.ID); err != nil {
		return v, err
	}
	return v, nil
}

// views builds the representations of orders from their payments and
// shipments (by order id).
func (db *DB) views(orders []*packline.Order, payments map[string][]Payment, shipments map[string][]Shipment, actor packline.ActorType, baseURL string) []OrderView {
	out := make([]OrderView, 0, len(orders))
	base := strings.TrimRight(baseURL, "/")
	for _, o := range orders {
		v := OrderView{ID: o.ID, Store: o.StoreID, Flow: o.Flow, Status: o.Status, Version: o.Version,
			ExternalID: o.ExternalID, Currency: o.Currency, Customer: o.Customer, ShippingAddress: o.ShippingAddress,
			Totals:   packline.Totals{Subtotal: o.Subtotal, Total: o.Total, Paid: o.AmountPaid, Currency: o.Currency},
			ShipDate: o.ShipDate, Notes: o.Notes, Metadata: o.Metadata, Payments: payments[o.ID],
			Shipments: []ViewShipment{}, AllowedEvents: []string{}, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
		if v.Payments == nil {
			v.Payments = []Payment{}
		}
		if o.PaymentMethod != "" {
			v.Payment = &ViewPayment{Method: o.PaymentMethod}
		}
		v.Lines = make([]ViewLine, len(o.Lines))
		for i, l := range o.Lines {
			v.Lines[i] = ViewLine{Line: l, Total: l.Total()}
		}
		if f := db.opts.Flows.Get(o.Flow); f != nil {
			v.AllowedEvents = f.AllowedEvents(o, actor)
		}
		for _, sh := range shipments[o.ID] {
			s := ViewShipment{ID: sh.ID, Courier: sh.Courier, TrackingNumber: sh.TrackingNumber, TrackingURL: sh.TrackingURL,
				LabelURL: base + LabelPath(sh.ID), Status: string(sh.Status), StatusAt: sh.StatusAt,
				Events: make([]ViewTrackingEvent, 0, len(sh.Events))}
			for _, e := range sh.Events {
				s.Events = append(s.Events, ViewTrackingEvent{Status: string(e.Status), CourierStatus: e.CourierStatus, OccurredAt: e.OccurredAt})
			}
			v.Shipments = append(v.Shipments, s)
		}
		out = append(out, v)
	}
	return out
}

// OrderSnapshot is a store's order as its merchant sees it through the API,
// timeline included: the data of the order's webhooks.
func (db *DB) OrderSnapshot(ctx context.Context, storeID, orderID, baseURL string) (OrderView, error) {
	o, err := db.GetOrder(ctx, storeID, orderID)
	if err != nil {
		return OrderView{}, err
	}
	return db.ViewOrder(ctx, o, packline.ActorMerchant, baseURL)
}
