package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"golang.org/x/time/rate"
)

// The default per-key rate limit (PACKLINE_RATE_LIMIT, PACKLINE_RATE_BURST;
// a store may override it). It is per API process and per key: 1,000
// requests a second is the whole intake target of a 2-core fleet (issue 8),
// so a well-behaved storefront is never throttled below what the server can
// take, and a burst of 2,000 lets a flash sale open at full speed. A client
// stuck in a loop, which sends tens of thousands a second, is held to it.
const (
	DefaultRateLimit = 1000
	DefaultRateBurst = 2000
)

// rateLimitPolicy names the per-key policy in the RateLimit-Policy and
// RateLimit response headers.
const rateLimitPolicy = "api-key"

// spend takes one request from the key's token bucket and sets the RateLimit
// headers (draft-ietf-httpapi-ratelimit-headers) on w. When the bucket is
// empty it takes nothing, sets Retry-After, and returns ERATELIMIT.
func (s *Server) spend(w http.ResponseWriter, k store.Key) error {
	b := s.bucket(k)
	now := time.Now()
	res := b.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay > 0 {
		// Refused: give the token back, so that a client retrying too
		// early does not push its own retry further out.
		res.CancelAt(now)
	}
	setRateLimitHeaders(w.Header(), b.Limit(), b.Burst(), b.TokensAt(now))
	if delay <= 0 {
		return nil
	}
	wait := ceilSeconds(delay)
	w.Header().Set("Retry-After", strconv.FormatInt(wait, 10))
	return packline.Errorf(packline.ERATELIMIT, "too many requests for this API key (%s requests/s, burst %d); retry after %d s",
		strconv.FormatFloat(float64(b.Limit()), 'f', -1, 64), b.Burst(), wait)
}

// bucket returns the key's token bucket, set to its store's current limit:
// a change an operator makes applies on the key's next request, with the
// tokens the key has left.
func (s *Server) bucket(k store.Key) *rate.Limiter {
	limit, burst := s.limitOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[k.ID]
	if b == nil {
		b = rate.NewLimiter(limit, burst)
		s.buckets[k.ID] = b
		return b
	}
	if b.Limit() != limit {
		b.SetLimit(limit)
	}
	if b.Burst() != burst {
		b.SetBurst(burst)
	}
	return b
}

// limitOf is the key's limit: its store's override, else the server's
// default, field by field.
func (s *Server) limitOf(k store.Key) (rate.Limit, int) {
	limit, burst := s.limit, s.burst
	if k.PerSecond != nil {
		limit = rate.Limit(*k.PerSecond)
	}
	if k.Burst != nil {
		burst = *k.Burst
	}
	return limit, burst
}

// setRateLimitHeaders describes a token bucket of burst tokens refilled at
// limit a second, holding tokens now, in the fields of
// draft-ietf-httpapi-ratelimit-headers (-08 and later):
//
//	RateLimit-Policy: "api-key";q=<burst>;w=<seconds a full refill takes>
//	RateLimit: "api-key";r=<whole tokens left>;t=<seconds until full again>
//
// w is rounded up, so a client that paces itself at q/w requests a second
// stays within the limit.
func setRateLimitHeaders(h http.Header, limit rate.Limit, burst int, tokens float64) {
	tokens = max(0, min(tokens, float64(burst)))
	window := max(1, int64(math.Ceil(float64(burst)/float64(limit))))
	reset := int64(math.Ceil((float64(burst) - tokens) / float64(limit)))
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", rateLimitPolicy, burst, window))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", rateLimitPolicy, int64(tokens), reset))
}

// ceilSeconds is d in whole seconds, rounded up (Retry-After takes whole
// seconds; rounding down would invite a retry that is refused again).
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}
