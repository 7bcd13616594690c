package store_test

import (
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

func TestMetricsSource(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		db := storetest.Open(t, dialect, store.Options{Now: clock})
		s := newStore(t, db, "shop")
		m := packline.Actor{Type: packline.ActorMerchant}
		var ids []string
		for i := 0; i < 3; i++ {
			o, _, err := db.CreateOrder(ctx, s.ID, newOrder(""), m, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, o.ID)
		}
		if _, err := db.ApplyEvent(ctx, s.ID, ids[0], store.EventInput{Event: "confirm", Actor: m}); err != nil {
			t.Fatal(err)
		}
		counts, err := db.OrderCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, c := range counts {
			got[c.Flow+"/"+c.Status] = c.Count
		}
		if got["cash-on-delivery/pending"] != 2 || got["cash-on-delivery/confirmed"] != 1 {
			t.Fatalf("counts %v", got)
		}
		// 49 hours later the two pending orders are past pending's 48h SLA;
		// the confirmed one is past confirmed's 24h SLA.
		now = now.Add(49 * time.Hour)
		stuck, err := db.StuckOrders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]int64{}
		for _, c := range stuck {
			got[c.Flow+"/"+c.Status] = c.Count
		}
		if got["cash-on-delivery/pending"] != 2 || got["cash-on-delivery/confirmed"] != 1 || got["cash-on-delivery/processing"] != 0 {
			t.Fatalf("stuck %v", got)
		}
		n, age, err := db.OutboxStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Every effect row is pending (no relay runs here); the timers are
		// not due yet (14 days), the rest are 49 hours old.
		if n != 3*2+2 || age != 49*time.Hour {
			t.Fatalf("outbox backlog %d, oldest %s", n, age)
		}
	})
}
