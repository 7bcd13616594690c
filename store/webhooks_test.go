package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/webhooks"
)

func TestWebhookEndpointsCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		other := newStore(t, db, "other")
		ep, err := db.CreateWebhookEndpoint(ctx, s.ID, "https://shop.example/hooks", "whsec_x", []string{"order.*"})
		if err != nil || !strings.HasPrefix(ep.ID, "we_") || !ep.Enabled() {
			t.Fatalf("create %+v %v", ep, err)
		}
		got, err := db.WebhookEndpoint(ctx, s.ID, ep.ID)
		if err != nil || got.URL != ep.URL || got.Secret != "whsec_x" || len(got.Events) != 1 || got.Events[0] != "order.*" {
			t.Fatalf("get %+v %v", got, err)
		}
		if _, err := db.WebhookEndpoint(ctx, other.ID, ep.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("another store's endpoint: %v", err)
		}
		if err := db.DeleteWebhookEndpoint(ctx, other.ID, ep.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("another store deleted it: %v", err)
		}
		if err := db.DeleteWebhookEndpoint(ctx, s.ID, ep.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.WebhookEndpoint(ctx, s.ID, ep.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("a deleted endpoint: %v", err)
		}
		for i := range store.MaxWebhookEndpoints {
			if _, err := db.CreateWebhookEndpoint(ctx, s.ID, fmt.Sprintf("https://shop.example/%d", i), "whsec_x", []string{"*"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.CreateWebhookEndpoint(ctx, s.ID, "https://shop.example/one-too-many", "whsec_x", []string{"*"}); code(err) != packline.EINVALID {
			t.Fatalf("endpoint over the limit: %v", err)
		}
		list, err := db.WebhookEndpoints(ctx, s.ID)
		if err != nil || len(list) != store.MaxWebhookEndpoints {
			t.Fatalf("list: %d %v", len(list), err)
		}
	})
}

// hookFixture is an order whose creation owes a webhook:deliver, and two
// endpoints of its store.
type hookFixture struct {
	db       *store.DB
	s        store.Store
	order    *packline.Order
	effectID string
	a, b     store.WebhookEndpoint
}

func newHookFixture(t *testing.T, dialect string, opts store.Options) hookFixture {
	t.Helper()
	ctx := t.Context()
	db := storetest.Open(t, dialect, opts)
	s := newStore(t, db, "shop")
	f := hookFixture{db: db, s: s}
	f.order = placed(t, db, s.ID, newOrder(""))
	f.effectID = effectOf(t, db, f.order.ID, "webhook:deliver")
	var err error
	if f.a, err = db.CreateWebhookEndpoint(ctx, s.ID, "https://a.example/hooks", "whsec_a", []string{"order.*"}); err != nil {
		t.Fatal(err)
	}
	if f.b, err = db.CreateWebhookEndpoint(ctx, s.ID, "https://b.example/hooks", "whsec_b", []string{"*"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f hookFixture) fanOut(t *testing.T) map[string]store.WebhookDelivery {
	t.Helper()
	ds, err := f.db.CreateWebhookDeliveries(t.Context(), store.NewWebhookMessage{EffectID: f.effectID, MessageID: "msg_1",
		EventType: "order.pending", Payload: []byte(`{"type":"order.pending","timestamp":"2026-01-02T03:04:05Z","data":{}}`),
		Endpoints: []string{f.a.ID, f.b.ID}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.WebhookDelivery{}
	for _, d := range ds {
		out[d.EndpointID] = d
	}
	if len(out) != 2 {
		t.Fatalf("%d deliveries for two endpoints", len(out))
	}
	return out
}

// attemptRows returns the order's webhook attempt rows by id.
func attemptRows(t *testing.T, db *store.DB, orderID string) map[string]store.OutboxRow {
	t.Helper()
	rows, err := db.Outbox(t.Context(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.OutboxRow{}
	for _, r := range rows {
		e, err := r.Effect()
		if r.Type != "webhook:deliver" || err != nil {
			continue
		}
		if id, n, ok := store.WebhookAttemptOf(e); ok {
			if want := fmt.Sprintf("%s-a%d", id, n); r.ID != want {
				t.Fatalf("attempt row %s names attempt %s", r.ID, want)
			}
			out[r.ID] = r
		}
	}
	return out
}

// policy is a webhooks.Policy of fixed answers: retry after in, disable when
// disable says so.
type policy struct {
	in      time.Duration
	disable func(since, now time.Time) bool
}

func (p policy) NextRetry(int, time.Duration) (time.Duration, bool) { return p.in, true }

func (p policy) ShouldDisable(since, now time.Time) bool {
	return p.disable != nil && p.disable(since, now)
}

// One delivery per (message, endpoint), however often the fan-out runs;
// attempts are recorded in order, once, with the next one scheduled per the
// caller's policy.
func TestWebhookDeliveriesFanOutOnceAndRecordAttemptsInOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		f := newHookFixture(t, dialect, store.Options{})
		ds := f.fanOut(t)
		again := f.fanOut(t)
		d := ds[f.a.ID]
		if again[f.a.ID].ID != d.ID || d.Status != webhooks.DeliveryPending || d.Attempts != 0 || d.OrderID != f.order.ID {
			t.Fatalf("delivery %+v, again %+v", d, again[f.a.ID])
		}
		// The fan-out makes the first attempts itself (workers.Webhooks):
		// only retries are outbox rows.
		if rows := attemptRows(t, f.db, f.order.ID); len(rows) != 0 {
			t.Fatalf("%d attempt rows before any attempt, want none", len(rows))
		}

		rec := store.AttemptRecord{DeliveryID: d.ID, Attempt: 1, AttemptedAt: time.Now(), Outcome: webhooks.Retry,
			StatusCode: 500, Error: "HTTP 500", Latency: 12 * time.Millisecond, ResponseBody: "down",
			Policy: policy{in: time.Hour, disable: func(since, now time.Time) bool { return false }}}
		res, err := f.db.RecordWebhookAttempt(ctx, rec)
		if err != nil || !res.Recorded || res.Delivery.Attempts != 1 || res.Delivery.Status != webhooks.DeliveryPending ||
			!res.Delivery.NextAttemptAt.Valid || res.Delivery.LastStatusCode != 500 {
			t.Fatalf("record attempt 1: %+v %v", res, err)
		}
		second := attemptRows(t, f.db, f.order.ID)[d.ID+"-a2"]
		if second.Status != store.EffectPending || second.RunAt.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("second attempt row %+v, want due in an hour", second)
		}
		// The same attempt recorded twice (a task run twice) is recorded once.
		if res, err := f.db.RecordWebhookAttempt(ctx, rec); err != nil || res.Recorded {
			t.Fatalf("attempt 1 again: %+v %v", res, err)
		}
		ep, _ := f.db.WebhookEndpoint(ctx, f.s.ID, f.a.ID)
		if ep.FailingSince == nil {
			t.Fatal("a failure did not mark the endpoint failing")
		}

		rec = store.AttemptRecord{DeliveryID: d.ID, Attempt: 2, AttemptedAt: time.Now(), Outcome: webhooks.Delivered, StatusCode: 204, Latency: time.Millisecond}
		if res, err := f.db.RecordWebhookAttempt(ctx, rec); err != nil || !res.Recorded || res.Delivery.Status != webhooks.DeliveryDelivered || !res.Delivery.DeliveredAt.Valid {
			t.Fatalf("record attempt 2: %+v %v", res, err)
		}
		if ep, _ := f.db.WebhookEndpoint(ctx, f.s.ID, f.a.ID); ep.FailingSince != nil {
			t.Fatal("a success left the endpoint failing")
		}
		log, next, err := f.db.WebhookDeliveries(ctx, f.s.ID, f.a.ID, 10, "")
		if err != nil || next != "" || len(log) != 1 || len(log[0].Log) != 2 {
			t.Fatalf("delivery log %+v %q %v", log, next, err)
		}
		if a := log[0].Log[0]; a.Attempt != 1 || a.Outcome != webhooks.Retry || a.StatusCode != 500 || a.LatencyMS != 12 || a.ResponseBody != "down" {
			t.Fatalf("attempt 1 logged as %+v", a)
		}

		// Replay: one more attempt, now, same delivery.
		r, err := f.db.ReplayWebhookDelivery(ctx, f.s.ID, f.a.ID, d.ID)
		if err != nil || r.Status != webhooks.DeliveryPending || len(r.Log) != 2 {
			t.Fatalf("replay %+v %v", r, err)
		}
		if third := attemptRows(t, f.db, f.order.ID)[d.ID+"-a3"]; third.Status != store.EffectPending || third.RunAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("replayed attempt row %+v", third)
		}
		// A replay of a delivery waiting for its retry brings the retry forward.
		other := ds[f.b.ID]
		if _, err := f.db.RecordWebhookAttempt(ctx, store.AttemptRecord{DeliveryID: other.ID, Attempt: 1, AttemptedAt: time.Now(),
			Outcome: webhooks.Retry, Policy: policy{in: time.Hour}}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.ReplayWebhookDelivery(ctx, f.s.ID, f.b.ID, other.ID); err != nil {
			t.Fatal(err)
		}
		if row := attemptRows(t, f.db, f.order.ID)[other.ID+"-a2"]; row.RunAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("the retry was not brought forward: %+v", row)
		}
		if _, err := f.db.ReplayWebhookDelivery(ctx, f.s.ID, f.b.ID, d.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("replay of a delivery through another endpoint: %v", err)
		}
	})
}

// A 410 disables the endpoint and stops its other pending deliveries; so
// does failing past the policy's ShouldDisable.
func TestWebhookEndpointDisabled(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		f := newHookFixture(t, dialect, store.Options{})
		ds := f.fanOut(t)

		res, err := f.db.RecordWebhookAttempt(ctx, store.AttemptRecord{DeliveryID: ds[f.a.ID].ID, Attempt: 1, AttemptedAt: time.Now(),
			Outcome: webhooks.Disable, StatusCode: 410})
		if err != nil || !res.Disabled || res.Delivery.Status != webhooks.DeliveryDisabled || !strings.Contains(res.DisabledReason, "410") {
			t.Fatalf("410: %+v %v", res, err)
		}
		ep, _ := f.db.WebhookEndpoint(ctx, f.s.ID, f.a.ID)
		if ep.Enabled() || ep.DisabledReason == "" {
			t.Fatalf("endpoint after 410: %+v", ep)
		}
		if _, err := f.db.ReplayWebhookDelivery(ctx, f.s.ID, f.a.ID, ds[f.a.ID].ID); code(err) != packline.ECONFLICT {
			t.Fatalf("replay to a disabled endpoint: %v", err)
		}

		// Endpoint b fails long enough to be disabled; its other pending
		// delivery stops with it.
		o2 := placed(t, f.db, f.s.ID, newOrder(""))
		pending, err := f.db.CreateWebhookDeliveries(ctx, store.NewWebhookMessage{EffectID: effectOf(t, f.db, o2.ID, "webhook:deliver"),
			MessageID: "msg_2", EventType: "order.pending", Payload: []byte(`{}`), Endpoints: []string{f.b.ID}})
		if err != nil {
			t.Fatal(err)
		}
		var sinceSeen time.Time
		res, err = f.db.RecordWebhookAttempt(ctx, store.AttemptRecord{DeliveryID: ds[f.b.ID].ID, Attempt: 1, AttemptedAt: time.Now(),
			Outcome: webhooks.Retry, StatusCode: 503,
			Policy: policy{in: time.Minute, disable: func(since, now time.Time) bool { sinceSeen = since; return true }}})
		if err != nil || !res.Disabled || res.Delivery.Status != webhooks.DeliveryDisabled || sinceSeen.IsZero() {
			t.Fatalf("failing too long: %+v %v", res, err)
		}
		log, _, err := f.db.WebhookDeliveries(ctx, f.s.ID, f.b.ID, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range log {
			if d.Status != webhooks.DeliveryDisabled {
				t.Fatalf("delivery %s of a disabled endpoint is %s", d.ID, d.Status)
			}
		}
		if len(log) != 2 || log[0].ID != pending[0].ID {
			t.Fatalf("log %+v, newest first", log)
		}
		b, _ := json.Marshal(log[0])
		if strings.Contains(string(b), "whsec_") {
			t.Fatal("a delivery carries the endpoint's secret")
		}
	})
}
