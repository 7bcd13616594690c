package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
)

const testCourierSecret = "e2e-courier-secret-0123456789"

// on returns the fleet's client bound to t, for parallel subtests.
func (f *fleet) on(t *testing.T) *fleet {
	c := *f
	c.t = t
	return &c
}

// shipment returns the order's only shipment, or nil while it has none.
func shipment(o obj) obj {
	shs, _ := o["shipments"].([]any)
	if len(shs) == 0 {
		return nil
	}
	if len(shs) > 1 {
		panic("more than one shipment")
	}
	return shs[0].(obj)
}

// waitShipment waits until the order's shipment is in status.
func (f *fleet) waitShipment(id, status string) obj {
	f.t.Helper()
	return f.waitOrder(id, "have its shipment "+status, func(o obj) bool {
		sh := shipment(o)
		return sh != nil && sh["status"] == status
	})
}

// download GETs url with key.
func (f *fleet) download(url, key string) (int, string, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

// history is the shipment's tracking statuses, oldest first.
func history(sh obj) string {
	var out []string
	for _, e := range sh["events"].([]any) {
		out = append(out, e.(obj)["status"].(string))
	}
	return strings.Join(out, ",")
}

// courierEntries lists the timeline entries the courier made.
func courierEntries(o obj) string {
	var out []string
	for _, e := range o["timeline"].([]any) {
		m := e.(obj)
		if m["actor"].(obj)["type"] == "courier" {
			out = append(out, m["event"].(string)+":"+m["to"].(string))
		}
	}
	return strings.Join(out, " ")
}

// Every flow's ship path through `packline dev`, with no hand on the
// database: the merchant ships, the worker buys a sandbox label (a real
// PDF at label_url), the order ships, and the sandbox courier plays the
// parcel forward with signed callbacks to the real endpoint until it is
// delivered.
func TestCouriersEndToEnd(t *testing.T) {
	for _, backing := range backings() {
		t.Run(backing, func(t *testing.T) {
			t.Parallel()
			// 0.0001: a day lasts 8.6 s, so the 24 h payment windows stay
			// open on a loaded machine, and the courier's 17 h journey
			// lasts about 6 s.
			f := startDev(t, backing, map[string]string{
				"PACKLINE_TIMER_SCALE":        "0.0001",
				"PACKLINE_DEV_COURIER_SECRET": testCourierSecret,
			})
			t.Cleanup(func() {
				logs := f.logs.String()
				for _, secret := range []string{"ada@example.com", "+12025550100", "1 Main St", testCourierSecret, testMerchantKey} {
					if strings.Contains(logs, secret) {
						t.Errorf("the logs show %q", secret)
					}
				}
			})

			t.Run("cash-on-delivery: confirm, process, ship, label, shipped, delivered by the courier", func(t *testing.T) {
				t.Parallel()
				f := f.on(t)
				f.call("PUT", "/v1/stock/TEE-M", f.mk, obj{"on_hand": 5})
				body := orderBody("cash-on-delivery", "")
				body["lines"] = []any{obj{"sku": "TEE-M", "name": "T-shirt M", "quantity": 2, "unit_price": 150000}}
				id := f.create(body)
				f.send(id, "confirm", nil)
				f.waitOrder(id, "allow process", func(o obj) bool { return strings.Contains(events(o), "stock_taken") })
				f.send(id, "process", nil)
				f.send(id, "ship", obj{"courier": "sandbox"})
				o := f.waitStatus(id, "shipped")
				if got := events(o); !strings.Contains(got, "ship:processing label_created:shipped") {
					t.Fatalf("timeline %s", got)
				}
				sh := shipment(o)
				if sh == nil || sh["courier"] != "sandbox" || !strings.HasPrefix(sh["tracking_number"].(string), "SB") {
					t.Fatalf("shipment %v", sh)
				}
				url := sh["label_url"].(string)
				if !strings.HasPrefix(url, f.api+"/v1/shipments/") {
					t.Fatalf("label_url %s", url)
				}
				status, ctype, pdf := f.download(url, f.mk)
				if status != 200 || ctype != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF")) || !bytes.Contains(pdf, []byte(sh["tracking_number"].(string))) {
					t.Fatalf("label: %d %s %q…", status, ctype, pdf[:min(len(pdf), 16)])
				}
				if got := f.onHand("TEE-M"); got != 3 {
					t.Fatalf("on hand %v", got)
				}

				o = f.waitStatus(id, "delivered")
				if got := courierEntries(o); got != "tracking_update:shipped tracking_update:shipped deliver:delivered" {
					t.Fatalf("courier entries %q; timeline %s", got, events(o))
				}
				if h := history(shipment(o)); h != "pre_transit,in_transit,out_for_delivery,delivered" {
					t.Fatalf("tracking history %s", h)
				}
			})

			t.Run("made-to-order: paid, in production, shipped, delivered by the courier", func(t *testing.T) {
				t.Parallel()
				f := f.on(t)
				id := f.create(orderBody("made-to-order", "pm_card_visa"))
				f.waitStatus(id, "in_production")
				f.send(id, "ship", nil)
				o := f.waitStatus(id, "shipped")
				if shipment(o) == nil {
					t.Fatal("shipped without a shipment")
				}
				o = f.waitStatus(id, "delivered")
				if got := events(o); !strings.Contains(got, "label_created:shipped") || !strings.Contains(got, "deliver:delivered") {
					t.Fatalf("timeline %s", got)
				}
			})

			t.Run("wholesale: shipped; the courier's delivery is tracked, the order waits for its invoice", func(t *testing.T) {
				t.Parallel()
				f := f.on(t)
				id := f.create(orderBody("wholesale", ""))
				for _, ev := range []string{"confirm", "start_production", "ship"} {
					f.send(id, ev, nil)
				}
				f.waitStatus(id, "shipped")
				o := f.waitShipment(id, "delivered")
				if o["status"] != "shipped" || !strings.Contains(courierEntries(o), "tracking_update:shipped") {
					t.Fatalf("status %s, courier entries %s", o["status"], courierEntries(o))
				}
				f.send(id, "invoice", nil)
				f.waitStatus(id, "invoiced")
			})

			t.Run("prepaid-simple: paid, labelled at once, shipped when the courier picks it up", func(t *testing.T) {
				t.Parallel()
				f := f.on(t)
				id := f.create(orderBody("prepaid-simple", "pm_card_visa"))
				o := f.waitStatus(id, "shipped")
				if got := events(o); !strings.Contains(got, "payment_succeeded:paid label_created:paid ship:shipped") {
					t.Fatalf("timeline %s", got)
				}
				if got := courierEntries(o); !strings.HasPrefix(got, "ship:shipped") {
					t.Fatalf("courier entries %s", got)
				}
				o = f.waitShipment(id, "delivered")
				if o["status"] != "shipped" {
					t.Fatalf("status %s", o["status"])
				}
			})
		})
	}
}

