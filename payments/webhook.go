package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
)

// WebhookTolerance is how far a Stripe-Signature timestamp may be from now.
const WebhookTolerance = 5 * time.Minute

// Webhook outcomes, as the API answers them (and tests read them).
const (
	WebhookApplied   = "applied"   // the event moved an order or wrote its timeline
	WebhookDuplicate = "duplicate" // the event id was taken already: a replay
	WebhookStale     = "stale"     // a later event about the same object was taken first
	WebhookNoop      = "noop"      // the fleet had the answer already (the worker won)
	WebhookIgnored   = "ignored"   // not an event packline acts on, or not about its objects
)

// StripeWebhooks takes Stripe's webhook events for the stores' accounts.
//
// Each delivery is verified with the SDK (webhook.ConstructEventWithOptions:
// the store's signing secret, a 5 minute tolerance) and acted on once per
// event id (payment_events, written after the event's idempotent action):
// a replay is a no-op. An event older than one taken
// about the same object is a no-op too, so a late event never moves an
// order back. What an event does:
//
//   - payment_intent.succeeded, payment_intent.amount_capturable_updated
//     (an authorization held) and payment_intent.payment_failed finish the
//     payment effect named by the intent's metadata, exactly as the
//     worker's own answer does (store.CompletePayment with
//     store.PaymentResult): whichever records first wins, and the other is a
//     no-op;
//   - payment_intent.canceled finishes the void that cancelled the intent,
//     or notes a cancellation made outside packline;
//   - charge.refunded notes the refund on the order's timeline, and
//     records a refund made in Stripe's dashboard (see refunded);
//   - charge.dispute.created notes the dispute on the timeline and sends
//     the merchant's endpoints order.disputed.
type StripeWebhooks struct {
	Accounts *Accounts
	DB       *store.DB
	Logger   *slog.Logger
	// Tolerance is how far a signature's timestamp may be from now (0:
	// WebhookTolerance).
	Tolerance time.Duration
}

// ErrBadSignature is returned for a delivery whose Stripe-Signature does not
// verify, or is older than the tolerance.
var ErrBadSignature = errors.New("the Stripe-Signature does not verify")

// Handle verifies and takes one delivery to the store's endpoint; it returns
// the outcome. A delivery that does not verify is EUNAUTHORIZED; a store with
// no Stripe account ENOTFOUND; any other error means the event was not taken
// (Stripe delivers it again).
func (h *StripeWebhooks) Handle(ctx context.Context, storeID string, payload []byte, signature string) (string, error) {
	secret, err := h.Accounts.WebhookSecret(ctx, storeID)
	if err != nil {
		return "", err
	}
	tol := h.Tolerance
	if tol == 0 {
		tol = WebhookTolerance
	}
	ev, err := webhook.ConstructEventWithOptions(payload, signature, secret,
		webhook.ConstructEventOptions{Tolerance: tol, IgnoreAPIVersionMismatch: true})
	if err == nil && fromTheFuture(signature, tol) {
		err = webhook.ErrTooOld // the SDK checks only the past; a clock that far ahead is refused too
	}
	if err != nil {
		return "", packline.Errorf(packline.EUNAUTHORIZED, "%s (%s)", ErrBadSignature.Error(), signatureProblem(err))
	}
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		return WebhookIgnored, nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(ev.Data.Raw, &obj)
	pe := store.PaymentEvent{Provider: ProviderStripe, EventID: ev.ID, StoreID: storeID, Type: string(ev.Type), ObjectID: obj.ID, Created: ev.Created}
	taken, stale, err := h.DB.PaymentEventSeen(ctx, pe)
	switch {
	case err != nil:
		return "", err
	case taken:
		return WebhookDuplicate, nil
	case stale:
		h.log().InfoContext(ctx, "stripe event older than one taken about the same object: not applied",
			"store_id", storeID, "event_id", ev.ID, "type", ev.Type, "object_id", obj.ID)
		return WebhookStale, h.DB.TakePaymentEvent(ctx, pe)
	}
	// Act, then record the event: every action is idempotent, so a crash
	// between the two (or two deliveries at once) acts twice to no effect,
	// and an error leaves the event to Stripe's redelivery.
	out, err := h.apply(ctx, storeID, ev)
	if err != nil {
		return "", err
	}
	if err := h.DB.TakePaymentEvent(ctx, pe); err != nil {
		return "", err
	}
	return out, nil
}

