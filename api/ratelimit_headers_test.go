package api

import (
	"net/http"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The RateLimit fields describe the bucket exactly, in whole numbers that
// never promise more than it holds.
func TestRateLimitHeaderValues(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limit         rate.Limit
		burst         int
		tokens        float64
		policy, state string
	}{
		{"full", 1000, 2000, 2000, `"api-key";q=2000;w=2`, `"api-key";r=2000;t=0`},
		{"one spent", 1000, 2000, 1999, `"api-key";q=2000;w=2`, `"api-key";r=1999;t=1`},
		{"part of a token left rounds down", 1000, 2000, 0.6, `"api-key";q=2000;w=2`, `"api-key";r=0;t=2`},
		{"empty", 50, 100, 0, `"api-key";q=100;w=2`, `"api-key";r=0;t=2`},
		{"owed tokens count as none", 50, 100, -3, `"api-key";q=100;w=2`, `"api-key";r=0;t=2`},
		{"more than the burst after a lowering", 10, 5, 40, `"api-key";q=5;w=1`, `"api-key";r=5;t=0`},
		{"a window under a second is one", 1000, 10, 10, `"api-key";q=10;w=1`, `"api-key";r=10;t=0`},
		{"slow refill", 0.5, 3, 1, `"api-key";q=3;w=6`, `"api-key";r=1;t=4`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			setRateLimitHeaders(h, tc.limit, tc.burst, tc.tokens)
			if got := h.Get("RateLimit-Policy"); got != tc.policy {
				t.Errorf("RateLimit-Policy %q, want %q", got, tc.policy)
			}
			if got := h.Get("RateLimit"); got != tc.state {
				t.Errorf("RateLimit %q, want %q", got, tc.state)
			}
		})
	}
}

func TestCeilSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		time.Nanosecond: 1, 50 * time.Millisecond: 1, time.Second: 1, time.Second + 1: 2, 999*time.Second + 100*time.Millisecond: 1000,
	} {
		if got := ceilSeconds(d); got != want {
			t.Errorf("ceilSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
