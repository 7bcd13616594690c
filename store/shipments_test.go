package store_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

var systemActor = packline.Actor{Type: packline.ActorSystem, ID: "test"}

// labelled brings a new order of the store to the point where it has a
// label: for cash-on-delivery confirmed, stock taken, processing, ship asked
// (shipped once label_created is in); for made-to-order paid and in
// production, ship asked; for prepaid-simple paid. It stores the shipment
// and reports label_created, as the courier:label handler does.
func labelled(t *testing.T, db *store.DB, storeID, flow string) (*packline.Order, store.Shipment) {
	t.Helper()
	ctx := t.Context()
	o := placed(t, db, storeID, newOrder(flow))
	send := func(event string, actor packline.Actor) {
		t.Helper()
		if _, err := db.ApplyEvent(ctx, storeID, o.ID, store.EventInput{Event: event, Actor: actor}); err != nil {
			t.Fatalf("%s: %v", event, err)
		}
	}
	pay := packline.Actor{Type: packline.ActorPayment, ID: "sandbox"}
	switch flow {
	case "cash-on-delivery", "":
		send("confirm", merchantActor)
		send("stock_taken", systemActor)
		send("process", merchantActor)
		send("ship", merchantActor)
	case "made-to-order":
		send("payment_succeeded", pay)
		send("ship", merchantActor)
	case "prepaid-simple":
		send("payment_succeeded", pay)
	}
	sh, created, err := db.CreateShipment(ctx, store.NewShipment{OrderID: o.ID, StoreID: storeID, Courier: "sandbox",
		TrackingNumber: "SB" + o.ID, TrackingURL: "https://track.example.com/SB" + o.ID, LabelPDF: []byte("%PDF-1.4 label")})
	if err != nil || !created {
		t.Fatalf("create shipment: %v %v", created, err)
	}
	send("label_created", systemActor)
	o, err = db.GetOrder(ctx, storeID, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	return o, sh
}

func update(sh store.Shipment, st couriers.Status, at time.Time) couriers.Update {
	return couriers.Update{Courier: sh.Courier, TrackingNumber: sh.TrackingNumber, Status: st, CourierStatus: string(st), OccurredAt: at}
}

func timelineEvents(t *testing.T, db *store.DB, orderID string) []string {
	t.Helper()
	tl, err := db.Timeline(t.Context(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range tl {
		out = append(out, fmt.Sprintf("%s:%s:%s", e.Event, e.To, e.Actor.Type))
	}
	return out
}

// One shipment per order, whatever the retries and races; a tracking number
// belongs to one order.
func TestCreateShipmentOncePerOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o := confirmed(t, db, s)
		var wg sync.WaitGroup
		ids := make([]string, 8)
		created := make([]bool, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sh, c, err := db.CreateShipment(ctx, store.NewShipment{OrderID: o.ID, StoreID: s.ID, Courier: "sandbox",
					TrackingNumber: fmt.Sprintf("SB%d", i), LabelPDF: []byte("%PDF")})
				if err != nil {
					t.Error(err)
				}
				ids[i], created[i] = sh.ID+"/"+sh.TrackingNumber, c
			}()
		}
		wg.Wait()
		n := 0
		for i := range ids {
			if ids[i] != ids[0] {
				t.Fatalf("two shipments for one order: %v", ids)
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d creations reported", n)
		}
		shs, err := db.Shipments(ctx, o.ID)
		if err != nil || len(shs) != 1 || len(shs[0].Events) != 1 || shs[0].Events[0].Status != couriers.StatusPreTransit || shs[0].Status != couriers.StatusPreTransit {
			t.Fatalf("shipments %+v %v", shs, err)
		}
		// Another order cannot take the tracking number.
		o2 := confirmed(t, db, s)
		if _, _, err := db.CreateShipment(ctx, store.NewShipment{OrderID: o2.ID, StoreID: s.ID, Courier: "sandbox",
			TrackingNumber: shs[0].TrackingNumber, LabelPDF: []byte("%PDF")}); err == nil || !strings.Contains(err.Error(), "another order") {
			t.Fatalf("a tracking number on two orders: %v", err)
		}
		if shs, _ := db.Shipments(ctx, o2.ID); len(shs) != 0 {
			t.Fatalf("shipments of the second order %+v", shs)
		}
	})
}

