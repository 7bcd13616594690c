package metrics

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ScrapeTimeout bounds the queries one scrape runs for the gauges of
// NewOrderCollector and NewWorkerCollector, well inside Prometheus's default
// 10s scrape timeout.
const ScrapeTimeout = 3 * time.Second

// OrderCount is a number of orders of one flow in one state.
type OrderCount struct {
	Flow, Status string
	Count        int64
}

// OrderSource answers the questions behind the order gauges. Each answer must
// be cheap (a maintained counts table, an indexed min()): it runs on every
// scrape of every role.
type OrderSource interface {
	// OrderCounts returns the orders in each state, from a maintained
	// counts table.
	OrderCounts(ctx context.Context) ([]OrderCount, error)
	// StuckOrders returns the orders that have been in a state longer than
	// that state's SLA (set in the flow file).
	StuckOrders(ctx context.Context) ([]OrderCount, error)
	// OutboxStats returns the pending outbox rows and the age of the oldest
	// one that is due (0 when none is).
	OutboxStats(ctx context.Context) (backlog int64, oldest time.Duration, err error)
}

var (
	ordersDesc = prometheus.NewDesc("packline_orders",
		"Orders currently in each state, by flow and status.",
		[]string{"flow", "status"}, nil)
	stuckDesc = prometheus.NewDesc("packline_orders_stuck",
		"Orders in a state for longer than that state's SLA, by flow and status.",
		[]string{"flow", "status"}, nil)
	outboxBacklogDesc = prometheus.NewDesc("packline_outbox_backlog",
		"Outbox rows not yet relayed to Asynq.", nil, nil)
	outboxAgeDesc = prometheus.NewDesc("packline_outbox_oldest_age_seconds",
		"Age of the oldest due outbox row not yet relayed (0 when none is).", nil, nil)
	workersDesc = prometheus.NewDesc("packline_workers_live",
		"Asynq worker servers with a live heartbeat in Redis.", nil, nil)
)

// NewOrderCollector returns a collector of the database-derived gauges
// packline_orders, packline_orders_stuck, packline_outbox_backlog and
// packline_outbox_oldest_age_seconds, read from src on each scrape.
//
// One scrape waits at most ScrapeTimeout for src. A query that fails exports
// nothing for its gauges and counts packline_scrape_errors_total{source}; a
// query that does not answer in time counts for all three sources. While a
// stuck query is still running, later scrapes fail fast instead of piling up
// more queries.
func NewOrderCollector(src OrderSource) prometheus.Collector {
	return &orderCollector{src: src, guard: newGuard(ScrapeTimeout)}
}

type orderCollector struct {
	src   OrderSource
	guard guard
}

func (c *orderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ordersDesc
	ch <- stuckDesc
	ch <- outboxBacklogDesc
	ch <- outboxAgeDesc
}

func (c *orderCollector) Collect(ch chan<- prometheus.Metric) {
	type answer struct {
		ms     []prometheus.Metric
		failed []string
	}
	a, ok := run(c.guard, func(ctx context.Context) answer {
		var out []prometheus.Metric
		var failed []string
		if counts, err := c.src.OrderCounts(ctx); err != nil {
			failed = append(failed, SourceOrders)
		} else {
			out = append(out, countMetrics(ordersDesc, counts)...)
		}
		if stuck, err := c.src.StuckOrders(ctx); err != nil {
			failed = append(failed, SourceStuck)
		} else {
			out = append(out, countMetrics(stuckDesc, stuck)...)
		}
		if backlog, oldest, err := c.src.OutboxStats(ctx); err != nil {
			failed = append(failed, SourceOutbox)
		} else {
			out = append(out,
				prometheus.MustNewConstMetric(outboxBacklogDesc, prometheus.GaugeValue, float64(backlog)),
				prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, max(oldest, 0).Seconds()))
		}
		return answer{out, failed}
	})
	if !ok {
		a.failed = []string{SourceOrders, SourceStuck, SourceOutbox}
	}
	for _, s := range a.failed {
		scrapeErrors.WithLabelValues(s).Inc()
	}
	for _, m := range a.ms {
		ch <- m
	}
}

