package main

import (
	"strings"
	"testing"
)

func TestCourierConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(c Config) bool
	}{
		{name: "defaults", check: func(c Config) bool { return c.DevCourierPlay && c.SandboxCourierSecret == "" && c.PublicURL == "" }},
		{name: "play off", env: map[string]string{"PACKLINE_DEV_COURIER_PLAY": "false"}, check: func(c Config) bool { return !c.DevCourierPlay }},
		{name: "play not a bool", env: map[string]string{"PACKLINE_DEV_COURIER_PLAY": "sometimes"}, wantErr: "PACKLINE_DEV_COURIER_PLAY"},
		{name: "sandbox secret", env: map[string]string{"PACKLINE_SANDBOX_COURIER_SECRET": "0123456789abcdef"},
			check: func(c Config) bool { return c.SandboxCourierSecret == "0123456789abcdef" }},
		{name: "short sandbox secret", env: map[string]string{"PACKLINE_SANDBOX_COURIER_SECRET": "hunter2"}, wantErr: "PACKLINE_SANDBOX_COURIER_SECRET: want at least 16"},
		{name: "public url", env: map[string]string{"PACKLINE_PUBLIC_URL": "https://api.example.com/"},
			check: func(c Config) bool { return c.PublicURL == "https://api.example.com" }},
		{name: "public url without scheme", env: map[string]string{"PACKLINE_PUBLIC_URL": "api.example.com"}, wantErr: "PACKLINE_PUBLIC_URL"},
		{name: "public url with a query", env: map[string]string{"PACKLINE_PUBLIC_URL": "https://api.example.com/?x=1"}, wantErr: "PACKLINE_PUBLIC_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := readConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error repeats the secret: %v", err)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("config %+v, error %v", c, err)
			}
		})
	}
}

func TestDevWiringHelpers(t *testing.T) {
	if !isDev(allRoles) || isDev([]string{"api"}) || isDev([]string{"api", "worker"}) {
		t.Fatal("isDev")
	}
	for in, want := range map[string]string{
		"[::]:8080":       "127.0.0.1:8080",
		"0.0.0.0:8080":    "127.0.0.1:8080",
		":8080":           "127.0.0.1:8080",
		"127.0.0.1:41234": "127.0.0.1:41234",
		"[::1]:8080":      "[::1]:8080",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
