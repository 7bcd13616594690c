// Package metrics holds packline's own Prometheus metrics. Every role registers
// them on one Registry, so every role's /metrics serves the same set; the ops
// listener (package ops) adds Asynq's queue collector and the database-derived
// gauges next to them.
//
// Names follow the Prometheus conventions: a packline_ prefix, _total on
// counters, base units (seconds) in the name of histograms and gauges.
//
// Label values must come from a small, closed set (flow names, event names,
// task types, outcomes, mux patterns), never from ids or raw paths.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Outcomes shared by every call and effect counter. Callers may use a few
// more specific ones (e.g. "retry", "gave_up", "rejected"); dashboards and
// alerts treat every outcome other than OutcomeOK as a failure.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Registry is the one registry every role serves on /metrics. It holds the Go
// runtime and process collectors and every metric of this package.
var Registry = prometheus.NewRegistry()

var (
	ordersCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_orders_created_total",
		Help: "Orders accepted by the intake API (answered 201), by flow.",
	}, []string{"flow"})

	transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_order_transitions_total",
		Help: "Committed order transitions, by flow, event and the state moved to.",
	}, []string{"flow", "event", "to"})

	effects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_effects_total",
		Help: "Effect (Asynq task) runs, by task type and outcome.",
	}, []string{"type", "outcome"})

	effectDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "packline_effect_duration_seconds",
		Help:    "Time one effect run took, by task type.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"type"})

	webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_webhook_deliveries_total",
		Help: "Outbound webhook delivery attempts, by outcome.",
	}, []string{"outcome"})

	courierCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_courier_calls_total",
		Help: "Calls to courier APIs, by courier and outcome.",
	}, []string{"courier", "outcome"})

	paymentCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_payment_calls_total",
		Help: "Calls to payment providers, by provider, operation and outcome.",
	}, []string{"provider", "operation", "outcome"})

	paymentsReconciled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_payments_reconciliations_total",
		Help: "Orders the payments reconciliation looked at, by outcome (ok, unreconciled).",
	}, []string{"outcome"})

	paymentsUnreconciled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "packline_payments_unreconciled",
		Help: "Orders whose money, at the provider, does not match their payments and their flow, as the scheduler's reconciliation last found (0 on roles that do not reconcile).",
	})

	httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_http_requests_total",
		Help: "HTTP requests served, by route (the mux pattern) and status code.",
	}, []string{"route", "code"})

	httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "packline_http_request_duration_seconds",
		Help:    "Time to serve one HTTP request, by route (the mux pattern).",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})

	scrapeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "packline_scrape_errors_total",
		Help: "Scrape-time queries that failed or timed out and so exported nothing, by source.",
	}, []string{"source"})
)

// Scrape error sources: the queries behind the gauges of NewOrderCollector,
// NewWorkerCollector and the collectors wrapped by Bound.
const (
	SourceOrders  = "orders"
	SourceStuck   = "stuck"
	SourceOutbox  = "outbox"
	SourceWorkers = "workers"
	SourceAsynq   = "asynq"
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		ordersCreated, transitions, effects, effectDuration,
		webhookDeliveries, courierCalls, paymentCalls, paymentsReconciled, paymentsUnreconciled,
		httpRequests, httpDuration, scrapeErrors,
	)
	// Export the error counters at zero so an alert on them has a series
	// before the first failure.
	for _, s := range []string{SourceOrders, SourceStuck, SourceOutbox, SourceWorkers, SourceAsynq} {
		scrapeErrors.WithLabelValues(s)
	}
}

// PaymentsReconciled counts an order the reconciliation looked at.
func PaymentsReconciled(outcome string) { paymentsReconciled.WithLabelValues(outcome).Inc() }

// SetPaymentsUnreconciled sets how many orders the reconciliation knows do
// not match.
func SetPaymentsUnreconciled(n int) { paymentsUnreconciled.Set(float64(n)) }

// OrderCreated counts an order the intake API accepted.
func OrderCreated(flow string) { ordersCreated.WithLabelValues(flow).Inc() }

// Transition counts a committed transition of an order of flow, caused by
// event, into state to.
func Transition(flow, event, to string) { transitions.WithLabelValues(flow, event, to).Inc() }

// ObserveEffect records one run of an effect: its task type (e.g.
// "stock:decrement"), its outcome (OutcomeOK, OutcomeError, ...) and how long
// it took.
func ObserveEffect(effectType, outcome string, d time.Duration) {
	effects.WithLabelValues(effectType, outcome).Inc()
	effectDuration.WithLabelValues(effectType).Observe(d.Seconds())
}

// WebhookDelivery counts one outbound webhook delivery attempt.
func WebhookDelivery(outcome string) { webhookDeliveries.WithLabelValues(outcome).Inc() }

// CourierCall counts one call to a courier's API.
func CourierCall(courier, outcome string) { courierCalls.WithLabelValues(courier, outcome).Inc() }

// PaymentCall counts one call to a payment provider; operation is e.g.
// "authorize", "capture", "refund".
func PaymentCall(provider, operation, outcome string) {
	paymentCalls.WithLabelValues(provider, operation, outcome).Inc()
}

// Outcome returns OutcomeOK for a nil error and OutcomeError otherwise, for
// callers that only tell success from failure.
func Outcome(err error) string {
	if err != nil {
		return OutcomeError
	}
	return OutcomeOK
}

func observeHTTP(route string, code int, d time.Duration) {
	httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	httpDuration.WithLabelValues(route).Observe(d.Seconds())
}
