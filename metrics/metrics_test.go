package metrics

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

func TestRegistryExportsEveryMetricByConvention(t *testing.T) {
	// Touch every vec once so each family is exported.
	OrderCreated("conv-flow")
	Transition("conv-flow", "pay", "paid")
	ObserveEffect("conv:test", OutcomeOK, 20*time.Millisecond)
	WebhookDelivery(OutcomeOK)
	CourierCall("conv-courier", OutcomeOK)
	PaymentCall("conv-provider", "capture", OutcomeError)
	observeHTTP("GET /conv", 200, time.Millisecond)

	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]dto.MetricType{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetType()
	}
	want := map[string]dto.MetricType{
		"packline_orders_created_total":          dto.MetricType_COUNTER,
		"packline_order_transitions_total":       dto.MetricType_COUNTER,
		"packline_effects_total":                 dto.MetricType_COUNTER,
		"packline_effect_duration_seconds":       dto.MetricType_HISTOGRAM,
		"packline_webhook_deliveries_total":      dto.MetricType_COUNTER,
		"packline_courier_calls_total":           dto.MetricType_COUNTER,
		"packline_payment_calls_total":           dto.MetricType_COUNTER,
		"packline_http_requests_total":           dto.MetricType_COUNTER,
		"packline_http_request_duration_seconds": dto.MetricType_HISTOGRAM,
		"packline_scrape_errors_total":           dto.MetricType_COUNTER,
		"go_goroutines":                          dto.MetricType_GAUGE,
		"process_start_time_seconds":             dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("Registry does not export %s", name)
		} else if g != typ {
			t.Errorf("%s is a %v, want %v", name, g, typ)
		}
	}
	for name := range got {
		if !strings.HasPrefix(name, "packline_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("unexpected family %s: packline's own metrics must start with packline_", name)
		}
	}

	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "packline_") {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}

func TestCallsCountTheRightSeries(t *testing.T) {
	tests := []struct {
		name string
		do   func()
		c    prometheus.Collector
	}{
		{"OrderCreated", func() { OrderCreated("calls-flow") }, ordersCreated.WithLabelValues("calls-flow")},
		{"Transition", func() { Transition("calls-flow", "ship", "shipped") }, transitions.WithLabelValues("calls-flow", "ship", "shipped")},
		{"ObserveEffect", func() { ObserveEffect("calls:effect", "retry", time.Second) }, effects.WithLabelValues("calls:effect", "retry")},
		{"WebhookDelivery", func() { WebhookDelivery("calls-rejected") }, webhookDeliveries.WithLabelValues("calls-rejected")},
		{"CourierCall", func() { CourierCall("calls-courier", OutcomeError) }, courierCalls.WithLabelValues("calls-courier", OutcomeError)},
		{"PaymentCall", func() { PaymentCall("calls-stripe", "refund", OutcomeOK) }, paymentCalls.WithLabelValues("calls-stripe", "refund", OutcomeOK)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(tt.c)
			tt.do()
			tt.do()
			if got := testutil.ToFloat64(tt.c) - before; got != 2 {
				t.Errorf("counted %v, want 2", got)
			}
		})
	}
}

func TestObserveEffectRecordsDuration(t *testing.T) {
	ObserveEffect("duration:effect", OutcomeOK, time.Millisecond) // the series exists from here on
	before := histogram(t, "packline_effect_duration_seconds", map[string]string{"type": "duration:effect"})
	ObserveEffect("duration:effect", OutcomeOK, 1500*time.Millisecond)
	after := histogram(t, "packline_effect_duration_seconds", map[string]string{"type": "duration:effect"})
	if n, sum := after.GetSampleCount()-before.GetSampleCount(), after.GetSampleSum()-before.GetSampleSum(); n != 1 || math.Abs(sum-1.5) > 1e-9 {
		t.Errorf("one 1.5s run added count=%d sum=%v, want 1 and 1.5", n, sum)
	}
	// It lands in the (1, 2.5] bucket and not below.
	for _, b := range after.GetBucket() {
		var was uint64
		for _, bb := range before.GetBucket() {
			if bb.GetUpperBound() == b.GetUpperBound() {
				was = bb.GetCumulativeCount()
			}
		}
		d := b.GetCumulativeCount() - was
		if b.GetUpperBound() < 1.5 && d != 0 || b.GetUpperBound() >= 2.5 && d != 1 {
			t.Errorf("bucket le=%v grew by %d", b.GetUpperBound(), d)
		}
	}
}

func TestOutcome(t *testing.T) {
	if Outcome(nil) != OutcomeOK || Outcome(errors.New("x")) != OutcomeError {
		t.Error("Outcome does not map nil to ok and an error to error")
	}
}

