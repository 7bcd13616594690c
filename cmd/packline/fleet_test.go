package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/packline/packline/redistest"
	"github.com/packline/packline/relay"
)

// A second fleet (another database) pointed at a Redis database a fleet
// uses is refused at start, with both fleets named.
func TestSecondFleetOnOneRedisIsRefused(t *testing.T) {
	r := redistest.New(t)
	dir := t.TempDir()
	envA := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(dir, "a.db"), "REDIS_URL": r.URL()}
	envB := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(dir, "b.db"), "REDIS_URL": r.URL(), "PACKLINE_OPS_ADDR": "127.0.0.1:0"}
	for _, env := range []map[string]string{envA, envB} {
		if out, err := runCmd(t, env, "migrate"); err != nil {
			t.Fatalf("migrate: %v %s", err, out)
		}
	}
	a := cliDB(t, envA)
	fleetA, err := stampFleet(t.Context(), a, r.Opt())
	if err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, envB, "worker")
	if err == nil {
		t.Fatal("fleet B started on fleet A's Redis database")
	}
	b := cliDB(t, envB)
	idB, _ := b.FleetID(t.Context())
	for _, want := range []string{relay.ErrForeignFleet.Error(), fleetA.ID, "a.db", idB, "b.db"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	// Fleet A itself may stamp again (every role does at start).
	if _, err := stampFleet(t.Context(), a, r.Opt()); err != nil {
		t.Fatal(err)
	}
}
