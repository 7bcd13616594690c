package api_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/api"
	"github.com/packline/packline/internal/testio"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/payments/stripetest"
	"github.com/stripe/stripe-go/v85/webhook"
)

// A merchant sets its Stripe keys; they are never shown back nor logged;
// Stripe's signed events for the store then move its orders, and forged or
// replayed ones do not.
func TestStripeAccountAndWebhooksOverHTTP(t *testing.T) {
	fake := stripetest.Start(t)
	keys := stripetest.Keyring(t)
	var logs testio.SyncBuffer
	acc := &payments.Accounts{Keys: keys, StripeURL: fake.URL}
	hooks := &payments.StripeWebhooks{Accounts: acc}
	c := newClientWith(t, "sqlite", "made-to-order", api.Config{PaymentAccounts: acc, PaymentWebhooks: hooks,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	acc.DB, hooks.DB = c.db, c.db

	const sk, whsec = stripetest.Key, "whsec_merchant_secret_0123456789"
	if r := c.do("GET", "/v1/store/payments/stripe", c.mk, nil); r.status != 404 {
		t.Fatalf("GET before PUT: %d %s", r.status, r.raw)
	}
	if r := c.do("PUT", "/v1/store/payments/stripe", c.sf, map[string]any{"secret_key": sk, "webhook_secret": whsec}); r.status != 403 {
		t.Fatalf("PUT with a storefront key: %d", r.status)
	}
	if r := c.do("PUT", "/v1/store/payments/stripe", c.mk, map[string]any{"secret_key": "nope", "webhook_secret": whsec}); r.status != 422 || r.errField("field") != "secret_key" {
		t.Fatalf("PUT with a bad key: %d %s", r.status, r.raw)
	}
	r := c.do("PUT", "/v1/store/payments/stripe", c.mk, map[string]any{"secret_key": sk, "webhook_secret": whsec})
	if r.status != 200 || r.str("secret_key_last4") != "4242" || !strings.HasPrefix(r.str("account_id"), "acct_") {
		t.Fatalf("PUT: %d %s", r.status, r.raw)
	}
	got := c.do("GET", "/v1/store/payments/stripe", c.mk, nil)
	if got.status != 200 || got.str("webhook_path") != "/v1/payments/stripe/webhooks/"+c.storeID {
		t.Fatalf("GET: %d %s", got.status, got.raw)
	}
	for _, raw := range []string{r.raw, got.raw, logs.String()} {
		if strings.Contains(raw, sk) || strings.Contains(raw, whsec) || strings.Contains(raw, "whsec_merchant") {
			t.Fatalf("a secret is shown or logged:\n%s", raw)
		}
	}
	if other := c.do("GET", "/v1/store/payments/stripe", c.otherKey, nil); other.status != 404 {
		t.Fatalf("another store sees the account: %d", other.status)
	}

	// An order, and Stripe's event answering its payment.
	o := c.do("POST", "/v1/orders", c.sf, order())
	if o.status != 201 {
		t.Fatalf("create: %d %s", o.status, o.raw)
	}
	orderID := o.str("id")
	rows, _ := c.db.Outbox(t.Context(), orderID)
	var eff string
	for _, row := range rows {
		if row.Type == "payment:confirm" {
			eff = row.ID
		}
	}
	ev, _ := json.Marshal(map[string]any{"id": "evt_http", "object": "event", "type": "payment_intent.succeeded", "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{"id": "pi_http", "object": "payment_intent", "amount": 2500, "currency": "usd", "status": "succeeded",
			"metadata": map[string]string{payments.MetaEffectID: eff, payments.MetaOrderID: orderID, payments.MetaStoreID: c.storeID, payments.MetaKind: "confirm"}}}})
	sig := func(secret string, at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev, Secret: secret, Timestamp: at}).Header
	}
	path := "/v1/payments/stripe/webhooks/" + c.storeID
	if r := c.do("POST", path, "", ev, "Stripe-Signature", sig("whsec_forged_forged_forged", time.Now())); r.status != 401 {
		t.Fatalf("forged: %d %s", r.status, r.raw)
	}
	if r := c.do("POST", path, "", ev, "Stripe-Signature", sig(whsec, time.Now().Add(-10*time.Minute))); r.status != 401 {
		t.Fatalf("stale: %d %s", r.status, r.raw)
	}
	if r := c.do("POST", "/v1/payments/paypal/webhooks/"+c.storeID, "", ev, "Stripe-Signature", sig(whsec, time.Now())); r.status != 404 {
		t.Fatalf("unknown provider: %d", r.status)
	}
	if r := c.do("GET", "/v1/orders/"+orderID, c.sf, nil); r.str("status") != "pending_payment" {
		t.Fatalf("a refused event moved the order: %s", r.str("status"))
	}
	// The contract's path finds the store in the metadata.
	if r := c.do("POST", "/v1/payments/stripe/webhooks", "", ev, "Stripe-Signature", sig(whsec, time.Now())); r.status != 200 || r.str("outcome") != "applied" {
		t.Fatalf("signed: %d %s", r.status, r.raw)
	}
	if r := c.do("POST", path, "", ev, "Stripe-Signature", sig(whsec, time.Now())); r.status != 200 || r.str("outcome") != "duplicate" {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
	if r := c.do("GET", "/v1/orders/"+orderID, c.sf, nil); r.str("status") == "pending_payment" {
		t.Fatalf("the event did not move the order: %s", r.raw)
	}
	if strings.Contains(logs.String(), whsec) {
		t.Fatal("the webhook secret is logged")
	}
}
