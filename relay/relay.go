// Package relay moves committed outbox rows into Asynq: the half of the
// transactional outbox that runs after the commit.
//
// A Relay (packline relay, several replicas allowed) claims due pending rows
// in batches (FOR UPDATE SKIP LOCKED on PostgreSQL), marks them enqueued and
// hands them to Asynq with TaskID = effect id, so handing one over twice is
// a no-op (asynq.ErrTaskIDConflict means "already there"). It wakes on
// every commit that wrote outbox rows (LISTEN packline_outbox on
// PostgreSQL, Wake in-process) and polls as a fallback.
//
// Timers stay pending in the database until they are due: the relay sleeps
// until the earliest one, so Redis never holds a seven-day expiry it could
// lose. Work Redis does lose (a flush, a restart without persistence, a
// worker killed holding a task) is found by the sweep: a row enqueued and
// neither relayed nor started for Options.RedeliverAfter, whose task Asynq
// no longer has waiting, is handed over again (TaskID effect id + "-r<n>").
// The sweep also registers the queues again after a flush, which a
// long-lived asynq.Client does not do.
//
// A Scheduler (packline scheduler) runs only the sweep, on a timer: overdue
// rows (timers and effects no relay took) and stuck ones.
//
// An outbox row's life:
//
//	pending ──relay claims (run_at due)──▶ enqueued ──worker: event + done mark, one tx──▶ done
//	   ▲                                     │  │
//	   └──── Asynq refused the enqueue ──────┘  ├──worker: last retry, or SkipRetry──▶ failed
//	                                            └──sweep: task lost ──▶ enqueued again (task id -r<n>)
//
// Rows of types the relay is not given (Options.Types) stay pending.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/store"
	"github.com/packline/packline/tasks"
	"github.com/redis/go-redis/v9"
)

// NotifyChannel is the PostgreSQL channel a commit that wrote outbox rows
// notifies.
const NotifyChannel = store.NotifyChannel

// Options configure a Relay. Zero values take the defaults noted.
type Options struct {
	// Batch is how many rows one claim takes (default 100).
	Batch int
	// Parallel is how many rows of a batch are handed to Asynq at once
	// (default 8): each hand-over is one round trip to Redis.
	Parallel int
	// PollInterval bounds how long the relay sleeps without a wake-up
	// (default 1s).
	PollInterval time.Duration
	// RedeliverAfter is how long a row may stay enqueued, neither relayed
	// nor started by a worker, before the sweep asks Asynq whether it still
	// has the row's task (default 2m). A flush or a restart that emptied
	// Redis is seen at once (the fleet's stamp is gone; needs Options.Fleet)
	// and looks at every row then; a dead worker's tasks are found from the
	// servers' heartbeats, whatever this is. Without Options.Redis the sweep
	// cannot ask, and hands over again every such row: keep it above
	// tasks.MaxTimeout then.
	RedeliverAfter time.Duration
	// SweepInterval is how often Run sweeps (default 2s).
	SweepInterval time.Duration
	// Types, when set, limits the relay to these task types: rows of
	// other types (effects with no handler yet) stay pending and visible.
	// workers.HandledTypes gives the list for a worker's Deps.
	Types []string
	// Redis is the connection the client uses; with it the sweep checks
	// whether a stale row's task is still waiting in Asynq before handing
	// it over again, and registers the queues again after a flush. Without
	// it, a stale row is always handed over again (harmless: handlers are
	// idempotent) and queues are not re-registered.
	Redis asynq.RedisConnOpt
	// Fleet, when its ID is set, is stamped into Redis by every sweep (a
	// flush removes the stamp); a Redis database another fleet stamped
	// stops the relay with ErrForeignFleet. Needs Redis.
	Fleet Fleet
	// ListenURL is the PostgreSQL URL to LISTEN on for commits; empty
	// means no LISTEN (the in-process Wake and the poll remain).
	ListenURL string
	// PassTimeout bounds one pass (a claim-and-enqueue round, a sweep), so a
	// half-open database or Redis connection stalls the relay for this
	// long, not for as long as TCP takes to notice (default 30s).
	PassTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.RedeliverAfter <= 0 {
		o.RedeliverAfter = 2 * time.Minute
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 2 * time.Second
	}
	if o.PassTimeout <= 0 {
		o.PassTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// pass runs fn with ctx bounded by PassTimeout.
func (r *Relay) pass(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.PassTimeout)
	defer cancel()
	return fn(ctx)
}

// Relay moves outbox rows into Asynq.
type Relay struct {
	db     *store.DB
	client *asynq.Client
	opts   Options
	log    *slog.Logger
	wake   chan struct{}

	inspector inspector
	rdb       redis.UniversalClient
	// active is what the last sweeps saw of Asynq's active tasks
	// (sweepDeadWorkers); stamped is set once a sweep stamped the fleet.
	active  map[string]activeTask
	stamped bool
}

// New returns a relay of db's outbox into Asynq through client. Call Run.
func New(db *store.DB, client *asynq.Client, opts Options) *Relay {
	opts.defaults()
	r := &Relay{db: db, client: client, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), active: map[string]activeTask{}}
	if opts.Redis != nil {
		r.inspector = asynq.NewInspector(opts.Redis)
		if c, ok := opts.Redis.MakeRedisClient().(redis.UniversalClient); ok {
			r.rdb = c
		}
	}
	return r
}

