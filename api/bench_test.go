package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/packline/packline/api"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// BenchmarkCreateOrder measures POST /v1/orders end to end through the
// handler: decode, validate, one transaction (order, lines, timeline,
// outbox), and the response. PostgreSQL when TEST_DATABASE_URL is set.
func BenchmarkCreateOrder(b *testing.B) {
	h, sf := benchAPI(b)
	body, _ := json.Marshal(order())
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/orders", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+sf)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 201 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// benchAPI is an API on a store of its own, with no rate limit in the way
// and no logs, and the store's storefront key.
func benchAPI(b *testing.B) (http.Handler, string) {
	b.Helper()
	db := storetest.Open(b, storetest.Default(), store.Options{})
	_, sf, _, err := db.CreateStore(b.Context(), "bench", "cash-on-delivery")
	if err != nil {
		b.Fatal(err)
	}
	return api.New(api.Config{DB: db, RateLimit: 1e9, RateBurst: 1 << 30, Logger: discardLogger()}), sf
}

// BenchmarkListOrders measures GET /v1/orders?limit=50: a page of views with
// their payments and shipments.
func BenchmarkListOrders(b *testing.B) {
	h, sf := benchAPI(b)
	body, _ := json.Marshal(order())
	for range 50 {
		req := httptest.NewRequest("POST", "/v1/orders", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+sf)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/v1/orders?limit=50", nil)
		req.Header.Set("Authorization", "Bearer "+sf)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
