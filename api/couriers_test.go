package api_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/api"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/internal/testio"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

const courierSecret = "test-courier-secret-0123456789"

// courierClient is newClient with the sandbox courier configured.
func courierClient(t testing.TB, dialect, publicURL string) (*client, *sandbox.Courier, *testio.SyncBuffer) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Secret: courierSecret})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testio.SyncBuffer{}
	c := newClientWith(t, dialect, "cash-on-delivery", api.Config{Couriers: couriers.NewRegistry(sb), PublicURL: publicURL,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return c, sb, logs
}

// shippedOrder makes a cash-on-delivery order through HTTP and ships it the
// way the fleet does: stock taken, processing, ship, a sandbox label stored
// as its shipment, label_created.
func (c *client) shippedOrder(sb *sandbox.Courier) (orderID string, sh store.Shipment) {
	c.t.Helper()
	ctx := c.t.Context()
	res := c.do("POST", "/v1/orders", c.sf, order())
	if res.status != 201 {
		c.t.Fatalf("create: %d %s", res.status, res.raw)
	}
	id := res.str("id")
	system := packline.Actor{Type: packline.ActorSystem, ID: "test"}
	for _, step := range []struct {
		event string
		key   string
	}{{"confirm", c.mk}, {"stock_taken", ""}, {"process", c.mk}, {"ship", c.mk}} {
		if step.key == "" {
			if _, err := c.db.ApplyEvent(ctx, c.storeID, id, store.EventInput{Event: step.event, Actor: system}); err != nil {
				c.t.Fatal(err)
			}
			continue
		}
		if r := c.do("POST", "/v1/orders/"+id+"/events", step.key, map[string]any{"event": step.event}); r.status != 200 {
			c.t.Fatalf("%s: %d %s", step.event, r.status, r.raw)
		}
	}
	label, err := sb.CreateLabel(ctx, couriers.LabelRequest{Key: id, Reference: "A-1001",
		From: couriers.Party{Name: "shop"},
		To:   couriers.Party{Name: "Amina B.", Address: packline.Address{Line1: "12 rue Didouche Mourad", City: "Alger", Country: "DZ"}}})
	if err != nil {
		c.t.Fatal(err)
	}
	sh, _, err = c.db.CreateShipment(ctx, store.NewShipment{OrderID: id, StoreID: c.storeID, Courier: label.Courier,
		TrackingNumber: label.TrackingNumber, TrackingURL: label.TrackingURL, LabelPDF: label.PDF})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.db.ApplyEvent(ctx, c.storeID, id, store.EventInput{Event: "label_created", Actor: system}); err != nil {
		c.t.Fatal(err)
	}
	return id, sh
}

// callback posts a sandbox callback body signed with secret at signedAt.
func (c *client) callback(courier string, body []byte, secret string, signedAt time.Time) response {
	c.t.Helper()
	hdr := []string{}
	if secret != "" {
		hdr = []string{couriers.SignatureHeader, couriers.Sign(secret, body, signedAt)}
	}
	return c.do("POST", "/v1/couriers/"+courier+"/callbacks", "", body, hdr...)
}

func (c *client) shipmentStatus(id string) (order string, shipment string) {
	c.t.Helper()
	r := c.do("GET", "/v1/orders/"+id, c.mk, nil)
	shs := r.body["shipments"].([]any)
	if len(shs) != 1 {
		c.t.Fatalf("shipments %v", shs)
	}
	return r.str("status"), shs[0].(map[string]any)["status"].(string)
}

// Callbacks: each refusal is a clear 4xx that changes nothing; duplicates
// and late older statuses are a 200 that changes nothing; newer statuses
// move the shipment and, where the flow says so, the order.
func TestCourierCallbacks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c, sb, logs := courierClient(t, dialect, "")
		id, sh := c.shippedOrder(sb)
		now := time.Now()
		t0 := now.Add(time.Second).UTC().Truncate(time.Second)
		body := func(st couriers.Status, at time.Time) []byte { return sandbox.CallbackBody(sh.TrackingNumber, st, at) }
		inTransit := body(couriers.StatusInTransit, t0)

		for _, tc := range []struct {
			name    string
			courier string
			body    []byte
			secret  string
			at      time.Time
			status  int
			code    string
			message string
		}{
			{"bad signature", "sandbox", inTransit, "not-the-secret", now, 401, packline.EUNAUTHORIZED, "bad callback signature"},
			{"no signature", "sandbox", inTransit, "", now, 401, packline.EUNAUTHORIZED, "no X-Packline-Signature header"},
			{"stale timestamp", "sandbox", inTransit, courierSecret, now.Add(-6 * time.Minute), 401, packline.EUNAUTHORIZED, "stale callback"},
			{"from the future", "sandbox", inTransit, courierSecret, now.Add(6 * time.Minute), 401, packline.EUNAUTHORIZED, "stale callback"},
			{"body tampered", "sandbox", bytes.Replace(inTransit, []byte("in_transit"), []byte("delivered"), 1), "", now, 401, packline.EUNAUTHORIZED, ""},
			{"not JSON", "sandbox", []byte("status=delivered"), courierSecret, now, 400, packline.EMALFORMED, "malformed callback"},
			{"unknown status", "sandbox", body("teleported", t0), courierSecret, now, 400, packline.EMALFORMED, "unknown tracking status"},
			{"unknown tracking number", "sandbox", sandbox.CallbackBody("SB000000000000000000", couriers.StatusDelivered, t0), courierSecret, now, 404, packline.ENOTFOUND, "tracking number"},
			{"unknown courier", "teleport", inTransit, courierSecret, now, 404, packline.ENOTFOUND, "no courier teleport"},
			{"too large", "sandbox", bytes.Repeat([]byte(" "), api.MaxCallbackBytes+1), courierSecret, now, 413, packline.ETOOLARGE, ""},
		} {
			var r response
			if tc.name == "body tampered" {
				// Signed for the in_transit body, sent with another.
				r = c.do("POST", "/v1/couriers/sandbox/callbacks", "", tc.body, couriers.SignatureHeader, couriers.Sign(courierSecret, inTransit, now))
			} else {
				r = c.callback(tc.courier, tc.body, tc.secret, tc.at)
			}
			if r.status != tc.status || r.errField("code") != tc.code || !strings.Contains(r.errField("message"), tc.message) {
				t.Fatalf("%s: %d %s", tc.name, r.status, r.raw)
			}
			if o, s := c.shipmentStatus(id); o != "shipped" || s != "pre_transit" {
				t.Fatalf("%s changed the order (%s) or shipment (%s)", tc.name, o, s)
			}
		}

		// in_transit: the shipment moves; the order is shipped already.
		r := c.callback("sandbox", inTransit, courierSecret, time.Now())
		if r.status != 200 || r.str("result") != "updated" || r.str("shipment_status") != "in_transit" || r.str("order_status") != "shipped" {
			t.Fatalf("in_transit: %d %s", r.status, r.raw)
		}
		// The same callback again (a courier retrying): 200, nothing new.
		r = c.callback("sandbox", inTransit, courierSecret, time.Now())
		if r.status != 200 || r.str("result") != "duplicate" {
			t.Fatalf("duplicate: %d %s", r.status, r.raw)
		}
		// delivered: the courier delivers the order.
		r = c.callback("sandbox", body(couriers.StatusDelivered, t0.Add(2*time.Minute)), courierSecret, time.Now())
		if r.status != 200 || r.str("result") != "updated" || r.str("event") != "deliver" || r.str("order_status") != "delivered" {
			t.Fatalf("delivered: %d %s", r.status, r.raw)
		}
		// out_for_delivery arriving late: 200, kept, and nothing moves back.
		r = c.callback("sandbox", body(couriers.StatusOutForDelivery, t0.Add(time.Minute)), courierSecret, time.Now())
		if r.status != 200 || r.str("result") != "older" || r.str("shipment_status") != "delivered" || r.str("order_status") != "delivered" {
			t.Fatalf("older: %d %s", r.status, r.raw)
		}
		if o, s := c.shipmentStatus(id); o != "delivered" || s != "delivered" {
			t.Fatalf("after the late update: order %s, shipment %s", o, s)
		}

		// Every update is on the shipment and the timeline, once.
		v := c.do("GET", "/v1/orders/"+id, c.mk, nil)
		var tl []string
		for _, e := range v.body["timeline"].([]any) {
			m := e.(map[string]any)
			if a := m["actor"].(map[string]any); a["type"] == "courier" {
				tl = append(tl, m["event"].(string))
			}
		}
		if strings.Join(tl, ",") != "tracking_update,deliver,tracking_update" {
			t.Fatalf("courier entries on the timeline: %v", tl)
		}
		var hist []string
		for _, e := range v.body["shipments"].([]any)[0].(map[string]any)["events"].([]any) {
			hist = append(hist, e.(map[string]any)["status"].(string))
		}
		if strings.Join(hist, ",") != "pre_transit,in_transit,out_for_delivery,delivered" {
			t.Fatalf("tracking history %v", hist)
		}

		// The logs name the courier, tracking number and status of each
		// callback, never the customer.
		out := logs.String()
		if !strings.Contains(out, "tracking_number="+sh.TrackingNumber) || !strings.Contains(out, "unknown tracking number") {
			t.Fatalf("callback logs:\n%s", out)
		}
		for _, personal := range []string{"Amina", "Didouche", "amina@example.com", "+213555123456"} {
			if strings.Contains(out, personal) {
				t.Fatalf("the logs show %q:\n%s", personal, out)
			}
		}
	})
}