// Types returns the task types the relay hands over (nil: every type).
func (r *Relay) Types() []string { return r.opts.Types }

// Wake makes Run look at the outbox now. It never blocks; wire it to
// store.Options.OnOutbox so an in-process commit is relayed at once.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx is done: on every wake-up, at the earliest pending
// timer, at least every PollInterval, and sweeps every SweepInterval. It
// returns nil when ctx is done; database and Redis errors are logged and
// retried, never fatal.
func (r *Relay) Run(ctx context.Context) error {
	defer r.close()
	if r.opts.ListenURL != "" {
		stop := r.listen(ctx)
		defer stop()
	}
	lastSweep := time.Time{}
	for {
		if time.Since(lastSweep) >= r.opts.SweepInterval {
			if err := r.pass(ctx, func(ctx context.Context) error { _, err := r.Sweep(ctx); return err }); err != nil && ctx.Err() == nil {
				if errors.Is(err, ErrForeignFleet) {
					return err
				}
				r.log.WarnContext(ctx, "relay sweep", "err", err)
			}
			lastSweep = time.Now()
		}
		if err := r.pass(ctx, func(ctx context.Context) error { _, err := r.RelayDue(ctx); return err }); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay outbox", "err", err)
		}
		wait := min(r.opts.PollInterval, r.opts.SweepInterval-time.Since(lastSweep))
		var at time.Time
		var ok bool
		if err := r.pass(ctx, func(ctx context.Context) (err error) {
			at, ok, err = r.db.NextDueEffect(ctx, r.opts.Types)
			return err
		}); err == nil && ok {
			wait = min(wait, time.Until(at))
		}
		wait = max(wait, time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// RelayDue hands every due pending row to Asynq, batch after batch, and
// returns how many it handed over. The rows of a batch are enqueued
// Options.Parallel at a time; the ones Asynq did not take go back to
// pending for the next pass.
func (r *Relay) RelayDue(ctx context.Context) (int, error) {
	total := 0
	for {
		rows, err := r.db.ClaimDueEffects(ctx, r.opts.Batch, r.opts.Types)
		if err != nil {
			return total, err
		}
		failed, err := r.enqueueAll(ctx, rows)
		total += len(rows) - len(failed)
		if err != nil {
			r.release(ctx, failed, err)
			return total, err
		}
		if len(rows) < r.opts.Batch {
			return total, nil
		}
	}
}

// enqueueAll hands rows to Asynq (each as its Deliveries-th task),
// Options.Parallel at a time, and returns the ones it could not hand over
// with the first error.
func (r *Relay) enqueueAll(ctx context.Context, rows []store.EffectRow) ([]store.EffectRow, error) {
	var (
		mu       sync.Mutex
		failed   []store.EffectRow
		firstErr error
	)
	r.parallel(len(rows), func(i int) {
		row := rows[i]
		if err := r.enqueue(ctx, row, row.Deliveries); err != nil {
			r.log.WarnContext(ctx, "enqueue effect", "effect_id", row.ID, "type", row.Type, "order_id", row.OrderID, "err", err)
			mu.Lock()
			failed = append(failed, row)
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	})
	return failed, firstErr
}

// release puts claimed rows Asynq did not get back to pending for the next
// pass; if even that fails, the sweep finds them enqueued and stale.
func (r *Relay) release(ctx context.Context, rows []store.EffectRow, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, row := range rows {
		if err := r.db.ReleaseEffect(ctx, row.ID, "relay: "+cause.Error()); err != nil {
			r.log.WarnContext(ctx, "release effect", "effect_id", row.ID, "err", err)
			return
		}
	}
}

// enqueue hands one row to Asynq as its delivery-th task; a task id Asynq
// holds already counts as handed over.
func (r *Relay) enqueue(ctx context.Context, row store.EffectRow, delivery int) error {
	// Only due rows get here (by the store's clock): run now.
	t, err := Task(row.OutboxRow, delivery, asynq.ProcessIn(0))
	if err != nil {
		return err
	}
	_, err = r.client.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue %s %s: %w", row.Type, tasks.TaskID(row.ID, delivery), err)
	}
	return nil
}

// Task is the Asynq task of an outbox row's delivery-th hand-over: the one
// place a row becomes a task. The payload carries the row's effect (or
// timer), so the worker need not read the row again.
func Task(row store.OutboxRow, delivery int, opts ...asynq.Option) (*asynq.Task, error) {
	p := tasks.Payload{EffectID: row.ID, OrderID: row.OrderID, StoreID: row.StoreID, Version: row.Version, Type: row.Type,
		Delivery: delivery, CreatedAt: row.CreatedAt}
	if row.Type == store.TimerType {
		t, err := row.Timer()
		if err != nil {
			return nil, err
		}
		p.Timer = &t
	} else {
		e, err := row.Effect()
		if err != nil {
			return nil, err
		}
		p.Effect = &e
	}
	return tasks.New(p, opts...)
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	// Relayed is the number of due pending rows handed to Asynq.
	Relayed int
	// Stale is the number of rows enqueued too long without a worker.
	Stale int
	// Redelivered is how many of those were handed over again because
	// Asynq no longer had them waiting.
	Redelivered int
}

// Sweep finds work Redis lost and hands it over again, as a new delivery
// (task id effect id + "-r<n>"):
//
//   - It stamps the fleet into Redis (Options.Fleet). A stamp that was
//     missing means Redis lost its data (a flush, a restart without
//     persistence): every row enqueued more than 2 s ago is then looked at
//     at once, not after RedeliverAfter.
//   - It registers the queues again and relays overdue pending rows.
//   - Tasks a dead worker held: Asynq shows them active, and no live
//     server's heartbeat lists them (a SIGKILLed worker's drop out within
//     10 s; one never listed gets a heartbeat's grace, in case a live
//     worker took it a moment ago). Asynq would hand them out again only
//     when their lease runs out, a minute later.
//   - Rows enqueued longer than RedeliverAfter and not started since,
//     whose task Asynq no longer has waiting.
//
// Each is done a batch at a time, Options.Parallel Redis round trips at
// once. Run calls it every SweepInterval; the scheduler role calls it
// through Scheduler.
func (r *Relay) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	olderThan := r.opts.RedeliverAfter
	if r.rdb != nil && r.opts.Fleet.ID != "" {
		fresh, err := stamp(ctx, r.rdb, r.opts.Fleet)
		if err != nil {
			return res, err
		}
		if fresh && r.stamped {
			r.log.WarnContext(ctx, "Redis lost its data (the fleet's stamp was gone): handing over every enqueued effect it does not have")
			olderThan = min(olderThan, 2*time.Second)
		}
		r.stamped = true
	}
	r.registerQueues(ctx)
	n, err := r.RelayDue(ctx)
	res.Relayed = n
	if err != nil {
		return res, err
	}
	if err := r.sweepDeadWorkers(ctx, &res); err != nil {
		return res, err
	}
	for {
		rows, err := r.db.ClaimStaleEffects(ctx, olderThan, r.opts.Batch, r.opts.Types)
		if err != nil {
			return res, err
		}
		res.Stale += len(rows)
		lost := make([]bool, len(rows))
		r.parallel(len(rows), func(i int) { lost[i] = !r.waiting(rows[i]) })
		var again []store.EffectRow
		for i, row := range rows {
			if lost[i] {
				again = append(again, row)
			}
		}
		if err := r.redeliver(ctx, again, &res); err != nil {
			return res, err
		}
		if len(rows) < r.opts.Batch {
			return res, nil
		}
	}
}

// redeliver hands rows over again as their next delivery and marks them.
func (r *Relay) redeliver(ctx context.Context, rows []store.EffectRow, res *SweepResult) error {
	for i := range rows {
		rows[i].Deliveries++
	}
	failed, _ := r.enqueueAll(ctx, rows)
	handed := make([]string, 0, len(rows))
	for _, row := range rows {
		if !slices.ContainsFunc(failed, func(f store.EffectRow) bool { return f.ID == row.ID }) {
			handed = append(handed, row.ID)
			r.log.InfoContext(ctx, "effect redelivered", "effect_id", row.ID, "type", row.Type, "order_id", row.OrderID,
				"delivery", row.Deliveries)
		}
	}
	if err := r.db.MarkRedelivered(ctx, handed...); err != nil {
		return err
	}
	res.Redelivered += len(handed)
	return nil
}

// sweepDeadWorkers hands over again the tasks workers that died were
// running: active in Asynq, in no live server's heartbeat.
func (r *Relay) sweepDeadWorkers(ctx context.Context, res *SweepResult) error {
	if r.inspector == nil {
		return nil
	}
	servers, err := r.inspector.Servers()
	if err != nil {
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "list asynq servers", "err", err)
		}
		return nil // cannot tell: hand nothing over
	}
	running := map[string]bool{}
	for _, s := range servers {
		for _, w := range s.ActiveWorkers {
			running[w.TaskID] = true
		}
	}
	now := time.Now()
	active := map[string]bool{}
	var lost []string // task ids
	for q := range tasks.Queues {
		infos, err := r.inspector.ListActiveTasks(q, asynq.PageSize(10000))
		if err != nil {
			continue // a queue not there (yet, or after a flush)
		}
		for _, t := range infos {
			active[t.ID] = true
			seen, _ := r.active[t.ID]
			switch {
			case running[t.ID]:
				seen.listed = true
			case seen.listed:
				lost = append(lost, t.ID) // its server's heartbeat stopped
			case seen.first.IsZero():
				seen.first = now
			case now.Sub(seen.first) >= unlistedGrace:
				lost = append(lost, t.ID) // taken by a worker that died before its first heartbeat
			}
			r.active[t.ID] = seen
		}
	}
	for id := range r.active {
		if !active[id] {
			delete(r.active, id)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	ids := make([]string, len(lost))
	for i, t := range lost {
		ids[i] = tasks.EffectIDOf(t)
	}
	rows, err := r.db.EnqueuedEffects(ctx, ids...)
	if err != nil {
		return err
	}
	var again []store.EffectRow
	for _, row := range rows {
		// Only the row's latest task: an older one a redelivery replaced
		// is not the row's to hand over.
		if slices.Contains(lost, tasks.TaskID(row.ID, row.Deliveries)) {
			again = append(again, row)
		}
	}
	res.Stale += len(again)
	return r.redeliver(ctx, again, res)
}

// inspector is what the sweep asks Asynq (an *asynq.Inspector).
type inspector interface {
	Servers() ([]*asynq.ServerInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	Close() error
}

// activeTask is what the sweep knows of a task Asynq shows active.
type activeTask struct {
	listed bool      // a live server's heartbeat listed it
	first  time.Time // when the sweep first saw it active and unlisted
}

// unlistedGrace is how long an active task no live server has ever listed
// is given to appear in a heartbeat (Asynq's servers write theirs every
// 5 s): a live worker may have taken it a moment ago.
var unlistedGrace = 6 * time.Second

// waiting reports whether Asynq holds the row's latest task (pending,
// scheduled, retry, or active: dead workers' tasks are sweepDeadWorkers').
// Without an inspector, or when Redis cannot say, it reports false: a
// needless redelivery is harmless.
func (r *Relay) waiting(row store.EffectRow) bool {
	if r.inspector == nil {
		return false
	}
	pol, ok := tasks.PolicyOf(row.Type)
	if !ok {
		return false
	}
	info, err := r.inspector.GetTaskInfo(pol.Queue, tasks.TaskID(row.ID, row.Deliveries))
	if err != nil {
		return false
	}
	switch info.State {
	case asynq.TaskStatePending, asynq.TaskStateScheduled, asynq.TaskStateRetry, asynq.TaskStateAggregating, asynq.TaskStateActive:
		return true
	}
	return false
}

// parallel runs fn(0) … fn(n-1), Options.Parallel at a time.
func (r *Relay) parallel(n int, fn func(i int)) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(r.opts.Parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// registerQueues adds the queue names to Asynq's set of queues (the key
// asynq:queues) if a flush removed them: a long-lived asynq.Client adds a
// queue only on its first enqueue, and the dashboard and inspector list
// only registered queues.
func (r *Relay) registerQueues(ctx context.Context) {
	if r.rdb == nil {
		return
	}
	names := make([]any, 0, len(tasks.Queues))
	for q := range tasks.Queues {
		names = append(names, q)
	}
	if err := r.rdb.SAdd(ctx, "asynq:queues", names...).Err(); err != nil && ctx.Err() == nil {
		r.log.WarnContext(ctx, "register queues", "err", err)
	}
}

// listen wakes the relay on every commit another process announces
// (store.ListenOutbox).
func (r *Relay) listen(ctx context.Context) (stop func()) {
	return store.ListenOutbox(ctx, r.opts.ListenURL, r.Wake, r.log)
}

func (r *Relay) close() {
	if r.inspector != nil {
		r.inspector.Close()
		r.inspector = nil
	}
	if r.rdb != nil {
		r.rdb.Close()
		r.rdb = nil
	}
}

// Waker forwards store.Options.OnOutbox to a relay made after the store
// (relay.New needs the *store.DB): open the store with OnOutbox: w.Wake,
// then call w.Set(r.Wake). Until Set, Wake does nothing (the relay's first
// pass finds those rows anyway).
type Waker struct {
	fn atomic.Pointer[func()]
}

// Wake calls the function given to Set, if any.
func (w *Waker) Wake() {
	if f := w.fn.Load(); f != nil {
		(*f)()
	}
}

// Set points the waker at f (a relay's Wake).
func (w *Waker) Set(f func()) { w.fn.Store(&f) }

// Scheduler is the scheduler role: it sweeps the outbox every interval
// (Relay.Sweep), so overdue timers and effects are relayed and stuck ones
// redelivered even when no relay is awake. It needs no LISTEN.
type Scheduler struct {
	relay    *Relay
	interval time.Duration
}

// NewScheduler returns a scheduler sweeping db's outbox into client every
// opts.SweepInterval.
func NewScheduler(db *store.DB, client *asynq.Client, opts Options) *Scheduler {
	opts.ListenURL = ""
	r := New(db, client, opts)
	return &Scheduler{relay: r, interval: r.opts.SweepInterval}
}

// Run sweeps until ctx is done; it returns nil then.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.relay.close()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		var res SweepResult
		if err := s.relay.pass(ctx, func(ctx context.Context) (err error) { res, err = s.relay.Sweep(ctx); return err }); err != nil && ctx.Err() == nil {
			if errors.Is(err, ErrForeignFleet) {
				return err
			}
			s.relay.log.WarnContext(ctx, "scheduler sweep", "err", err)
		} else if res.Relayed+res.Redelivered > 0 {
			s.relay.log.InfoContext(ctx, "scheduler sweep", "relayed", res.Relayed, "stale", res.Stale, "redelivered", res.Redelivered)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep runs one sweep now.
func (s *Scheduler) Sweep(ctx context.Context) (SweepResult, error) { return s.relay.Sweep(ctx) }
