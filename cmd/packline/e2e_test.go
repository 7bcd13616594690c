package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/internal/testio"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// fleet is a running `packline dev` and a client for its API.
type fleet struct {
	t       *testing.T
	api     string
	ops     string
	sf, mk  string
	logs    *testio.SyncBuffer
	stdout  *testio.SyncBuffer
	stopped chan error
}

const (
	testStorefrontKey = "pl_sf_e2e_storefront_key_000000000000"
	testMerchantKey   = "pl_mk_e2e_merchant_key_0000000000000"
)

// startDev runs `packline dev` in this process. With backing "servers" it
// runs on a PostgreSQL schema and a Redis database of the test's own (from
// TEST_DATABASE_URL and TEST_REDIS_URL); with "embedded" on SQLite and the
// in-process Redis, as a new user does.
func startDev(t *testing.T, backing string, env map[string]string) *fleet {
	t.Helper()
	vars := map[string]string{
		"PACKLINE_DEV_STOREFRONT_KEY": testStorefrontKey,
		"PACKLINE_DEV_MERCHANT_KEY":   testMerchantKey,
		"PACKLINE_TIMER_SCALE":        "0.00001",
		"LOG_LEVEL":                   "info",
	}
	if backing == "servers" {
		vars["DATABASE_URL"] = storetest.URL(t, store.Postgres)
		vars["REDIS_URL"] = redistest.New(t).URL()
	}
	for k, v := range env {
		vars[k] = v
	}
	f := &fleet{t: t, logs: &testio.SyncBuffer{}, stdout: &testio.SyncBuffer{}, stopped: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"dev", "-http", "127.0.0.1:0", "-ops", "127.0.0.1:0", "-data", t.TempDir()}
	go func() { f.stopped <- run(ctx, args, func(k string) string { return vars[k] }, f.stdout, f.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-f.stopped:
			if err != nil {
				t.Errorf("dev stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop within 30s of Ctrl-C")
		}
		if t.Failed() {
			t.Logf("dev logs:\n%s", f.logs.String())
		}
	})
	apiRE := regexp.MustCompile(`API\s+http://(\S+)`)
	opsRE := regexp.MustCompile(`metrics\s+http://(\S+)/metrics`)
	f.waitFor("dev to start", 60*time.Second, func() bool {
		select {
		case err := <-f.stopped:
			t.Fatalf("dev exited: %v\n%s", err, f.logs.String())
		default:
		}
		out := f.stdout.String()
		if m := apiRE.FindStringSubmatch(out); m != nil {
			f.api = "http://" + m[1]
		}
		if m := opsRE.FindStringSubmatch(out); m != nil {
			f.ops = "http://" + m[1]
		}
		return f.api != "" && f.ops != ""
	})
	f.sf, f.mk = testStorefrontKey, testMerchantKey
	return f
}

// backings are the ways the end-to-end tests run: always embedded, and on
// real servers when the test URLs are set.
func backings() []string {
	if os.Getenv("TEST_DATABASE_URL") != "" && os.Getenv("TEST_REDIS_URL") != "" {
		return []string{"embedded", "servers"}
	}
	return []string{"embedded"}
}

// pollInterval spaces the checks of waitFor: parallel subtests poll through
// the one merchant key, and its rate limit (50 a second) must hold for all.
const pollInterval = 100 * time.Millisecond

// poll checks cond every pollInterval until it holds (true) or d passes
// (false).
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// waitFor polls cond until it holds, failing the test after d.
func (f *fleet) waitFor(what string, d time.Duration, cond func() bool) {
	f.t.Helper()
	if !poll(d, cond) {
		f.t.Fatalf("timed out waiting for %s", what)
	}
}

// waitOrder polls the order until cond holds, for at most a minute; a
// timeout shows the order's timeline.
func (f *fleet) waitOrder(id, what string, cond func(o obj) bool) obj {
	f.t.Helper()
	var o obj
	if !poll(time.Minute, func() bool { o = f.get(id); return cond(o) }) {
		f.t.Fatalf("timed out waiting for %s to %s; timeline %s", id, what, events(o))
	}
	return o
}

type obj = map[string]any

func (f *fleet) call(method, path, key string, body any) (int, obj) {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, f.api+path, r)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var out obj
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func (f *fleet) create(body obj) string {
	f.t.Helper()
	status, o := f.call("POST", "/v1/orders", f.sf, body)
	if status != 201 {
		f.t.Fatalf("create: %d %v", status, o)
	}
	return o["id"].(string)
}

func (f *fleet) send(id, event string, data obj) obj {
	f.t.Helper()
	status, o := f.call("POST", "/v1/orders/"+id+"/events", f.mk, obj{"event": event, "data": data})
	if status != 200 {
		f.t.Fatalf("%s: %d %v", event, status, o)
	}
	return o
}

func (f *fleet) get(id string) obj {
	f.t.Helper()
	status, o := f.call("GET", "/v1/orders/"+id, f.mk, nil)
	if status != 200 {
		f.t.Fatalf("get: %d %v", status, o)
	}
	return o
}

// waitStatus waits until the order is in status.
func (f *fleet) waitStatus(id, status string) obj {
	f.t.Helper()
	return f.waitOrder(id, "reach "+status, func(o obj) bool { return o["status"] == status })
}

// waitAllowed waits until the merchant may send event.
func (f *fleet) waitAllowed(id, event string) {
	f.t.Helper()
	f.waitOrder(id, "allow "+event, func(o obj) bool {
		for _, e := range o["allowed_events"].([]any) {
			if e == event {
				return true
			}
		}
		return false
	})
}

