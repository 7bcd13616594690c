package payments_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/payments/stripetest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/stripe/stripe-go/v85/webhook"
)

const whsec = "whsec_test_0123456789abcdef"

type hookEnv struct {
	db    *store.DB
	hooks *payments.StripeWebhooks
	store store.Store
}

// newHookEnv is a store with a Stripe account (its secrets sealed as PutStripe
// seals them; Stripe is not asked) and the webhook handler.
func newHookEnv(t *testing.T, dialect, flow string) hookEnv {
	t.Helper()
	db := storetest.Open(t, dialect, store.Options{})
	s, _, _, err := db.CreateStore(t.Context(), "anvil-"+dialect, flow)
	if err != nil {
		t.Fatal(err)
	}
	keys := stripetest.Keyring(t)
	sk, _ := keys.Seal(s.ID+"|stripe|secret_key", "sk_test_x")
	wh, _ := keys.Seal(s.ID+"|stripe|webhook_secret", whsec)
	if _, err := db.PutPaymentAccount(t.Context(), store.PaymentAccount{StoreID: s.ID, Provider: "stripe", AccountID: "acct_1",
		SecretKeySealed: sk, SecretKeyLast4: "_x", WebhookSecretSealed: wh}); err != nil {
		t.Fatal(err)
	}
	acc := &payments.Accounts{DB: db, Keys: keys}
	return hookEnv{db: db, hooks: &payments.StripeWebhooks{Accounts: acc, DB: db}, store: s}
}

// order places an order and returns it with its payment effect's id.
func (e hookEnv) order(t *testing.T, typ string) (*packline.Order, string) {
	t.Helper()
	o, _, err := e.db.CreateOrder(t.Context(), e.store.ID, packline.Order{Currency: "USD", PaymentMethod: "pm_card_visa",
		Customer: packline.Customer{Name: "Ada", Email: "ada@example.com"},
		Lines:    []packline.Line{{SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: 1250}}}, packline.Actor{Type: packline.ActorCustomer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := e.db.Outbox(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Type == typ {
			return o, r.ID
		}
	}
	t.Fatalf("order %s owes no %s", o.ID, typ)
	return nil, ""
}

// event is a Stripe event about obj, created at created.
func event(id, typ string, created int64, obj map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": created,
		"api_version": "2020-08-27", "data": map[string]any{"object": obj}})
	return b
}

func intent(id, status string, md map[string]string) map[string]any {
	return map[string]any{"id": id, "object": "payment_intent", "amount": 2500, "currency": "usd", "status": status,
		"payment_method": "pm_card_visa", "metadata": md}
}

func signed(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

func (e hookEnv) send(t *testing.T, payload []byte) string {
	t.Helper()
	out, err := e.hooks.Handle(t.Context(), e.store.ID, payload, signed(payload, whsec, time.Now()))
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	return out
}

func (e hookEnv) status(t *testing.T, orderID string) string {
	t.Helper()
	o, err := e.db.GetOrder(t.Context(), e.store.ID, orderID)
	if err != nil {
		t.Fatal(err)
	}
	return o.Status
}

// The webhook answers a payment the worker has not answered yet; the
// worker's answer then is a no-op. A replay is refused as a duplicate.
func TestStripeWebhookAnswersFirst(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := newHookEnv(t, dialect, "made-to-order")
		o, eff := e.order(t, "payment:confirm")
		md := map[string]string{payments.MetaEffectID: eff, payments.MetaOrderID: o.ID, payments.MetaStoreID: e.store.ID, payments.MetaKind: "confirm"}
		ev := event("evt_1", "payment_intent.succeeded", time.Now().Unix(), intent("pi_1", "succeeded", md))
		if out := e.send(t, ev); out != payments.WebhookApplied {
			t.Fatalf("first delivery: %s", out)
		}
		if st := e.status(t, o.ID); st == "pending_payment" {
			t.Fatalf("the webhook did not move the order: %s", st)
		}
		if out := e.send(t, ev); out != payments.WebhookDuplicate {
			t.Fatalf("replay: %s, want duplicate", out)
		}
		// The worker's own answer, later: the row is done, nothing changes.
		out, _, err := e.db.CompletePayment(t.Context(), eff, store.Payment{OrderID: o.ID, StoreID: e.store.ID, IdempotencyKey: eff,
			Kind: store.PaymentConfirm, Amount: 2500, Currency: "USD", Status: store.PaymentSucceeded, Provider: "stripe", ProviderRef: "pi_1"}, store.PaymentResult)
		if err != nil || !out.AlreadyDone {
			t.Fatalf("the worker's answer after the webhook: %+v %v, want already done", out, err)
		}
		ps, _ := e.db.Payments(t.Context(), o.ID)
		if len(ps) != 1 || ps[0].ProviderRef != "pi_1" || ps[0].Status != store.PaymentSucceeded {
			t.Fatalf("payments %+v", ps)
		}
		tl, _ := e.db.Timeline(t.Context(), o.ID)
		n := 0
		for _, s := range tl {
			if s.Event == "payment_succeeded" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d payment_succeeded steps, want 1", n)
		}
	})
}

