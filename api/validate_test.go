package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/packline/packline/api"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

func set(path string, v any) func(map[string]any) {
	return func(o map[string]any) {
		parts := strings.Split(path, ".")
		m := o
		for _, p := range parts[:len(parts)-1] {
			if p == "lines0" {
				m = m["lines"].([]any)[0].(map[string]any)
				continue
			}
			m = m[p].(map[string]any)
		}
		if v == nil {
			delete(m, parts[len(parts)-1])
			return
		}
		m[parts[len(parts)-1]] = v
	}
}

func manyLines(n int) func(map[string]any) {
	return func(o map[string]any) {
		lines := make([]any, n)
		for i := range lines {
			lines[i] = map[string]any{"sku": "S", "name": "n", "quantity": 1, "unit_price": 1}
		}
		o["lines"] = lines
	}
}

// Every kind of bad input gets a clear 4xx naming the field, and writes nothing.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")
		cases := []struct {
			name   string
			body   any
			status int
			code   string
			field  string
		}{
			{"malformed JSON", `{"currency": "USD",`, 400, "malformed", ""},
			{"not an object", `[1,2]`, 400, "malformed", ""},
			{"empty body", ``, 400, "malformed", ""},
			{"trailing data", `{"currency":"USD"} {}`, 400, "malformed", ""},
			{"unknown field", order(set("colour", "red")), 422, "invalid", "colour"},
			{"unknown nested field", order(set("customer.age", 3)), 422, "invalid", "customer.age"},
			{"missing currency", order(set("currency", nil)), 422, "invalid", "currency"},
			{"unknown currency", order(set("currency", "XXX")), 422, "invalid", "currency"},
			{"lower-case currency", order(set("currency", "usd")), 422, "invalid", "currency"},
			{"wrong-typed currency", order(set("currency", 840)), 422, "invalid", "currency"},
			{"missing customer", order(set("customer", nil)), 422, "invalid", "customer"},
			{"missing customer name", order(set("customer.name", nil)), 422, "invalid", "customer.name"},
			{"bad email", order(set("customer.email", "amina@")), 422, "invalid", "customer.email"},
			{"email with a name", order(set("customer.email", "Amina <a@example.com>")), 422, "invalid", "customer.email"},
			{"bad phone", order(set("customer.phone", "call me")), 422, "invalid", "customer.phone"},
			{"short phone", order(set("customer.phone", "+2135")), 422, "invalid", "customer.phone"},
			{"no contact", order(set("customer.email", nil), set("customer.phone", nil)), 422, "invalid", "customer"},
			{"no lines", order(set("lines", []any{})), 422, "invalid", "lines"},
			{"too many lines", order(manyLines(501)), 422, "invalid", "lines"},
			{"zero quantity", order(set("lines0.quantity", 0)), 422, "invalid", "lines[0].quantity"},
			{"negative quantity", order(set("lines0.quantity", -2)), 422, "invalid", "lines[0].quantity"},
			{"fractional quantity", order(set("lines0.quantity", 1.5)), 422, "invalid", "lines[0].quantity"},
			{"string quantity", order(set("lines0.quantity", "2")), 422, "invalid", "lines[0].quantity"},
			{"missing quantity", order(set("lines0.quantity", nil)), 422, "invalid", "lines[0].quantity"},
			{"negative price", order(set("lines0.unit_price", -1)), 422, "invalid", "lines[0].unit_price"},
			{"missing price", order(set("lines0.unit_price", nil)), 422, "invalid", "lines[0].unit_price"},
			{"price beyond int64", `{"currency":"USD","customer":{"name":"a","email":"a@b.co"},"lines":[{"sku":"s","name":"n","quantity":1,"unit_price":92233720368547758070}]}`, 422, "invalid", "lines[0].unit_price"},
			{"line total overflows", order(set("lines0.quantity", 1000000), set("lines0.unit_price", int64(9223372036854775))), 422, "invalid", "lines[0]"},
			{"order total overflows", order(set("lines", []any{
				map[string]any{"sku": "A", "name": "a", "quantity": 1000, "unit_price": int64(9e15)},
				map[string]any{"sku": "B", "name": "b", "quantity": 1000, "unit_price": int64(9e15)},
			})), 422, "invalid", "lines"},
			{"missing sku", order(set("lines0.sku", nil)), 422, "invalid", "lines[0].sku"},
			{"sku with a slash", order(set("lines0.sku", "A/B")), 422, "invalid", "lines[0].sku"},
			{"long name", order(set("lines0.name", strings.Repeat("x", 201))), 422, "invalid", "lines[0].name"},
			{"NUL in a name", order(set("customer.name", "Am\x00ina")), 422, "invalid", "customer.name"},
			{"long notes", order(set("notes", strings.Repeat("n", 2001))), 422, "invalid", "notes"},
			{"bad ship date", order(set("ship_date", "31/03/2026")), 422, "invalid", "ship_date"},
			{"bad country", order(set("shipping_address.country", "Algeria")), 422, "invalid", "shipping_address.country"},
			{"missing address line", order(set("shipping_address.line1", nil)), 422, "invalid", "shipping_address.line1"},
			{"metadata not an object", order(set("metadata", []any{1})), 422, "invalid", "metadata"},
			{"unknown flow", order(set("flow", "teleportation")), 422, "invalid", "flow"},
			// Issue 16: input that was stored, or misreported.
			{"type error in the second line", order(set("lines", []any{
				map[string]any{"sku": "A", "name": "a", "quantity": 1, "unit_price": 1},
				map[string]any{"sku": "B", "name": "b", "quantity": "1", "unit_price": 1},
			})), 422, "invalid", "lines[1].quantity"},
			{"object for a list", order(set("lines", map[string]any{"sku": "A"})), 422, "invalid", "lines"},
			{"invalid UTF-8", strings.Replace(mustJSON(order()), "Amina B.", "Eve\xff\xfe", 1), 400, "malformed", ""},
			{"lone low surrogate", strings.Replace(mustJSON(order()), "Amina B.", `Eve\udcff`, 1), 400, "malformed", ""},
			{"lone high surrogate", strings.Replace(mustJSON(order()), "Amina B.", `Eve\ud800`, 1), 400, "malformed", ""},
			{"high surrogate then not a low one", strings.Replace(mustJSON(order()), "Amina B.", `Eve\ud800\u0041`, 1), 400, "malformed", ""},
			{"invalid UTF-8 in metadata", strings.Replace(mustJSON(order(set("metadata", map[string]any{"k": "v"}))), `"v"`, "\"\xc3\"", 1), 400, "malformed", ""},
			{"NUL in a metadata value", order(set("metadata", map[string]any{"gift": "yes\x00"})), 422, "invalid", "metadata.gift"},
			{"NUL deep in metadata", order(set("metadata", map[string]any{"a": []any{map[string]any{"b": "\x00"}}})), 422, "invalid", "metadata.a[0].b"},
			{"control character in a metadata key", order(set("metadata", map[string]any{"k\x01": "v"})), 422, "invalid", "metadata"},
			{"NUL in a customization", order(set("lines0.customization", map[string]any{"text": "Hi\x00"})), 422, "invalid", "lines[0].customization.text"},
			{"escape in a customization", order(set("lines0.customization", map[string]any{"text": "\x1b[31m"})), 422, "invalid", "lines[0].customization.text"},
			{"sku with a space", order(set("lines0.sku", "A B")), 422, "invalid", "lines[0].sku"},
			{"field name in another case", order(set("currency", nil), set("CURRENCY", "DZD")), 422, "invalid", "CURRENCY"},
			{"nested field name in another case", order(set("customer.name", nil), set("customer.Name", "Amina")), 422, "invalid", "customer.Name"},
			{"line field name in another case", order(set("lines0.SKU", "X")), 422, "invalid", "lines[0].SKU"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res := c.do("POST", "/v1/orders", c.sf, tc.body)
				if res.status != tc.status || res.errField("code") != tc.code || res.errField("field") != tc.field {
					t.Fatalf("got %d %s, want %d %s field %q", res.status, res.raw, tc.status, tc.code, tc.field)
				}
				if res.errField("message") == "" {
					t.Fatal("error without a message")
				}
			})
		}
		big := `{"notes":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
		if res := c.do("POST", "/v1/orders", c.sf, big); res.status != 413 || res.errField("code") != "too_large" {
			t.Fatalf("1 MiB body: %d %s", res.status, res.raw)
		}
		if n := c.orderCount(); n != 0 {
			t.Fatalf("refused requests wrote %d orders", n)
		}
		var rows int
		c.db.SQL().Get(&rows, "SELECT COUNT(*) FROM outbox")
		if rows != 0 {
			t.Fatalf("refused requests wrote %d outbox rows", rows)
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Valid text is kept exactly: a surrogate pair is one character, newlines
// and tabs in metadata and customizations are text.
func TestValidTextIsKept(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		c := newClient(t, dialect, "cash-on-delivery")
		body := strings.Replace(mustJSON(order(set("metadata", map[string]any{"gift": "line 1\n\tline 2"}),
			set("lines0.customization", map[string]any{"text": "Hi"}))), "Amina B.", `Amina \ud83d\ude00 \\udcff`, 1)
		res := c.do("POST", "/v1/orders", c.sf, body)
		if res.status != 201 {
			t.Fatalf("create: %d %s", res.status, res.raw)
		}
		if got := res.body["customer"].(map[string]any)["name"]; got != "Amina \U0001F600 \\udcff" {
			t.Fatalf("name stored as %q", got)
		}
		if got := res.body["metadata"].(map[string]any)["gift"]; got != "line 1\n\tline 2" {
			t.Fatalf("metadata stored as %q", got)
		}
	})
}

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct{ in, country, want string }{
		{"+213 555 12 34 56", "", "+213555123456"},
		{"00213555123456", "", "+213555123456"},
		{"0555-12-34-56", "DZ", "+213555123456"},
		{"(415) 555-0100", "US", "+14155550100"},
		{"06 12 34 56 78", "FR", "+33612345678"},
		{"0555123456", "", ""},
		{"+0555123456", "", ""},
		{"+1234", "", ""},
		{"+213 555 12 34 56 ext 3", "", ""},
	} {
		got, err := api.NormalizePhone(tc.in, tc.country)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q", tc.in, tc.country, got, err, tc.want)
		}
	}
}

// FuzzCreateOrder: whatever the body, the API answers 2xx or a 4xx, never a
// 5xx, and a refused request writes nothing.
func FuzzCreateOrder(f *testing.F) {
	seed, _ := json.Marshal(order())
	f.Add(string(seed))
	f.Add(`{"currency":"USD","customer":{"name":"a","phone":"+12025550100"},"lines":[{"sku":"s","name":"n","quantity":1,"unit_price":0}],"metadata":{"a":[1,{"b":null}]}}`)
	f.Add(`{"lines":[{"quantity":1e400}]}`)
	f.Add(`{"customer":{"name":"\u0000"}}`)
	f.Add(`{"currency":"JPY","customer":{"name":"x","email":"x@y.jp"},"lines":[{"sku":"s","name":"n","quantity":9,"unit_price":9223372036854775807}]}`)
	db := storetest.Open(f, store.SQLite, store.Options{})
	s, sf, _, err := db.CreateStore(f.Context(), "fuzz", "cash-on-delivery")
	if err != nil {
		f.Fatal(err)
	}
	api := api.New(api.Config{DB: db})
	f.Fuzz(func(t *testing.T, body string) {
		h := specHandler(t, api) // the answer must be one the spec lists
		var before int
		db.SQL().Get(&before, "SELECT COUNT(*) FROM orders WHERE store_id = ?", s.ID)
		req := httptest.NewRequest("POST", "/v1/orders", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+sf)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
		var after int
		db.SQL().Get(&after, "SELECT COUNT(*) FROM orders WHERE store_id = ?", s.ID)
		switch {
		case rec.Code == http.StatusCreated && after != before+1:
			t.Fatalf("201 but %d new orders", after-before)
		case rec.Code != http.StatusCreated && after != before:
			t.Fatalf("%d but %d new orders (partial write)", rec.Code, after-before)
		}
	})
}
