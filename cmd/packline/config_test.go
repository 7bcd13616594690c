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

// packline dev binds the loopback interface unless an address is given, and
// allows private webhook addresses unless PACKLINE_WEBHOOK_ALLOW_PRIVATE
// says otherwise (issue 16: it listened on every interface and forced true).
func TestDevDefaults(t *testing.T) {
	for _, tc := range []struct {
		name              string
		env               map[string]string
		httpFlag, opsFlag string
		http, ops         string
		allowPrivate      bool
	}{
		{name: "nothing set", http: "127.0.0.1:8080", ops: "127.0.0.1:9090", allowPrivate: true},
		{name: "addresses from the environment", env: map[string]string{"PACKLINE_HTTP_ADDR": ":8080", "PACKLINE_OPS_ADDR": "0.0.0.0:9999"},
			http: ":8080", ops: "0.0.0.0:9999", allowPrivate: true},
		{name: "flags win", env: map[string]string{"PACKLINE_HTTP_ADDR": ":8080"}, httpFlag: "127.0.0.1:0", opsFlag: "[::1]:0",
			http: "127.0.0.1:0", ops: "[::1]:0", allowPrivate: true},
		{name: "private webhooks refused when told", env: map[string]string{"PACKLINE_WEBHOOK_ALLOW_PRIVATE": "false"},
			http: "127.0.0.1:8080", ops: "127.0.0.1:9090", allowPrivate: false},
		{name: "private webhooks allowed when told", env: map[string]string{"PACKLINE_WEBHOOK_ALLOW_PRIVATE": "true"},
			http: "127.0.0.1:8080", ops: "127.0.0.1:9090", allowPrivate: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := readConfig(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			c = devDefaults(c, tc.httpFlag, tc.opsFlag)
			if c.HTTPAddr != tc.http || c.OpsAddr != tc.ops || c.AllowPrivate != tc.allowPrivate {
				t.Fatalf("http %q ops %q allowPrivate %v; want %q %q %v", c.HTTPAddr, c.OpsAddr, c.AllowPrivate, tc.http, tc.ops, tc.allowPrivate)
			}
		})
	}
	// Outside dev the defaults stay: every interface, private refused.
	c, _ := readConfig(func(string) string { return "" })
	if c.HTTPAddr != ":8080" || c.OpsAddr != ":9090" || c.AllowPrivate {
		t.Fatalf("readConfig defaults changed: %q %q %v", c.HTTPAddr, c.OpsAddr, c.AllowPrivate)
	}
}
