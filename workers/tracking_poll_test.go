package workers_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// pollingCourier stands in for a courier whose API has no callbacks, only a
// tracking lookup: a third-party service that cannot run here.
type pollingCourier struct {
	mu     sync.Mutex
	status map[string]couriers.Status
	at     map[string]time.Time
	asked  int
}

func (c *pollingCourier) Name() string { return "polled" }
func (c *pollingCourier) CreateLabel(context.Context, couriers.LabelRequest) (couriers.Label, error) {
	return couriers.Label{}, couriers.ErrUnsupported
}
func (c *pollingCourier) ParseCallback(http.Header, []byte, time.Time) (couriers.Update, error) {
	return couriers.Update{}, couriers.ErrUnsupported
}
func (c *pollingCourier) Track(_ context.Context, n string) (couriers.Update, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked++
	return couriers.Update{Status: c.status[n], CourierStatus: string(c.status[n]), OccurredAt: c.at[n]}, nil
}

func (c *pollingCourier) set(n string, s couriers.Status, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status[n], c.at[n] = s, at
}

// A courier without callbacks is polled: its answers move the order forward
// as callbacks would, a repeated answer changes nothing, an older one never
// moves it back, and delivered shipments are no longer asked about.
func TestTrackingPollerMovesOrders(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db := fleettest.OpenDB(t, dialect, store.Options{}).DB
		s, _, _, err := db.CreateStore(ctx, "shop", "cash-on-delivery")
		if err != nil {
			t.Fatal(err)
		}
		m, sys := packline.Actor{Type: packline.ActorMerchant}, packline.Actor{Type: packline.ActorSystem}
		o, _, err := db.CreateOrder(ctx, s.ID, packline.Order{Currency: "DZD",
			Customer: packline.Customer{Name: "Amina", Phone: "+213555123456"},
			Lines:    []packline.Line{{SKU: "A", Name: "A", Quantity: 1, UnitPrice: 100}}}, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range []struct {
			name  string
			actor packline.Actor
		}{{"confirm", m}, {"stock_taken", sys}, {"process", m}, {"ship", m}} {
			if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: ev.name, Actor: ev.actor}); err != nil {
				t.Fatalf("%s: %v", ev.name, err)
			}
		}
		sh, _, err := db.CreateShipment(ctx, store.NewShipment{OrderID: o.ID, StoreID: s.ID, Courier: "polled",
			TrackingNumber: "PL123", LabelPDF: []byte("%PDF-1.4")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "label_created", Actor: sys}); err != nil {
			t.Fatal(err)
		}

		sb, err := sandbox.New(sandbox.Options{Secret: "a-secret-of-sixteen+"})
		if err != nil {
			t.Fatal(err)
		}
		pc := &pollingCourier{status: map[string]couriers.Status{}, at: map[string]time.Time{}}
		p := workers.NewTrackingPoller(db, couriers.NewRegistry(sb, pc), workers.PollOptions{Logger: fleettest.Logger()})
		t0 := time.Now().UTC().Truncate(time.Second)
		status := func() string {
			got, err := db.GetOrder(ctx, s.ID, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status
		}

		pc.set(sh.TrackingNumber, couriers.StatusInTransit, t0)
		if moved, err := p.Poll(ctx); err != nil || moved != 1 || status() != "shipped" {
			t.Fatalf("in transit: moved %d, %v, order %s", moved, err, status())
		}
		if moved, _ := p.Poll(ctx); moved != 0 {
			t.Fatalf("the same answer again moved %d", moved)
		}
		pc.set(sh.TrackingNumber, couriers.StatusDelivered, t0.Add(time.Hour))
		if moved, err := p.Poll(ctx); err != nil || moved != 1 || status() != "delivered" {
			t.Fatalf("delivered: moved %d, %v, order %s", moved, err, status())
		}
		asked := pc.asked
		pc.set(sh.TrackingNumber, couriers.StatusInTransit, t0.Add(2*time.Hour))
		if moved, _ := p.Poll(ctx); moved != 0 || status() != "delivered" || pc.asked != asked {
			t.Fatalf("a delivered shipment was asked again or moved back: moved %d, order %s", moved, status())
		}
	})
}
