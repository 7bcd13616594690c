package main

import (
	"strings"
	"testing"

	"github.com/packline/packline/api"
)

// The API's default per-key rate limit comes from PACKLINE_RATE_LIMIT and
// PACKLINE_RATE_BURST; a bad value names the variable and what it wants.
func TestRateLimitConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		wantLimit float64
		wantBurst int
		wantErr   string
	}{
		{name: "defaults", wantLimit: api.DefaultRateLimit, wantBurst: api.DefaultRateBurst},
		{name: "both", env: map[string]string{"PACKLINE_RATE_LIMIT": "250", "PACKLINE_RATE_BURST": "500"}, wantLimit: 250, wantBurst: 500},
		{name: "a fraction", env: map[string]string{"PACKLINE_RATE_LIMIT": "0.5"}, wantLimit: 0.5, wantBurst: api.DefaultRateBurst},
		{name: "burst only", env: map[string]string{"PACKLINE_RATE_BURST": "10"}, wantLimit: api.DefaultRateLimit, wantBurst: 10},
		{name: "zero rate", env: map[string]string{"PACKLINE_RATE_LIMIT": "0"}, wantErr: "PACKLINE_RATE_LIMIT=\"0\": want requests per second"},
		{name: "negative rate", env: map[string]string{"PACKLINE_RATE_LIMIT": "-1"}, wantErr: "PACKLINE_RATE_LIMIT"},
		{name: "infinite rate", env: map[string]string{"PACKLINE_RATE_LIMIT": "Inf"}, wantErr: "PACKLINE_RATE_LIMIT"},
		{name: "not a number", env: map[string]string{"PACKLINE_RATE_LIMIT": "lots"}, wantErr: "PACKLINE_RATE_LIMIT"},
		{name: "zero burst", env: map[string]string{"PACKLINE_RATE_BURST": "0"}, wantErr: "PACKLINE_RATE_BURST=\"0\": want the requests"},
		{name: "fractional burst", env: map[string]string{"PACKLINE_RATE_BURST": "1.5"}, wantErr: "PACKLINE_RATE_BURST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := readConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.RateLimit != tc.wantLimit || c.RateBurst != tc.wantBurst {
				t.Fatalf("RateLimit %v, RateBurst %d, error %v; want %v, %d", c.RateLimit, c.RateBurst, err, tc.wantLimit, tc.wantBurst)
			}
		})
	}
}
