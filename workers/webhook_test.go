package workers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/packline/packline"
	"github.com/packline/packline/notify"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/webhooks"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// hookRequest is one request a merchant's endpoint got, its signature
// checked with the standard-webhooks library as a merchant would.
type hookRequest struct {
	id        string
	body      []byte
	status    int // what the receiver answered (0: it hung)
	verifyErr error
}

// hookReceiver is a merchant's endpoint on 127.0.0.1 whose answers a test
// scripts per webhook-id: the n-th request of a message gets answers[n]
// (the last one repeats). An answer of 0 hangs until the client gives up.
type hookReceiver struct {
	*httptest.Server
	answers []int
	// retryAfter, when set, is the Retry-After of every answer that is not
	// a 2xx.
	retryAfter string
	// onRequest, when set, is called as each request arrives.
	onRequest func()

	mu     sync.Mutex
	secret string
	got    []hookRequest
}

func newHookReceiver(t *testing.T, answers ...int) *hookReceiver {
	t.Helper()
	r := &hookReceiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get(webhooks.HeaderID)
		r.mu.Lock()
		wh, err := standardwebhooks.NewWebhook(r.secret)
		if err == nil {
			err = wh.Verify(body, req.Header)
		}
		n := 0
		for _, g := range r.got {
			if g.id == id {
				n++
			}
		}
		status := r.answers[min(n, len(r.answers)-1)]
		r.got = append(r.got, hookRequest{id: id, body: body, status: status, verifyErr: err})
		onRequest := r.onRequest
		r.mu.Unlock()
		if onRequest != nil {
			onRequest()
		}
		if status == 0 {
			<-req.Context().Done() // until the client gives up
			return
		}
		if r.retryAfter != "" && status/100 != 2 {
			w.Header().Set("Retry-After", r.retryAfter)
		}
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(r.Server.Close)
	return r
}

func (r *hookReceiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.got...)
}

// hookEnv is a fleet whose webhook:deliver handler (and notifier) are
// set, with one endpoint of its store aimed at a receiver.
type hookEnv struct {
	*env
	rcv      *hookReceiver
	endpoint store.WebhookEndpoint
	notices  *scriptedSender
}

func setupHooks(t *testing.T, dialect string, opts store.Options, merchantEmail string, clientTimeout time.Duration, answers ...int) *hookEnv {
	t.Helper()
	return setupHooksWith(t, dialect, opts, merchantEmail, clientTimeout, newHookReceiver(t, answers...))
}

func setupHooksWith(t *testing.T, dialect string, opts store.Options, merchantEmail string, clientTimeout time.Duration, rcv *hookReceiver) *hookEnv {
	t.Helper()
	return setupHooksNotifying(t, dialect, opts, merchantEmail, clientTimeout, rcv, &scriptedSender{})
}