// The worker answers first: the webhook is a no-op, and an older event
// about the intent never moves the order back.
func TestStripeWebhookAfterWorkerAndOutOfOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		e := newHookEnv(t, dialect, "made-to-order")
		o, eff := e.order(t, "payment:confirm")
		if _, _, err := e.db.CompletePayment(t.Context(), eff, store.Payment{OrderID: o.ID, StoreID: e.store.ID, IdempotencyKey: eff,
			Kind: store.PaymentConfirm, Amount: 2500, Currency: "USD", Status: store.PaymentSucceeded, Provider: "stripe", ProviderRef: "pi_2"}, store.PaymentResult); err != nil {
			t.Fatal(err)
		}
		after := e.status(t, o.ID)
		md := map[string]string{payments.MetaEffectID: eff, payments.MetaOrderID: o.ID, payments.MetaStoreID: e.store.ID, payments.MetaKind: "confirm"}
		now := time.Now().Unix()
		if out := e.send(t, event("evt_new", "payment_intent.succeeded", now, intent("pi_2", "succeeded", md))); out != payments.WebhookNoop {
			t.Fatalf("webhook after the worker: %s, want noop", out)
		}
		// An older failure about the same intent, delivered late.
		failed := intent("pi_2", "requires_payment_method", md)
		failed["last_payment_error"] = map[string]any{"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}
		if out := e.send(t, event("evt_old", "payment_intent.payment_failed", now-60, failed)); out != payments.WebhookStale {
			t.Fatalf("older event: %s, want stale", out)
		}
		if st := e.status(t, o.ID); st != after {
			t.Fatalf("order moved from %s to %s", after, st)
		}
		ps, _ := e.db.Payments(t.Context(), o.ID)
		if len(ps) != 1 || ps[0].Status != store.PaymentSucceeded {
			t.Fatalf("payments %+v", ps)
		}
	})
}

