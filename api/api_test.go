package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/packline/packline/api"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

type client struct {
	t        testing.TB
	srv      *httptest.Server // the API, every exchange checked against openapi.yaml
	api      http.Handler     // the API itself
	db       *store.DB
	sf, mk   string // storefront and merchant keys
	storeID  string
	otherKey string // a merchant key of another store
}

func newClient(t testing.TB, dialect, flow string) *client {
	t.Helper()
	return newClientWith(t, dialect, flow, api.Config{})
}

// newClientWith is newClient with an API configured by cfg (its DB is set
// here).
func newClientWith(t testing.TB, dialect, flow string, cfg api.Config) *client {
	t.Helper()
	db := storetest.Open(t, dialect, store.Options{})
	ctx := t.Context()
	s, sf, mk, err := db.CreateStore(ctx, "shop", flow)
	if err != nil {
		t.Fatal(err)
	}
	_, _, other, err := db.CreateStore(ctx, "other", flow)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = db
	h := api.New(cfg)
	srv := httptest.NewServer(specHandler(t, h)) // spec_test.go
	t.Cleanup(srv.Close)
	return &client{t: t, srv: srv, api: h, db: db, sf: sf, mk: mk, storeID: s.ID, otherKey: other}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path, key string, body any, hdr ...string) response {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.srv.URL+path, r)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &out.body)
	return out
}

func (r response) errField(k string) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e[k].(string)
	return s
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func order(mods ...func(map[string]any)) map[string]any {
	o := map[string]any{
		"external_id":      "A-1001",
		"currency":         "DZD",
		"customer":         map[string]any{"name": "Amina B.", "email": "amina@example.com", "phone": "0555 12 34 56"},
		"shipping_address": map[string]any{"line1": "12 rue Didouche Mourad", "city": "Alger", "country": "DZ"},
		"lines": []any{
			map[string]any{"sku": "TEE-M", "name": "T-shirt M", "quantity": 2, "unit_price": 150000},
			map[string]any{"sku": "CAP", "name": "Cap", "quantity": 1, "unit_price": 90000},
		},
	}
	for _, m := range mods {
		m(o)
	}
	return o
}

func (c *client) orderCount() int {
	c.t.Helper()
	var n int
	if err := c.db.SQL().Get(&n, "SELECT COUNT(*) FROM orders"); err != nil {
		c.t.Fatal(err)
	}
	return n
}

func TestOrderLifecycleOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")
		res := c.do("POST", "/v1/orders", c.sf, order())
		if res.status != 201 {
			t.Fatalf("create: %d %s", res.status, res.raw)
		}
		id := res.str("id")
		if res.str("status") != "pending" || res.str("flow") != "cash-on-delivery" || res.header.Get("Location") != "/v1/orders/"+id {
			t.Fatalf("created %s", res.raw)
		}
		cust := res.body["customer"].(map[string]any)
		if cust["phone"] != "+213555123456" {
			t.Fatalf("phone not normalised to E.164: %v", cust["phone"])
		}
		totals := res.body["totals"].(map[string]any)
		if totals["total"].(float64) != 390000 {
			t.Fatalf("totals %v", totals)
		}
		// The storefront speaks as the customer: it may cancel, not confirm.
		if got := strs(res.body["allowed_events"]); fmt.Sprint(got) != "[cancel]" {
			t.Fatalf("customer allowed events %v", got)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.sf, map[string]any{"event": "confirm"})
		if res.status != 409 || res.errField("code") != "conflict" {
			t.Fatalf("customer confirm: %d %s", res.status, res.raw)
		}
		if got := strs(res.body["error"].(map[string]any)["allowed_events"]); fmt.Sprint(got) != "[cancel]" {
			t.Fatalf("409 allowed events %v", got)
		}
		got := c.do("GET", "/v1/orders/"+id, c.mk, nil)
		if fmt.Sprint(strs(got.body["allowed_events"])) != "[log_call confirm cancel]" {
			t.Fatalf("merchant allowed events %s", got.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "log_call", "data": map[string]any{"outcome": "no_answer"}, "note": "rang twice"})
		if res.status != 200 || res.body["version"].(float64) != 2 {
			t.Fatalf("log_call: %d %s", res.status, res.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "log_call", "data": map[string]any{"outcome": "maybe"}})
		if res.status != 422 || res.errField("field") != "data.outcome" {
			t.Fatalf("bad outcome: %d %s", res.status, res.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "confirm", "expected_version": 1})
		if res.status != 409 {
			t.Fatalf("stale expected_version: %d %s", res.status, res.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "confirm", "expected_version": 2})
		if res.status != 200 || res.str("status") != "confirmed" {
			t.Fatalf("confirm: %d %s", res.status, res.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "process"})
		if res.status != 409 || !strings.Contains(res.errField("message"), "stock taken") {
			t.Fatalf("process before stock is taken: %d %s", res.status, res.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "teleport"})
		if res.status != 422 || res.errField("field") != "event" {
			t.Fatalf("unknown event: %d %s", res.status, res.raw)
		}
		res = c.do("POST", "/v1/orders/"+id+"/notes", c.mk, map[string]any{"text": "gift wrap"})
		if res.status != 201 {
			t.Fatalf("note: %d %s", res.status, res.raw)
		}
		tl := res.body["timeline"].([]any)
		var events []string
		for _, e := range tl {
			events = append(events, e.(map[string]any)["event"].(string))
		}
		if fmt.Sprint(events) != "[created log_call confirm note]" {
			t.Fatalf("timeline %v", events)
		}
		first := tl[1].(map[string]any)
		if first["note"] != "rang twice" || first["actor"].(map[string]any)["type"] != "merchant" || first["from"] != "pending" {
			t.Fatalf("timeline entry %v", first)
		}
		// Every effect the transitions owe is in the outbox.
		ob, _ := c.db.Outbox(t.Context(), id)
		var types []string
		for _, r := range ob {
			types = append(types, fmt.Sprintf("v%d:%s", r.Version, r.Type))
		}
		if fmt.Sprint(types) != "[v1:notify:email v1:webhook:deliver v1:order:timer v3:stock:decrement v3:webhook:deliver]" {
			t.Fatalf("outbox %v", types)
		}
		// Another store never sees it.
		if res := c.do("GET", "/v1/orders/"+id, c.otherKey, nil); res.status != 404 {
			t.Fatalf("other store: %d", res.status)
		}
		if res := c.do("POST", "/v1/orders/"+id+"/events", c.otherKey, map[string]any{"event": "cancel"}); res.status != 404 {
			t.Fatalf("other store event: %d", res.status)
		}
	})
}

