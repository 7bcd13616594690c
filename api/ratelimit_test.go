package api_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/api"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

func ptr[T any](v T) *T { return &v }

// policy is the RateLimit-Policy header of a bucket of burst requests
// refilled fully in window seconds.
func policy(burst, window int) string { return fmt.Sprintf(`"api-key";q=%d;w=%d`, burst, window) }

// remaining is the r parameter of the RateLimit header, or -1.
func (r response) remaining() int {
	var rem, reset int
	if _, err := fmt.Sscanf(r.header.Get("RateLimit"), `"api-key";r=%d;t=%d`, &rem, &reset); err != nil {
		return -1
	}
	return rem
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still not %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The default per-key limit is the API's configuration, announced on a 2xx.
func TestRateLimitDefaultFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name       string
		limit      float64
		burst      int
		wantPolicy string
	}{
		{"unset: the built-in default", 0, 0, policy(api.DefaultRateBurst, api.DefaultRateBurst/api.DefaultRateLimit)},
		{"configured", 50, 100, policy(100, 2)},
		{"burst below a second's worth", 1000, 10, policy(10, 1)},
		{"a refill over several seconds, rounded up", 0.3, 2, policy(2, 7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClientWith(t, storetest.Default(), "cash-on-delivery", api.Config{RateLimit: tc.limit, RateBurst: tc.burst})
			res := c.do("GET", "/v1/orders", c.sf, nil)
			if res.status != 200 {
				t.Fatalf("GET /v1/orders: %d %s", res.status, res.raw)
			}
			if got := res.header.Get("RateLimit-Policy"); got != tc.wantPolicy {
				t.Fatalf("RateLimit-Policy %q, want %q", got, tc.wantPolicy)
			}
			burst := tc.burst
			if burst == 0 {
				burst = api.DefaultRateBurst
			}
			// One request spent, read at the same instant: exactly burst-1 left.
			if rem := res.remaining(); rem != burst-1 {
				t.Fatalf("RateLimit %q: want r=%d", res.header.Get("RateLimit"), burst-1)
			}
			if res.header.Get("Retry-After") != "" {
				t.Fatalf("a 200 with Retry-After %q", res.header.Get("Retry-After"))
			}
		})
	}
}

// Every answer to a valid key carries the headers, whatever its status; an
// answer to no key or a bad one does not (it spent nothing of a key's).
func TestRateLimitHeadersOnEveryAuthenticatedAnswer(t *testing.T) {
	c := newClient(t, storetest.Default(), "cash-on-delivery")
	for _, tc := range []struct {
		method, path, key string
		body              any
		status            int
		headers           bool
	}{
		{"POST", "/v1/orders", c.sf, order(), 201, true},
		{"GET", "/v1/orders/ord_nope", c.sf, nil, 404, true},
		{"PUT", "/v1/stock/TEE-M", c.sf, map[string]any{"on_hand": 1}, 403, true},
		{"POST", "/v1/orders", c.sf, "{", 400, true},
		{"GET", "/v1/orders", "", nil, 401, false},
		{"GET", "/v1/orders", "pl_sf_not_a_key_of_anyone_at_all", nil, 401, false},
	} {
		t.Run(fmt.Sprintf("%s %s %d", tc.method, tc.path, tc.status), func(t *testing.T) {
			res := c.do(tc.method, tc.path, tc.key, tc.body)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.raw)
			}
			has := res.header.Get("RateLimit-Policy") != "" && res.header.Get("RateLimit") != ""
			if has != tc.headers {
				t.Fatalf("RateLimit-Policy %q, RateLimit %q; want them: %v", res.header.Get("RateLimit-Policy"), res.header.Get("RateLimit"), tc.headers)
			}
		})
	}
}

// A key past its limit is answered 429 with Retry-After (whole seconds,
// rounded up) and the RateLimit headers; a refused request costs nothing, so
// the key gets through again once its bucket refills.
func TestRateLimit429(t *testing.T) {
	t.Run("slow refill", func(t *testing.T) {
		// One request per 1,000 s after a burst of 2.
		c := newClientWith(t, storetest.Default(), "cash-on-delivery", api.Config{RateLimit: 0.001, RateBurst: 2})
		for i := range 2 {
			if res := c.do("GET", "/v1/orders", c.sf, nil); res.status != 200 || res.remaining() != 1-i {
				t.Fatalf("request %d: %d, RateLimit %q", i, res.status, res.header.Get("RateLimit"))
			}
		}
		for i := range 3 {
			res := c.do("GET", "/v1/orders", c.sf, nil)
			if res.status != 429 || res.errField("code") != packline.ERATELIMIT {
				t.Fatalf("refused request %d: %d %s", i, res.status, res.raw)
			}
			// A token comes in 1,000 s, less the moments the test took.
			if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 990 || ra > 1000 {
				t.Fatalf("Retry-After %q, want about 1000 (and no more: the refusals took nothing)", res.header.Get("Retry-After"))
			}
			if got := res.header.Get("RateLimit-Policy"); got != policy(2, 2000) {
				t.Fatalf("RateLimit-Policy %q", got)
			}
			if res.remaining() != 0 {
				t.Fatalf("RateLimit %q, want r=0", res.header.Get("RateLimit"))
			}
		}
	})
	t.Run("fast refill", func(t *testing.T) {
		c := newClientWith(t, storetest.Default(), "cash-on-delivery", api.Config{RateLimit: 20, RateBurst: 1})
		if res := c.do("GET", "/v1/orders", c.sf, nil); res.status != 200 {
			t.Fatalf("first request: %d %s", res.status, res.raw)
		}
		// Spend the refills until one is refused: Retry-After rounds 50 ms up.
		waitFor(t, 5*time.Second, "refused", func() bool {
			res := c.do("GET", "/v1/orders", c.sf, nil)
			if res.status == 429 && res.header.Get("Retry-After") != "1" {
				t.Fatalf("Retry-After %q, want 1", res.header.Get("Retry-After"))
			}
			return res.status == 429
		})
		waitFor(t, 5*time.Second, "let through after the refill", func() bool {
			return c.do("GET", "/v1/orders", c.sf, nil).status == 200
		})
	})
}

