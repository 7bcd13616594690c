package workers_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/workers/fleettest"
)

// wait is how long a test waits for the fleet to reach a condition; generous
// for a loaded two-core machine, and only spent when something is wrong.
const wait = 30 * time.Second

var (
	merchant = packline.Actor{Type: packline.ActorMerchant, ID: "key_merchant"}
	customer = packline.Actor{Type: packline.ActorCustomer, ID: "key_storefront"}
)

// env is one test's world: a database, a Redis, a store, and a fleet.
type env struct {
	t     testing.TB
	db    *fleettest.DB
	redis *redistest.Redis
	store store.Store
	fleet *fleettest.Fleet
}

type setupOpts struct {
	store   store.Options
	fleet   fleettest.Options
	noStart bool
}

// setup opens a database of the dialect with a store on flow, leases a
// Redis, and starts a fleet unless told not to.
func setup(t testing.TB, dialect, flow string, o setupOpts) *env {
	t.Helper()
	db := fleettest.OpenDB(t, dialect, o.store)
	s, _, _, err := db.CreateStore(t.Context(), "shop", flow)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, store: s}
	if !o.noStart {
		e.start(o.fleet)
	}
	return e
}

func (e *env) start(o fleettest.Options) *fleettest.Fleet {
	e.t.Helper()
	if e.redis == nil {
		e.redis = redistest.New(e.t)
	}
	o.Waker = e.db.Waker
	o.ListenURL = e.db.ListenURL()
	e.fleet = fleettest.Start(e.t, e.db.DB, e.redis.Opt(), o)
	return e.fleet
}

func line(sku string, qty int64) packline.Line {
	return packline.Line{SKU: sku, Name: sku, Quantity: qty, UnitPrice: 1000}
}

// create places an order with the payment method and lines.
func (e *env) create(method string, lines ...packline.Line) *packline.Order {
	e.t.Helper()
	if len(lines) == 0 {
		lines = []packline.Line{line("MUG-1", 2)}
	}
	o, _, err := e.db.CreateOrder(e.t.Context(), e.store.ID, packline.Order{
		Currency: "USD", Customer: packline.Customer{Name: "Ada", Email: "ada@example.com", Phone: "+15550100"},
		Lines: lines, PaymentMethod: method,
	}, customer, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// send applies an event as actor and fails the test on an error.
func (e *env) send(orderID, event string, actor packline.Actor, data map[string]any) *packline.Order {
	e.t.Helper()
	o, err := e.db.ApplyEvent(e.t.Context(), e.store.ID, orderID, store.EventInput{Event: event, Actor: actor, Data: data})
	if err != nil {
		e.t.Fatalf("%s: %v", event, err)
	}
	return o
}

func (e *env) order(id string) *packline.Order {
	e.t.Helper()
	o, err := e.db.GetOrder(e.t.Context(), e.store.ID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// waitStatus waits until the order is in status.
func (e *env) waitStatus(id, status string) *packline.Order {
	e.t.Helper()
	var o *packline.Order
	fleettest.WaitFor(e.t, wait, "order "+id+" to reach "+status, func() bool {
		o = e.order(id)
		return o.Status == status
	})
	return o
}

// waitFlag waits until the order has the flag.
func (e *env) waitFlag(id, flag string) {
	e.t.Helper()
	fleettest.WaitFor(e.t, wait, "order "+id+" to have "+flag, func() bool {
		return e.order(id).Flags[flag]
	})
}

// waitSettled waits until every outbox row of the order of a handled type
// is done or failed.
func (e *env) waitSettled(id string) []store.OutboxRow {
	e.t.Helper()
	handled := map[string]bool{}
	for _, typ := range e.fleet.Relay.Types() {
		handled[typ] = true
	}
	var rows []store.OutboxRow
	fleettest.WaitFor(e.t, wait, "the effects of "+id+" to settle", func() bool {
		var err error
		rows, err = e.db.Outbox(e.t.Context(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range rows {
			if handled[r.Type] && r.Status != store.EffectDone && r.Status != store.EffectFailed && !r.RunAt.After(time.Now().Add(time.Hour)) {
				return false
			}
		}
		return true
	})
	return rows
}

// events lists the order's timeline events.
func (e *env) events(id string) []string {
	e.t.Helper()
	tl, err := e.db.Timeline(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(tl))
	for i, x := range tl {
		out[i] = x.Event
	}
	return out
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func (e *env) stock(sku string) int64 {
	e.t.Helper()
	s, err := e.db.GetStock(e.t.Context(), e.store.ID, sku)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s.OnHand
}

func (e *env) setStock(sku string, n int64) {
	e.t.Helper()
	if _, err := e.db.SetStock(e.t.Context(), e.store.ID, sku, n); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) payments(id string) []store.Payment {
	e.t.Helper()
	ps, err := e.db.Payments(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

// offsetClock is a store clock that runs with the wall clock, plus an
// offset the test moves forward.
type offsetClock struct {
	offset atomic.Int64
}

func (c *offsetClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *offsetClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

var systemActor = packline.Actor{Type: packline.ActorSystem, ID: "test"}

// createShipDate places a wholesale order with a ship date.
func (e *env) createShipDate(day string) *packline.Order {
	e.t.Helper()
	o, _, err := e.db.CreateOrder(e.t.Context(), e.store.ID, packline.Order{
		Currency: "USD", Customer: packline.Customer{Name: "Ada"}, Lines: []packline.Line{line("TEE-1", 10)}, ShipDate: day,
	}, merchant, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// waitPayments waits until the order's payments satisfy cond.
func (e *env) waitPayments(id string, cond func([]store.Payment) bool) {
	e.t.Helper()
	fleettest.WaitFor(e.t, wait, "payments of "+id, func() bool { return cond(e.payments(id)) })
}

// waitEvent waits until the order's timeline has the event.
func (e *env) waitEvent(id, event string) {
	e.t.Helper()
	fleettest.WaitFor(e.t, wait, event+" on "+id, func() bool { return count(e.events(id), event) > 0 })
}

// runTask runs one task through the mux as mode says: "twice" one run after
// the other, "raced" four runs at once (two workers racing on one task).
func runTask(t *testing.T, mux *asynq.ServeMux, task *asynq.Task, mode string) {
	t.Helper()
	ctx := t.Context()
	if mode == "twice" {
		for range 2 {
			if err := mux.ProcessTask(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- mux.ProcessTask(ctx, task)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
