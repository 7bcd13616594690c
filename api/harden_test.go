package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// Issue 16: input that used to be stored, or answered as if it were fine,
// is refused before anything is written.
func TestInputIsRefusedBeforeItIsStored(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")

		// One SKU rule: a SKU an order line refuses cannot be stocked.
		for _, sku := range []string{"A%20B", "A%2FB", "A%25B", "A%C2%A0B"} {
			if res := c.do("PUT", "/v1/stock/"+sku, c.mk, map[string]any{"on_hand": 3}); res.status != 422 || res.errField("field") != "sku" {
				t.Errorf("PUT /v1/stock/%s: %d %s, want 422 on sku", sku, res.status, res.raw)
			}
		}
		if res := c.do("GET", "/v1/stock/A%20B", c.mk, nil); res.status != 404 {
			t.Errorf("a refused SKU was stocked: %d %s", res.status, res.raw)
		}
		if res := c.do("PUT", "/v1/stock/TEE-M", c.mk, map[string]any{"On_Hand": 3}); res.status != 422 || res.errField("field") != "On_Hand" {
			t.Errorf("On_Hand: %d %s, want 422 on On_Hand", res.status, res.raw)
		}

		// A status filter no flow knows is a mistake, not an empty list.
		if res := c.do("GET", "/v1/orders?status=nope", c.mk, nil); res.status != 422 || res.errField("field") != "status" {
			t.Errorf("status=nope: %d %s, want 422 on status", res.status, res.raw)
		}
		res := c.do("POST", "/v1/orders", c.sf, order())
		if res.status != 201 {
			t.Fatalf("create: %d %s", res.status, res.raw)
		}
		id := res.str("id")
		if res := c.do("GET", "/v1/orders?status=pending", c.mk, nil); res.status != 200 || len(res.body["orders"].([]any)) != 1 {
			t.Errorf("status=pending: %d %s", res.status, res.raw)
		}

		// Event data the flow does not declare is refused, every key named.
		for _, tc := range []struct {
			body           map[string]any
			field, message string
		}{
			{map[string]any{"event": "confirm", "data": map[string]any{"x": 1}}, "data.x", "event confirm takes no field x"},
			{map[string]any{"event": "log_call", "data": map[string]any{"outcome": "busy", "why": "a", "also": "b"}}, "data.also", "also, why"},
			{map[string]any{"event": "log_call", "data": map[string]any{"outcome": "busy\x00"}}, "data.outcome", "control characters"},
			{map[string]any{"event": "confirm", "Data": map[string]any{}}, "Data", "case-sensitive: data"},
		} {
			res := c.do("POST", "/v1/orders/"+id+"/events", c.mk, tc.body)
			if res.status != 422 || res.errField("field") != tc.field || !strings.Contains(res.errField("message"), tc.message) {
				t.Errorf("%v: %d %s, want 422 on %s saying %q", tc.body, res.status, res.raw, tc.field, tc.message)
			}
		}
		if res := c.do("POST", "/v1/orders/"+id+"/events", c.mk, "{\"event\":\"confirm\",\"note\":\"ok\xff\"}"); res.status != 400 {
			t.Errorf("invalid UTF-8 in an event: %d %s", res.status, res.raw)
		}
		if res := c.do("POST", "/v1/orders/"+id+"/notes", c.mk, `{"text":"\udcff"}`); res.status != 400 {
			t.Errorf("lone surrogate in a note: %d %s", res.status, res.raw)
		}
		if got := c.do("GET", "/v1/orders/"+id, c.mk, nil); got.body["version"].(float64) != 1 || len(got.body["timeline"].([]any)) != 1 {
			t.Errorf("refused events wrote: %s", got.raw)
		}
	})
}

