package main

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/internal/fleet"
)

// bench is one run: the fleet, its stores and the actors that drive them.
type bench struct {
	opts     options
	db       *dbHandle
	refRedis asynq.RedisClientOpt
	lease    *redisLease
	fleet    *roles
	actors   *actors
	stores   []*benchStore
	progress *progress
	report   *Report

	problemsMu sync.Mutex
	problems   map[string]int // first error text → how many times
}

// problem notes one thing that went wrong while driving packline. Order
// ids and tracking numbers are elided, so the same failure counts as one.
func (b *bench) problem(err error) {
	msg := idRE.ReplaceAllString(fleet.Tail(err.Error(), 240), "${1}…")
	b.problemsMu.Lock()
	defer b.problemsMu.Unlock()
	b.problems[msg]++
}

var idRE = regexp.MustCompile(`\b(ord_|SB)[0-9a-z]{8,}`)

// store is the i-th store, round-robin, so load spreads over every key.
func (b *bench) store(i int) *benchStore { return b.stores[i%len(b.stores)] }

// lifecycle runs journeys of flows (round-robin) with opts.Journeys in
// flight for d, measuring over d after the warm-up; then lets the journeys
// in flight finish and the outbox drain, so the next phase starts quiet,
// and costs the whole phase per completed order.
func (b *bench) lifecycle(ctx context.Context, name string, flows []string, d time.Duration) (FlowResult, ResourceResult) {
	b.progress.phase("lifecycle " + name)
	cost := b.startCost(ctx)
	start := time.Now()
	from, to := start.Add(b.opts.warmup), start.Add(d)
	var (
		mu        sync.Mutex
		ids       []string
		completed int // in the measured window
		finished  int // in the whole phase
		started   atomic.Int64
	)
	unfinished := 0
	var wg sync.WaitGroup
	for w := 0; w < b.opts.journeys; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(to) && ctx.Err() == nil; i += b.opts.journeys {
				flow := flows[int(started.Add(1))%len(flows)]
				id, err := journeys[flow](ctx, b.actors, b.store(i))
				done := time.Now()
				mu.Lock()
				if id != "" {
					ids = append(ids, id)
				}
				switch {
				case err != nil:
					unfinished++
				case !done.Before(from) && done.Before(to):
					completed++
					finished++
				default:
					finished++
				}
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					b.problem(fmt.Errorf("%s: %w", flow, err))
				}
				b.progress.add(err == nil)
			}
		}()
	}
	wg.Wait()
	b.drain(ctx)
	f := FlowResult{Flow: name, Completed: completed, Unfinished: unfinished, OrdersPerSec: Num(perSecond(completed, to.Sub(from)))}
	if done, err := effectsDone(ctx, b.db.DB, from, to); err == nil {
		n := 0
		for _, v := range done {
			n += v
		}
		f.EffectsPerSec = Num(perSecond(n, to.Sub(from)))
	}
	effects, _ := effectsOf(ctx, b.db.DB, ids)
	f.EffectsPerOrder = Num(ratio(float64(effects), float64(len(ids))))
	f.CeilingOrders = Num(ratio(float64(b.report.References.AsynqTxPerSec), float64(f.EffectsPerOrder)))
	return f, cost.finish(ctx, name, finished, effects)
}

// drain waits until no effect is due and undone. It gives up only when
// the backlog has not shrunk for opts.patience: a long backlog that the
// fleet is working through is waited for.
func (b *bench) drain(ctx context.Context) {
	b.progress.phase(b.progress.name() + ", draining")
	least, since := -1, time.Now()
	for ctx.Err() == nil {
		n, err := backlog(ctx, b.db.DB)
		if err == nil && n == 0 {
			return
		}
		if err == nil && (least < 0 || n < least) {
			least, since = n, time.Now()
		}
		if time.Since(since) > b.opts.patience {
			b.problem(fmt.Errorf("the outbox kept %d due effects for %s without progress", least, b.opts.patience))
			return
		}
		b.progress.backlog(n)
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// intake posts orders from clients clients as fast as they are answered,
// for d.
func (b *bench) intake(ctx context.Context, clients int, d time.Duration) IntakeResult {
	b.progress.phase(fmt.Sprintf("intake, %d clients", clients))
	lat, failed, _, took := b.post(ctx, clients, d, nil)
	return IntakeResult{Clients: clients, Orders: len(lat), Failed: failed,
		OrdersPerSec: Num(perSecond(len(lat), took)), Latency: summarize(lat, 0)}
}

// post has clients post cash-on-delivery orders for d: as fast as they can,
// or, with pace, one each time pace yields. A request under way when d
// ends is answered, not cut off. It returns the latencies of the orders
// created, the failures, the orders' ids, and the time from the start to
// the last answer.
func (b *bench) post(ctx context.Context, clients int, d time.Duration, pace <-chan struct{}) (lat []time.Duration, failed int, ids []string, took time.Duration) {
	start := time.Now()
	end := start.Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; ctx.Err() == nil && time.Now().Before(end); i += clients {
				if pace != nil && !paced(ctx, pace, end) {
					return
				}
				t0 := time.Now()
				o, err := b.actors.create(ctx, b.store(i), "cash-on-delivery", "")
				mu.Lock()
				if err != nil {
					failed++
				} else {
					lat, ids = append(lat, time.Since(t0)), append(ids, o.ID)
				}
				took = max(took, time.Since(start))
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					b.problem(fmt.Errorf("intake: %w", err))
				}
				b.progress.add(err == nil)
			}
		}()
	}
	wg.Wait()
	return lat, failed, ids, took
}

