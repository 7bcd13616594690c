package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/packline/packline/webhooks"
)

// The webhook:deliver handler makes one attempt per task run and records
// it; the Result says what to do next.
func Example() {
	attempts := 0
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts++
		if attempts == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer merchant.Close()

	ep := webhooks.Endpoint{ID: "ep_1", URL: merchant.URL, Secret: webhooks.NewSecret(), Events: []string{"order.*"}}
	msg := webhooks.Message{
		ID:        webhooks.MessageID("eff_0123"), // the webhook:deliver effect's id
		Type:      "order.shipped",
		Timestamp: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC),
		Data:      json.RawMessage(`{"id":"ord_01jabc","status":"shipped"}`),
	}
	if !ep.Wants(msg.Type) {
		return
	}
	client := webhooks.NewClient(webhooks.Options{AllowPrivate: true}) // dev: the merchant is on 127.0.0.1
	for attempt := 1; ; attempt++ {
		res := client.Deliver(context.Background(), ep, msg)
		fmt.Println(attempt, res.Outcome, res.StatusCode)
		if res.Outcome != webhooks.Retry {
			break
		}
		wait, ok := webhooks.NextRetry(attempt, 1, res.RetryAfter)
		if !ok {
			break // give up: the delivery failed
		}
		fmt.Println("next attempt in", wait) // a task scheduled with asynq.ProcessIn(wait)
	}
	// Output:
	// 1 retry 503
	// next attempt in 5s
	// 2 delivered 204
}