func (f *fleet) onHand(sku string) float64 {
	f.t.Helper()
	status, s := f.call("GET", "/v1/stock/"+sku, f.mk, nil)
	if status != 200 {
		f.t.Fatalf("stock %s: %d %v", sku, status, s)
	}
	return s["on_hand"].(float64)
}

// logLine reports whether one line of logs holds every part.
func logLine(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func events(o obj) string {
	var out []string
	for _, e := range o["timeline"].([]any) {
		m := e.(map[string]any)
		out = append(out, fmt.Sprintf("%s:%s", m["event"], m["to"]))
	}
	return strings.Join(out, " ")
}

func orderBody(flow, method string) obj {
	o := obj{
		"flow": flow, "currency": "USD",
		"customer":         obj{"name": "Ada", "email": "ada@example.com", "phone": "+12025550100"},
		"shipping_address": obj{"line1": "1 Main St", "city": "Springfield", "country": "US"},
		"lines":            []any{obj{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": 1800}},
	}
	if method != "" {
		o["payment"] = obj{"method": method}
	}
	return o
}

// The paths of the five flows whose effects are stock, payments and timers,
// through HTTP with no hand on the database.
func TestFlowsEndToEnd(t *testing.T) {
	for _, backing := range backings() {
		t.Run(backing, func(t *testing.T) {
			t.Parallel()
			f := startDev(t, backing, map[string]string{"LOG_LEVEL": "debug"})
			t.Cleanup(func() {
				// Personal data and keys never reach the logs.
				logs := f.logs.String()
				for _, secret := range []string{"ada@example.com", "+12025550100", "2025550100", "1 Main St", testStorefrontKey, testMerchantKey} {
					if strings.Contains(logs, secret) {
						t.Errorf("the logs show %q", secret)
					}
				}
			})

			t.Run("cash-on-delivery: confirm takes stock, cancel gives it back", func(t *testing.T) {
				f.call("PUT", "/v1/stock/MUG", f.mk, obj{"on_hand": 5})
				id := f.create(orderBody("cash-on-delivery", ""))
				f.send(id, "confirm", nil)
				f.waitAllowed(id, "process")
				if got := f.onHand("MUG"); got != 3 {
					t.Fatalf("on hand after confirm: %v", got)
				}
				f.send(id, "cancel", nil)
				f.waitFor("stock to come back", 60*time.Second, func() bool { return f.onHand("MUG") == 5 })
			})

			t.Run("cash-on-delivery: a shortfall puts the order on hold", func(t *testing.T) {
				f.call("PUT", "/v1/stock/CAP", f.mk, obj{"on_hand": 1})
				body := orderBody("cash-on-delivery", "")
				body["lines"] = []any{obj{"sku": "CAP", "name": "Cap", "quantity": 3, "unit_price": 900}}
				id := f.create(body)
				f.send(id, "confirm", nil)
				f.waitStatus(id, "on_hold")
				if got := f.onHand("CAP"); got != 1 {
					t.Fatalf("a failed decrement took stock: %v", got)
				}
				// The handler's own log line carries the task's ids from the
				// context, and every access log line its request id.
				if !logLine(f.logs.String(), `msg="stock short"`, "task_id=", "order_id="+id) {
					t.Errorf("no stock short log line with the task's ids")
				}
				if !logLine(f.logs.String(), "msg=request", "request_id=req_") {
					t.Errorf("no access log line with a request id")
				}
			})

			t.Run("made-to-order paid with pm_card_visa reaches in_production", func(t *testing.T) {
				id := f.create(orderBody("made-to-order", "pm_card_visa"))
				o := f.waitStatus(id, "in_production")
				if got := events(o); !strings.Contains(got, "payment_succeeded:paid automatic:in_production") {
					t.Fatalf("timeline %s", got)
				}
				if p := o["payments"].([]any); len(p) == 0 {
					t.Fatal("no payment attempt on the order")
				}
				res, err := http.Get(f.ops + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				scrape, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if !strings.Contains(string(scrape), `packline_payment_calls_total{operation="confirm",outcome="ok",provider="sandbox"}`) {
					t.Error("the payment call is not counted in packline_payment_calls_total")
				}
			})

			t.Run("made-to-order declined stays pending_payment, then expires", func(t *testing.T) {
				id := f.create(orderBody("made-to-order", "pm_card_chargeDeclined"))
				f.waitFor("the decline on the timeline", 60*time.Second, func() bool {
					return strings.Contains(events(f.get(id)), "payment_failed:pending_payment")
				})
				f.waitStatus(id, "cancelled")
			})

			t.Run("request-approval with pm_card_chargeCustomerFail: accepted, declined at capture, expired", func(t *testing.T) {
				id := f.create(orderBody("request-approval", "pm_card_chargeCustomerFail"))
				f.waitAllowed(id, "accept") // the 1.00 card check passed
				f.send(id, "accept", nil)
				f.waitStatus(id, "pending_payment")
				o := f.waitStatus(id, "expired")
				if got := events(o); !strings.Contains(got, "accept:accepted payment_failed:pending_payment expire:expired") {
					t.Fatalf("timeline %s", got)
				}
			})

			t.Run("prepaid-simple paid", func(t *testing.T) {
				id := f.create(orderBody("prepaid-simple", "pm_card_visa"))
				// The label is bought right after payment, so the order may
				// be shipped by the time it is looked at: its timeline says
				// it was paid.
				f.waitOrder(id, "be paid", func(o obj) bool { return strings.Contains(events(o), "payment_succeeded:paid") })
			})
		})
	}
}