func TestAuth(t *testing.T) {
	c := newClient(t, storetest.Default(), "cash-on-delivery")
	for _, tc := range []struct {
		name, method, path, key string
		body                    any
		status                  int
		code                    string
	}{
		{"no key", "GET", "/v1/orders", "", nil, 401, "unauthorized"},
		{"bad key", "GET", "/v1/orders", "pl_mk_nope_nope_nope_nope", nil, 401, "unauthorized"},
		{"storefront sets stock", "PUT", "/v1/stock/TEE-M", c.sf, map[string]any{"on_hand": 3}, 403, "forbidden"},
		{"storefront adds note", "POST", "/v1/orders/ord_x/notes", c.sf, map[string]any{"text": "x"}, 403, "forbidden"},
		{"unknown order", "GET", "/v1/orders/ord_nope", c.mk, nil, 404, "not_found"},
		{"unknown route", "GET", "/v2/things", c.mk, nil, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.do(tc.method, tc.path, tc.key, tc.body)
			if res.status != tc.status || res.errField("code") != tc.code {
				t.Fatalf("%d %s", res.status, res.raw)
			}
		})
	}
	res := c.do("GET", "/v1/orders", "", nil)
	if res.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
}

func TestStock(t *testing.T) {
	c := newClient(t, storetest.Default(), "cash-on-delivery")
	if res := c.do("GET", "/v1/stock/TEE-M", c.mk, nil); res.status != 404 {
		t.Fatalf("unset stock: %d", res.status)
	}
	res := c.do("PUT", "/v1/stock/TEE-M", c.mk, map[string]any{"on_hand": 25})
	if res.status != 200 || res.body["on_hand"].(float64) != 25 {
		t.Fatalf("put: %d %s", res.status, res.raw)
	}
	res = c.do("GET", "/v1/stock/TEE-M", c.mk, nil)
	if res.status != 200 || res.body["on_hand"].(float64) != 25 || res.str("sku") != "TEE-M" || res.str("updated_at") == "" {
		t.Fatalf("get: %d %s", res.status, res.raw)
	}
	for _, body := range []any{map[string]any{"on_hand": -1}, map[string]any{}, map[string]any{"on_hand": "3"}} {
		if res := c.do("PUT", "/v1/stock/TEE-M", c.mk, body); res.status != 422 || res.errField("field") != "on_hand" {
			t.Fatalf("bad stock %v: %d %s", body, res.status, res.raw)
		}
	}
}

