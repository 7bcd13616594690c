package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String() + errOut.String(), err
}

// cliDB opens the database the commands under test were pointed at
// (env's DATABASE_URL, migrated by them), closed when the test ends.
func cliDB(t *testing.T, env map[string]string) *store.DB {
	t.Helper()
	reg, _ := flows.Builtin()
	db, err := store.Open(t.Context(), env["DATABASE_URL"], store.Options{Flows: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		wantOut string
	}{
		{name: "no role", wantErr: "no role given", wantOut: "Usage:"},
		{name: "help", args: []string{"--help"}, wantOut: "packline stores create"},
		{name: "unknown role", args: []string{"juggle"}, wantErr: `unknown role "juggle"`},
		{name: "bad timer scale", env: map[string]string{"PACKLINE_TIMER_SCALE": "fast"}, args: []string{"api"}, wantErr: "PACKLINE_TIMER_SCALE"},
		{name: "bad log level", env: map[string]string{"LOG_LEVEL": "loud"}, args: []string{"api"}, wantErr: "LOG_LEVEL"},
		{name: "bad database url", env: map[string]string{"DATABASE_URL": "mysql://x"}, args: []string{"api"}, wantErr: "DATABASE_URL must start with"},
		{name: "api without a database", args: []string{"api"}, wantErr: "DATABASE_URL is not set"},
		{name: "worker without redis", env: map[string]string{"DATABASE_URL": "sqlite:/nonexistent/x.db"}, args: []string{"worker"}, wantErr: "REDIS_URL is not set"},
		{name: "flows list", args: []string{"flows", "list"}, wantOut: "cash-on-delivery"},
		{name: "flows show mermaid", args: []string{"flows", "show", "wholesale"}, wantOut: "stateDiagram-v2"},
		{name: "flows show dot", args: []string{"flows", "show", "prepaid-simple", "--format", "dot"}, wantOut: "digraph"},
		{name: "flows show unknown", args: []string{"flows", "show", "nope"}, wantErr: `unknown flow "nope"`},
		{name: "flows show bad format", args: []string{"flows", "show", "wholesale", "--format", "svg"}, wantErr: "svg"},
		{name: "stores without flags", args: []string{"stores", "create"}, wantErr: "usage: packline stores create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCmd(t, tc.env, tc.args...)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("error %v\n%s", err, out)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("output does not contain %q:\n%s", tc.wantOut, out)
			}
		})
	}
}

// migrate, then stores create prints two keys that authenticate with their
// scopes; a custom flow from PACKLINE_FLOWS_DIR is listed.
func TestMigrateAndCreateStore(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(dir, "p.db")}
	if _, err := runCmd(t, env, "stores", "create", "--name", "Copper Anvil", "--flow", "made-to-order"); err == nil || !strings.Contains(err.Error(), "packline migrate") {
		t.Fatalf("stores create before migrate: %v", err)
	}
	if out, err := runCmd(t, env, "migrate"); err != nil || !strings.Contains(out, "migrations applied") {
		t.Fatalf("migrate: %v %s", err, out)
	}
	out, err := runCmd(t, env, "stores", "create", "--name", "Copper Anvil", "--flow", "made-to-order")
	if err != nil {
		t.Fatal(err)
	}
	sf := regexp.MustCompile(`storefront key: (\S+)`).FindStringSubmatch(out)
	mk := regexp.MustCompile(`merchant key:\s+(\S+)`).FindStringSubmatch(out)
	if sf == nil || mk == nil {
		t.Fatalf("keys not printed:\n%s", out)
	}
	db := cliDB(t, env)
	for key, scope := range map[string]store.Scope{sf[1]: store.ScopeStorefront, mk[1]: store.ScopeMerchant} {
		k, err := db.Authenticate(t.Context(), key)
		if err != nil || k.Scope != scope {
			t.Fatalf("%s: %v %v", scope, k, err)
		}
	}
	var stored int
	db.SQL().Get(&stored, "SELECT COUNT(*) FROM api_keys WHERE key_hash = ? OR prefix = ?", sf[1], sf[1])
	if stored != 0 {
		t.Fatal("a key is stored in clear")
	}
	if _, err := runCmd(t, env, "stores", "create", "--name", "X", "--flow", "teleport"); err == nil || !strings.Contains(err.Error(), "unknown flow") {
		t.Fatalf("unknown flow: %v", err)
	}
}
