package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/api/view"
	"github.com/packline/packline/metrics"
	"github.com/packline/packline/notify"
	"github.com/packline/packline/store"
	"github.com/packline/packline/webhooks"
)

// StoreNotifier tells a store's merchant about the store itself; *Notifier
// is one.
type StoreNotifier interface {
	NotifyStore(ctx context.Context, n StoreNotice) error
}

// WebhooksConfig configures a Webhooks handler. Zero values take the
// defaults noted.
type WebhooksConfig struct {
	// Client makes the attempts (default: webhooks.NewClient with a 15 s
	// timeout, public addresses only).
	Client *webhooks.Client
	// Notices tells the merchant an endpoint was disabled; nil only logs it.
	Notices StoreNotifier
	// PublicURL is the API's public base URL (PACKLINE_PUBLIC_URL), for the
	// label URLs in the order data; without it they are paths.
	PublicURL string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Webhooks runs webhook:deliver (Deps.Webhooks). One handler, two kinds of
// outbox row:
//
//   - the effect a transition owes (order.<state> for the order): it finds
//     the store's enabled endpoints that want the event type, freezes the
//     body ({"type", "timestamp": the transition's commit time, "data": the
//     order as GET /v1/orders/{id} shows it to the merchant, from
//     view.Snapshot}), makes one delivery per endpoint
//     (store.CreateWebhookDeliveries), and makes the first attempt of each
//     itself, side by side; the effect is done once every first attempt is
//     recorded, so a worker that dies on the way runs the fan-out again,
//     which attempts the deliveries still at attempt 0;
//   - a retry of one delivery (store.WebhookAttemptPurpose): one
//     Client.Deliver, recorded with what follows (store.RecordWebhookAttempt).
//
// Why an outbox row per retry, rather than the effect's own Asynq
// retries: an endpoint's retries span a day and more (webhooks.Schedule,
// about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, scaled by
// PACKLINE_TIMER_SCALE, or longer when the receiver asks with
// Retry-After), one effect fans out to endpoints on different schedules,
// and the delivery log and a replay need each attempt on its own. A
// retry row waits in the database until it is due, like a timer, so
// Redis never holds a retry it could lose; the relay hands it over then
// with TaskID = its row id (delivery id + "-a" + attempt number), so a
// re-sent attempt is one task. Asynq's own retries (the default RetryDelay)
// cover only this handler failing to reach the database.
//
// Policy (tasks.TypeWebhookDeliver): queue default, MaxRetry 15, Timeout
// 30 s; each attempt has the client's 15 s. Idempotency: the webhook-id is
// webhooks.MessageID(effect id), the same on every attempt and to every
// endpoint; deliveries are unique per (webhook-id, endpoint); an attempt is
// recorded only while the delivery is pending at the attempt before it, so
// a second run of one attempt sends at most once more (same webhook-id,
// which receivers de-duplicate) and logs nothing twice. A 2xx delivers (and
// nothing more is sent for that event to that endpoint); 410 Gone disables
// the endpoint; an endpoint that has failed every attempt for
// webhooks.DisableAfter (5 days, scaled) is disabled; both disables tell
// the merchant (an email to the store's address, or a warning in the log
// and a skipped message when it has none). Gives up on a delivery after
// webhooks.MaxAttempts, or at once when the URL cannot be used (GiveUp).
// metrics.WebhookDelivery counts every attempt: ok, retry, gave_up,
// disabled.
type Webhooks struct {
	db      *store.DB
	client  *webhooks.Client
	notices StoreNotifier
	baseURL string
	log     *slog.Logger
}

var _ OrderReader = (*Webhooks)(nil)

// ReadsOrder implements OrderReader: the fan-out reads the order's
// snapshot itself, and an attempt needs no order at all.
func (w *Webhooks) ReadsOrder() {}

// NewWebhooks returns the webhook:deliver handler on db.
func NewWebhooks(db *store.DB, cfg WebhooksConfig) *Webhooks {
	w := &Webhooks{db: db, client: cfg.Client, notices: cfg.Notices, baseURL: cfg.PublicURL, log: cfg.Logger}
	if w.client == nil {
		w.client = webhooks.NewClient(webhooks.Options{})
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	return w
}

// HandleEffect runs one webhook:deliver row. It reports no event.
func (w *Webhooks) HandleEffect(ctx context.Context, e Effect) (*Report, error) {
	if deliveryID, n, ok := store.WebhookAttemptOf(e.Effect); ok {
		return nil, w.attempt(ctx, e, deliveryID, n)
	}
	done, err := w.fanOut(ctx, e)
	if done {
		return &Report{Done: true}, err
	}
	return nil, err
}

// fanOut makes the deliveries of the event an effect owes, and their first
// attempts. done reports that the effect's row was marked done with the
// record of its one first attempt.
func (w *Webhooks) fanOut(ctx context.Context, e Effect) (done bool, err error) {
	if e.Effect.Webhook == "" {
		return false, fmt.Errorf("webhook:deliver %s names no event type: %w", e.ID, asynq.SkipRetry)
	}
	eps, err := w.db.WebhookEndpoints(ctx, e.StoreID)
	if err != nil {
		return false, err
	}
	var ids []string
	for _, ep := range eps {
		if !endpointOf(ep).Wants(e.Effect.Webhook) {
			continue
		}
		if ep.Enabled() {
			ids = append(ids, ep.ID)
			continue
		}
		if ep.DisabledAt != nil && !ep.DisabledAt.Before(e.CreatedAt) {
			// Disabled since this event was committed, perhaps by an
			// earlier run's first attempt whose notice then failed: tell
			// the merchant (once per endpoint; a no-op when told already).
			if err := w.tell(ctx, e, ep); err != nil {
				return false, err
			}
		}
	}
	if len(ids) == 0 {
		return false, nil
	}
	snap, err := view.Snapshot(ctx, w.db, e.StoreID, e.OrderID, w.baseURL)
	if err != nil {
		return false, err
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return false, fmt.Errorf("encode order %s: %w", e.OrderID, err)
	}
	msg := webhooks.Message{ID: webhooks.MessageID(e.ID), Type: e.Effect.Webhook, Timestamp: e.CreatedAt, Data: data}
	body, err := msg.Body()
	if err != nil {
		return false, fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	ds, err := w.db.CreateWebhookDeliveries(ctx, store.NewWebhookMessage{EffectID: e.ID, OrderID: e.OrderID, StoreID: e.StoreID, MessageID: msg.ID,
		EventType: msg.Type, Payload: body, Endpoints: ids})
	if err != nil {
		return false, err
	}
	// The first attempt of each delivery is made here, at once and side by
	// side, rather than as an outbox row of its own: the effect is done
	// only when every first attempt is recorded, so a crash before that
	// runs the fan-out again, which finds the deliveries made and attempts
	// the ones still at attempt 0. Only retries become rows.
	byID := make(map[string]store.WebhookEndpoint, len(eps))
	for _, ep := range eps {
		byID[ep.ID] = ep
	}
	type first struct {
		d  store.WebhookDelivery
		ep store.WebhookEndpoint
	}
	var todo []first
	for _, d := range ds {
		if d.Status != webhooks.DeliveryPending || d.Attempts != 0 {
			continue
		}
		if ep, ok := byID[d.EndpointID]; ok { // else deleted since: its delivery was stopped
			todo = append(todo, first{d, ep})
		}
	}
	if len(todo) == 1 && len(ds) == 1 {
		// The one delivery: a success marks the effect done in the
		// transaction that records it.
		return w.deliver(ctx, e, todo[0].d, todo[0].ep, 1, e.ID)
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, f := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.deliver(ctx, e, f.d, f.ep, 1, "")
		}()
	}
	wg.Wait()
	return false, errors.Join(errs...)
}

func endpointOf(ep store.WebhookEndpoint) webhooks.Endpoint {
	return webhooks.Endpoint{ID: ep.ID, URL: ep.URL, Secret: ep.Secret, Events: ep.Events}
}

// messageOf reads a delivery's frozen body back into the message it was
// made from; Message.Body gives the same bytes again.
func messageOf(d store.WebhookDelivery) (webhooks.Message, error) {
	var b struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(d.Payload), &b); err != nil {
		return webhooks.Message{}, fmt.Errorf("webhook delivery %s: payload: %w", d.ID, err)
	}
	return webhooks.Message{ID: d.MessageID, Type: b.Type, Timestamp: b.Timestamp, Data: b.Data}, nil
}

// attempt makes attempt n of a delivery.
func (w *Webhooks) attempt(ctx context.Context, e Effect, deliveryID string, n int) error {
	d, ep, err := w.db.WebhookDeliveryToAttempt(ctx, deliveryID)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if ep.DisabledAt != nil {
		// Tell the merchant (once; again only if an earlier run could not),
		// and stop.
		if err := w.tell(ctx, e, ep); err != nil {
			return err
		}
		return w.db.StopWebhookDelivery(ctx, d.ID, "the endpoint is disabled")
	}
	if ep.DeletedAt != nil {
		return w.db.StopWebhookDelivery(ctx, d.ID, "the endpoint was deleted")
	}
	_, err = w.deliver(ctx, e, d, ep, n, "")
	return err
}

// deliver makes attempt n of a delivery to its endpoint and records it with
// what follows (webhooks.Decide, in the store's transaction): the next
// attempt scheduled as an outbox row, or the endpoint disabled (and its
// merchant told).
func (w *Webhooks) deliver(ctx context.Context, e Effect, d store.WebhookDelivery, ep store.WebhookEndpoint, n int, finish string) (finished bool, err error) {
	if d.Status != webhooks.DeliveryPending || d.Attempts != n-1 {
		w.log.DebugContext(ctx, "webhook attempt has nothing to do", "delivery_id", d.ID, "attempt", n,
			"status", d.Status, "attempts", d.Attempts)
		return false, nil
	}
	msg, err := messageOf(d)
	if err != nil {
		return false, fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	res := w.client.Deliver(ctx, endpointOf(ep), msg)
	if ctx.Err() != nil {
		// The worker is stopping (or the task ran out of time): the attempt
		// says nothing about the endpoint. Asynq runs the task again.
		return false, fmt.Errorf("webhook attempt %d of %s interrupted: %w", n, d.ID, ctx.Err())
	}
	rec := store.AttemptRecord{DeliveryID: d.ID, Attempt: n, AttemptedAt: res.AttemptedAt, StatusCode: res.StatusCode,
		Latency: res.Latency, ResponseBody: res.ResponseBody}
	switch {
	case res.Err != nil:
		rec.Error = withoutQueries(res.Err.Error(), ep.URL, res.URL)
	case res.Outcome != webhooks.Delivered:
		rec.Error = fmt.Sprintf("HTTP %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	}
	rec.Outcome, rec.RetryAfter = res.Outcome, res.RetryAfter
	if res.Outcome == webhooks.Delivered {
		// A success tells no one anything more: the effect that owes it
		// may be marked done with its record.
		rec.FinishEffect = finish
	}
	// The attempt was made: its record must be written even if the task's
	// time is up.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := w.db.RecordWebhookAttempt(wctx, rec)
	if err != nil {
		return false, err
	}
	if !out.Recorded {
		return false, nil
	}
	finished = rec.FinishEffect != ""
	outcome := "retry"
	switch {
	case out.Delivery.Status == webhooks.DeliveryDelivered:
		outcome = metrics.OutcomeOK
	case out.Delivery.Status == webhooks.DeliveryDisabled:
		outcome = "disabled"
	case out.Delivery.Status == webhooks.DeliveryFailed:
		outcome = "gave_up"
	}
	metrics.WebhookDelivery(outcome)
	if outcome != metrics.OutcomeOK {
		w.log.InfoContext(ctx, "webhook attempt failed", "delivery_id", d.ID, "endpoint_id", ep.ID, "order_id", d.OrderID,
			"type", d.EventType, "attempt", n, "status_code", res.StatusCode, "outcome", outcome, "err", rec.Error)
	}
	if out.Disabled {
		w.log.WarnContext(ctx, "webhook endpoint disabled", "endpoint_id", ep.ID, "store_id", ep.StoreID, "reason", out.DisabledReason)
		ep, err := w.db.WebhookEndpoint(wctx, ep.StoreID, ep.ID)
		if err != nil {
			return finished, err
		}
		return finished, w.tell(wctx, e, ep)
	}
	return finished, nil
}

// withoutQueries removes the query strings of the URLs from an error text
// (net/http names the URL it failed on): a merchant may put a token in its
// endpoint's query, and the text goes to the logs.
func withoutQueries(msg string, urls ...string) string {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.RawQuery == "" && !u.ForceQuery) {
			continue
		}
		bare := *u
		bare.RawQuery, bare.ForceQuery = "", false
		msg = strings.ReplaceAll(msg, u.String(), bare.String()+"?…")
		msg = strings.ReplaceAll(msg, raw, bare.String()+"?…")
	}
	return msg
}

// tell lets the merchant know an endpoint was disabled, once.
func (w *Webhooks) tell(ctx context.Context, e Effect, ep store.WebhookEndpoint) error {
	shown := withoutQueries(ep.URL, ep.URL)
	n := StoreNotice{
		StoreID:  ep.StoreID,
		EffectID: e.ID,
		Key:      notify.Key(ep.ID, "webhook_endpoint_disabled"),
		Template: "webhook_endpoint_disabled",
		Subject:  "Webhook endpoint disabled: " + shown,
		Text: fmt.Sprintf(`Hello,

packline stopped sending webhooks to your endpoint %s (%s): %s.

Events it missed are in its delivery log: GET /v1/webhook-endpoints/%s/deliveries.
When the endpoint works again, create it anew (POST /v1/webhook-endpoints); the
current state of every order is always at GET /v1/orders/{id}.

--
Sent by packline
`, shown, ep.ID, ep.DisabledReason, ep.ID),
	}
	if w.notices == nil {
		w.log.WarnContext(ctx, "webhook endpoint disabled; no notifier to tell the merchant", "endpoint_id", ep.ID,
			"store_id", ep.StoreID, "reason", ep.DisabledReason)
		return nil
	}
	if err := w.notices.NotifyStore(ctx, n); err != nil && !errors.Is(err, asynq.SkipRetry) {
		return fmt.Errorf("tell store %s its webhook endpoint %s was disabled: %w", ep.StoreID, ep.ID, err)
	}
	return nil
}