// Shipments are read per store, except by tracking number (callbacks name
// no store).
func TestShipmentReads(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		other := newStore(t, db, "other")
		_, sh := labelled(t, db, s.ID, "cash-on-delivery")
		if got, err := db.GetShipment(ctx, s.ID, sh.ID); err != nil || got.TrackingNumber != sh.TrackingNumber {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := db.GetShipment(ctx, other.ID, sh.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("another store's shipment: %v", err)
		}
		if _, _, err := db.ShipmentLabel(ctx, other.ID, sh.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("another store's label: %v", err)
		}
		got, pdf, err := db.ShipmentLabel(ctx, s.ID, sh.ID)
		if err != nil || got.ID != sh.ID || string(pdf) != "%PDF-1.4 label" {
			t.Fatalf("label: %+v %q %v", got, pdf, err)
		}
		if got, err := db.ShipmentByTracking(ctx, "sandbox", sh.TrackingNumber); err != nil || got.ID != sh.ID {
			t.Fatalf("by tracking: %+v %v", got, err)
		}
		if _, err := db.ShipmentByTracking(ctx, "other-courier", sh.TrackingNumber); code(err) != packline.ENOTFOUND {
			t.Fatalf("another courier's number: %v", err)
		}
		live, err := db.ShipmentsInStatus(ctx, "sandbox", []couriers.Status{couriers.StatusPreTransit}, 10)
		if err != nil || len(live) != 1 || live[0].ID != sh.ID {
			t.Fatalf("in status: %+v %v", live, err)
		}
	})
}

// A cash-on-delivery shipment's life: updates are recorded once, move the
// shipment only forward, deliver the order, and each is on the timeline.
func TestRecordTracking(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o, sh := labelled(t, db, s.ID, "cash-on-delivery")
		if o.Status != "shipped" {
			t.Fatalf("after label_created: %s", o.Status)
		}
		// Callbacks carry whole seconds; the label's own event is not one.
		t0 := time.Now().UTC().Add(time.Second).Truncate(time.Second)
		before := len(timelineEvents(t, db, o.ID))

		// in_transit: the shipment moves; the order is shipped already, so
		// ship is not taken and a tracking_update says what came.
		res, err := db.RecordTracking(ctx, update(sh, couriers.StatusInTransit, t0))
		if err != nil || !res.Newer || res.Duplicate || res.Event != "" || res.Refused == nil ||
			res.Shipment.Status != couriers.StatusInTransit || res.Order.Status != "shipped" {
			t.Fatalf("in_transit: %+v %v", res, err)
		}
		tl := timelineEvents(t, db, o.ID)
		if len(tl) != before+1 || tl[len(tl)-1] != "tracking_update:shipped:courier" {
			t.Fatalf("timeline %v", tl)
		}

		// The same update again changes nothing.
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusInTransit, t0))
		if err != nil || !res.Duplicate || res.Newer || res.Shipment.Status != couriers.StatusInTransit {
			t.Fatalf("duplicate: %+v %v", res, err)
		}
		if got := timelineEvents(t, db, o.ID); len(got) != len(tl) {
			t.Fatalf("a duplicate reached the timeline: %v", got)
		}

		// delivered: the courier delivers the order.
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusDelivered, t0.Add(2*time.Hour)))
		if err != nil || !res.Newer || res.Event != "deliver" || res.Order.Status != "delivered" || res.Shipment.Status != couriers.StatusDelivered {
			t.Fatalf("delivered: %+v %v", res, err)
		}
		tl = timelineEvents(t, db, o.ID)
		if tl[len(tl)-1] != "deliver:delivered:courier" {
			t.Fatalf("timeline %v", tl)
		}

		// out_for_delivery, late: kept in the history and on the timeline;
		// neither the shipment nor the order moves back.
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusOutForDelivery, t0.Add(time.Hour)))
		if err != nil || res.Newer || res.Duplicate || res.Event != "" || res.Shipment.Status != couriers.StatusDelivered || res.Order.Status != "delivered" {
			t.Fatalf("older: %+v %v", res, err)
		}
		full, _ := db.Timeline(ctx, o.ID)
		last := full[len(full)-1]
		if last.Event != "tracking_update" || last.To != "delivered" || !strings.Contains(last.Note, "not applied") || len(last.Data) == 0 {
			t.Fatalf("older update on the timeline: %+v", last)
		}
		got, _ := db.GetOrder(ctx, s.ID, o.ID)
		if got.Status != "delivered" {
			t.Fatalf("the order moved back to %s", got.Status)
		}
		shs, _ := db.Shipments(ctx, o.ID)
		var hist []string
		for _, e := range shs[0].Events {
			hist = append(hist, string(e.Status))
		}
		if strings.Join(hist, ",") != "pre_transit,in_transit,out_for_delivery,delivered" || shs[0].Status != couriers.StatusDelivered {
			t.Fatalf("history %v, status %s", hist, shs[0].Status)
		}

		// Refused at the door after all: returned, and the stock comes back.
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusReturnToSender, t0.Add(3*time.Hour)))
		if err != nil || res.Event != "return" || res.Order.Status != "returned" {
			t.Fatalf("return_to_sender: %+v %v", res, err)
		}
		effectOf(t, db, o.ID, "stock:restore")

		// Unknown tracking numbers, and unknown statuses, are refused.
		if _, err := db.RecordTracking(ctx, couriers.Update{Courier: "sandbox", TrackingNumber: "SB-nope", Status: couriers.StatusDelivered, OccurredAt: t0}); code(err) != packline.ENOTFOUND {
			t.Fatalf("unknown tracking number: %v", err)
		}
		if _, err := db.RecordTracking(ctx, update(sh, "teleported", t0)); code(err) != packline.EINVALID {
			t.Fatalf("unknown status: %v", err)
		}
	})
}

