package couriers

import (
	"fmt"
	"time"

	"github.com/packline/packline/flows"
)

// Status is a shipment's tracking status on packline's one canonical list.
// Every adapter maps its courier's own words onto it; the shipment, the
// timeline, the webhooks and the flows only ever see these values.
type Status string

// The canonical tracking statuses, in the order a shipment normally moves
// through them.
const (
	// StatusUnknown is a courier status the adapter could not place.
	StatusUnknown Status = "unknown"
	// StatusPreTransit: the label exists; the courier does not have the parcel yet.
	StatusPreTransit Status = "pre_transit"
	// StatusInTransit: the courier has the parcel.
	StatusInTransit Status = "in_transit"
	// StatusOutForDelivery: on the vehicle for the last mile.
	StatusOutForDelivery Status = "out_for_delivery"
	// StatusAvailableForPickup: waiting at a pickup point or locker.
	StatusAvailableForPickup Status = "available_for_pickup"
	// StatusFailure: a delivery attempt failed (no one home, address
	// problem, refused); the courier may try again.
	StatusFailure Status = "failure"
	// StatusDelivered: handed to the recipient.
	StatusDelivered Status = "delivered"
	// StatusReturnToSender: on its way back to the sender (refused cash on
	// delivery, undeliverable).
	StatusReturnToSender Status = "return_to_sender"
	// StatusReturned: back with the sender.
	StatusReturned Status = "returned"
	// StatusCancelled: the label was voided before the courier took the parcel.
	StatusCancelled Status = "cancelled"
)

// statusRank orders the statuses: a shipment moves only to a status of higher
// rank, or of the same rank when the update occurred later (an attempt that
// failed, then out for delivery again the next day).
var statusRank = map[Status]int{
	StatusUnknown:            0,
	StatusPreTransit:         10,
	StatusInTransit:          20,
	StatusOutForDelivery:     30,
	StatusAvailableForPickup: 30,
	StatusFailure:            30,
	StatusDelivered:          40,
	StatusReturnToSender:     50,
	StatusReturned:           60,
	StatusCancelled:          70,
}

// Statuses lists every canonical status, by rank.
func Statuses() []Status {
	return []Status{
		StatusUnknown, StatusPreTransit, StatusInTransit, StatusOutForDelivery,
		StatusAvailableForPickup, StatusFailure, StatusDelivered,
		StatusReturnToSender, StatusReturned, StatusCancelled,
	}
}

// ParseStatus returns the canonical status named s, or an error naming s.
func ParseStatus(s string) (Status, error) {
	st := Status(s)
	if st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("unknown tracking status %q", s)
}

// Valid reports whether s is on the canonical list.
func (s Status) Valid() bool {
	_, ok := statusRank[s]
	return ok
}

// Rank is the status's place in a shipment's life; higher is later. An
// invalid status ranks with StatusUnknown.
func (s Status) Rank() int { return statusRank[s] }

// Supersedes reports whether an update to next (which occurred at nextAt)
// should replace the shipment's current status cur (which occurred at curAt).
// A later rank always wins; the same rank wins only when it occurred later;
// an earlier rank never does, so a delayed or replayed callback never moves
// a shipment, or its order, backwards. A duplicate (same status, same time)
// does not supersede.
func Supersedes(cur Status, curAt time.Time, next Status, nextAt time.Time) bool {
	if !next.Valid() || next == StatusUnknown {
		return false
	}
	switch rn, rc := next.Rank(), cur.Rank(); {
	case rn > rc:
		return true
	case rn < rc:
		return false
	default:
		return next != cur && nextAt.After(curAt)
	}
}

// FlowEvent is the flow event a status implies, or "" when it implies none:
// in_transit, out_for_delivery and available_for_pickup → flows.EventShip;
// delivered → flows.EventDeliver; return_to_sender and returned →
// flows.EventReturn. The caller sends it as the courier actor only when
// Supersedes said the status is new; a flow without that event, or one that
// does not take it from the order's state, answers with a conflict that the
// caller records on the shipment and otherwise ignores (a wholesale order
// does not "return").
func FlowEvent(s Status) string {
	switch s {
	case StatusInTransit, StatusOutForDelivery, StatusAvailableForPickup:
		return string(flows.EventShip)
	case StatusDelivered:
		return string(flows.EventDeliver)
	case StatusReturnToSender, StatusReturned:
		return string(flows.EventReturn)
	}
	return ""
}

// TrackingPlan is what a tracking update does to its shipment and its
// order (Track); the store writes it in the transaction that records the
// update.
type TrackingPlan struct {
	// Newer: the update supersedes the shipment's status, which moves to
	// the update's.
	Newer bool
	// Event is the flow event to send the order as the courier
	// (FlowEvent), "" for none: a status that is not newer sends none.
	Event string
	// Note is the update's line on the order's timeline.
	Note string
}

// Track decides what update u does to a shipment now at status cur, which
// occurred at curAt: a newer status (Supersedes) moves the shipment and
// sends the order its FlowEvent; an older or equal one only joins the
// history and the timeline, saying so. u.OccurredAt is to be at the
// precision the shipment stores.
func Track(cur Status, curAt time.Time, u Update) TrackingPlan {
	p := TrackingPlan{Note: fmt.Sprintf("%s %s: %s", u.Courier, u.TrackingNumber, u.Status)}
	if !Supersedes(cur, curAt, u.Status, u.OccurredAt) {
		p.Note += fmt.Sprintf(" (the shipment is at %s already; not applied)", cur)
		return p
	}
	p.Newer, p.Event = true, FlowEvent(u.Status)
	return p
}
