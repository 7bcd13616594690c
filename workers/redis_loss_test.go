package workers_test

import (
	"testing"
	"time"

	"github.com/packline/packline/payments"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers/fleettest"
)

// Redis loses everything in the middle of a run (FLUSHALL, or a restart
// without persistence): every owed effect still completes, once, and the
// queues are registered again.
func TestRedisLostMidRun(t *testing.T) {
	for _, how := range []string{"flush", "restart"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, dialect string) {
				e := setup(t, dialect, "cash-on-delivery", setupOpts{noStart: true})
				var lose func()
				switch how {
				case "flush":
					e.redis = redistest.New(t)
					lose = func() { e.redis.Flush(t) }
				case "restart":
					srv := redistest.Server(t)
					e.redis = &srv.Redis
					lose = func() { srv.Stop(t); srv.Start(t) }
				}
				f := e.start(fleettest.Options{NoWorker: true,
					Relay: relay.Options{RedeliverAfter: 500 * time.Millisecond, SweepInterval: 100 * time.Millisecond}})
				e.setStock("MUG-1", 100)
				// Work in Redis, no worker yet: all of it is lost.
				var cod []string
				for range 5 {
					o := e.create("", line("MUG-1", 1))
					e.send(o.ID, "confirm", merchant, nil)
					cod = append(cod, o.ID)
				}
				fleettest.WaitFor(t, wait, "every decrement to be enqueued", func() bool {
					for _, id := range cod {
						rows, _ := e.db.Outbox(t.Context(), id)
						for _, r := range rows {
							if r.Type == "stock:decrement" && r.Status != store.EffectEnqueued {
								return false
							}
						}
					}
					return true
				})
				lose()
				f.StartWorker(t)
				// More work while it runs, then lose Redis again mid-stream.
				for i := range 6 {
					o := e.create("", line("MUG-1", 1))
					e.send(o.ID, "confirm", merchant, nil)
					cod = append(cod, o.ID)
					if i == 2 {
						lose()
					}
				}
				for _, id := range cod {
					e.waitFlag(id, "stock_taken")
					if n := count(e.events(id), "stock_taken"); n != 1 {
						t.Fatalf("order %s: stock_taken %d times", id, n)
					}
				}
				if n := e.stock("MUG-1"); n != 100-int64(len(cod)) {
					t.Fatalf("on hand %d, want %d", n, 100-len(cod))
				}
				c := e.redis.Client(t)
				fleettest.WaitFor(t, wait, "queues registered again", func() bool {
					ok, _ := c.SIsMember(t.Context(), "asynq:queues", "critical").Result()
					return ok
				})
			})
		})
	}
}

// A payment whose task Redis lost is still made, once.
func TestRedisFlushedPaymentOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, "made-to-order", setupOpts{noStart: true})
		f := e.start(fleettest.Options{NoWorker: true,
			Relay: relay.Options{RedeliverAfter: 500 * time.Millisecond, SweepInterval: 100 * time.Millisecond}})
		o := e.create(payments.MethodVisa)
		fleettest.WaitFor(t, wait, "the confirm to be enqueued", func() bool {
			rows, _ := e.db.Outbox(t.Context(), o.ID)
			return rows[0].Type == "payment:confirm" && rows[0].Status == store.EffectEnqueued
		})
		e.redis.Flush(t)
		f.StartWorker(t)
		e.waitStatus(o.ID, "in_production")
		if ps := e.payments(o.ID); len(ps) != 1 || count(e.events(o.ID), "payment_succeeded") != 1 {
			t.Fatalf("payments %+v timeline %v", ps, e.events(o.ID))
		}
	})
}
