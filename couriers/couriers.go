// Package couriers puts every courier behind one interface: create a label
// (idempotent by a key), verify and parse a tracking callback, and poll
// tracking for couriers that have no callbacks. Every adapter maps its
// courier's statuses onto the one canonical list of Status, and FlowEvent
// says which flow event a status implies.
//
// The package does no database work and knows no task queue: the worker's
// courier:label handler calls CreateLabel and stores the Label on a shipment
// row; the API's callback route calls ParseCallback and sends FlowEvent of
// the update when Supersedes says it is new.
package couriers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/packline/packline"
)

// Courier is one courier adapter.
type Courier interface {
	// Name is the courier's name in URLs and on shipments
	// (POST /v1/couriers/{name}/callbacks).
	Name() string

	// CreateLabel buys (or, for the sandbox, makes) a shipping label. It is
	// idempotent by req.Key: calling it again with the same key returns the
	// same tracking number, so a retried courier:label task never buys two
	// labels. An error wrapping ErrInvalidRequest will not succeed on retry.
	CreateLabel(ctx context.Context, req LabelRequest) (Label, error)

	// ParseCallback verifies a tracking callback's signature over the raw
	// body and parses it. now is the time the request arrived. Errors wrap
	// ErrBadSignature, ErrStaleSignature or ErrMalformed (see there for the
	// HTTP status each deserves), or ErrUnsupported for a courier that only
	// polls.
	ParseCallback(header http.Header, body []byte, now time.Time) (Update, error)

	// Track asks the courier for a shipment's current status, for couriers
	// that send no callbacks (the scheduler polls them). It returns
	// ErrUnsupported for a courier that only calls back, and an error
	// wrapping ErrUnknownTracking for a number the courier does not know.
	Track(ctx context.Context, trackingNumber string) (Update, error)
}

// Party is a sender or recipient on a label.
type Party struct {
	Name    string
	Phone   string // E.164, printed when set
	Address packline.Address
}

// LabelRequest asks for a label for one parcel.
type LabelRequest struct {
	// Key makes CreateLabel idempotent: the order id.
	Key string
	// Reference is printed on the label so the packer can match parcel and
	// order: the order's external id, else its id.
	Reference string
	From      Party
	To        Party
	// WeightGrams is the parcel's weight, when known (0: not stated).
	WeightGrams int64
}

// Validate reports the first missing field, wrapping ErrInvalidRequest.
func (r LabelRequest) Validate() error {
	missing := func(field string) error {
		return fmt.Errorf("%w: %s is required", ErrInvalidRequest, field)
	}
	switch {
	case r.Key == "":
		return missing("key")
	case r.To.Name == "":
		return missing("to.name")
	case r.To.Address.Line1 == "":
		return missing("to.address.line1")
	case r.To.Address.City == "":
		return missing("to.address.city")
	case r.To.Address.Country == "":
		return missing("to.address.country")
	case r.From.Name == "":
		return missing("from.name")
	}
	if r.WeightGrams < 0 {
		return fmt.Errorf("%w: weight must not be negative", ErrInvalidRequest)
	}
	return nil
}

// Label is a created label.
type Label struct {
	Courier        string
	TrackingNumber string
	// TrackingURL is the courier's public tracking page for the parcel
	// ("" when the courier has none).
	TrackingURL string
	// PDF is the printable label, 4×6 inches.
	PDF []byte
}

// Update is one tracking update, from a callback or a poll.
type Update struct {
	Courier        string
	TrackingNumber string
	Status         Status
	// CourierStatus is the courier's own word for the status, kept for the
	// timeline when it says more than Status does.
	CourierStatus string
	OccurredAt    time.Time
}

// Errors. Each wraps with detail; test with errors.Is.
var (
	// ErrBadSignature: no signature header, or one that does not match the
	// body. The API answers 401.
	ErrBadSignature = errors.New("bad courier signature")
	// ErrStaleSignature: the signature matches but its timestamp is more
	// than SignatureTolerance from now (a replay, or a badly wrong clock).
	// The API answers 401.
	ErrStaleSignature = errors.New("courier signature timestamp outside the replay window")
	// ErrMalformed: the signature header or the body cannot be parsed, or
	// the body names an unknown status. The API answers 400.
	ErrMalformed = errors.New("malformed courier callback")
	// ErrUnsupported: the courier does not offer this (callbacks or polling).
	ErrUnsupported = errors.New("not supported by this courier")
	// ErrUnknownTracking: the courier does not know the tracking number.
	ErrUnknownTracking = errors.New("unknown tracking number")
	// ErrInvalidRequest: a label request the courier will never accept; the
	// courier:label task gives up (SkipRetry).
	ErrInvalidRequest = errors.New("invalid label request")
	// ErrUnknownCourier: no courier of that name is configured. The API
	// answers 404.
	ErrUnknownCourier = errors.New("unknown courier")
)

// Registry holds the configured couriers by name.
type Registry struct {
	couriers map[string]Courier
}

// NewRegistry returns a registry of cs. A later courier with the same name
// replaces an earlier one.
func NewRegistry(cs ...Courier) *Registry {
	r := &Registry{couriers: make(map[string]Courier, len(cs))}
	for _, c := range cs {
		r.couriers[c.Name()] = c
	}
	return r
}

// Get returns the named courier, or an error wrapping ErrUnknownCourier.
func (r *Registry) Get(name string) (Courier, error) {
	c, ok := r.couriers[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCourier, name)
	}
	return c, nil
}

// Names lists the configured couriers, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.couriers))
	for n := range r.couriers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