func TestListPagination(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")
		ids := map[string]bool{}
		for i := 0; i < 7; i++ {
			res := c.do("POST", "/v1/orders", c.sf, order())
			ids[res.str("id")] = true
		}
		// Confirm two so the status filter has something to tell apart.
		n := 0
		for id := range ids {
			if n == 2 {
				break
			}
			c.do("POST", "/v1/orders/"+id+"/events", c.mk, map[string]any{"event": "confirm"})
			n++
		}
		seen := map[string]bool{}
		cursor := ""
		pages := 0
		for {
			path := "/v1/orders?limit=3"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			res := c.do("GET", path, c.sf, nil)
			if res.status != 200 {
				t.Fatalf("list: %d %s", res.status, res.raw)
			}
			pages++
			for _, o := range res.body["orders"].([]any) {
				id := o.(map[string]any)["id"].(string)
				if seen[id] {
					t.Fatalf("%s on two pages", id)
				}
				seen[id] = true
			}
			next, _ := res.body["next_cursor"].(string)
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 7 || pages != 3 {
			t.Fatalf("saw %d orders in %d pages", len(seen), pages)
		}
		res := c.do("GET", "/v1/orders?status=confirmed", c.mk, nil)
		if got := len(res.body["orders"].([]any)); got != 2 {
			t.Fatalf("status filter: %d orders", got)
		}
		if res := c.do("GET", "/v1/orders?limit=0", c.mk, nil); res.status != 422 || res.errField("field") != "limit" {
			t.Fatalf("limit 0: %d", res.status)
		}
		if res := c.do("GET", "/v1/orders", c.otherKey, nil); len(res.body["orders"].([]any)) != 0 {
			t.Fatal("another store lists our orders")
		}
	})
}

func TestIdempotencyKeyOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")
		first := c.do("POST", "/v1/orders", c.sf, order(), "Idempotency-Key", "checkout-42")
		if first.status != 201 {
			t.Fatalf("%d %s", first.status, first.raw)
		}
		// The same body, spaced differently, is the same request.
		j, _ := json.MarshalIndent(order(), "", "   ")
		again := c.do("POST", "/v1/orders", c.sf, j, "Idempotency-Key", "checkout-42")
		if again.status != 200 || again.str("id") != first.str("id") || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s", again.status, again.raw)
		}
		other := c.do("POST", "/v1/orders", c.sf, order(func(o map[string]any) { o["external_id"] = "A-1002" }), "Idempotency-Key", "checkout-42")
		if other.status != 422 || other.errField("code") != "idempotency_key_reused" {
			t.Fatalf("other body: %d %s", other.status, other.raw)
		}
		// Concurrent retries of one checkout make one order.
		var wg sync.WaitGroup
		got := make([]string, 8)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = c.do("POST", "/v1/orders", c.sf, order(), "Idempotency-Key", "checkout-43").str("id")
			}()
		}
		wg.Wait()
		for _, id := range got {
			if id == "" || id != got[0] {
				t.Fatalf("one key, several orders: %v", got)
			}
		}
		if n := c.orderCount(); n != 2 {
			t.Fatalf("%d orders, want 2", n)
		}
	})
}

// Path values that are not text (invalid UTF-8, NUL) are a 404, never a
// database error.
func TestBadBytesInPathAre404(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")
		for _, tc := range []struct{ method, path string }{
			{"GET", "/v1/orders/%FF"}, {"GET", "/v1/orders/a%00b"}, {"POST", "/v1/orders/%FF/events"},
			{"POST", "/v1/orders/%FF/notes"}, {"GET", "/v1/stock/%FF"}, {"GET", "/v1/stock/a%00"}, {"PUT", "/v1/stock/%C3%28"},
		} {
			res := c.do(tc.method, tc.path, c.mk, map[string]any{"event": "cancel", "text": "x", "on_hand": 1})
			if res.status != 404 || res.errField("code") != "not_found" {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, res.status, res.raw)
			}
		}
	})
}

// A client guessing keys is slowed to 429 before its guesses reach the
// database; a client with a good key is not affected.
func TestBadKeysAreRateLimited(t *testing.T) {
	c := newClient(t, storetest.Default(), "cash-on-delivery")
	if res := c.do("GET", "/v1/orders", c.mk, nil); res.status != 200 {
		t.Fatalf("good key: %d", res.status)
	}
	limited := 0
	for i := 0; i < 40; i++ {
		res := c.do("GET", "/v1/orders", fmt.Sprintf("pl_mk_guess_%030d", i), nil)
		switch res.status {
		case 401:
		case 429:
			limited++
		default:
			t.Fatalf("guess %d: %d %s", i, res.status, res.raw)
		}
	}
	if limited < 15 {
		t.Fatalf("only %d of 40 bad-key requests were limited", limited)
	}
	// A key that authenticated before is not held back by the guessing.
	if res := c.do("GET", "/v1/orders", c.mk, nil); res.status != 200 {
		t.Fatalf("good key after the guesses: %d %s", res.status, res.raw)
	}
	// A key the server has not seen yet is, while the budget is spent.
	if res := c.do("GET", "/v1/orders", c.sf, nil); res.status != 429 {
		t.Fatalf("unseen key after the guesses: %d %s", res.status, res.raw)
	}
}
