// Package packline holds the domain of the order-fulfillment fleet: orders,
// lines, money, actors and the one error type every layer speaks. It does no
// I/O; persistence lives in store/, lifecycles in flows/, HTTP in api/.
package packline

import (
	"encoding/json"
	"time"
)

// ActorType says who sent an event. FLOWS.md lists, per event, which actor
// types may send it.
type ActorType string

// The actor types of FLOWS.md.
const (
	ActorCustomer ActorType = "customer"
	ActorMerchant ActorType = "merchant"
	ActorCourier  ActorType = "courier"
	ActorPayment  ActorType = "payment"
	ActorSystem   ActorType = "system"
)

// Valid reports whether t is one of the known actor types.
func (t ActorType) Valid() bool {
	switch t {
	case ActorCustomer, ActorMerchant, ActorCourier, ActorPayment, ActorSystem:
		return true
	}
	return false
}

// Actor is who caused a timeline entry: a type and, where known, an id (an API
// key id, a courier name, a payment provider, a worker's effect id).
type Actor struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id,omitempty"`
}

// Customer is the person an order is for.
type Customer struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"` // E.164
}

// Address is a postal address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"` // ISO 3166-1 alpha-2
}

// Line is one line of an order. Prices are integer minor units of the order's
// currency.
type Line struct {
	SKU           string          `json:"sku"`
	Name          string          `json:"name"`
	Quantity      int64           `json:"quantity"`
	UnitPrice     int64           `json:"unit_price"`
	Customizable  bool            `json:"customizable"`
	Customization json.RawMessage `json:"customization,omitempty"`
}

// Total is quantity × unit price; callers check overflow with CheckedMul first.
func (l Line) Total() int64 { return l.Quantity * l.UnitPrice }

// Totals are an order's sums in minor units.
type Totals struct {
	Subtotal int64  `json:"subtotal"`
	Total    int64  `json:"total"`
	Paid     int64  `json:"paid"`
	Currency string `json:"currency"`
}

// Flags are the named facts about an order that a flow's guards test
// (stock_taken, label_exists, paid, ...). A flow declares the flags it uses.
type Flags map[string]bool

// Clone returns a copy that may be changed without touching f.
func (f Flags) Clone() Flags {
	c := make(Flags, len(f))
	for k, v := range f {
		if v {
			c[k] = true
		}
	}
	return c
}

// Order is an order as the engine and the store see it.
type Order struct {
	ID              string          `json:"id"`
	StoreID         string          `json:"store"`
	Flow            string          `json:"flow"`
	Status          string          `json:"status"`
	Version         int64           `json:"version"`
	StateVersion    int64           `json:"-"` // the version at which the order entered Status
	ExternalID      string          `json:"external_id,omitempty"`
	Currency        string          `json:"currency"`
	Customer        Customer        `json:"customer"`
	ShippingAddress *Address        `json:"shipping_address,omitempty"`
	Lines           []Line          `json:"lines"`
	ShipDate        string          `json:"ship_date,omitempty"` // YYYY-MM-DD
	PaymentMethod   string          `json:"-"`
	Notes           string          `json:"notes,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	Subtotal        int64           `json:"-"`
	Total           int64           `json:"-"`
	AmountPaid      int64           `json:"-"`
	Flags           Flags           `json:"-"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
}

// HasCustomizableLine reports whether any line needs personalisation.
func (o *Order) HasCustomizableLine() bool {
	for _, l := range o.Lines {
		if l.Customizable {
			return true
		}
	}
	return false
}

// TimelineEntry is one line of an order's audit trail.
type TimelineEntry struct {
	At      time.Time       `json:"at"`
	Version int64           `json:"version"`
	Event   string          `json:"event"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	Actor   Actor           `json:"actor"`
	Note    string          `json:"note"`
	Data    json.RawMessage `json:"data,omitempty"`
}
