package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// stores set-rate-limit sets a store's limit (burst twice the rate unless
// given), and --default clears it; the store's keys carry it from then on.
func TestStoresSetRateLimit(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "p.db")}
	if out, err := runCmd(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	out, err := runCmd(t, env, "stores", "create", "--name", "Flash", "--flow", "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	sf := regexp.MustCompile(`storefront key: (\S+)`).FindStringSubmatch(out)
	if sf == nil {
		t.Fatalf("no key printed:\n%s", out)
	}
	db := cliDB(t, env)
	limitOf := func() (rate float64, burst int) {
		t.Helper()
		k, err := db.Authenticate(t.Context(), sf[1])
		if err != nil {
			t.Fatal(err)
		}
		if k.PerSecond != nil {
			rate = *k.PerSecond
		}
		if k.Burst != nil {
			burst = *k.Burst
		}
		return rate, burst
	}

	for _, tc := range []struct {
		args      []string
		wantOut   string
		wantRate  float64
		wantBurst int
	}{
		{[]string{"--name", "Flash", "--rate", "5000"}, "5000 requests/s per API key, burst 10000", 5000, 10000},
		{[]string{"--name", "Flash", "--rate", "2.5", "--burst", "3"}, "2.5 requests/s per API key, burst 3", 2.5, 3},
		{[]string{"--name", "Flash", "--default"}, "the default rate limit", 0, 0},
	} {
		out, err := runCmd(t, env, append([]string{"stores", "set-rate-limit"}, tc.args...)...)
		if err != nil || !strings.Contains(out, tc.wantOut) {
			t.Fatalf("%v: %v %s", tc.args, err, out)
		}
		if r, b := limitOf(); r != tc.wantRate || b != tc.wantBurst {
			t.Fatalf("%v: the key carries %v/s burst %d, want %v/s burst %d", tc.args, r, b, tc.wantRate, tc.wantBurst)
		}
	}

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--rate", "10"}, "usage: packline stores set-rate-limit"},
		{[]string{"--name", "Flash"}, "usage: packline stores set-rate-limit"},
		{[]string{"--name", "Flash", "--rate", "10", "--default"}, "usage: packline stores set-rate-limit"},
		{[]string{"--name", "Flash", "--rate", "-1"}, "want requests per second above 0"},
		{[]string{"--name", "Flash", "--rate", "10", "--burst", "-1"}, "a burst of at least 1"},
		{[]string{"--name", "Nobody", "--rate", "10"}, `no store named "Nobody"`},
	} {
		if _, err := runCmd(t, env, append([]string{"stores", "set-rate-limit"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Fatalf("%v: error %v, want %q", tc.args, err, tc.wantErr)
		}
	}
}