// setupHooksNotifying is setupHooksWith with the merchant's notices sent
// through notices.
func setupHooksNotifying(t *testing.T, dialect string, opts store.Options, merchantEmail string, clientTimeout time.Duration, rcv *hookReceiver, notices *scriptedSender) *hookEnv {
	t.Helper()
	ctx := t.Context()
	e := setup(t, dialect, "cash-on-delivery", setupOpts{store: opts, noStart: true})
	h := &hookEnv{env: e, rcv: rcv, notices: notices}
	if merchantEmail != "" {
		if _, err := e.db.UpdateStoreContact(ctx, e.store.ID, store.ContactUpdate{Email: &merchantEmail}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	h.endpoint, err = e.db.CreateWebhookEndpoint(ctx, e.store.ID, h.rcv.URL+"/hooks?token=s3cret-token", webhooks.NewSecret(), []string{"order.*"})
	if err != nil {
		t.Fatal(err)
	}
	h.rcv.setSecret(h.endpoint.Secret)
	n := workers.NewNotifier(e.db.DB, workers.NotifierConfig{Email: h.notices, Logger: fleettest.Logger()})
	wh := workers.NewWebhooks(e.db.DB, workers.WebhooksConfig{Notices: n, Logger: fleettest.Logger(),
		Client: webhooks.NewClient(webhooks.Options{AllowPrivate: true, Timeout: clientTimeout})})
	e.start(fleettest.Options{Deps: workers.Deps{Webhooks: wh}})
	return h
}

func (h *hookEnv) deliveries() []store.WebhookDelivery {
	h.t.Helper()
	ds, _, err := h.db.WebhookDeliveries(h.t.Context(), h.store.ID, h.endpoint.ID, 100, "")
	if err != nil {
		h.t.Fatal(err)
	}
	return ds
}

// waitHooksSettled waits until every webhook:deliver row of the order (the
// effects and their attempts) is done or failed.
func (h *hookEnv) waitHooksSettled(orderID string) {
	h.t.Helper()
	fleettest.WaitFor(h.t, wait, "the webhooks of "+orderID+" to settle", func() bool {
		rows, err := h.db.Outbox(h.t.Context(), orderID)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, r := range rows {
			if r.Type == "webhook:deliver" && r.Status != store.EffectDone && r.Status != store.EffectFailed {
				return false
			}
		}
		return true
	})
}

func (h *hookEnv) endpointNow() store.WebhookEndpoint {
	h.t.Helper()
	ep, err := h.db.WebhookEndpoint(h.t.Context(), h.store.ID, h.endpoint.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return ep
}

// A receiver that fails (500), then times out, then succeeds: each event
// is delivered exactly once, after three attempts that are all logged,
// every one signed validly, with one webhook-id and one body per event. A
// replay is one more attempt with the same id and body.
func TestWebhookReceiverFailsTimesOutThenSucceeds(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		const timeout = 2 * time.Second
		h := setupHooks(t, dialect, store.Options{TimerScale: 0.001}, "", timeout, 500, 0, 204)
		h.setStock("MUG-1", 10)
		o := h.create("")
		h.send(o.ID, "confirm", merchant, nil)

		var ds []store.WebhookDelivery
		fleettest.WaitFor(t, wait, "both events delivered", func() bool {
			ds = h.deliveries()
			if len(ds) != 2 {
				return false
			}
			for _, d := range ds {
				if d.Status != webhooks.DeliveryDelivered {
					return false
				}
			}
			return true
		})
		types := map[string]bool{}
		for _, d := range ds {
			types[d.EventType] = true
			if d.OrderID != o.ID || d.Attempts != 3 || len(d.Log) != 3 {
				t.Fatalf("delivery %s: %d attempts, log %+v", d.EventType, d.Attempts, d.Log)
			}
			a := d.Log
			if a[0].Outcome != webhooks.Retry || a[0].StatusCode != 500 ||
				a[1].Outcome != webhooks.Retry || a[1].StatusCode != 0 || !strings.Contains(a[1].Error, "timed out") ||
				a[1].LatencyMS < timeout.Milliseconds() ||
				a[2].Outcome != webhooks.Delivered || a[2].StatusCode != 204 ||
				strings.Contains(a[1].Error, "s3cret-token") || !strings.Contains(a[1].Error, "/hooks?…") {
				t.Fatalf("attempts of %s: %+v", d.EventType, a)
			}
			var body struct {
				Type string `json:"type"`
				Data struct {
					ID       string `json:"id"`
					Status   string `json:"status"`
					Timeline []any  `json:"timeline"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(d.Payload), &body); err != nil || body.Type != d.EventType || body.Data.ID != o.ID || len(body.Data.Timeline) == 0 {
				t.Fatalf("payload of %s: %s (%v)", d.EventType, d.Payload, err)
			}
		}
		if !types["order.pending"] || !types["order.confirmed"] {
			t.Fatalf("delivered %v, want order.pending and order.confirmed", types)
		}

		byID := map[string][]hookRequest{}
		for _, r := range h.rcv.requests() {
			if r.verifyErr != nil {
				t.Fatalf("a request's signature does not verify: %v", r.verifyErr)
			}
			byID[r.id] = append(byID[r.id], r)
		}
		for _, d := range ds {
			rs := byID[d.MessageID]
			ok := 0
			for _, r := range rs {
				if string(r.body) != d.Payload {
					t.Fatalf("attempt of %s sent %s, not the frozen body", d.MessageID, r.body)
				}
				if r.status/100 == 2 {
					ok++
				}
			}
			if len(rs) != 3 || ok != 1 {
				t.Fatalf("webhook-id %s: %d requests, %d answered 2xx; want 3 and 1", d.MessageID, len(rs), ok)
			}
		}
		if len(byID) != 2 {
			t.Fatalf("%d webhook-ids for two events", len(byID))
		}
		if ep := h.endpointNow(); ep.FailingSince != nil || !ep.Enabled() {
			t.Fatalf("endpoint after the successes: %+v", ep)
		}

		// Replay the first event: one more attempt, same id, same body.
		d := ds[len(ds)-1]
		if _, err := h.db.ReplayWebhookDelivery(t.Context(), h.store.ID, h.endpoint.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		fleettest.WaitFor(t, wait, "the replay to be delivered", func() bool {
			for _, x := range h.deliveries() {
				if x.ID == d.ID {
					return x.Attempts == 4 && x.Status == webhooks.DeliveryDelivered
				}
			}
			return false
		})
		n := 0
		for _, r := range h.rcv.requests() {
			if r.id == d.MessageID {
				n++
				if string(r.body) != d.Payload {
					t.Fatal("the replay sent another body")
				}
			}
		}
		if n != 4 {
			t.Fatalf("%d requests for %s after the replay, want 4", n, d.MessageID)
		}
	})
}

// A 410 Gone disables the endpoint at once: nothing more is sent to it, and
// the merchant is emailed.
func TestWebhookGoneDisablesEndpointAndTellsMerchant(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		h := setupHooks(t, dialect, store.Options{TimerScale: 0.001}, "dev@shop.example", 5*time.Second, 410)
		o := h.create("")
		fleettest.WaitFor(t, wait, "the endpoint to be disabled", func() bool { return !h.endpointNow().Enabled() })
		ep := h.endpointNow()
		if !strings.Contains(ep.DisabledReason, "410") {
			t.Fatalf("disabled because %q", ep.DisabledReason)
		}
		key := notify.Key(ep.ID, "webhook_endpoint_disabled")
		var notice store.Message
		fleettest.WaitFor(t, wait, "the merchant to be told", func() bool {
			m, err := h.db.MessageByKey(ctx, key)
			notice = m
			return err == nil && m.Status == store.MessageSent
		})
		if notice.Recipient != "dev@shop.example" || !strings.Contains(notice.Subject, h.rcv.URL+"/hooks?…") || strings.Contains(notice.Subject, "s3cret") || !strings.Contains(notice.Body, "410") {
			t.Fatalf("notice %+v", notice)
		}
		if sent := h.notices.sb.Sent(); len(sent) != 1 || sent[0].Key != key {
			t.Fatalf("notices sent %+v", sent)
		}
		// The next event is not sent to the disabled endpoint.
		h.send(o.ID, "cancel", merchant, nil)
		h.waitHooksSettled(o.ID)
		if ds := h.deliveries(); len(ds) != 1 || ds[0].Status != webhooks.DeliveryDisabled || ds[0].Attempts != 1 {
			t.Fatalf("deliveries %+v", ds)
		}
		if n := len(h.rcv.requests()); n != 1 {
			t.Fatalf("the endpoint got %d requests", n)
		}
	})
}

// An endpoint that has failed every attempt for five days (scaled) is
// disabled; a store with no email to tell has it logged and recorded.
func TestWebhookEndpointFailingFiveDaysIsDisabled(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		clock := &offsetClock{}
		const scale = 0.0001 // five days: 43 s
		h := setupHooks(t, dialect, store.Options{Now: clock.now, TimerScale: scale}, "", 5*time.Second, 503)
		h.create("")
		fleettest.WaitFor(t, wait, "a first failure", func() bool { return h.endpointNow().FailingSince != nil })
		clock.advance(time.Duration(float64(webhooks.DisableAfter)*scale) + time.Second)
		fleettest.WaitFor(t, wait, "the endpoint to be disabled", func() bool { return !h.endpointNow().Enabled() })
		ep := h.endpointNow()
		if !strings.Contains(ep.DisabledReason, "failed since") {
			t.Fatalf("disabled because %q", ep.DisabledReason)
		}
		var notice store.Message
		fleettest.WaitFor(t, wait, "the notice to be recorded", func() bool {
			var err error
			notice, err = h.db.MessageByKey(ctx, notify.Key(ep.ID, "webhook_endpoint_disabled"))
			if err != nil && packline.ErrorCode(err) != packline.ENOTFOUND {
				t.Fatal(err)
			}
			return err == nil
		})
		if notice.Status != store.MessageSkipped || notice.Recipient != "" || !strings.Contains(notice.Error, "no email") {
			t.Fatalf("notice to a store without email %+v", notice)
		}
		ds := h.deliveries()
		if len(ds) != 1 || ds[0].Status != webhooks.DeliveryDisabled || ds[0].Attempts < 2 {
			t.Fatalf("deliveries %+v", ds)
		}
	})
}

// A receiver's Retry-After is honoured when it asks for longer than the
// (scaled) schedule.
func TestWebhookHonoursRetryAfter(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		rcv := newHookReceiver(t, 503, 204)
		rcv.retryAfter = "2"
		h := setupHooksWith(t, dialect, store.Options{TimerScale: 0.0001}, "", 5*time.Second, rcv)
		h.create("")
		var d store.WebhookDelivery
		fleettest.WaitFor(t, wait, "the delivery after a Retry-After", func() bool {
			ds := h.deliveries()
			if len(ds) == 1 {
				d = ds[0]
			}
			return d.Status == webhooks.DeliveryDelivered
		})
		if len(d.Log) != 2 {
			t.Fatalf("attempts %+v", d.Log)
		}
		if gap := d.Log[1].AttemptedAt.Sub(d.Log[0].AttemptedAt); gap < 2*time.Second {
			t.Fatalf("retried after %s; the receiver asked for 2 s (the scaled schedule says 0.5 ms)", gap)
		}
	})
}

// A fan-out killed in the middle of its first attempts (the deliveries are
// made, an attempt is on the wire, nothing is recorded) is run again: the
// endpoint gets the event once more with the same webhook-id, one attempt
// is logged, the delivery is delivered and the effect is done. Nothing is
// lost, nothing is logged twice.
func TestWebhookFanOutKilledMidAttemptIsRunAgain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		e := setup(t, dialect, "cash-on-delivery", setupOpts{noStart: true})
		onWire := make(chan struct{}, 1)
		rcv := newHookReceiver(t, 0, 204)
		rcv.onRequest = func() { onWire <- struct{}{} }
		ep, err := e.db.CreateWebhookEndpoint(ctx, e.store.ID, rcv.URL+"/hooks", webhooks.NewSecret(), []string{"order.pending"})
		if err != nil {
			t.Fatal(err)
		}
		rcv.setSecret(ep.Secret)
		wh := workers.NewWebhooks(e.db.DB, workers.WebhooksConfig{Logger: fleettest.Logger(),
			Client: webhooks.NewClient(webhooks.Options{AllowPrivate: true, Timeout: time.Minute})})
		mux := workers.NewMux(workers.Deps{DB: e.db.DB, Logger: fleettest.Logger(), Webhooks: wh})
		o := e.create("")
		task, effectID := e.taskFor(o.ID, "webhook:deliver")

		// The worker dies while the first attempt waits for an answer.
		killed, kill := context.WithCancel(ctx)
		go func() {
			<-onWire
			kill()
		}()
		if err := mux.ProcessTask(killed, task); err == nil {
			t.Fatal("a fan-out whose attempt was cut off reported success")
		}
		if row, _ := e.db.Effect(ctx, effectID); row.Final() {
			t.Fatalf("the fan-out row is %s before its first attempt was recorded", row.Status)
		}

		// Asynq hands the task over again.
		go func() { <-onWire }()
		if err := mux.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		ds, _, err := e.db.WebhookDeliveries(ctx, e.store.ID, ep.ID, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Status != webhooks.DeliveryDelivered || len(ds[0].Log) != 1 {
			t.Fatalf("deliveries %+v, want one delivered with one attempt logged", ds)
		}
		got := rcv.requests()
		if len(got) != 2 || got[0].id != got[1].id || string(got[0].body) != string(got[1].body) {
			t.Fatalf("receiver got %d requests (%+v), want the same message twice", len(got), got)
		}
		if row, _ := e.db.Effect(ctx, effectID); row.Status != store.EffectDone {
			t.Fatalf("fan-out row %s after the rerun, want done", row.Status)
		}
	})
}

// An endpoint disabled by a first attempt (410) whose notice could not be
// sent at once: the fan-out runs again and the merchant is told, once.
func TestWebhookGoneOnFirstAttemptTellsMerchantAfterAFailedNotice(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		notices := &scriptedSender{fail: func(call int32) error {
			if call == 1 {
				return errors.New("smtp: connection refused")
			}
			return nil
		}}
		h := setupHooksNotifying(t, dialect, store.Options{TimerScale: 0.001}, "dev@shop.example", 5*time.Second, newHookReceiver(t, 410), notices)
		h.create("")
		key := notify.Key(h.endpoint.ID, "webhook_endpoint_disabled")
		fleettest.WaitFor(t, wait, "the merchant to be told", func() bool {
			m, err := h.db.MessageByKey(ctx, key)
			return err == nil && m.Status == store.MessageSent
		})
		if sent := notices.sb.Sent(); len(sent) != 1 || sent[0].Key != key {
			t.Fatalf("notices sent %+v, want the one notice", sent)
		}
	})
}