// A courier's occurred_at far ahead of receipt is taken as received, so it
// cannot pin the shipment against later updates of its rank.
func TestCourierTimeFromTheFutureIsClamped(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c, sb, logs := courierClient(t, dialect, "")
		id, sh := c.shippedOrder(sb)
		future := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		r := c.callback("sandbox", sandbox.CallbackBody(sh.TrackingNumber, couriers.StatusFailure, future), courierSecret, time.Now())
		if r.status != 200 || r.str("result") != "updated" {
			t.Fatalf("failure from the future: %d %s", r.status, r.raw)
		}
		if !strings.Contains(logs.String(), "courier callback from the future") {
			t.Errorf("the clamp is not logged:\n%s", logs.String())
		}
		// The next attempt, of the same rank, a second later: it moves the
		// shipment, as it would have had the courier's clock been right.
		time.Sleep(1100 * time.Millisecond)
		r = c.callback("sandbox", sandbox.CallbackBody(sh.TrackingNumber, couriers.StatusOutForDelivery, time.Now()), courierSecret, time.Now())
		if r.status != 200 || r.str("result") != "updated" || r.str("shipment_status") != "out_for_delivery" {
			t.Fatalf("out_for_delivery after a future failure: %d %s", r.status, r.raw)
		}
		v := c.do("GET", "/v1/orders/"+id, c.mk, nil)
		for _, e := range v.body["shipments"].([]any)[0].(map[string]any)["events"].([]any) {
			at, err := time.Parse(time.RFC3339Nano, e.(map[string]any)["occurred_at"].(string))
			if err != nil || at.After(time.Now().Add(couriers.SignatureTolerance)) {
				t.Fatalf("a tracking event is stored at %s", at)
			}
		}
		// Invalid UTF-8 in a signed body is refused, not stored as U+FFFD.
		bad := []byte(`{"tracking_number":"` + sh.TrackingNumber + "\xff" + `","status":"delivered","occurred_at":"` + time.Now().UTC().Format(time.RFC3339) + `"}`)
		if r := c.callback("sandbox", bad, courierSecret, time.Now()); r.status != 400 {
			t.Fatalf("invalid UTF-8 callback: %d %s", r.status, r.raw)
		}
	})
}

// FuzzSendEvent: whatever the body of an event, the API answers 200 or a
// 4xx, never a 5xx, and a refused event changes nothing.
func FuzzSendEvent(f *testing.F) {
	f.Add(`{"event":"log_call","data":{"outcome":"busy"},"note":"later"}`)
	f.Add(`{"event":"confirm","data":{"x":1}}`)
	f.Add(`{"event":"log_call","data":{"outcome":"\u0000"}}`)
	f.Add(`{"event":"log_call","data":{"outcome":"busy","Outcome":"x"}}`)
	f.Add(`{"event":"confirm","expected_version":1e400}`)
	f.Add(`{"event":"cancel","note":"\ud800"}`)
	f.Add("{\"event\":\"confirm\",\"note\":\"\xff\"}")
	c := newClient(f, store.SQLite, "cash-on-delivery")
	res := c.do("POST", "/v1/orders", c.sf, order())
	if res.status != 201 {
		f.Fatalf("create: %d %s", res.status, res.raw)
	}
	path := "/v1/orders/" + res.str("id") + "/events"
	f.Fuzz(func(t *testing.T, body string) {
		h := specHandler(t, c.api) // the answer must be one the spec lists
		var before int
		c.db.SQL().Get(&before, "SELECT version FROM orders WHERE store_id = ?", c.storeID)
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.mk)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
		var after int
		c.db.SQL().Get(&after, "SELECT version FROM orders WHERE store_id = ?", c.storeID)
		if rec.Code != http.StatusOK && after != before {
			t.Fatalf("%d but the order moved from version %d to %d", rec.Code, before, after)
		}
	})
}

