package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/payments/stripetest"
	"github.com/stripe/stripe-go/v85/webhook"
)

// A merchant of `packline dev` moves its store onto its own Stripe account
// (stripe-mock behind stripetest's proxy) over HTTP: the checkout payment
// and the refund of a cancelled order go through Stripe, a dispute comes
// back by signed webhook onto the timeline, and neither secret is ever
// answered or logged.
func TestStripeEndToEnd(t *testing.T) {
	fake := stripetest.Start(t)
	const whsec = "whsec_e2e_signing_secret_000000"
	f := startDev(t, "embedded", map[string]string{"LOG_LEVEL": "debug",
		"PACKLINE_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "PACKLINE_STRIPE_API_URL": fake.URL})

	status, acct := f.call("PUT", "/v1/store/payments/stripe", f.mk, obj{"secret_key": stripetest.Key, "webhook_secret": whsec})
	if status != 200 || acct["secret_key_last4"] != "4242" {
		t.Fatalf("PUT: %d %v", status, acct)
	}
	hookPath, _ := acct["webhook_path"].(string)

	id := f.create(orderBody("made-to-order", "pm_card_visa"))
	o := f.waitOrder(id, "paid through Stripe", func(o obj) bool { return o["status"] == "in_production" })
	pays, _ := o["payments"].([]any)
	if len(pays) != 1 || pays[0].(obj)["provider"] != "stripe" || pays[0].(obj)["status"] != "succeeded" {
		t.Fatalf("payments %v", pays)
	}
	intents := fake.Intents()
	if len(intents) != 1 {
		t.Fatalf("%d intents at Stripe, want 1", len(intents))
	}
	pi := intents[0]["id"].(string)

	// A dispute, signed by Stripe with the store's endpoint secret.
	ev, _ := json.Marshal(obj{"id": "evt_e2e_dispute", "object": "event", "type": "charge.dispute.created", "created": time.Now().Unix(),
		"data": obj{"object": obj{"id": "dp_e2e", "object": "dispute", "amount": 3600, "currency": "usd", "payment_intent": pi,
			"reason": "product_not_received", "status": "needs_response"}}})
	post := func(secret string) int {
		req, _ := http.NewRequest("POST", f.api+hookPath, strings.NewReader(string(ev)))
		req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev, Secret: secret}).Header)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := post("whsec_forged_000000000000000"); st != 401 {
		t.Fatalf("forged webhook: %d", st)
	}
	if st := post(whsec); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	f.waitOrder(id, "the dispute on the timeline", func(o obj) bool {
		tl, _ := o["timeline"].([]any)
		for _, s := range tl {
			if n, _ := s.(obj)["note"].(string); strings.Contains(n, "disputes 3600 USD") {
				return true
			}
		}
		return false
	})

	f.send(id, "cancel", nil)
	f.waitOrder(id, "the refund through Stripe", func(o obj) bool {
		pays, _ := o["payments"].([]any)
		return len(pays) == 2 && pays[1].(obj)["kind"] == "refund" && pays[1].(obj)["status"] == "succeeded"
	})
	if rfs := fake.Refunds(); len(rfs) != 1 || rfs[0]["payment_intent"] != pi {
		t.Fatalf("refunds at Stripe %v", rfs)
	}
	_, got := f.call("GET", "/v1/store/payments/stripe", f.mk, nil)
	all, _ := json.Marshal(got)
	for _, out := range []string{string(all), f.logs.String(), f.stdout.String()} {
		if strings.Contains(out, stripetest.Key) || strings.Contains(out, whsec) {
			t.Fatalf("a Stripe secret is shown or logged")
		}
	}
}
