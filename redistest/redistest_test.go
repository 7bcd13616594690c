package redistest_test

import (
	"os"
	"testing"
	"time"

	"github.com/packline/packline/redistest"
)

// Each test's Redis is its own: a key set in one is not in another, and
// every one starts empty.
func TestNewIsolates(t *testing.T) {
	ctx := t.Context()
	a, b := redistest.New(t), redistest.New(t)
	ca, cb := a.Client(t), b.Client(t)
	if n, err := ca.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("a fresh Redis holds %d keys (%v)", n, err)
	}
	if err := ca.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := cb.Exists(ctx, "k").Result(); n != 0 {
		t.Fatal("a key leaked between tests' Redis")
	}
	if os.Getenv("TEST_REDIS_URL") != "" && (a.DB == b.DB || a.DB == 0 || b.DB == 0) {
		t.Fatalf("leased databases %d and %d", a.DB, b.DB)
	}
	a.Flush(t)
	if n, _ := ca.DBSize(ctx).Result(); n != 0 {
		t.Fatal("Flush left keys")
	}
}

// TTLs run with the wall clock, in miniredis too (ClockTTL): Asynq's
// leases and locks depend on it.
func TestTTLsExpireWithTheClock(t *testing.T) {
	r := redistest.New(t)
	c := r.Client(t)
	ctx := t.Context()
	if err := c.Set(ctx, "lease", "x", 50*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, "lease").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a 50ms TTL never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Server runs a redis-server of the test's own that can be killed and
// started again, empty.
func TestServerRestartsEmpty(t *testing.T) {
	s := redistest.Server(t)
	c := s.Client(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	s.Start(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, "k").Result()
		if err == nil && n == 0 {
			return
		}
		if err == nil && n == 1 {
			t.Fatal("the key survived a restart without persistence")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer after restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