// With PACKLINE_DEV_COURIER_PLAY=false nothing plays the shipment: a signed
// callback posted by hand with PACKLINE_DEV_COURIER_SECRET delivers it, and
// its history holds only what was posted.
func TestDevCourierPlayOff(t *testing.T) {
	f := startDev(t, "embedded", map[string]string{
		"PACKLINE_DEV_COURIER_PLAY":   "false",
		"PACKLINE_DEV_COURIER_SECRET": testCourierSecret,
	})
	f.call("PUT", "/v1/stock/MUG", f.mk, obj{"on_hand": 5})
	id := f.create(orderBody("cash-on-delivery", ""))
	f.send(id, "confirm", nil)
	f.waitAllowed(id, "process")
	f.send(id, "process", nil)
	f.send(id, "ship", nil)
	sh := shipment(f.waitStatus(id, "shipped"))

	req, err := sandbox.NewCallbackRequest(t.Context(), f.api+"/v1/couriers/sandbox/callbacks", testCourierSecret,
		sh["tracking_number"].(string), couriers.StatusDelivered, time.Now().Add(time.Second), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("callback: %d", res.StatusCode)
	}
	o := f.waitStatus(id, "delivered")
	if h := history(shipment(o)); h != "pre_transit,delivered" {
		t.Fatalf("tracking history %s: something else posted callbacks", h)
	}
}
