package couriers_test

import (
	"testing"
	"time"

	"github.com/packline/packline/couriers"
)

func TestStatusesAreCanonical(t *testing.T) {
	t.Parallel()
	seen := map[couriers.Status]bool{}
	prev := -1
	for _, s := range couriers.Statuses() {
		if !s.Valid() || seen[s] {
			t.Fatalf("status %q invalid or listed twice", s)
		}
		seen[s] = true
		if s.Rank() < prev {
			t.Fatalf("Statuses not in rank order at %q", s)
		}
		prev = s.Rank()
		got, err := couriers.ParseStatus(string(s))
		if err != nil || got != s {
			t.Fatalf("ParseStatus(%q) = %q, %v", s, got, err)
		}
	}
	for _, want := range []couriers.Status{"pre_transit", "in_transit", "out_for_delivery", "delivered",
		"failure", "return_to_sender", "returned", "cancelled", "unknown"} {
		if !seen[want] {
			t.Errorf("canonical list lacks %q", want)
		}
	}
	if _, err := couriers.ParseStatus("Delivered"); err == nil {
		t.Fatal("ParseStatus accepted a non-canonical spelling")
	}
}

func TestFlowEvent(t *testing.T) {
	t.Parallel()
	want := map[couriers.Status]string{
		couriers.StatusUnknown:            "",
		couriers.StatusPreTransit:         "",
		couriers.StatusInTransit:          "ship",
		couriers.StatusOutForDelivery:     "ship",
		couriers.StatusAvailableForPickup: "ship",
		couriers.StatusFailure:            "",
		couriers.StatusDelivered:          "deliver",
		couriers.StatusReturnToSender:     "return",
		couriers.StatusReturned:           "return",
		couriers.StatusCancelled:          "",
	}
	for _, s := range couriers.Statuses() {
		w, ok := want[s]
		if !ok {
			t.Fatalf("status %q has no expectation here", s)
		}
		if got := couriers.FlowEvent(s); got != w {
			t.Errorf("FlowEvent(%q) = %q, want %q", s, got, w)
		}
	}
}

func TestSupersedesNeverMovesBackwards(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	later := t0.Add(time.Hour)
	tests := []struct {
		cur, next     couriers.Status
		curAt, nextAt time.Time
		want          bool
	}{
		{couriers.StatusPreTransit, couriers.StatusInTransit, t0, later, true},
		{couriers.StatusInTransit, couriers.StatusDelivered, t0, later, true},
		// A delayed in_transit arriving after delivered changes nothing,
		// even if the courier stamps it later.
		{couriers.StatusDelivered, couriers.StatusInTransit, t0, later, false},
		{couriers.StatusDelivered, couriers.StatusOutForDelivery, later, t0, false},
		// Duplicate.
		{couriers.StatusDelivered, couriers.StatusDelivered, t0, t0, false},
		{couriers.StatusDelivered, couriers.StatusDelivered, t0, later, false},
		// Same rank: a failed attempt, then out for delivery again.
		{couriers.StatusOutForDelivery, couriers.StatusFailure, t0, later, true},
		{couriers.StatusFailure, couriers.StatusOutForDelivery, t0, later, true},
		{couriers.StatusFailure, couriers.StatusOutForDelivery, later, t0, false},
		// Refused at the door: back to the sender.
		{couriers.StatusOutForDelivery, couriers.StatusReturnToSender, t0, later, true},
		{couriers.StatusReturned, couriers.StatusReturnToSender, t0, later, false},
		// Unknown and invalid never replace anything.
		{couriers.StatusUnknown, couriers.StatusUnknown, t0, later, false},
		{couriers.StatusPreTransit, couriers.Status("teleported"), t0, later, false},
		// A first status replaces an empty one.
		{"", couriers.StatusPreTransit, time.Time{}, t0, true},
	}
	for _, tt := range tests {
		if got := couriers.Supersedes(tt.cur, tt.curAt, tt.next, tt.nextAt); got != tt.want {
			t.Errorf("Supersedes(%q@%s, %q@%s) = %v, want %v", tt.cur, tt.curAt.Format(time.Kitchen),
				tt.next, tt.nextAt.Format(time.Kitchen), got, tt.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := couriers.NewRegistry()
	if _, err := r.Get("nope"); err == nil {
		t.Fatal("Get of an unknown courier succeeded")
	}
	if len(r.Names()) != 0 {
		t.Fatal("empty registry has names")
	}
}

func TestTrack(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	up := func(s couriers.Status, when time.Time) couriers.Update {
		return couriers.Update{Courier: "sandbox", TrackingNumber: "SBX1", Status: s, OccurredAt: when}
	}
	for _, tc := range []struct {
		name string
		cur  couriers.Status
		u    couriers.Update
		want couriers.TrackingPlan
	}{
		{name: "delivered after in transit delivers the order", cur: couriers.StatusInTransit, u: up(couriers.StatusDelivered, at.Add(time.Hour)),
			want: couriers.TrackingPlan{Newer: true, Event: "deliver", Note: "sandbox SBX1: delivered"}},
		{name: "the first scan ships the order", cur: couriers.StatusPreTransit, u: up(couriers.StatusInTransit, at.Add(time.Hour)),
			want: couriers.TrackingPlan{Newer: true, Event: "ship", Note: "sandbox SBX1: in_transit"}},
		{name: "a newer status without an event moves the shipment only", cur: couriers.StatusOutForDelivery, u: up(couriers.StatusFailure, at.Add(time.Hour)),
			want: couriers.TrackingPlan{Newer: true, Note: "sandbox SBX1: failure"}},
		{name: "a late older status moves nothing", cur: couriers.StatusDelivered, u: up(couriers.StatusInTransit, at.Add(-time.Hour)),
			want: couriers.TrackingPlan{Note: "sandbox SBX1: in_transit (the shipment is at delivered already; not applied)"}},
		{name: "the same rank, earlier, moves nothing", cur: couriers.StatusFailure, u: up(couriers.StatusOutForDelivery, at.Add(-time.Minute)),
			want: couriers.TrackingPlan{Note: "sandbox SBX1: out_for_delivery (the shipment is at failure already; not applied)"}},
		{name: "unknown never moves", cur: couriers.StatusPreTransit, u: up(couriers.StatusUnknown, at.Add(time.Hour)),
			want: couriers.TrackingPlan{Note: "sandbox SBX1: unknown (the shipment is at pre_transit already; not applied)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := couriers.Track(tc.cur, at, tc.u); got != tc.want {
				t.Errorf("Track = %+v, want %+v", got, tc.want)
			}
		})
	}
}