// paced waits for pace's next token, and reports false when end comes
// first.
func paced(ctx context.Context, pace <-chan struct{}, end time.Time) bool {
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-pace:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// latencyIdle posts n orders one at a time, spaced, and measures created →
// first effect started on each.
func (b *bench) latencyIdle(ctx context.Context, n int) LatencyResult {
	b.progress.phase("created → first effect, idle")
	var ids []string
	for i := 0; i < n && ctx.Err() == nil; i++ {
		o, err := b.actors.create(ctx, b.store(i), "cash-on-delivery", "")
		if err != nil {
			b.problem(fmt.Errorf("idle latency: %w", err))
			continue
		}
		ids = append(ids, o.ID)
		b.progress.add(true)
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return LatencyResult{Load: "idle (one order at a time, 200 ms apart)", Latency: b.firstEffects(ctx, ids)}
}

// latencyLoaded offers intake at rate orders/s (from 10 clients) for d
// and measures created → first effect started on every order.
func (b *bench) latencyLoaded(ctx context.Context, rate float64, d time.Duration) LatencyResult {
	b.progress.phase(fmt.Sprintf("created → first effect, intake at %.0f/s", rate))
	// The pace holds a token per client: a client slowed by one slow answer
	// catches up, so the offered rate is met while the fleet keeps up.
	pace := make(chan struct{}, 10)
	pctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / max(rate, 1)))
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				select {
				case pace <- struct{}{}:
				default: // every client behind: the offered rate is not met, and the order is not owed later
				}
			}
		}
	}()
	_, _, ids, took := b.post(ctx, 10, d, pace)
	cancel()
	achieved := perSecond(len(ids), took)
	return LatencyResult{Load: "while intake runs at half its maximum", Offered: Num(rate), Rate: Num(achieved), Latency: b.firstEffects(ctx, ids)}
}

// firstEffects waits until every order has started an effect (at most
// opts.patience) and summarises created → first effect started.
func (b *bench) firstEffects(ctx context.Context, ids []string) Percentiles {
	deadline := time.Now().Add(b.opts.patience)
	for {
		lat, missing, err := firstEffectLatencies(ctx, b.db.DB, ids)
		if err != nil {
			b.problem(fmt.Errorf("read first effects: %w", err))
			return summarize(nil, len(ids))
		}
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return summarize(lat, missing)
		}
		b.progress.backlog(missing)
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// costMeter measures a phase's CPU and statements.
type costMeter struct {
	b     *bench
	roles map[string]time.Duration
	pg    pgCPU
	pgOK  bool
}

func (b *bench) startCost(ctx context.Context) *costMeter {
	b.db.stmts.reset(ctx)
	m := &costMeter{b: b, roles: b.fleet.cpu()}
	m.pg, m.pgOK = postgresCPU(b.db.name)
	return m
}

// finish is the phase's cost per completed order.
func (m *costMeter) finish(ctx context.Context, phase string, orders, effects int) ResourceResult {
	r := ResourceResult{Phase: phase, Orders: orders, Effects: effects, CPUMsPerOrder: map[string]Num{}}
	per := func(d time.Duration) Num { return Num(ratio(float64(d)/float64(time.Millisecond), float64(orders))) }
	var total time.Duration
	for role, after := range m.b.fleet.cpu() {
		r.CPUMsPerOrder[role] = per(after - m.roles[role])
		total += after - m.roles[role]
	}
	r.CPUMsPerOrder["postgres"] = Num(nan())
	if pg, ok := postgresCPU(m.b.db.name); ok && m.pgOK {
		r.CPUMsPerOrder["postgres"] = per(pg.since(m.pg))
		total += pg.since(m.pg)
	}
	r.CPUMsPerEffect = Num(ratio(float64(total)/float64(time.Millisecond), float64(effects)))
	r.StatementsPerOrder = Num(nan())
	if n := m.b.db.stmts.calls(ctx); n >= 0 {
		r.StatementsPerOrder = Num(ratio(float64(n), float64(orders)))
	}
	return r
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