// countMetrics turns counts into gauges, adding up rows that name the same
// flow and status so a sloppy source cannot break the whole scrape with a
// duplicate series.
func countMetrics(desc *prometheus.Desc, counts []OrderCount) []prometheus.Metric {
	type key struct{ flow, status string }
	sum := make(map[key]int64, len(counts))
	for _, c := range counts {
		sum[key{c.Flow, c.Status}] += c.Count
	}
	keys := make([]key, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].flow != keys[j].flow {
			return keys[i].flow < keys[j].flow
		}
		return keys[i].status < keys[j].status
	})
	out := make([]prometheus.Metric, 0, len(keys))
	for _, k := range keys {
		out = append(out, prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(sum[k]), k.flow, k.status))
	}
	return out
}

// NewWorkerCollector returns a collector of packline_workers_live: the
// number count reports, typically the Asynq servers with a live heartbeat
// (len of asynq.Inspector.Servers()). It is bounded like NewOrderCollector;
// a failure exports nothing and counts packline_scrape_errors_total{source="workers"},
// so "no live workers" alerts must also fire on an absent series.
func NewWorkerCollector(count func(context.Context) (int, error)) prometheus.Collector {
	return &workerCollector{count: count, guard: newGuard(ScrapeTimeout)}
}

type workerCollector struct {
	count func(context.Context) (int, error)
	guard guard
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- workersDesc }

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	ms, ok := run(c.guard, func(ctx context.Context) []prometheus.Metric {
		n, err := c.count(ctx)
		if err != nil {
			return nil
		}
		return []prometheus.Metric{prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(n))}
	})
	if !ok || len(ms) == 0 {
		scrapeErrors.WithLabelValues(SourceWorkers).Inc()
		return
	}
	for _, m := range ms {
		ch <- m
	}
}

// Bound wraps a collector that cannot take a context (such as Asynq's queue
// collector, which talks to Redis) so that one scrape waits at most timeout
// for it. Past that it exports nothing for this scrape and counts
// packline_scrape_errors_total{source}. The wrapper describes nothing, so
// registering it never touches c's backend (it is an unchecked collector).
func Bound(source string, timeout time.Duration, c prometheus.Collector) prometheus.Collector {
	return &boundCollector{source: source, c: c, guard: newGuard(timeout)}
}

type boundCollector struct {
	source string
	c      prometheus.Collector
	guard  guard
}

func (b *boundCollector) Describe(chan<- *prometheus.Desc) {}

func (b *boundCollector) Collect(ch chan<- prometheus.Metric) {
	ms, ok := run(b.guard, func(context.Context) []prometheus.Metric {
		inner := make(chan prometheus.Metric)
		go func() {
			defer close(inner)
			b.c.Collect(inner)
		}()
		var out []prometheus.Metric
		for m := range inner {
			out = append(out, m)
		}
		return out
	})
	if !ok {
		scrapeErrors.WithLabelValues(b.source).Inc()
		return
	}
	for _, m := range ms {
		ch <- m
	}
}

// guard runs one scrape-time query at a time, for at most timeout.
type guard struct {
	timeout time.Duration
	busy    chan struct{}
}

func newGuard(timeout time.Duration) guard {
	return guard{timeout: timeout, busy: make(chan struct{}, 1)}
}

// run calls fn with a context that ends after g's timeout and returns its
// answer, or ok=false if fn did not return in time, panicked, or a previous
// run is still going. A run that outlives its scrape is left to finish on its
// own; its answer is dropped.
func run[T any](g guard, fn func(ctx context.Context) T) (answer T, ok bool) {
	select {
	case g.busy <- struct{}{}:
	default:
		return answer, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	type result struct {
		answer T
		err    error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-g.busy }()
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("collector panicked: %v", p)}
			}
		}()
		done <- result{answer: fn(ctx)}
	}()
	select {
	case r := <-done:
		return r.answer, r.err == nil
	case <-ctx.Done():
		return answer, false
	}
}
