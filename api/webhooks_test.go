package api_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/api"
	"github.com/packline/packline/api/view"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/webhooks"
)

// hookClient is a client of an API that admits private webhook URLs or
// not (PACKLINE_WEBHOOK_ALLOW_PRIVATE).
func hookClient(t *testing.T, dialect string, allowPrivate bool) *client {
	t.Helper()
	return newClientWith(t, dialect, "cash-on-delivery", api.Config{WebhookAllowPrivate: allowPrivate})
}

func TestWebhookEndpointsOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := hookClient(t, dialect, false)
		const public = "https://93.184.215.14/hooks/packline" // a public address, never dialed here

		for _, tc := range []struct {
			name, key string
			body      any
			status    int
			field     string
		}{
			{"storefront key", c.sf, map[string]any{"url": public, "events": []string{"order.*"}}, 403, ""},
			{"no events", c.mk, map[string]any{"url": public}, 422, "events"},
			{"bad filter", c.mk, map[string]any{"url": public, "events": []string{"order.*", "Order Shipped"}}, 422, "events[1]"},
			{"not http", c.mk, map[string]any{"url": "ftp://93.184.215.14/x", "events": []string{"*"}}, 422, "url"},
			{"loopback", c.mk, map[string]any{"url": "http://127.0.0.1:8080/hooks", "events": []string{"*"}}, 422, "url"},
			{"private", c.mk, map[string]any{"url": "http://10.1.2.3/hooks", "events": []string{"*"}}, 422, "url"},
			{"link-local", c.mk, map[string]any{"url": "http://169.254.169.254/latest/meta-data", "events": []string{"*"}}, 422, "url"},
			{"unknown field", c.mk, map[string]any{"url": public, "events": []string{"*"}, "secret": "mine"}, 422, "secret"},
		} {
			res := c.do("POST", "/v1/webhook-endpoints", tc.key, tc.body)
			if res.status != tc.status || res.errField("field") != tc.field {
				t.Errorf("%s: %d %s, want %d on %q", tc.name, res.status, res.raw, tc.status, tc.field)
			}
		}
		// A refusal says only that: no address, no resolver output, so a
		// key cannot map internal names (issue 16).
		for _, u := range []string{"http://127.0.0.1/x", "http://[::127.0.0.1]/", "http://[::7f00:1]/", "http://[::a00:1]/",
			"http://[::a9fe:a9fe]/", "http://[::ffff:0:7f00:1]/", "http://[::2]/", "http://[4000::1]/", "http://[5f00::1]/",
			"http://[2001::1]/", "http://[2001:10::1]/", "http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/",
			"http://localhost/", "http://no-such-host.invalid/"} {
			res := c.do("POST", "/v1/webhook-endpoints", c.mk, map[string]any{"url": u, "events": []string{"*"}})
			if res.status != 422 || res.errField("field") != "url" || res.errField("message") != "url must resolve to public addresses" {
				t.Errorf("%s: %d %s, want 422 saying only that url must resolve to public addresses", u, res.status, res.raw)
			}
		}

		res := c.do("POST", "/v1/webhook-endpoints", c.mk, map[string]any{"url": public, "events": []string{"order.*", "order.*"}})
		if res.status != 201 {
			t.Fatalf("create: %d %s", res.status, res.raw)
		}
		id, secret := res.str("id"), res.str("secret")
		if !strings.HasPrefix(id, "we_") || !strings.HasPrefix(secret, "whsec_") || res.str("status") != "enabled" ||
			res.header.Get("Location") != "/v1/webhook-endpoints/"+id || len(strs(res.body["events"])) != 1 {
			t.Fatalf("created %s", res.raw)
		}

		// The secret is shown once.
		for _, path := range []string{"/v1/webhook-endpoints", "/v1/webhook-endpoints/" + id} {
			res := c.do("GET", path, c.mk, nil)
			if res.status != 200 || strings.Contains(res.raw, "whsec_") || strings.Contains(res.raw, "secret") {
				t.Fatalf("GET %s: %d %s", path, res.status, res.raw)
			}
		}
		list := c.do("GET", "/v1/webhook-endpoints", c.mk, nil)
		if eps := list.body["webhook_endpoints"].([]any); len(eps) != 1 || eps[0].(map[string]any)["url"] != public {
			t.Fatalf("list %s", list.raw)
		}

		// Another store sees none of it.
		if res := c.do("GET", "/v1/webhook-endpoints/"+id, c.otherKey, nil); res.status != 404 {
			t.Fatalf("another store's GET: %d", res.status)
		}
		if res := c.do("GET", "/v1/webhook-endpoints", c.otherKey, nil); len(res.body["webhook_endpoints"].([]any)) != 0 {
			t.Fatalf("another store's list: %s", res.raw)
		}
		if res := c.do("DELETE", "/v1/webhook-endpoints/"+id, c.otherKey, nil); res.status != 404 {
			t.Fatalf("another store's DELETE: %d", res.status)
		}
		if res := c.do("GET", "/v1/webhook-endpoints/"+id+"/deliveries", c.otherKey, nil); res.status != 404 {
			t.Fatalf("another store's delivery log: %d", res.status)
		}

		if res := c.do("DELETE", "/v1/webhook-endpoints/"+id, c.mk, nil); res.status != 204 {
			t.Fatalf("delete: %d %s", res.status, res.raw)
		}
		if res := c.do("GET", "/v1/webhook-endpoints/"+id, c.mk, nil); res.status != 404 {
			t.Fatalf("GET after delete: %d", res.status)
		}
		if res := c.do("DELETE", "/v1/webhook-endpoints/"+id, c.mk, nil); res.status != 404 {
			t.Fatalf("second delete: %d", res.status)
		}
	})
}

