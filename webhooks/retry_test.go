package webhooks_test

import (
	"testing"
	"time"

	"github.com/packline/packline/webhooks"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	policy := webhooks.Scaled(1)
	for _, tc := range []struct {
		name   string
		a      webhooks.Attempt
		h      webhooks.Health
		p      webhooks.Policy
		want   webhooks.Plan
		change webhooks.EndpointChange
	}{
		{name: "a 2xx delivers", a: webhooks.Attempt{N: 3, Outcome: webhooks.Delivered, StatusCode: 204},
			want: webhooks.Plan{Status: webhooks.DeliveryDelivered}, change: webhooks.EndpointHealthy},
		{name: "a 410 disables the endpoint", a: webhooks.Attempt{N: 1, Outcome: webhooks.Disable, StatusCode: 410},
			want:   webhooks.Plan{Status: webhooks.DeliveryDisabled, DisableEndpoint: true, DisabledReason: "the endpoint answered 410 Gone"},
			change: webhooks.EndpointDisabling},
		{name: "a message that can never be sent fails at once", a: webhooks.Attempt{N: 1, Outcome: webhooks.GiveUp},
			h:    webhooks.Health{FailingSince: now.Add(-30 * 24 * time.Hour)},
			want: webhooks.Plan{Status: webhooks.DeliveryFailed}, change: webhooks.EndpointKept},
		{name: "a first failure retries per the schedule", a: webhooks.Attempt{N: 1, Outcome: webhooks.Retry, StatusCode: 500},
			h:    webhooks.Health{FailingSince: now},
			want: webhooks.Plan{Status: webhooks.DeliveryPending, NextAttempt: now.Add(webhooks.Schedule[0])}, change: webhooks.EndpointFailing},
		{name: "the receiver's longer Retry-After wins", a: webhooks.Attempt{N: 2, Outcome: webhooks.Retry, StatusCode: 503, RetryAfter: time.Hour},
			h:    webhooks.Health{FailingSince: now.Add(-time.Minute)},
			want: webhooks.Plan{Status: webhooks.DeliveryPending, NextAttempt: now.Add(time.Hour)}, change: webhooks.EndpointFailing},
		{name: "the timer scale shortens the schedule", a: webhooks.Attempt{N: 2, Outcome: webhooks.Retry},
			p:    webhooks.Scaled(0.001),
			want: webhooks.Plan{Status: webhooks.DeliveryPending, NextAttempt: now.Add(300 * time.Millisecond)}, change: webhooks.EndpointFailing},
		{name: "the last attempt fails the delivery", a: webhooks.Attempt{N: webhooks.MaxAttempts, Outcome: webhooks.Retry, StatusCode: 500},
			h:    webhooks.Health{FailingSince: now.Add(-time.Hour)},
			want: webhooks.Plan{Status: webhooks.DeliveryFailed}, change: webhooks.EndpointFailing},
		{name: "failing for DisableAfter disables the endpoint", a: webhooks.Attempt{N: 4, Outcome: webhooks.Retry, StatusCode: 500},
			h: webhooks.Health{FailingSince: now.Add(-webhooks.DisableAfter)},
			want: webhooks.Plan{Status: webhooks.DeliveryDisabled, DisableEndpoint: true,
				DisabledReason: "every delivery failed since 2026-04-29T10:00:00Z"}, change: webhooks.EndpointFailing},
		{name: "an endpoint not known to be failing is not disabled", a: webhooks.Attempt{N: 1, Outcome: webhooks.Retry},
			p:    disableAlways{},
			want: webhooks.Plan{Status: webhooks.DeliveryPending, NextAttempt: now.Add(time.Minute)}, change: webhooks.EndpointFailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			if p == nil {
				p = policy
			}
			if got := webhooks.Decide(tc.a, tc.h, p, now); got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
			if got := tc.a.Outcome.EndpointChange(); got != tc.change {
				t.Errorf("EndpointChange = %d, want %d", got, tc.change)
			}
		})
	}
}

// disableAlways retries after a minute and would disable any endpoint.
type disableAlways struct{}

func (disableAlways) NextRetry(int, time.Duration) (time.Duration, bool) { return time.Minute, true }
func (disableAlways) ShouldDisable(time.Time, time.Time) bool            { return true }

func TestOutcomeText(t *testing.T) {
	t.Parallel()
	for _, o := range []webhooks.Outcome{webhooks.Retry, webhooks.Delivered, webhooks.Disable, webhooks.GiveUp} {
		var back webhooks.Outcome
		if err := back.Scan(o.String()); err != nil || back != o {
			t.Errorf("Scan(%q) = %v, %v", o, back, err)
		}
		if v, err := o.Value(); err != nil || v != o.String() {
			t.Errorf("%v.Value() = %v, %v", o, v, err)
		}
	}
	var o webhooks.Outcome
	if err := o.Scan("maybe"); err == nil {
		t.Error("Scan accepts an unknown outcome")
	}
}