func (h *StripeWebhooks) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// fromTheFuture reports a Stripe-Signature whose timestamp is more than tol
// ahead of now.
func fromTheFuture(header string, tol time.Duration) bool {
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			t, err := strconv.ParseInt(v, 10, 64)
			return err != nil || time.Unix(t, 0).After(time.Now().Add(tol))
		}
	}
	return false
}

// signatureProblem says briefly why a signature did not verify.
func signatureProblem(err error) string {
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		return "no Stripe-Signature header"
	case errors.Is(err, webhook.ErrInvalidHeader):
		return "malformed Stripe-Signature header"
	case errors.Is(err, webhook.ErrTooOld):
		return "timestamp outside the tolerance"
	case errors.Is(err, webhook.ErrNoValidSignature):
		return "no valid signature for the endpoint's secret"
	}
	return "the body is not a Stripe event"
}

func (h *StripeWebhooks) apply(ctx context.Context, storeID string, ev stripe.Event) (string, error) {
	switch ev.Type {
	case "payment_intent.succeeded", "payment_intent.amount_capturable_updated", "payment_intent.payment_failed", "payment_intent.canceled":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return "", fmt.Errorf("stripe event %s: %w", ev.ID, err)
		}
		if pi.Metadata[MetaStoreID] != storeID || pi.Metadata[MetaOrderID] == "" {
			return WebhookIgnored, nil // not an intent packline made for this store
		}
		if ev.Type == "payment_intent.canceled" {
			return h.canceled(ctx, storeID, ev, &pi)
		}
		return h.answered(ctx, storeID, ev, &pi)
	case "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return "", fmt.Errorf("stripe event %s: %w", ev.ID, err)
		}
		if ch.PaymentIntent == nil {
			return WebhookIgnored, nil
		}
		return h.refunded(ctx, storeID, ev, &ch)
	case "charge.dispute.created":
		var d stripe.Dispute
		if err := json.Unmarshal(ev.Data.Raw, &d); err != nil {
			return "", fmt.Errorf("stripe event %s: %w", ev.ID, err)
		}
		if d.PaymentIntent == nil {
			return WebhookIgnored, nil
		}
		note := fmt.Sprintf("Stripe: the customer disputes %s (dispute %s, reason %s, status %s); respond in Stripe's dashboard",
			minor(d.Amount, d.Currency), d.ID, d.Reason, d.Status)
		if d.EvidenceDetails != nil && d.EvidenceDetails.DueBy > 0 {
			note += " by " + time.Unix(d.EvidenceDetails.DueBy, 0).UTC().Format(time.RFC3339)
		}
		return h.note(ctx, storeID, ev, d.PaymentIntent.ID, note, "order.disputed")
	}
	return WebhookIgnored, nil
}

func minor(amount int64, cur stripe.Currency) string {
	return fmt.Sprintf("%d %s", amount, strings.ToUpper(string(cur)))
}

