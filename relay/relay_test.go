package relay_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/tasks"
	"github.com/packline/packline/workers/fleettest"
)

const wait = 20 * time.Second

// clock is a store clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t      testing.TB
	db     *fleettest.DB
	redis  *redistest.Redis
	client *asynq.Client
	store  store.Store
}

func setup(t testing.TB, dialect string, opts store.Options) *env {
	t.Helper()
	db := fleettest.OpenDB(t, dialect, opts)
	s, _, _, err := db.CreateStore(t.Context(), "shop", "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	r := redistest.New(t)
	c := asynq.NewClient(r.Opt())
	t.Cleanup(func() { c.Close() })
	return &env{t: t, db: db, redis: r, client: c, store: s}
}

func (e *env) create() *packline.Order {
	e.t.Helper()
	o, _, err := e.db.CreateOrder(e.t.Context(), e.store.ID, packline.Order{Currency: "USD",
		Customer: packline.Customer{Name: "Ada"}, Lines: []packline.Line{{SKU: "MUG-1", Name: "Mug", Quantity: 1, UnitPrice: 100}}},
		packline.Actor{Type: packline.ActorCustomer}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// run starts r until the test ends.
func run(t *testing.T, r interface{ Run(context.Context) error }) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (e *env) rows(orderID string) map[string]store.EffectRow {
	e.t.Helper()
	ob, err := e.db.Outbox(e.t.Context(), orderID)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]store.EffectRow{}
	for _, r := range ob {
		row, err := e.db.Effect(e.t.Context(), r.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		out[r.Type] = row
	}
	return out
}

func (e *env) waitStatus(orderID, typ string, status store.EffectStatus) store.EffectRow {
	e.t.Helper()
	var row store.EffectRow
	fleettest.WaitFor(e.t, wait, typ+" of "+orderID+" to be "+string(status), func() bool {
		row = e.rows(orderID)[typ]
		return row.Status == status
	})
	return row
}

// taskCount counts the tasks Asynq holds in every queue, by state.
func (e *env) tasks() map[string]int {
	e.t.Helper()
	in := asynq.NewInspector(e.redis.Opt())
	defer in.Close()
	out := map[string]int{}
	for q := range tasks.Queues {
		for state, list := range map[string]func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			"pending": in.ListPendingTasks, "scheduled": in.ListScheduledTasks,
		} {
			ts, err := list(q, asynq.PageSize(1000))
			if err != nil {
				continue // queue not there
			}
			for _, ti := range ts {
				out[state]++
				out[ti.ID]++
			}
		}
	}
	return out
}

// A commit wakes the relay at once: the poll interval is far longer than
// the test waits. In-process through Wake (store.Options.OnOutbox), and on
// PostgreSQL through LISTEN/NOTIFY alone.
func TestRelayWakesOnCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		for _, via := range []string{"wake", "listen"} {
			if via == "listen" && dialect != store.Postgres {
				continue
			}
			t.Run(via, func(t *testing.T) {
				e := setup(t, dialect, store.Options{})
				opts := relay.Options{PollInterval: time.Hour, SweepInterval: time.Hour}
				if via == "listen" {
					opts.ListenURL = e.db.URL
				}
				r := relay.New(e.db.DB, e.client, opts)
				if via == "wake" {
					e.db.Waker.Set(r.Wake)
				}
				run(t, r)
				a := e.create()
				e.waitStatus(a.ID, "webhook:deliver", store.EffectEnqueued) // the first pass is over (and LISTEN is on)
				start := time.Now()
				b := e.create()
				fleettest.WaitFor(t, 5*time.Second, "the new order's effects to be enqueued", func() bool {
					return e.rows(b.ID)["webhook:deliver"].Status == store.EffectEnqueued
				})
				t.Logf("enqueued %s after commit", time.Since(start))
			})
		}
	})
}