// FuzzCourierCallback: whatever the body of a correctly signed callback,
// the API answers 200 or a 4xx, never a 5xx; a refused one changes nothing,
// and no tracking event is stored ahead of its receipt.
func FuzzCourierCallback(f *testing.F) {
	c, sb, _ := courierClient(f, store.SQLite, "")
	_, sh := c.shippedOrder(sb)
	now := time.Now().UTC()
	f.Add(string(sandbox.CallbackBody(sh.TrackingNumber, couriers.StatusInTransit, now)))
	f.Add(string(sandbox.CallbackBody(sh.TrackingNumber, couriers.StatusDelivered, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))))
	f.Add(`{"tracking_number":"` + sh.TrackingNumber + `","status":"failure","occurred_at":"0001-01-01T00:00:00Z"}`)
	f.Add(`{"tracking_number":"` + sh.TrackingNumber + "\xff" + `","status":"in_transit"}`)
	f.Add(`{"tracking_number":"` + sh.TrackingNumber + `","status":"in_transit","occurred_at":"2026-01-01T00:00:00+25:00"}`)
	f.Add(`{"tracking_number":"\u0000","status":"teleported"}`)
	events := func() (n int) {
		c.db.SQL().Get(&n, "SELECT COUNT(*) FROM shipment_events")
		return n
	}
	f.Fuzz(func(t *testing.T, body string) {
		h := specHandler(t, c.api) // the answer must be one the spec lists
		before := events()
		req := httptest.NewRequest("POST", "/v1/couriers/sandbox/callbacks", strings.NewReader(body))
		req.Header.Set(couriers.SignatureHeader, couriers.Sign(courierSecret, []byte(body), time.Now()))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK && events() != before {
			t.Fatalf("%d but a tracking event was stored", rec.Code)
		}
		var ats []time.Time
		if err := c.db.SQL().Select(&ats, "SELECT occurred_at FROM shipment_events"); err != nil {
			t.Fatal(err)
		}
		for _, at := range ats {
			if at.After(time.Now().Add(couriers.SignatureTolerance)) {
				t.Fatalf("a tracking event is stored at %s after %q", at, body)
			}
		}
	})
}

// A known path with a method it does not take is 405 with Allow (TRACE and
// OPTIONS too); an unknown path stays 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	c := newClient(t, store.SQLite, "cash-on-delivery")
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/orders", "POST, GET, HEAD"},
		{"PATCH", "/v1/orders/x", "GET, HEAD"},
		{"GET", "/v1/couriers/sandbox/callbacks", "POST"},
		{"TRACE", "/v1/orders", "POST, GET, HEAD"},
		{"OPTIONS", "/v1/orders/x/events", "POST"},
		{"POST", "/v1/stock/TEE-M", "PUT, GET, HEAD"},
		{"PUT", "/v1/store", "GET, HEAD, PATCH"},
		{"PUT", "/v1/webhook-endpoints/we_1", "GET, HEAD, DELETE"},
	} {
		res := c.do(tc.method, tc.path, c.mk, nil)
		if res.status != 405 || res.header.Get("Allow") != tc.allow || res.errField("code") != "method_not_allowed" {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", tc.method, tc.path, res.status, res.header.Get("Allow"), res.raw, tc.allow)
		}
	}
	if res := c.do("GET", "/v1/nowhere", c.mk, nil); res.status != 404 || res.header.Get("Allow") != "" {
		t.Errorf("unknown path: %d %v", res.status, res.header)
	}
	if res := c.do("HEAD", "/v1/orders", c.mk, nil); res.status != 200 {
		t.Errorf("HEAD /v1/orders: %d", res.status)
	}
}

// The auth scheme is case-insensitive; anything but Bearer is not a key.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	c := newClient(t, store.SQLite, "cash-on-delivery")
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		if res := c.do("GET", "/v1/orders", "", nil, "Authorization", scheme+" "+c.mk); res.status != 200 {
			t.Errorf("%s <key>: %d %s", scheme, res.status, res.raw)
		}
	}
	for _, h := range []string{"Basic " + c.mk, "Bearer", "Bearer ", "bearer  ", c.mk, "Bearer" + c.mk} {
		if res := c.do("GET", "/v1/orders", "", nil, "Authorization", h); res.status != 401 {
			t.Errorf("Authorization %q: %d, want 401", h, res.status)
		}
	}
}
