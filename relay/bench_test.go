package relay_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// BenchmarkSweepAfterFlush is issue 10's recovery figure: 10,000 effects
// handed to Asynq, Redis flushed, and one sweep finds every one lost and
// hands it over again (the flush is seen at once: the fleet's stamp is
// gone). It reports the sweep's time and rate; after a real flush, every
// task is back within SweepInterval + that time.
//
//	go test -run '^$' -bench SweepAfterFlush ./relay/   (TEST_DATABASE_URL, TEST_REDIS_URL for the real servers)
func BenchmarkSweepAfterFlush(b *testing.B) {
	const want = 10000
	clock := &clock{t: time.Now()}
	e := setup(b, storetest.Default(), store.Options{Now: clock.now})
	n := 0
	for n < want {
		o := e.create()
		for _, row := range e.rows(o.ID) {
			if row.Type != store.TimerType { // timers wait in the database
				n++
			}
		}
	}
	r := relay.New(e.db.DB, e.client, relay.Options{Redis: e.redis.Opt(), Fleet: relay.Fleet{ID: "flt_bench", Database: "bench"},
		Logger: slog.New(slog.DiscardHandler)})
	ctx := b.Context()
	b.ResetTimer()
	var swept time.Duration
	for range b.N {
		b.StopTimer()
		if _, err := r.Sweep(ctx); err != nil { // relays every row, stamps the fleet
			b.Fatal(err)
		}
		e.redis.Flush(b)
		clock.advance(3 * time.Second)
		b.StartTimer()
		start := time.Now()
		res, err := r.Sweep(ctx)
		swept += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Redelivered < want {
			b.Fatalf("redelivered %d of %d lost tasks: %+v", res.Redelivered, n, res)
		}
	}
	b.ReportMetric(float64(n), "tasks")
	b.ReportMetric(swept.Seconds()/float64(b.N), "s/sweep")
	b.ReportMetric(float64(n)*float64(b.N)/swept.Seconds(), "tasks/s")
}