// A task Asynq holds already (ErrTaskIDConflict) counts as enqueued: one
// task, the row enqueued.
func TestRelayTaskIDConflictIsEnqueued(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, store.Options{})
		o := e.create()
		rows := e.rows(o.ID)
		wh := rows["webhook:deliver"]
		task, err := relay.Task(wh.OutboxRow, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		r := relay.New(e.db.DB, e.client, relay.Options{})
		if _, err := r.RelayDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := e.rows(o.ID)["webhook:deliver"]; got.Status != store.EffectEnqueued || got.Deliveries != 1 {
			t.Fatalf("row %+v", got)
		}
		if n := e.tasks()[wh.ID]; n != 1 {
			t.Fatalf("%d tasks for %s", n, wh.ID)
		}
	})
}

// Timers stay pending in the database until due, then go at once; types
// the relay is not given stay pending.
func TestRelayTimersWaitAndTypesFilter(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		// cash-on-delivery expires after 14 days: × 0.000001 ≈ 1.2s.
		e := setup(t, dialect, store.Options{TimerScale: 0.000001})
		r := relay.New(e.db.DB, e.client, relay.Options{Types: []string{tasks.TypeOrderTimer, tasks.TypeNotifyEmail}})
		o := e.create()
		if _, err := r.RelayDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows := e.rows(o.ID)
		if rows["notify:email"].Status != store.EffectEnqueued || rows["order:timer"].Status != store.EffectPending ||
			rows["webhook:deliver"].Status != store.EffectPending {
			t.Fatalf("rows %+v", rows)
		}
		due := rows["order:timer"].RunAt
		at, ok, err := e.db.NextDueEffect(t.Context(), []string{tasks.TypeOrderTimer})
		if err != nil || !ok || !at.Equal(due) {
			t.Fatalf("next due %v %v %v, want %v", at, ok, err, due)
		}
		run(t, r)
		row := e.waitStatus(o.ID, "order:timer", store.EffectEnqueued)
		if row.EnqueuedAt.Time.Before(due) {
			t.Fatalf("timer due %v enqueued early at %v", due, row.EnqueuedAt.Time)
		}
		// The claim commits before the hand-over to Asynq: wait for it.
		fleettest.WaitFor(t, wait, "the timer's task in Asynq", func() bool { return e.tasks()[row.ID] > 0 })
		if n := e.tasks()[row.ID]; n != 1 {
			t.Fatalf("%d tasks for the timer", n)
		}
		if got := e.rows(o.ID)["webhook:deliver"]; got.Status != store.EffectPending {
			t.Fatalf("webhook row %+v", got)
		}
	})
}

// Several relays at once hand every row over exactly once (FOR UPDATE SKIP
// LOCKED on PostgreSQL; one connection at a time on SQLite).
func TestRelaysShareTheOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, store.Options{})
		var ids []string
		for range 30 {
			ids = append(ids, e.create().ID)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := relay.New(e.db.DB, e.client, relay.Options{Batch: 7})
				if _, err := r.RelayDue(t.Context()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		counts := e.tasks()
		due := 0
		for _, id := range ids {
			for typ, row := range e.rows(id) {
				if typ == "order:timer" {
					continue
				}
				due++
				if row.Status != store.EffectEnqueued || row.Deliveries != 1 || counts[row.ID] != 1 {
					t.Fatalf("%s row %+v, %d tasks", typ, row, counts[row.ID])
				}
			}
		}
		if counts["pending"] != due {
			t.Fatalf("%d tasks for %d due rows", counts["pending"], due)
		}
	})
}