// With PACKLINE_WEBHOOK_ALLOW_PRIVATE (dev), a loopback receiver is fine.
func TestWebhookEndpointPrivateURLAllowedByFlag(t *testing.T) {
	c := hookClient(t, storetest.Default(), true)
	res := c.do("POST", "/v1/webhook-endpoints", c.mk, map[string]any{"url": "http://127.0.0.1:9/hooks", "events": []string{"order.shipped"}})
	if res.status != 201 || !strings.HasPrefix(res.str("secret"), "whsec_") {
		t.Fatalf("private URL with the flag: %d %s", res.status, res.raw)
	}
}

// The delivery log shows each delivery with its attempts; a replay queues
// one more attempt.
func TestWebhookDeliveryLogAndReplayOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		c := hookClient(t, dialect, true)
		res := c.do("POST", "/v1/webhook-endpoints", c.mk, map[string]any{"url": "http://127.0.0.1:9/hooks", "events": []string{"order.*"}})
		epID := res.str("id")
		res = c.do("POST", "/v1/orders", c.sf, order())
		orderID := res.str("id")
		rows, err := c.db.Outbox(ctx, orderID)
		if err != nil {
			t.Fatal(err)
		}
		var effectID string
		for _, r := range rows {
			if r.Type == "webhook:deliver" {
				effectID = r.ID
			}
		}
		// What the worker does, by hand: one delivery, one failed attempt.
		payload := `{"type":"order.pending","timestamp":"2026-01-02T03:04:05Z","data":{"id":"` + orderID + `"}}`
		ds, err := c.db.CreateWebhookDeliveries(ctx, store.NewWebhookMessage{EffectID: effectID, MessageID: "msg_test",
			EventType: "order.pending", Payload: []byte(payload), Endpoints: []string{epID}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.db.RecordWebhookAttempt(ctx, store.AttemptRecord{DeliveryID: ds[0].ID, Attempt: 1, AttemptedAt: time.Now(),
			Outcome: webhooks.Retry, StatusCode: 502, Error: "HTTP 502 Bad Gateway", Latency: 42 * time.Millisecond,
			ResponseBody: "upstream down", RetryAfter: time.Hour}); err != nil {
			t.Fatal(err)
		}

		log := c.do("GET", "/v1/webhook-endpoints/"+epID+"/deliveries?limit=10", c.mk, nil)
		if log.status != 200 || log.body["next_cursor"] != nil {
			t.Fatalf("log: %d %s", log.status, log.raw)
		}
		d := log.body["deliveries"].([]any)[0].(map[string]any)
		if d["webhook_id"] != "msg_test" || d["status"] != "pending" || d["attempt_count"].(float64) != 1 || d["order_id"] != orderID ||
			d["next_attempt_at"] == nil || d["payload"].(map[string]any)["type"] != "order.pending" {
			t.Fatalf("delivery %v", d)
		}
		a := d["attempts"].([]any)[0].(map[string]any)
		if a["status_code"].(float64) != 502 || a["latency_ms"].(float64) != 42 || a["outcome"] != "retry" || a["response_body"] != "upstream down" {
			t.Fatalf("attempt %v", a)
		}
		if res := c.do("GET", "/v1/webhook-endpoints/"+epID+"/deliveries?limit=0", c.mk, nil); res.status != 422 || res.errField("field") != "limit" {
			t.Fatalf("bad limit: %d %s", res.status, res.raw)
		}

		replay := "/v1/webhook-endpoints/" + epID + "/deliveries/" + ds[0].ID + "/replay"
		res = c.do("POST", replay, c.mk, nil)
		if res.status != 202 || res.str("status") != "pending" || len(res.body["attempts"].([]any)) != 1 {
			t.Fatalf("replay: %d %s", res.status, res.raw)
		}
		rows, _ = c.db.Outbox(ctx, orderID)
		for _, r := range rows {
			if r.ID == ds[0].ID+"-a2" && r.RunAt.After(time.Now().Add(time.Second)) {
				t.Fatalf("the replay did not bring attempt 2 forward: due %s", r.RunAt)
			}
		}
		if res := c.do("POST", replay, c.otherKey, nil); res.status != 404 {
			t.Fatalf("another store's replay: %d", res.status)
		}
		if res := c.do("POST", "/v1/webhook-endpoints/"+epID+"/deliveries/whd_nope/replay", c.mk, nil); res.status != 404 {
			t.Fatalf("replay of no delivery: %d", res.status)
		}
		if res := c.do("POST", replay, c.sf, nil); res.status != 403 {
			t.Fatalf("storefront replay: %d", res.status)
		}
	})
}