// What a courier's update does depends on the flow: prepaid-simple ships
// when the courier picks the parcel up; made-to-order ships only at the
// merchant's word but is delivered by the courier; wholesale has no
// delivery, so the shipment moves and the order stays.
func TestRecordTrackingPerFlow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		t0 := time.Now().UTC().Truncate(time.Second)

		o, sh := labelled(t, db, s.ID, "prepaid-simple")
		if o.Status != "paid" || !o.Flags["label_exists"] {
			t.Fatalf("prepaid with a label: %s %v", o.Status, o.Flags)
		}
		res, err := db.RecordTracking(ctx, update(sh, couriers.StatusInTransit, t0))
		if err != nil || res.Event != "ship" || res.Order.Status != "shipped" {
			t.Fatalf("prepaid in_transit: %+v %v", res, err)
		}
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusDelivered, t0.Add(time.Hour)))
		if err != nil || res.Event != "" || res.Order.Status != "shipped" || res.Shipment.Status != couriers.StatusDelivered {
			t.Fatalf("prepaid delivered: %+v %v", res, err)
		}

		o, sh = labelled(t, db, s.ID, "made-to-order")
		if o.Status != "shipped" {
			t.Fatalf("made-to-order after label: %s", o.Status)
		}
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusOutForDelivery, t0))
		if err != nil || res.Event != "" || res.Refused == nil || res.Order.Status != "shipped" {
			t.Fatalf("made-to-order out_for_delivery: %+v %v", res, err)
		}
		res, err = db.RecordTracking(ctx, update(sh, couriers.StatusDelivered, t0.Add(time.Hour)))
		if err != nil || res.Event != "deliver" || res.Order.Status != "delivered" {
			t.Fatalf("made-to-order delivered: %+v %v", res, err)
		}
	})
}

// Callbacks racing with the same update record it once.
func TestRecordTrackingRaced(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o, sh := labelled(t, db, s.ID, "cash-on-delivery")
		at := time.Now().UTC()
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			news int
		)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := db.RecordTracking(ctx, update(sh, couriers.StatusDelivered, at))
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Duplicate {
					mu.Lock()
					news++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if news != 1 {
			t.Fatalf("%d callbacks recorded the update", news)
		}
		var delivers int
		for _, e := range timelineEvents(t, db, o.ID) {
			if strings.HasPrefix(e, "deliver:") {
				delivers++
			}
		}
		if delivers != 1 {
			t.Fatalf("deliver %d times: %v", delivers, timelineEvents(t, db, o.ID))
		}
	})
}

func TestStoreShipping(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		got, err := db.StoreShipping(ctx, s.ID)
		if err != nil || got.StoreName != "shop" || got.From != nil || got.Courier != "" {
			t.Fatalf("defaults: %+v %v", got, err)
		}
		from := &store.ShipFrom{Phone: "+33100000000", Address: packline.Address{Line1: "1 rue", City: "Lyon", Country: "FR"}}
		if err := db.SetStoreShipping(ctx, s.ID, "sandbox", from); err != nil {
			t.Fatal(err)
		}
		got, err = db.StoreShipping(ctx, s.ID)
		if err != nil || got.Courier != "sandbox" || got.From == nil || got.From.Address.City != "Lyon" {
			t.Fatalf("set: %+v %v", got, err)
		}
		if err := db.SetStoreShipping(ctx, "store_nope", "", nil); code(err) != packline.ENOTFOUND {
			t.Fatalf("unknown store: %v", err)
		}
	})
}