// The sweep leaves a stale row whose task still waits in Asynq alone, hands
// one whose task Redis lost over again, and registers the queues again.
func TestSweepRedeliversOnlyLostTasks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		clock := &clock{t: time.Now()}
		e := setup(t, dialect, store.Options{Now: clock.now})
		r := relay.New(e.db.DB, e.client, relay.Options{RedeliverAfter: time.Minute, Redis: e.redis.Opt(),
			Types: []string{tasks.TypeNotifyEmail}})
		o := e.create()
		ctx := t.Context()
		if _, err := r.RelayDue(ctx); err != nil {
			t.Fatal(err)
		}
		id := e.rows(o.ID)["notify:email"].ID
		sweepAfter := func() relay.SweepResult {
			clock.advance(2 * time.Minute) // past RedeliverAfter
			res, err := r.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := sweepAfter(); res.Stale != 1 || res.Redelivered != 0 {
			t.Fatalf("waiting task: %+v", res)
		}
		e.redis.Flush(t)
		if res := sweepAfter(); res.Stale != 1 || res.Redelivered != 1 {
			t.Fatalf("lost task: %+v", res)
		}
		row := e.rows(o.ID)["notify:email"]
		if row.Deliveries != 2 || row.Status != store.EffectEnqueued {
			t.Fatalf("row %+v", row)
		}
		if n := e.tasks()[tasks.TaskID(id, 2)]; n != 1 {
			t.Fatalf("no redelivered task %s", tasks.TaskID(id, 2))
		}
		ok, err := e.redis.Client(t).SIsMember(ctx, "asynq:queues", tasks.QueueCritical).Result()
		if err != nil || !ok {
			t.Fatalf("queues not registered again: %v %v", ok, err)
		}
	})
}

// A stale row whose task a live worker is running is left alone, however
// long it runs (the worker's heartbeat lists it). (A SIGKILLed worker's
// task: workers.TestWorkerKilledMidTask, and TestSweepHandsOverDeadWorkersTasks.)
func TestSweepLeavesTasksLiveWorkersRun(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		clock := &clock{t: time.Now()}
		e := setup(t, dialect, store.Options{Now: clock.now})
		r := relay.New(e.db.DB, e.client, relay.Options{RedeliverAfter: time.Minute, SweepInterval: 10 * time.Second,
			Redis: e.redis.Opt(), Types: []string{tasks.TypeNotifyEmail}})
		o := e.create()
		ctx := t.Context()
		if _, err := r.RelayDue(ctx); err != nil {
			t.Fatal(err)
		}
		id := e.rows(o.ID)["notify:email"].ID

		release := make(chan struct{})
		srv := asynq.NewServer(e.redis.Opt(), asynq.Config{Concurrency: 1, Queues: map[string]int{tasks.QueueLow: 1},
			LogLevel: asynq.FatalLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeNotifyEmail, func(ctx context.Context, task *asynq.Task) error {
			if _, err := e.db.StartEffect(ctx, id, false); err != nil {
				return err
			}
			<-release
			return nil
		})
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { close(release); srv.Shutdown() })
		insp := asynq.NewInspector(e.redis.Opt())
		t.Cleanup(func() { insp.Close() })
		fleettest.WaitFor(t, wait, "the worker's heartbeat to list the task", func() bool {
			servers, err := insp.Servers()
			if err != nil {
				return false
			}
			for _, s := range servers {
				for _, w := range s.ActiveWorkers {
					if w.TaskID == tasks.TaskID(id, 1) {
						return true
					}
				}
			}
			return false
		})

		clock.advance(2 * time.Minute) // past RedeliverAfter
		res, err := r.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Stale != 1 || res.Redelivered != 0 {
			t.Fatalf("a task a live worker runs: %+v", res)
		}
		// However long it runs.
		clock.advance(5 * time.Minute)
		if res, err = r.Sweep(ctx); err != nil || res.Redelivered != 0 {
			t.Fatalf("second look: %+v %v", res, err)
		}
		if row := e.rows(o.ID)["notify:email"]; row.Deliveries != 1 {
			t.Fatalf("row %+v", row)
		}
	})
}

