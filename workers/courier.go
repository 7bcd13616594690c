package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/api/view"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/metrics"
	"github.com/packline/packline/store"
)

// DefaultCourier is the courier a label is bought from when neither the
// event that asked for it nor the store names one.
const DefaultCourier = "sandbox"

// CourierOptions configure the courier:label handler.
type CourierOptions struct {
	// Default is the fleet's default courier (DefaultCourier when empty).
	Default string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// CourierLabels is the courier:label handler (Deps.Courier): it buys an
// order's label and reports label_created.
type CourierLabels struct {
	db       *store.DB
	couriers *couriers.Registry
	def      string
	log      *slog.Logger
}

// NewCourierLabels returns the courier:label handler over the configured
// couriers.
func NewCourierLabels(db *store.DB, reg *couriers.Registry, opts CourierOptions) *CourierLabels {
	if opts.Default == "" {
		opts.Default = DefaultCourier
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &CourierLabels{db: db, couriers: reg, def: opts.Default, log: opts.Logger}
}

// HandleEffect runs courier:label (policy tasks.TypeCourierLabel: queue
// default, 12 retries with the worker's backoff of 1 s doubling to 5 min,
// 60 s timeout).
//
// It buys one label per order: the idempotency key given to the courier is
// the ORDER id, not the effect id, and an order that has a shipment already
// gets that one back without a courier call, so a task run twice, or two
// effects asking for the same order, make one label and one shipment. The
// courier is the event's data.courier (cash-on-delivery's ship), else the
// store's default, else Default. The label, PDF included, is stored as the
// order's shipment (pre_transit) before the report; the report,
// label_created with {courier, tracking_number, label_url}, commits with
// the row's done mark. label_url is the API path of the label; the API
// makes it absolute.
//
// An order that no longer takes label_created (cancelled meanwhile) gets no
// label: the row is done and nothing is reported. It gives up (SkipRetry,
// with a note on the order's timeline) when the courier is unknown or
// refuses the request as invalid (couriers.ErrInvalidRequest: no shipping
// address, say); a courier that fails otherwise is retried.
func (h *CourierLabels) HandleEffect(ctx context.Context, e Effect) (*Report, error) {
	o := e.Order
	if sh, err := h.db.ShipmentOfOrder(ctx, o.ID); err == nil {
		return labelReport(sh), nil
	} else if packline.ErrorCode(err) != packline.ENOTFOUND {
		return nil, err
	}
	labelCreated := string(flows.EventLabelCreated)
	if f := h.db.Flows().Get(o.Flow); f != nil && slices.Contains(f.EventNames(), labelCreated) &&
		!slices.Contains(f.AllowedEvents(o, packline.ActorSystem), labelCreated) {
		h.log.InfoContext(ctx, "no label: the order no longer takes one", "effect_id", e.ID, "order_id", o.ID, "status", o.Status)
		return nil, nil
	}
	settings, err := h.db.StoreShipping(ctx, o.StoreID)
	if err != nil {
		return nil, err
	}
	name := dataString(e.Effect.Data, "courier")
	if name == "" {
		name = settings.Courier
	}
	if name == "" {
		name = h.def
	}
	c, err := h.couriers.Get(name)
	if err != nil {
		return nil, h.giveUp(ctx, e, fmt.Sprintf("no courier label: there is no courier %q", name), err)
	}
	label, err := c.CreateLabel(ctx, labelRequest(o, settings))
	switch {
	case errors.Is(err, couriers.ErrInvalidRequest):
		metrics.CourierCall(name, "rejected")
		return nil, h.giveUp(ctx, e, "no courier label: "+err.Error(), err)
	case err != nil:
		metrics.CourierCall(name, metrics.OutcomeError)
		return nil, fmt.Errorf("create %s label for order %s: %w", name, o.ID, err)
	}
	metrics.CourierCall(name, metrics.OutcomeOK)
	sh, _, err := h.db.CreateShipment(ctx, store.NewShipment{OrderID: o.ID, StoreID: o.StoreID, Courier: label.Courier,
		TrackingNumber: label.TrackingNumber, TrackingURL: label.TrackingURL, LabelPDF: label.PDF})
	if err != nil {
		return nil, err
	}
	return labelReport(sh), nil
}

// giveUp notes why the order gets no label on its timeline, for the
// merchant, and stops the task's retries.
func (h *CourierLabels) giveUp(ctx context.Context, e Effect, note string, cause error) error {
	if _, err := h.db.AddNote(ctx, e.StoreID, e.OrderID, systemActor(e.ID), note); err != nil {
		h.log.WarnContext(ctx, "note a label failure", "effect_id", e.ID, "order_id", e.OrderID, "err", err)
	}
	return fmt.Errorf("label for order %s: %w: %w", e.OrderID, cause, asynq.SkipRetry)
}

func labelReport(sh store.Shipment) *Report {
	return &Report{Event: string(flows.EventLabelCreated), Data: map[string]any{
		"courier": sh.Courier, "tracking_number": sh.TrackingNumber, "label_url": view.LabelPath(sh.ID)}}
}

// labelRequest is the label of an order: from the store's ship-from
// address (the store's name and a marked placeholder until it has one), to
// the customer at the shipping address, keyed by the order id.
func labelRequest(o *packline.Order, s store.Shipping) couriers.LabelRequest {
	from := couriers.Party{Name: s.StoreName, Address: packline.Address{Line1: "SHIP-FROM ADDRESS NOT SET"}}
	if s.From != nil {
		from = couriers.Party{Name: s.From.Name, Phone: s.From.Phone, Address: s.From.Address}
		if from.Name == "" {
			from.Name = s.StoreName
		}
	}
	to := couriers.Party{Name: o.Customer.Name, Phone: o.Customer.Phone}
	if o.ShippingAddress != nil {
		to.Address = *o.ShippingAddress
	}
	ref := o.ExternalID
	if ref == "" {
		ref = o.ID
	}
	return couriers.LabelRequest{Key: o.ID, Reference: ref, From: from, To: to}
}