func TestInstrumentLabelsByMuxPattern(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("id")) // implicit 200
	})
	mux.HandleFunc("POST /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /v1/boom", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /v1/panic", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})
	srv := httptest.NewServer(Instrument(mux))
	t.Cleanup(srv.Close)

	// A fresh connection per request: the transport would otherwise retry
	// the request whose connection the panic drops, and count it twice.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	before := requestCounts(t)
	send := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			if path == "/v1/panic" {
				return // the server dropped the connection, as it should
			}
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send("GET", "/v1/orders/ord_secret_1")
	send("GET", "/v1/orders/ord_secret_2")
	send("POST", "/v1/orders")
	send("GET", "/v1/boom")
	send("GET", "/no/such/path_secret_3")
	send("DELETE", "/v1/orders") // 405
	send("GET", "/v1/panic")

	after := requestCounts(t)
	want := map[[2]string]float64{
		{"GET /v1/orders/{id}", "200"}: 2,
		{"POST /v1/orders", "201"}:     1,
		{"GET /v1/boom", "503"}:        1,
		{RouteUnmatched, "404"}:        1,
		{RouteUnmatched, "405"}:        1,
		{"GET /v1/panic", "500"}:       1,
	}
	for k, n := range want {
		if got := after[k] - before[k]; got != n {
			t.Errorf("route=%q code=%s counted %v, want %v", k[0], k[1], got, n)
		}
	}
	for k := range after {
		if strings.Contains(k[0], "secret") {
			t.Errorf("a raw path leaked into the route label: %q", k[0])
		}
	}
	if h := histogram(t, "packline_http_request_duration_seconds", map[string]string{"route": "GET /v1/orders/{id}"}); h.GetSampleCount() < 2 {
		t.Errorf("latency histogram has %d samples for the order route, want >= 2", h.GetSampleCount())
	}
}

func TestInstrumentKeepsFlusher(t *testing.T) {
	var flushed bool
	h := Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("instrumented writer is not an http.Flusher")
			return
		}
		f.Flush()
		flushed = true
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !flushed || !rec.Flushed {
		t.Error("Flush did not reach the underlying writer")
	}
}

// fakeSource is an OrderSource whose answers a test sets.
type fakeSource struct {
	counts, stuck        []OrderCount
	backlog              int64
	oldest               time.Duration
	countsErr, outboxErr error
	block                chan struct{} // when set, every call waits for it
	ignoreContextOnBlock bool
	started              chan struct{}
	startOnce            sync.Once
}

func (f *fakeSource) wait(ctx context.Context) error {
	if f.started != nil {
		f.startOnce.Do(func() { close(f.started) })
	}
	if f.block == nil {
		return nil
	}
	if f.ignoreContextOnBlock {
		<-f.block
		return nil
	}
	select {
	case <-f.block:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeSource) OrderCounts(ctx context.Context) ([]OrderCount, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.counts, f.countsErr
}

func (f *fakeSource) StuckOrders(ctx context.Context) ([]OrderCount, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.stuck, nil
}

func (f *fakeSource) OutboxStats(ctx context.Context) (int64, time.Duration, error) {
	if err := f.wait(ctx); err != nil {
		return 0, 0, err
	}
	return f.backlog, f.oldest, f.outboxErr
}

func TestOrderCollectorExportsGauges(t *testing.T) {
	src := &fakeSource{
		counts: []OrderCount{
			{"prepaid-simple", "paid", 3},
			{"prepaid-simple", "pending", 2},
			{"prepaid-simple", "pending", 1}, // a duplicate row is added up, not a broken scrape
			{"cash-on-delivery", "shipped", 7},
		},
		stuck:   []OrderCount{{"cash-on-delivery", "shipped", 1}},
		backlog: 12,
		oldest:  90 * time.Second,
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewOrderCollector(src))
	const want = `
# HELP packline_orders Orders currently in each state, by flow and status.
# TYPE packline_orders gauge
packline_orders{flow="cash-on-delivery",status="shipped"} 7
packline_orders{flow="prepaid-simple",status="paid"} 3
packline_orders{flow="prepaid-simple",status="pending"} 3
# HELP packline_orders_stuck Orders in a state for longer than that state's SLA, by flow and status.
# TYPE packline_orders_stuck gauge
packline_orders_stuck{flow="cash-on-delivery",status="shipped"} 1
# HELP packline_outbox_backlog Outbox rows not yet relayed to Asynq.
# TYPE packline_outbox_backlog gauge
packline_outbox_backlog 12
# HELP packline_outbox_oldest_age_seconds Age of the oldest due outbox row not yet relayed (0 when none is).
# TYPE packline_outbox_oldest_age_seconds gauge
packline_outbox_oldest_age_seconds 90
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestOrderCollectorFailedQueryExportsNothingForIt(t *testing.T) {
	src := &fakeSource{
		countsErr: errors.New("relation order_counts does not exist"),
		outboxErr: errors.New("connection refused"),
		stuck:     []OrderCount{{"wholesale", "confirmed", 2}},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewOrderCollector(src))
	ordersBefore := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOrders))
	outboxBefore := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOutbox))
	stuckBefore := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceStuck))

	names := gatheredNames(t, reg)
	if strings.Join(names, ",") != "packline_orders_stuck" {
		t.Errorf("exported %v, want only packline_orders_stuck", names)
	}
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOrders)) - ordersBefore; d != 1 {
		t.Errorf("orders scrape errors +%v, want +1", d)
	}
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOutbox)) - outboxBefore; d != 1 {
		t.Errorf("outbox scrape errors +%v, want +1", d)
	}
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceStuck)) - stuckBefore; d != 0 {
		t.Errorf("stuck scrape errors +%v, want +0", d)
	}
}

func TestOrderCollectorNeverHangsTheScrape(t *testing.T) {
	// A source that ignores its context and never answers until released.
	src := &fakeSource{block: make(chan struct{}), ignoreContextOnBlock: true, started: make(chan struct{})}
	t.Cleanup(func() { close(src.block) })
	c := &orderCollector{src: src, guard: newGuard(50 * time.Millisecond)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	before := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOutbox))

	gatherWithin(t, reg, 10*time.Second) // returns after the 50ms bound, not never
	<-src.started
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOutbox)) - before; d != 1 {
		t.Errorf("outbox scrape errors +%v after a timed-out scrape, want +1", d)
	}

	// The first query is still stuck: the next scrape fails fast rather than
	// stacking another query on the database.
	c.guard.timeout = time.Hour
	names := gatherWithin(t, reg, 10*time.Second)
	if len(names) != 0 {
		t.Errorf("exported %v while the source hangs, want nothing", names)
	}
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceOutbox)) - before; d != 2 {
		t.Errorf("outbox scrape errors +%v after two failed scrapes, want +2", d)
	}
}

func TestOrderCollectorPassesADeadline(t *testing.T) {
	src := &fakeSource{block: make(chan struct{})} // honours ctx, never released
	c := &orderCollector{src: src, guard: newGuard(20 * time.Millisecond)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if names := gatherWithin(t, reg, 10*time.Second); len(names) != 0 {
		t.Errorf("exported %v, want nothing", names)
	}
}

func TestWorkerCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewWorkerCollector(func(context.Context) (int, error) { return 3, nil }))
	const want = `
# HELP packline_workers_live Asynq worker servers with a live heartbeat in Redis.
# TYPE packline_workers_live gauge
packline_workers_live 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	failing := prometheus.NewRegistry()
	failing.MustRegister(NewWorkerCollector(func(context.Context) (int, error) { return 0, errors.New("redis down") }))
	before := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceWorkers))
	if names := gatheredNames(t, failing); len(names) != 0 {
		t.Errorf("exported %v on error, want nothing", names)
	}
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceWorkers)) - before; d != 1 {
		t.Errorf("workers scrape errors +%v, want +1", d)
	}
}

