package workers_test

import (
	"sync"
	"testing"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers/fleettest"
)

// 40 cash-on-delivery orders for a SKU with 25 on hand, confirmed at once
// with the fleet running: exactly 25 are confirmed with their stock taken,
// 15 are on hold, nothing is left, and the ledger says the same.
func TestStockConcurrencyFortyOrdersTwentyFiveOnHand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, "cash-on-delivery", setupOpts{})
		// A second worker server, so decrements really race on PostgreSQL.
		e.fleet.StartWorker(t)
		e.setStock("LAMP-1", 25)
		ids := make([]string, 40)
		for i := range ids {
			ids[i] = e.create("", line("LAMP-1", 1)).ID
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(ids))
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.db.ApplyEvent(t.Context(), e.store.ID, id, store.EventInput{Event: "confirm", Actor: merchant})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var confirmed, onHold int
		fleettest.WaitFor(t, wait, "every order to be taken or on hold", func() bool {
			confirmed, onHold = 0, 0
			for _, id := range ids {
				o := e.order(id)
				switch {
				case o.Status == "confirmed" && o.Flags["stock_taken"]:
					confirmed++
				case o.Status == "on_hold":
					onHold++
				}
			}
			return confirmed+onHold == len(ids)
		})
		if confirmed != 25 || onHold != 15 {
			t.Fatalf("confirmed %d, on hold %d", confirmed, onHold)
		}
		if n := e.stock("LAMP-1"); n != 0 {
			t.Fatalf("on hand %d", n)
		}
		taken, restored, err := e.db.StockMoved(t.Context(), e.store.ID, "LAMP-1")
		if err != nil || taken != 25 || restored != 0 {
			t.Fatalf("ledger taken %d restored %d %v", taken, restored, err)
		}
		for _, id := range ids {
			o := e.order(id)
			ledger, err := e.db.StockLedger(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[o.Flags["stock_taken"]]; len(ledger) != want {
				t.Fatalf("order %s (%s) has %d ledger rows", id, o.Status, len(ledger))
			}
			ev := e.events(id)
			if count(ev, "stock_taken")+count(ev, "stock_short") != 1 {
				t.Fatalf("order %s timeline %v", id, ev)
			}
		}
	})
}

// Stock that is short names every short SKU with what was needed and what
// was there, and takes nothing of the SKUs that were there.
func TestStockShortNamesEverySKU(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, "cash-on-delivery", setupOpts{})
		e.setStock("A", 10)
		e.setStock("B", 1)
		o := e.create("", line("A", 3), line("B", 2), line("C", 1))
		e.send(o.ID, "confirm", merchant, nil)
		e.waitStatus(o.ID, "on_hold")
		tl, err := e.db.Timeline(t.Context(), o.ID)
		if err != nil {
			t.Fatal(err)
		}
		var short packline.TimelineEntry
		for _, x := range tl {
			if x.Event == "stock_short" {
				short = x
			}
		}
		want := `{"short":[{"sku":"B","needed":2,"available":1},{"sku":"C","needed":1,"available":0}]}`
		if string(short.Data) != want {
			t.Fatalf("stock_short data %s, want %s", short.Data, want)
		}
		if e.stock("A") != 10 || e.stock("B") != 1 {
			t.Fatalf("stock moved: A %d B %d", e.stock("A"), e.stock("B"))
		}
	})
}