// A decline by webhook reports payment_failed with the decline code.
func TestStripeWebhookDecline(t *testing.T) {
	e := newHookEnv(t, "sqlite", "made-to-order")
	o, eff := e.order(t, "payment:confirm")
	md := map[string]string{payments.MetaEffectID: eff, payments.MetaOrderID: o.ID, payments.MetaStoreID: e.store.ID, payments.MetaKind: "confirm"}
	pi := intent("pi_3", "requires_payment_method", md)
	pi["last_payment_error"] = map[string]any{"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}
	if out := e.send(t, event("evt_3", "payment_intent.payment_failed", time.Now().Unix(), pi)); out != payments.WebhookApplied {
		t.Fatalf("decline: %s", out)
	}
	ps, _ := e.db.Payments(t.Context(), o.ID)
	if len(ps) != 1 || ps[0].Status != store.PaymentFailed || ps[0].ErrorCode != "insufficient_funds" {
		t.Fatalf("payments %+v", ps)
	}
	tl, _ := e.db.Timeline(t.Context(), o.ID)
	if last := tl[len(tl)-1]; last.Event != "payment_failed" {
		t.Fatalf("last step %+v, want payment_failed", last)
	}
}

// Forged, stale and unsigned deliveries are refused before anything is read.
func TestStripeWebhookSignatures(t *testing.T) {
	e := newHookEnv(t, "sqlite", "made-to-order")
	o, eff := e.order(t, "payment:confirm")
	md := map[string]string{payments.MetaEffectID: eff, payments.MetaOrderID: o.ID, payments.MetaStoreID: e.store.ID, payments.MetaKind: "confirm"}
	ev := event("evt_s", "payment_intent.succeeded", time.Now().Unix(), intent("pi_s", "succeeded", md))
	for name, header := range map[string]string{
		"other secret":     signed(ev, "whsec_someone_else_entirely", time.Now()),
		"stale timestamp":  signed(ev, whsec, time.Now().Add(-6*time.Minute)),
		"future timestamp": signed(ev, whsec, time.Now().Add(6*time.Minute)),
		"unsigned":         "",
		"garbage":          "t=abc,v1=zz",
	} {
		_, err := e.hooks.Handle(t.Context(), e.store.ID, ev, header)
		if packline.ErrorCode(err) != packline.EUNAUTHORIZED {
			t.Errorf("%s: %v, want EUNAUTHORIZED", name, err)
		}
	}
	// A body changed after signing.
	header := signed(ev, whsec, time.Now())
	forged := []byte(strings.Replace(string(ev), `"succeeded"`, `"canceled"`, 1))
	if _, err := e.hooks.Handle(t.Context(), e.store.ID, forged, header); packline.ErrorCode(err) != packline.EUNAUTHORIZED {
		t.Errorf("changed body: %v", err)
	}
	if st := e.status(t, o.ID); st != "pending_payment" {
		t.Fatalf("a refused delivery moved the order to %s", st)
	}
	// Another store's path: its own secret does not verify this delivery.
	other, _, _, _ := e.db.CreateStore(t.Context(), "other", "made-to-order")
	if _, err := e.hooks.Handle(t.Context(), other.ID, ev, header); packline.ErrorCode(err) != packline.ENOTFOUND {
		t.Errorf("a store without an account: %v, want ENOTFOUND", err)
	}
	// Metadata naming another store's effect is ignored even when signed.
	md2 := map[string]string{payments.MetaEffectID: eff, payments.MetaOrderID: o.ID, payments.MetaStoreID: other.ID, payments.MetaKind: "confirm"}
	if out := e.send(t, event("evt_x", "payment_intent.succeeded", time.Now().Unix(), intent("pi_x", "succeeded", md2))); out != payments.WebhookIgnored {
		t.Errorf("metadata of another store: %s, want ignored", out)
	}
}

// A dispute goes on the order's timeline and to the merchant's endpoints;
// a refund is noted; a cancellation finishes the void that asked for it.
func TestStripeWebhookDisputeRefundVoid(t *testing.T) {
	e := newHookEnv(t, "sqlite", "request-approval")
	o, auth := e.order(t, "payment:authorize")
	ctx := t.Context()
	if _, _, err := e.db.CompletePayment(ctx, auth, store.Payment{OrderID: o.ID, StoreID: e.store.ID, IdempotencyKey: auth, Kind: store.PaymentAuthorize,
		Purpose: "card_check", Amount: 100, Currency: "USD", Status: store.PaymentSucceeded, Provider: "stripe", ProviderRef: "pi_auth"}, store.PaymentResult); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	dispute := map[string]any{"id": "dp_1", "object": "dispute", "amount": 100, "currency": "usd", "payment_intent": "pi_auth",
		"reason": "fraudulent", "status": "needs_response", "evidence_details": map[string]any{"due_by": now + 86400}}
	if out := e.send(t, event("evt_d", "charge.dispute.created", now, dispute)); out != payments.WebhookApplied {
		t.Fatalf("dispute: %s", out)
	}
	// A crash after the dispute was noted and before the event was
	// recorded: Stripe's redelivery acts again, to no effect.
	if _, err := e.db.SQL().ExecContext(ctx, `DELETE FROM payment_events`); err != nil {
		t.Fatal(err)
	}
	if out := e.send(t, event("evt_d", "charge.dispute.created", now, dispute)); out != payments.WebhookApplied {
		t.Fatalf("dispute redelivered: %s", out)
	}
	charge := map[string]any{"id": "ch_1", "object": "charge", "amount": 100, "amount_refunded": 100, "currency": "usd", "payment_intent": "pi_auth"}
	if out := e.send(t, event("evt_r", "charge.refunded", now, charge)); out != payments.WebhookApplied {
		t.Fatalf("refund: %s", out)
	}
	tl, _ := e.db.Timeline(ctx, o.ID)
	var notes []string
	for _, s := range tl {
		if s.Event == "note" && s.Actor.Type == packline.ActorPayment {
			notes = append(notes, s.Note)
		}
	}
	all := strings.Join(notes, "\n")
	if !strings.Contains(all, "disputes 100 USD (dispute dp_1, reason fraudulent") || !strings.Contains(all, "charge ch_1 refunded, 100 USD of 100 USD") {
		t.Fatalf("notes:\n%s", all)
	}
	rows, _ := e.db.Outbox(ctx, o.ID)
	disputed := 0
	for _, r := range rows {
		if eff, err := r.Effect(); err == nil && r.Type == "webhook:deliver" && eff.Webhook == "order.disputed" {
			disputed++
		}
	}
	if disputed != 1 || len(notes) != 2 {
		t.Fatalf("%d order.disputed webhooks owed to the merchant, %d notes; want 1 and 2", disputed, len(notes))
	}

	// A void effect, then Stripe's cancellation of the intent finishes it.
	voidID := fmt.Sprintf("eff_void_%s", o.ID)
	if _, err := e.db.SQL().ExecContext(ctx, e.db.SQL().Rebind(`INSERT INTO outbox (id, order_id, store_id, version, seq, type, payload, status, run_at, created_at)
		VALUES (?, ?, ?, ?, 9, 'payment:void', '{"type":"payment:void","event":"test"}', 'pending', ?, ?)`), voidID, o.ID, e.store.ID, o.Version, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	md := map[string]string{payments.MetaEffectID: auth, payments.MetaOrderID: o.ID, payments.MetaStoreID: e.store.ID, payments.MetaKind: "authorize",
		payments.MetaVoidEffectID: voidID}
	if out := e.send(t, event("evt_c", "payment_intent.canceled", now, intent("pi_auth", "canceled", md))); out != payments.WebhookApplied {
		t.Fatalf("canceled: %s", out)
	}
	ps, _ := e.db.Payments(ctx, o.ID)
	if len(ps) != 2 || ps[1].Kind != store.PaymentVoid || ps[1].IdempotencyKey != voidID {
		t.Fatalf("payments %+v", ps)
	}
}

// A refund made in Stripe's dashboard (seed 000: "refunds are handled
// separately in Stripe") is recorded, once, so the refund the flow owes on
// cancel gives back nothing more.
func TestStripeWebhookDashboardRefundIsRecorded(t *testing.T) {
	e := newHookEnv(t, "sqlite", "made-to-order")
	o, eff := e.order(t, "payment:confirm")
	ctx := t.Context()
	if _, _, err := e.db.CompletePayment(ctx, eff, store.Payment{OrderID: o.ID, StoreID: e.store.ID, IdempotencyKey: eff, Kind: store.PaymentConfirm,
		Amount: o.Total, Currency: "USD", Status: store.PaymentSucceeded, Provider: "stripe", ProviderRef: "pi_dash"}, store.PaymentResult); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	charge := map[string]any{"id": "ch_dash", "object": "charge", "amount": o.Total, "amount_refunded": 1000, "currency": "usd", "payment_intent": "pi_dash"}
	if out := e.send(t, event("evt_dash1", "charge.refunded", now, charge)); out != payments.WebhookApplied {
		t.Fatalf("dashboard refund: %s", out)
	}
	charge["amount_refunded"] = o.Total
	if out := e.send(t, event("evt_dash2", "charge.refunded", now+1, charge)); out != payments.WebhookApplied {
		t.Fatalf("the rest refunded: %s", out)
	}
	// Redelivered after a crash: recorded once.
	if _, err := e.db.SQL().ExecContext(ctx, `DELETE FROM payment_events`); err != nil {
		t.Fatal(err)
	}
	e.send(t, event("evt_dash2", "charge.refunded", now+1, charge))
	var refunded int64
	n := 0
	for _, p := range func() []store.Payment { ps, _ := e.db.Payments(ctx, o.ID); return ps }() {
		if p.Kind == store.PaymentRefund {
			refunded += p.Amount
			n++
		}
	}
	if n != 2 || refunded != o.Total {
		t.Fatalf("%d refunds of %d in all, want 2 of %d", n, refunded, o.Total)
	}
	// While a refund effect of the order runs, the event waits for it.
	if _, err := e.db.ApplyEvent(ctx, e.store.ID, o.ID, store.EventInput{Event: "cancel", Actor: packline.Actor{Type: packline.ActorMerchant}}); err != nil {
		t.Fatal(err)
	}
	charge["amount_refunded"] = o.Total + 1
	if _, err := e.hooks.Handle(ctx, e.store.ID, event("evt_dash3", "charge.refunded", now+2, charge), signed(event("evt_dash3", "charge.refunded", now+2, charge), whsec, time.Now())); err == nil {
		t.Fatal("a charge.refunded during a refund effect was taken")
	}
}