// A sweep stamps its fleet into Redis again after a flush, and stops on a
// Redis database another fleet stamped.
func TestSweepStampsTheFleet(t *testing.T) {
	e := setup(t, storetest.Default(), store.Options{})
	ctx := t.Context()
	mine := relay.Fleet{ID: "flt_mine", Database: "here"}
	r := relay.New(e.db.DB, e.client, relay.Options{Redis: e.redis.Opt(), Fleet: mine})
	if _, err := r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	rdb := e.redis.Client(t)
	if got, _ := rdb.Get(ctx, relay.FleetKey).Result(); !strings.Contains(got, "flt_mine") {
		t.Fatalf("stamp %q", got)
	}
	e.redis.Flush(t)
	if _, err := r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, relay.FleetKey).Result(); n != 1 {
		t.Fatal("not stamped again after the flush")
	}
	e.redis.Flush(t)
	if err := relay.Stamp(ctx, rdb, relay.Fleet{ID: "flt_other", Database: "there"}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Sweep(ctx)
	if !errors.Is(err, relay.ErrForeignFleet) || !strings.Contains(err.Error(), "flt_other") || !strings.Contains(err.Error(), "flt_mine") {
		t.Fatalf("sweep on another fleet's Redis: %v", err)
	}
}

// A flush is seen at the next sweep (the fleet's stamp is gone), and every
// task Redis lost is handed over then, not after RedeliverAfter.
func TestSweepAfterAFlushHandsOverAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		clock := &clock{t: time.Now()}
		e := setup(t, dialect, store.Options{Now: clock.now})
		r := relay.New(e.db.DB, e.client, relay.Options{Redis: e.redis.Opt(), Fleet: relay.Fleet{ID: "flt_test", Database: "here"},
			Types: []string{tasks.TypeNotifyEmail}})
		o := e.create()
		ctx := t.Context()
		if _, err := r.Sweep(ctx); err != nil { // relays the row, stamps the fleet
			t.Fatal(err)
		}
		id := e.rows(o.ID)["notify:email"].ID
		clock.advance(3 * time.Second) // far less than RedeliverAfter (2m)
		if res, err := r.Sweep(ctx); err != nil || res.Redelivered != 0 {
			t.Fatalf("before the flush: %+v %v", res, err)
		}
		e.redis.Flush(t)
		res, err := r.Sweep(ctx)
		if err != nil || res.Redelivered != 1 {
			t.Fatalf("after the flush: %+v %v", res, err)
		}
		if n := e.tasks()[tasks.TaskID(id, 2)]; n != 1 {
			t.Fatalf("no redelivered task %s", tasks.TaskID(id, 2))
		}
	})
}

// The scheduler alone relays an overdue timer: no relay is running.
func TestSchedulerRelaysOverdueTimers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, store.Options{TimerScale: 0.0000005})
		o := e.create()
		s := relay.NewScheduler(e.db.DB, e.client, relay.Options{SweepInterval: 50 * time.Millisecond, Redis: e.redis.Opt()})
		run(t, s)
		e.waitStatus(o.ID, "order:timer", store.EffectEnqueued)
	})
}

// With Redis unreachable nothing is lost: the claimed rows go back to
// pending, with the reason, for the next pass.
func TestRelayReleasesRowsWhenRedisIsDown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := setup(t, dialect, store.Options{})
		o := e.create()
		down := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
		defer down.Close()
		r := relay.New(e.db.DB, down, relay.Options{})
		if _, err := r.RelayDue(t.Context()); err == nil {
			t.Fatal("no error with Redis down")
		}
		for typ, row := range e.rows(o.ID) {
			if row.Status != store.EffectPending {
				t.Fatalf("%s row %+v", typ, row)
			}
		}
		if _, err := relay.New(e.db.DB, e.client, relay.Options{}).RelayDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		if row := e.rows(o.ID)["webhook:deliver"]; row.Status != store.EffectEnqueued {
			t.Fatalf("row %+v", row)
		}
	})
}
