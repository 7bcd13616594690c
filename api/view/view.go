// Package view is an order as the API shows it (GET /v1/orders/{id},
// API.md) and as its webhooks carry it: built in one place so the two can
// never disagree. It is the API's, in a package of its own so that the
// worker that delivers webhooks can build it without the HTTP server. The
// store hands it plain data (orders, payments, shipments, timelines).
package view

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
)

// Order is an order as GET /v1/orders/{id} shows it and its webhooks carry
// it.
type Order struct {
	ID              string                   `json:"id"`
	Store           string                   `json:"store"`
	Flow            string                   `json:"flow"`
	Status          string                   `json:"status"`
	Version         int64                    `json:"version"`
	ExternalID      string                   `json:"external_id,omitempty"`
	Currency        string                   `json:"currency"`
	Customer        packline.Customer        `json:"customer"`
	ShippingAddress *packline.Address        `json:"shipping_address,omitempty"`
	Lines           []Line                   `json:"lines"`
	Totals          packline.Totals          `json:"totals"`
	ShipDate        string                   `json:"ship_date,omitempty"`
	Payment         *Payment                 `json:"payment,omitempty"`
	Notes           string                   `json:"notes,omitempty"`
	Metadata        json.RawMessage          `json:"metadata,omitempty"`
	Payments        []store.Payment          `json:"payments"`
	Shipments       []Shipment               `json:"shipments"`
	AllowedEvents   []string                 `json:"allowed_events"`
	Timeline        []packline.TimelineEntry `json:"timeline,omitempty"`
	CreatedAt       time.Time                `json:"created_at"`
	UpdatedAt       time.Time                `json:"updated_at"`
}

// Shipment is an entry of an order's shipments[].
type Shipment struct {
	ID             string          `json:"id"`
	Courier        string          `json:"courier"`
	TrackingNumber string          `json:"tracking_number"`
	TrackingURL    string          `json:"tracking_url,omitempty"`
	LabelURL       string          `json:"label_url"`
	Status         string          `json:"status"`
	StatusAt       time.Time       `json:"status_at"`
	Events         []TrackingEvent `json:"events"`
}

// TrackingEvent is one tracking update of a shipment.
type TrackingEvent struct {
	Status        string    `json:"status"`
	CourierStatus string    `json:"courier_status,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// Line is an order line with its total.
type Line struct {
	packline.Line
	Total int64 `json:"total"`
}

// Payment is the payment method the order was placed with.
type Payment struct {
	Method string `json:"method"`
}

// LabelPath is the API path of a shipment's printable label.
func LabelPath(shipmentID string) string { return "/v1/shipments/" + shipmentID + "/label.pdf" }

// Read builds o's representation as an actor of type actor sees it
// (allowed_events are the ones it may send), with its payments, shipments
// and timeline. Label URLs are baseURL (the API's public URL) and the
// label's path.
func Read(ctx context.Context, db *store.DB, o *packline.Order, actor packline.ActorType, baseURL string) (Order, error) {
	vs, err := ReadPage(ctx, db, []*packline.Order{o}, actor, baseURL)
	if err != nil {
		return Order{}, err
	}
	v := vs[0]
	if v.Timeline, err = db.Timeline(ctx, o.ID); err != nil {
		return v, err
	}
	return v, nil
}

// ReadPage builds the representations of a page of orders, as Read does
// but without timelines, reading the payments and shipments of the whole
// page at once (three queries, whatever its size).
func ReadPage(ctx context.Context, db *store.DB, orders []*packline.Order, actor packline.ActorType, baseURL string) ([]Order, error) {
	if len(orders) == 0 {
		return []Order{}, nil
	}
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	payments, shipments, err := db.OrderDetails(ctx, ids)
	if err != nil {
		return nil, err
	}
	return build(db.Flows(), orders, payments, shipments, actor, baseURL), nil
}

// ReadNew is Read for an order just created: it has no payments and no
// shipments yet, so only its timeline is read.
func ReadNew(ctx context.Context, db *store.DB, o *packline.Order, actor packline.ActorType, baseURL string) (Order, error) {
	v := build(db.Flows(), []*packline.Order{o}, nil, nil, actor, baseURL)[0]
	var err error
	if v.Timeline, err = db.Timeline(ctx, o.ID); err != nil {
		return v, err
	}
	return v, nil
}

// build makes the representations of orders from their payments and
// shipments (by order id); reg gives each order's allowed events.
func build(reg *flows.Registry, orders []*packline.Order, payments map[string][]store.Payment, shipments map[string][]store.Shipment, actor packline.ActorType, baseURL string) []Order {
	out := make([]Order, 0, len(orders))
	base := strings.TrimRight(baseURL, "/")
	for _, o := range orders {
		v := Order{ID: o.ID, Store: o.StoreID, Flow: o.Flow, Status: o.Status, Version: o.Version,
			ExternalID: o.ExternalID, Currency: o.Currency, Customer: o.Customer, ShippingAddress: o.ShippingAddress,
			Totals:   packline.Totals{Subtotal: o.Subtotal, Total: o.Total, Paid: o.AmountPaid, Currency: o.Currency},
			ShipDate: o.ShipDate, Notes: o.Notes, Metadata: o.Metadata, Payments: payments[o.ID],
			Shipments: []Shipment{}, AllowedEvents: []string{}, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
		if v.Payments == nil {
			v.Payments = []store.Payment{}
		}
		if o.PaymentMethod != "" {
			v.Payment = &Payment{Method: o.PaymentMethod}
		}
		v.Lines = make([]Line, len(o.Lines))
		for i, l := range o.Lines {
			v.Lines[i] = Line{Line: l, Total: l.Total()}
		}
		if f := reg.Get(o.Flow); f != nil {
			v.AllowedEvents = f.AllowedEvents(o, actor)
		}
		for _, sh := range shipments[o.ID] {
			s := Shipment{ID: sh.ID, Courier: sh.Courier, TrackingNumber: sh.TrackingNumber, TrackingURL: sh.TrackingURL,
				LabelURL: base + LabelPath(sh.ID), Status: string(sh.Status), StatusAt: sh.StatusAt,
				Events: make([]TrackingEvent, 0, len(sh.Events))}
			for _, e := range sh.Events {
				s.Events = append(s.Events, TrackingEvent{Status: string(e.Status), CourierStatus: e.CourierStatus, OccurredAt: e.OccurredAt})
			}
			v.Shipments = append(v.Shipments, s)
		}
		out = append(out, v)
	}
	return out
}

// Snapshot is a store's order as its merchant sees it through the API,
// timeline included: the data of the order's webhooks.
func Snapshot(ctx context.Context, db *store.DB, storeID, orderID, baseURL string) (Order, error) {
	o, err := db.GetOrder(ctx, storeID, orderID)
	if err != nil {
		return Order{}, err
	}
	return Read(ctx, db, o, packline.ActorMerchant, baseURL)
}