// stuckCollector never finishes Collect until released.
type stuckCollector struct{ release chan struct{} }

func (s stuckCollector) Describe(ch chan<- *prometheus.Desc) { ch <- workersDesc }
func (s stuckCollector) Collect(ch chan<- prometheus.Metric) {
	<-s.release
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, 1)
}

func TestBound(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(Bound(SourceAsynq, 20*time.Millisecond, stuckCollector{release}))
	before := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceAsynq))
	if names := gatherWithin(t, reg, 10*time.Second); len(names) != 0 {
		t.Errorf("exported %v from a stuck collector, want nothing", names)
	}
	if d := testutil.ToFloat64(scrapeErrors.WithLabelValues(SourceAsynq)) - before; d != 1 {
		t.Errorf("asynq scrape errors +%v, want +1", d)
	}

	ok := prometheus.NewRegistry()
	done := make(chan struct{})
	close(done)
	ok.MustRegister(Bound(SourceAsynq, time.Minute, stuckCollector{done}))
	if names := gatheredNames(t, ok); strings.Join(names, ",") != "packline_workers_live" {
		t.Errorf("exported %v through Bound, want packline_workers_live", names)
	}
}

func gatheredNames(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}

// gatherWithin gathers g and fails the test if that takes longer than limit,
// which would mean a scrape hangs on a stuck source.
func gatherWithin(t *testing.T, g prometheus.Gatherer, limit time.Duration) []string {
	t.Helper()
	type result struct {
		names []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		mfs, err := g.Gather()
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
		done <- result{names, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("gather: %v", r.err)
		}
		return r.names
	case <-time.After(limit):
		t.Fatalf("gather still running after %v: the scrape hangs", limit)
		return nil
	}
}

// requestCounts returns packline_http_requests_total by (route, code).
func requestCounts(t *testing.T) map[[2]string]float64 {
	t.Helper()
	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "packline_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := labels(m)
			out[[2]string{l["route"], l["code"]}] = m.GetCounter().GetValue()
		}
	}
	return out
}

func histogram(t *testing.T, name string, want map[string]string) *dto.Histogram {
	t.Helper()
	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			l := labels(m)
			for k, v := range want {
				if l[k] != v {
					continue next
				}
			}
			return m.GetHistogram()
		}
	}
	t.Fatalf("no %s series with labels %v", name, want)
	return nil
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}
