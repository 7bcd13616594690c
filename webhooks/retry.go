package webhooks

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Schedule is the wait before each retry after a failed attempt (Svix's):
// the first attempt is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
// 10 h later, about 28 hours in all; then the message is given up.
var Schedule = [...]time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// MaxAttempts is how many attempts a message gets: the first and one per
// Schedule step.
const MaxAttempts = len(Schedule) + 1

// MaxRetryAfter caps a receiver's Retry-After, so a hostile or broken value
// cannot park a message for ever.
const MaxRetryAfter = 10 * time.Hour

// DisableAfter is how long an endpoint may fail without a single success
// before it is disabled and the merchant told.
const DisableAfter = 5 * 24 * time.Hour

// NextRetry returns how long to wait after the attempt-th attempt (counted
// from 1) failed, and false when that was the last attempt. The scheduled
// wait is multiplied by scale (PACKLINE_TIMER_SCALE; 0 means 1); a longer
// retryAfter from the receiver (Result.RetryAfter) wins, capped at
// MaxRetryAfter and not scaled: it is the receiver's own ask.
func NextRetry(attempt int, scale float64, retryAfter time.Duration) (time.Duration, bool) {
	if attempt < 1 || attempt > len(Schedule) {
		return 0, false
	}
	d := scaled(Schedule[attempt-1], scale)
	if retryAfter > MaxRetryAfter {
		retryAfter = MaxRetryAfter
	}
	if retryAfter > d {
		d = retryAfter
	}
	return d, true
}

// ShouldDisable reports whether an endpoint that has failed every delivery
// since failingSince (its first failure after its last success) has failed
// for DisableAfter (scaled).
func ShouldDisable(failingSince, now time.Time, scale float64) bool {
	return !failingSince.IsZero() && now.Sub(failingSince) >= scaled(DisableAfter, scale)
}

func scaled(d time.Duration, scale float64) time.Duration {
	if scale <= 0 || scale == 1 {
		return d
	}
	return time.Duration(float64(d) * scale)
}

// ParseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 for an absent, unreadable or past value.
func ParseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
