package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// PACKLINE_ENV, the secret keyring and PACKLINE_STRIPE_API_URL: production
// needs the key that seals stores' Stripe keys; a bad value names its
// variable and never shows a key.
func TestPaymentsConfig(t *testing.T) {
	const key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	for _, tc := range []struct {
		name       string
		env        map[string]string
		production bool
		ready      bool
		wantErr    string
	}{
		{name: "defaults"},
		{name: "a key", env: map[string]string{"PACKLINE_SECRET_KEY": key}, ready: true},
		{name: "production", env: map[string]string{"PACKLINE_ENV": "production", "PACKLINE_SECRET_KEY": key}, production: true, ready: true},
		{name: "production without a key", env: map[string]string{"PACKLINE_ENV": "production"}, wantErr: "PACKLINE_ENV=production needs PACKLINE_SECRET_KEY"},
		{name: "unknown env", env: map[string]string{"PACKLINE_ENV": "prod"}, wantErr: `PACKLINE_ENV="prod"`},
		{name: "short key", env: map[string]string{"PACKLINE_SECRET_KEY": "c2hvcnQ="}, wantErr: "PACKLINE_SECRET_KEY must be 32 bytes"},
		{name: "old keys alone", env: map[string]string{"PACKLINE_SECRET_KEYS_OLD": key}, wantErr: "PACKLINE_SECRET_KEYS_OLD is set"},
		{name: "stripe url", env: map[string]string{"PACKLINE_STRIPE_API_URL": "http://127.0.0.1:12111"}},
		{name: "plain http in production", env: map[string]string{"PACKLINE_ENV": "production", "PACKLINE_SECRET_KEY": key, "PACKLINE_STRIPE_API_URL": "http://stripe"}, wantErr: "https only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := readConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), key) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Production != tc.production || c.Secrets.Ready() != tc.ready {
				t.Fatalf("production %v, keys ready %v, error %v", c.Production, c.Secrets.Ready(), err)
			}
		})
	}
}

// stores test-mode marks a store a test store (the sandbox in production)
// and back.
func TestStoresTestMode(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "p.db")}
	if out, err := runCmd(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	if out, err := runCmd(t, env, "stores", "create", "--name", "Anvil", "--flow", "made-to-order"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	db := cliDB(t, env)
	s, err := db.SetStoreTestMode(t.Context(), "Anvil", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, out string
		want      bool
	}{{"--on", "is a test store", true}, {"--off", "is a real store", false}} {
		out, err := runCmd(t, env, "stores", "test-mode", "--name", "Anvil", tc.flag)
		if err != nil || !strings.Contains(out, tc.out) {
			t.Fatalf("test-mode %s: %v %s", tc.flag, err, out)
		}
		if on, err := db.StoreTestMode(t.Context(), s.ID); err != nil || on != tc.want {
			t.Fatalf("after %s: test mode %v %v", tc.flag, on, err)
		}
	}
	if _, err := runCmd(t, env, "stores", "test-mode", "--name", "Anvil"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("neither --on nor --off: %v", err)
	}
	if _, err := runCmd(t, env, "stores", "test-mode", "--name", "Nope", "--on"); err == nil {
		t.Fatal("an unknown store was marked")
	}
}