// The order view lists its shipment with an absolute label_url that a key
// of the store downloads as a PDF; no other store can.
func TestShipmentLabelDownload(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c, sb, _ := courierClient(t, dialect, "")
		id, sh := c.shippedOrder(sb)
		v := c.do("GET", "/v1/orders/"+id, c.sf, nil)
		shs, _ := v.body["shipments"].([]any)
		if len(shs) != 1 {
			t.Fatalf("shipments: %s", v.raw)
		}
		got := shs[0].(map[string]any)
		want := c.srv.URL + "/v1/shipments/" + sh.ID + "/label.pdf"
		if got["id"] != sh.ID || got["courier"] != "sandbox" || got["tracking_number"] != sh.TrackingNumber ||
			got["label_url"] != want || got["status"] != "pre_transit" || got["status_at"] == nil || got["tracking_url"] == "" {
			t.Fatalf("shipment %v (label_url want %s)", got, want)
		}
		get := func(url, key string) (*http.Response, []byte) {
			t.Helper()
			req, _ := http.NewRequest("GET", url, nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res, b
		}
		for _, key := range []string{c.sf, c.mk} {
			res, pdf := get(want, key)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
				t.Fatalf("label: %d %s %q", res.StatusCode, res.Header.Get("Content-Type"), pdf[:min(len(pdf), 16)])
			}
		}
		if res, _ := get(want, c.otherKey); res.StatusCode != 404 {
			t.Fatalf("another store's key: %d", res.StatusCode)
		}
		if res, _ := get(want, ""); res.StatusCode != 401 {
			t.Fatalf("no key: %d", res.StatusCode)
		}
		if res, _ := get(c.srv.URL+"/v1/shipments/shp_nope/label.pdf", c.mk); res.StatusCode != 404 {
			t.Fatalf("unknown shipment: %d", res.StatusCode)
		}
	})
}

// With a public URL configured, label URLs are built on it, not on the
// request's Host.
func TestLabelURLUsesPublicURL(t *testing.T) {
	c, sb, _ := courierClient(t, storetest.Default(), "https://api.example.com/")
	id, sh := c.shippedOrder(sb)
	v := c.do("GET", "/v1/orders/"+id, c.mk, nil)
	got := v.body["shipments"].([]any)[0].(map[string]any)["label_url"]
	if got != "https://api.example.com/v1/shipments/"+sh.ID+"/label.pdf" {
		t.Fatalf("label_url %v", got)
	}
}

// Without couriers configured, every callback is a 404.
func TestCallbacksWithoutCouriers(t *testing.T) {
	c := newClient(t, storetest.Default(), "cash-on-delivery")
	body := sandbox.CallbackBody("SB1", couriers.StatusDelivered, time.Now())
	r := c.do("POST", "/v1/couriers/sandbox/callbacks", "", body, couriers.SignatureHeader, couriers.Sign("x", body, time.Now()))
	if r.status != 404 || r.errField("code") != packline.ENOTFOUND {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}