// The data of an order's webhooks is the order as GET /v1/orders/{id}
// shows it to the merchant.
func TestWebhookDataIsTheOrderAsTheAPIShowsIt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		c := hookClient(t, dialect, false)
		res := c.do("POST", "/v1/orders", c.sf, order(set("payment", map[string]any{"method": "cod"}),
			set("metadata", map[string]any{"channel": "instagram"})))
		id := res.str("id")
		c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "log_call", "data": map[string]any{"outcome": "busy"}, "note": "later"})
		if _, _, err := c.db.CreateShipment(ctx, store.NewShipment{OrderID: id, StoreID: c.storeID, Courier: "sandbox",
			TrackingNumber: "SB0001", TrackingURL: "https://track.example/SB0001", LabelPDF: []byte("%PDF-1.4")}); err != nil {
			t.Fatal(err)
		}
		got := c.do("GET", "/v1/orders/"+id, c.mk, nil)
		snap, err := view.Snapshot(ctx, c.db, c.storeID, id, c.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(snap)
		var data map[string]any
		json.Unmarshal(b, &data)
		if !reflect.DeepEqual(got.body, data) {
			t.Fatalf("the webhook data and the API differ:\nAPI:     %s\nwebhook: %s", got.raw, b)
		}
		if len(data["shipments"].([]any)) != 1 || len(data["timeline"].([]any)) != 2 {
			t.Fatalf("the comparison missed shipments or the timeline: %s", b)
		}
	})
}

func TestOrderMessagesAndStoreContactOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		c := hookClient(t, dialect, false)

		for _, tc := range []struct {
			body   any
			status int
			field  string
		}{
			{map[string]any{"email": "not an email"}, 422, "email"},
			{map[string]any{"phone": "0555 12 34 56"}, 422, "phone"},
			{map[string]any{"name": "renamed"}, 422, "name"},
		} {
			if res := c.do("PATCH", "/v1/store", c.mk, tc.body); res.status != tc.status || res.errField("field") != tc.field {
				t.Errorf("PATCH %v: %d %s", tc.body, res.status, res.raw)
			}
		}
		if res := c.do("PATCH", "/v1/store", c.sf, map[string]any{"email": "a@b.example"}); res.status != 403 {
			t.Fatalf("storefront PATCH: %d", res.status)
		}
		res := c.do("PATCH", "/v1/store", c.mk, map[string]any{"email": "orders@shop.example", "phone": "+213 555 12 34 56"})
		if res.status != 200 || res.str("email") != "orders@shop.example" || res.str("phone") != "+213555123456" || res.str("id") != c.storeID {
			t.Fatalf("PATCH: %d %s", res.status, res.raw)
		}
		res = c.do("PATCH", "/v1/store", c.mk, map[string]any{"phone": ""})
		if res.str("email") != "orders@shop.example" || res.str("phone") != "" {
			t.Fatalf("clearing the phone: %s", res.raw)
		}
		if res := c.do("GET", "/v1/store", c.mk, nil); res.status != 200 || res.str("name") != "shop" || res.str("email") != "orders@shop.example" {
			t.Fatalf("GET /v1/store: %d %s", res.status, res.raw)
		}

		id := c.do("POST", "/v1/orders", c.sf, order()).str("id")
		res = c.do("GET", "/v1/orders/"+id+"/messages", c.mk, nil)
		if res.status != 200 || len(res.body["messages"].([]any)) != 0 {
			t.Fatalf("messages before any was sent: %d %s", res.status, res.raw)
		}
		rows, _ := c.db.Outbox(ctx, id)
		if _, err := c.db.RecordMessage(ctx, store.Message{Key: rows[0].ID + ":new_order", OrderID: id, StoreID: c.storeID,
			EffectID: rows[0].ID, Channel: "email", Template: "new_order", RecipientType: "merchant", Recipient: "orders@shop.example",
			Subject: "New order A-1001", Body: "Hello shop,", HTML: "<p>Hello</p>", Status: store.MessageSending}); err != nil {
			t.Fatal(err)
		}
		if err := c.db.MarkMessageSent(ctx, rows[0].ID+":new_order", "sandbox", "sandbox_1"); err != nil {
			t.Fatal(err)
		}
		res = c.do("GET", "/v1/orders/"+id+"/messages", c.mk, nil)
		ms := res.body["messages"].([]any)
		if len(ms) != 1 {
			t.Fatalf("messages %s", res.raw)
		}
		m := ms[0].(map[string]any)
		if m["channel"] != "email" || m["to"] != "orders@shop.example" || m["template"] != "new_order" || m["subject"] != "New order A-1001" ||
			m["body"] != "Hello shop," || m["status"] != "sent" || m["sent_at"] == nil || m["recipient"] != "merchant" {
			t.Fatalf("message %v", m)
		}
		if res := c.do("GET", "/v1/orders/"+id+"/messages", c.sf, nil); res.status != 403 {
			t.Fatalf("storefront messages: %d", res.status)
		}
		if res := c.do("GET", "/v1/orders/"+id+"/messages", c.otherKey, nil); res.status != 404 {
			t.Fatalf("another store's messages: %d", res.status)
		}
		if res := c.do("GET", "/v1/orders/ord_nope/messages", c.mk, nil); res.status != 404 {
			t.Fatalf("no such order: %d", res.status)
		}
	})
}