// answered finishes the payment effect named by the intent's metadata with
// the intent's answer, as the worker would.
func (h *StripeWebhooks) answered(ctx context.Context, storeID string, ev stripe.Event, pi *stripe.PaymentIntent) (string, error) {
	kind := pi.Metadata[MetaKind]
	var res Result
	switch {
	case ev.Type == "payment_intent.succeeded" && (kind == opCapture || kind == opConfirm):
		res = Result{Status: Succeeded, Reference: pi.ID}
	case ev.Type == "payment_intent.amount_capturable_updated" && kind == opAuthorize:
		res = Result{Status: Succeeded, Reference: pi.ID}
	case ev.Type == "payment_intent.payment_failed" && (kind == opAuthorize || kind == opCapture || kind == opConfirm):
		res = Result{Status: Declined, ErrorCode: CodeCardDeclined, Reference: pi.ID}
		if pi.LastPaymentError != nil {
			res.ErrorCode = DeclineCode(pi.LastPaymentError)
		}
	default:
		return WebhookIgnored, nil
	}
	p := store.Payment{OrderID: pi.Metadata[MetaOrderID], StoreID: storeID, IdempotencyKey: pi.Metadata[MetaEffectID],
		Kind: store.PaymentKind(kind), Purpose: pi.Metadata[MetaPurpose], Amount: pi.Amount, Currency: strings.ToUpper(string(pi.Currency)),
		Status: store.PaymentSucceeded, ErrorCode: res.ErrorCode, Provider: ProviderStripe, ProviderRef: pi.ID}
	if !res.OK() {
		p.Status = store.PaymentFailed
	}
	if pi.PaymentMethod != nil {
		p.PaymentMethod = pi.PaymentMethod.ID
	}
	return h.complete(ctx, ev, p, store.PaymentResult)
}

// canceled finishes the void that cancelled the intent, or notes a
// cancellation packline did not ask for.
func (h *StripeWebhooks) canceled(ctx context.Context, storeID string, ev stripe.Event, pi *stripe.PaymentIntent) (string, error) {
	voidID := pi.Metadata[MetaVoidEffectID]
	if voidID == "" {
		note := fmt.Sprintf("Stripe: intent %s (%s) was cancelled outside packline (%s)", pi.ID, pi.Metadata[MetaKind], pi.CancellationReason)
		return h.noteOrder(ctx, storeID, ev, pi.Metadata[MetaOrderID], note, "")
	}
	p := store.Payment{OrderID: pi.Metadata[MetaOrderID], StoreID: storeID, IdempotencyKey: voidID, Kind: store.PaymentVoid,
		Purpose: pi.Metadata[MetaPurpose], Amount: pi.Amount, Currency: strings.ToUpper(string(pi.Currency)),
		Status: store.PaymentSucceeded, Provider: ProviderStripe, ProviderRef: pi.ID}
	return h.complete(ctx, ev, p, nil)
}

// complete finishes the effect p.IdempotencyKey with p. An effect finished
// already (the worker answered first) only makes sure p is recorded: it is a
// no-op when the worker recorded it, and keeps money an effect that gave up
// did move on the books.
func (h *StripeWebhooks) complete(ctx context.Context, ev stripe.Event, p store.Payment, report func(store.Payment) *store.EffectReport) (string, error) {
	row, err := h.DB.Effect(ctx, p.IdempotencyKey)
	if packline.ErrorCode(err) == packline.ENOTFOUND || err == nil && (row.StoreID != p.StoreID || row.OrderID != p.OrderID || row.Type != "payment:"+string(p.Kind)) {
		// No such effect of this store's order: not one of this fleet's,
		// and an account's metadata never reaches another store's orders.
		return WebhookIgnored, nil
	}
	if err != nil {
		return "", err
	}
	out, _, err := h.DB.CompletePayment(ctx, p.IdempotencyKey, p, report)
	if err != nil {
		return "", err
	}
	if !out.AlreadyDone {
		h.log().InfoContext(ctx, "stripe event answered a payment before the worker", "event_id", ev.ID, "type", ev.Type,
			"effect_id", p.IdempotencyKey, "order_id", p.OrderID, "status", p.Status)
		return WebhookApplied, nil
	}
	got, err := h.DB.RecordPayment(ctx, p)
	if err != nil {
		return "", err
	}
	if got.Status != p.Status {
		h.log().WarnContext(ctx, "stripe event disagrees with the recorded payment; the first answer stands",
			"event_id", ev.ID, "type", ev.Type, "payment_id", got.ID, "recorded", got.Status, "event", p.Status)
	}
	return WebhookNoop, nil
}

