package webhooks

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Schedule is the wait before each retry after a failed attempt (Svix's):
// the first attempt is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
// 10 h later, about 28 hours in all; then the message is given up.
var Schedule = [...]time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// MaxAttempts is how many attempts a message gets: the first and one per
// Schedule step.
const MaxAttempts = len(Schedule) + 1

// MaxRetryAfter caps a receiver's Retry-After, so a hostile or broken value
// cannot park a message for ever.
const MaxRetryAfter = 10 * time.Hour

// DisableAfter is how long an endpoint may fail without a single success
// before it is disabled and the merchant told.
const DisableAfter = 5 * 24 * time.Hour

// NextRetry returns how long to wait after the attempt-th attempt (counted
// from 1) failed, and false when that was the last attempt. The scheduled
// wait is multiplied by scale (PACKLINE_TIMER_SCALE; 0 means 1); a longer
// retryAfter from the receiver (Result.RetryAfter) wins, capped at
// MaxRetryAfter and not scaled: it is the receiver's own ask.
func NextRetry(attempt int, scale float64, retryAfter time.Duration) (time.Duration, bool) {
	if attempt < 1 || attempt > len(Schedule) {
		return 0, false
	}
	d := scaled(Schedule[attempt-1], scale)
	if retryAfter > MaxRetryAfter {
		retryAfter = MaxRetryAfter
	}
	if retryAfter > d {
		d = retryAfter
	}
	return d, true
}

// ShouldDisable reports whether an endpoint that has failed every delivery
// since failingSince (its first failure after its last success) has failed
// for DisableAfter (scaled).
func ShouldDisable(failingSince, now time.Time, scale float64) bool {
	return !failingSince.IsZero() && now.Sub(failingSince) >= scaled(DisableAfter, scale)
}

func scaled(d time.Duration, scale float64) time.Duration {
	if scale <= 0 || scale == 1 {
		return d
	}
	return time.Duration(float64(d) * scale)
}

// ParseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 for an absent, unreadable or past value.
func ParseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// DeliveryStatus is where a delivery (one message to one endpoint) stands:
// pending while an attempt is scheduled, then one of the three ends.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // an attempt is scheduled
	DeliveryDelivered DeliveryStatus = "delivered" // the endpoint answered 2xx
	DeliveryFailed    DeliveryStatus = "failed"    // every attempt failed, or the message can never be sent
	DeliveryDisabled  DeliveryStatus = "disabled"  // the endpoint was disabled or deleted first
)

// Policy says when to try a delivery again and when an endpoint has failed
// for too long. Scaled is the one packline runs; a test may bring its own.
type Policy interface {
	// NextRetry returns how long to wait after the attempt-th attempt
	// failed, and false when that was the last attempt.
	NextRetry(attempt int, retryAfter time.Duration) (time.Duration, bool)
	// ShouldDisable reports whether an endpoint failing since
	// failingSince is to be disabled at now.
	ShouldDisable(failingSince, now time.Time) bool
}

// Scaled is the policy of Schedule and DisableAfter, both multiplied by a
// timer scale (PACKLINE_TIMER_SCALE; 0 means 1): NextRetry and
// ShouldDisable.
type Scaled float64

// NextRetry implements Policy with the package's NextRetry.
func (s Scaled) NextRetry(attempt int, retryAfter time.Duration) (time.Duration, bool) {
	return NextRetry(attempt, float64(s), retryAfter)
}

// ShouldDisable implements Policy with the package's ShouldDisable.
func (s Scaled) ShouldDisable(failingSince, now time.Time) bool {
	return ShouldDisable(failingSince, now, float64(s))
}

// EndpointChange is what an attempt's outcome says of its endpoint's
// health, known before anything is read: the store writes it first, then
// reads the delivery and asks Decide.
type EndpointChange int

// Endpoint changes.
const (
	// EndpointKept: giving up says nothing of the endpoint.
	EndpointKept EndpointChange = iota
	// EndpointHealthy: a success ends the endpoint's failing streak.
	EndpointHealthy
	// EndpointFailing: a failure starts a failing streak (or continues
	// one); Decide is to be told when the streak started.
	EndpointFailing
	// EndpointDisabling: the endpoint answered 410 Gone and is about to be
	// disabled.
	EndpointDisabling
)

// EndpointChange returns what the outcome says of the endpoint.
func (o Outcome) EndpointChange() EndpointChange {
	switch o {
	case Delivered:
		return EndpointHealthy
	case Disable:
		return EndpointDisabling
	case GiveUp:
		return EndpointKept
	}
	return EndpointFailing
}

// Attempt is one attempt's result, as Decide reads it.
type Attempt struct {
	// N counts from 1.
	N          int
	Outcome    Outcome
	StatusCode int
	// RetryAfter is the receiver's Retry-After (Result.RetryAfter).
	RetryAfter time.Duration
}

// Health is the attempt's endpoint as the transaction that records the
// attempt found it.
type Health struct {
	// FailingSince is the endpoint's first failure after its last success
	// (this attempt, when it is the first); zero when it is not failing.
	FailingSince time.Time
}

// Plan is what follows from an attempt: the store writes it in the
// transaction that records the attempt.
type Plan struct {
	// Status is the delivery's status after the attempt.
	Status DeliveryStatus
	// NextAttempt is when the next attempt is due; zero unless Status is
	// DeliveryPending.
	NextAttempt time.Time
	// DisableEndpoint says the endpoint is to be disabled (with every
	// pending delivery of it), for DisabledReason.
	DisableEndpoint bool
	DisabledReason  string
}

// Decide returns what follows from an attempt recorded at now: a 2xx
// delivers; a 410 disables the endpoint; a message that can never be sent
// fails at once; any other failure disables an endpoint that has failed
// for too long (p.ShouldDisable), else schedules the next attempt
// (p.NextRetry), else, after the last attempt, fails the delivery.
func Decide(a Attempt, h Health, p Policy, now time.Time) Plan {
	switch a.Outcome {
	case Delivered:
		return Plan{Status: DeliveryDelivered}
	case Disable:
		return Plan{Status: DeliveryDisabled, DisableEndpoint: true,
			DisabledReason: fmt.Sprintf("the endpoint answered %d Gone", a.StatusCode)}
	case GiveUp:
		return Plan{Status: DeliveryFailed}
	}
	if !h.FailingSince.IsZero() && p.ShouldDisable(h.FailingSince, now) {
		return Plan{Status: DeliveryDisabled, DisableEndpoint: true,
			DisabledReason: fmt.Sprintf("every delivery failed since %s", h.FailingSince.Format(time.RFC3339))}
	}
	if in, ok := p.NextRetry(a.N, a.RetryAfter); ok {
		return Plan{Status: DeliveryPending, NextAttempt: now.Add(in)}
	}
	return Plan{Status: DeliveryFailed}
}