// A store's own limit overrides the default on its keys' next request, with
// no restart; clearing it restores the default; no other store is touched.
func TestStoreRateLimitOverride(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		for _, tc := range []struct {
			name       string
			set        store.RateLimit
			wantPolicy string
		}{
			{"rate and burst", store.RateLimit{PerSecond: ptr(0.001), Burst: ptr(1)}, policy(1, 1000)},
			{"rate only: the default burst", store.RateLimit{PerSecond: ptr(4000.0)}, policy(api.DefaultRateBurst, 1)},
			{"burst only: the default rate", store.RateLimit{Burst: ptr(5000)}, policy(5000, 5)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, dialect, "cash-on-delivery")
				ctx := t.Context()
				if res := c.do("GET", "/v1/orders", c.sf, nil); res.header.Get("RateLimit-Policy") != policy(api.DefaultRateBurst, 2) {
					t.Fatalf("before: RateLimit-Policy %q", res.header.Get("RateLimit-Policy"))
				}
				if _, err := c.db.SetStoreRateLimit(ctx, "shop", tc.set); err != nil {
					t.Fatal(err)
				}
				for _, key := range []string{c.sf, c.mk} {
					if res := c.do("GET", "/v1/orders", key, nil); res.header.Get("RateLimit-Policy") != tc.wantPolicy {
						t.Fatalf("after: RateLimit-Policy %q, want %q", res.header.Get("RateLimit-Policy"), tc.wantPolicy)
					}
				}
				if res := c.do("GET", "/v1/store", c.otherKey, nil); res.status != 200 || res.header.Get("RateLimit-Policy") != policy(api.DefaultRateBurst, 2) {
					t.Fatalf("another store: %d, RateLimit-Policy %q", res.status, res.header.Get("RateLimit-Policy"))
				}
				if _, err := c.db.SetStoreRateLimit(ctx, "shop", store.RateLimit{}); err != nil {
					t.Fatal(err)
				}
				if res := c.do("GET", "/v1/orders", c.sf, nil); res.header.Get("RateLimit-Policy") != policy(api.DefaultRateBurst, 2) {
					t.Fatalf("cleared: RateLimit-Policy %q", res.header.Get("RateLimit-Policy"))
				}
			})
		}
	})
}

// One store spending its whole limit leaves every other store's keys, and
// its own other key, their full buckets.
func TestRateLimitIsPerKeyNeverAcrossStores(t *testing.T) {
	// A default of one request per 1,000 s; the other store may send 10.
	c := newClientWith(t, storetest.Default(), "cash-on-delivery", api.Config{RateLimit: 0.001, RateBurst: 1})
	if _, err := c.db.SetStoreRateLimit(t.Context(), "other", store.RateLimit{Burst: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	if res := c.do("GET", "/v1/orders", c.sf, nil); res.status != 200 {
		t.Fatalf("shop's first request: %d", res.status)
	}
	if res := c.do("GET", "/v1/orders", c.sf, nil); res.status != 429 {
		t.Fatalf("shop's second request: %d", res.status)
	}
	if res := c.do("GET", "/v1/store", c.mk, nil); res.status != 200 || res.remaining() != 0 {
		t.Fatalf("shop's merchant key: %d, RateLimit %q", res.status, res.header.Get("RateLimit"))
	}
	for i := range 10 {
		if res := c.do("GET", "/v1/store", c.otherKey, nil); res.status != 200 || res.remaining() != 9-i {
			t.Fatalf("other store, request %d: %d, RateLimit %q", i, res.status, res.header.Get("RateLimit"))
		}
	}
}

// A limit no bucket can enforce, or a store that does not exist, is refused
// with what to fix.
func TestSetStoreRateLimitRefusesBadLimits(t *testing.T) {
	c := newClient(t, storetest.Default(), "cash-on-delivery")
	for _, tc := range []struct {
		name, store string
		set         store.RateLimit
		code, field string
	}{
		{"zero rate", "shop", store.RateLimit{PerSecond: ptr(0.0)}, packline.EINVALID, "rate_limit"},
		{"negative rate", "shop", store.RateLimit{PerSecond: ptr(-5.0)}, packline.EINVALID, "rate_limit"},
		{"zero burst", "shop", store.RateLimit{Burst: ptr(0)}, packline.EINVALID, "rate_burst"},
		{"no such store", "nope", store.RateLimit{Burst: ptr(10)}, packline.ENOTFOUND, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.db.SetStoreRateLimit(t.Context(), tc.store, tc.set)
			if packline.ErrorCode(err) != tc.code {
				t.Fatalf("error %v, want %s", err, tc.code)
			}
			if tc.field != "" && !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v does not name %s", err, tc.field)
			}
		})
	}
	if res := c.do("GET", "/v1/orders", c.sf, nil); res.header.Get("RateLimit-Policy") != policy(api.DefaultRateBurst, 2) {
		t.Fatalf("a refused change applied: RateLimit-Policy %q", res.header.Get("RateLimit-Policy"))
	}
}