// errRefundRunning leaves a charge.refunded event to Stripe's redelivery
// while a refund of the order is still to answer: it may be that refund.
var errRefundRunning = errors.New("a refund of the order is still running; Stripe will deliver the event again")

// refunded notes a refund of the charge and, when Stripe has refunded more
// of it than the order's recorded refunds (one made in Stripe's dashboard:
// "refunds are handled separately in Stripe"), records the difference as a
// refund made outside packline, so a later refund the flow owes, and the
// reconciliation, count it. It waits (an error: Stripe delivers again) while
// a refund effect of the order is still running.
func (h *StripeWebhooks) refunded(ctx context.Context, storeID string, ev stripe.Event, ch *stripe.Charge) (string, error) {
	charge, err := h.DB.PaymentByProviderRef(ctx, storeID, ProviderStripe, ch.PaymentIntent.ID)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		return WebhookIgnored, nil
	}
	if err != nil {
		return "", err
	}
	rows, err := h.DB.Outbox(ctx, charge.OrderID)
	if err != nil {
		return "", err
	}
	for _, r := range rows {
		if r.Type == "payment:refund" && !r.Final() {
			return "", errRefundRunning
		}
	}
	ps, err := h.DB.Payments(ctx, charge.OrderID)
	if err != nil {
		return "", err
	}
	var charges, refunded int64
	for _, p := range ps {
		if p.Status != store.PaymentSucceeded {
			continue
		}
		switch p.Kind {
		case store.PaymentCapture, store.PaymentConfirm:
			charges++
		case store.PaymentRefund:
			refunded += p.Amount
		}
	}
	note := fmt.Sprintf("Stripe: charge %s refunded, %s of %s in all", ch.ID, minor(ch.AmountRefunded, ch.Currency), minor(ch.Amount, ch.Currency))
	if outside := ch.AmountRefunded - refunded; outside > 0 && charges == 1 {
		// One charge: what Stripe refunded of it and the records lack was
		// refunded outside packline.
		if _, err := h.DB.RecordPayment(ctx, store.Payment{OrderID: charge.OrderID, StoreID: storeID,
			IdempotencyKey: fmt.Sprintf("stripe_%s_refunded_%d", ch.ID, ch.AmountRefunded), Kind: store.PaymentRefund,
			Purpose: "outside_packline", Amount: outside, Currency: charge.Currency, Status: store.PaymentSucceeded,
			Provider: ProviderStripe, ProviderRef: ch.ID}); err != nil {
			return "", err
		}
		note += fmt.Sprintf("; %s of it outside packline (in Stripe's dashboard), recorded", minor(outside, ch.Currency))
	}
	return h.noteOrder(ctx, storeID, ev, charge.OrderID, note, "")
}

// note writes the event on the timeline of the order whose payment is the
// intent.
func (h *StripeWebhooks) note(ctx context.Context, storeID string, ev stripe.Event, intentID, note, webhook string) (string, error) {
	p, err := h.DB.PaymentByProviderRef(ctx, storeID, ProviderStripe, intentID)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		return WebhookIgnored, nil
	}
	if err != nil {
		return "", err
	}
	return h.noteOrder(ctx, storeID, ev, p.OrderID, note, webhook)
}

func (h *StripeWebhooks) noteOrder(ctx context.Context, storeID string, ev stripe.Event, orderID, note, webhook string) (string, error) {
	err := h.DB.NoteFromProvider(ctx, storeID, orderID, ProviderStripe, ev.ID, note, webhook)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		return WebhookIgnored, nil
	}
	if err != nil {
		return "", err
	}
	return WebhookApplied, nil
}
