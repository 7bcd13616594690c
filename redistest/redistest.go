// Package redistest gives each test a Redis of its own.
//
// New leases one database index (1–15) of the real Redis named by
// TEST_REDIS_URL, so parallel tests, and parallel test binaries, never
// share keys; without TEST_REDIS_URL it starts an in-process miniredis whose
// TTLs follow the wall clock (ClockTTL), as Asynq's leases and locks
// expect. Server starts a redis-server process of the test's own, for tests
// that flush or restart Redis as a whole.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// leaseTTL is how long a lease lives without being renewed: a test binary
// killed mid-run frees its index this long after.
const leaseTTL = 60 * time.Second

// leaseWait is how long New waits for a free index before failing.
const leaseWait = 3 * time.Minute

// Redis is one test's Redis: an address and a database index.
type Redis struct {
	Addr     string
	Password string
	DB       int
	// Mini is the in-process server when there is no TEST_REDIS_URL.
	Mini *miniredis.Miniredis
}

// Opt returns the connection option for asynq.
func (r *Redis) Opt() asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: r.Addr, Password: r.Password, DB: r.DB}
}

// URL returns the redis:// URL of this Redis, database included.
func (r *Redis) URL() string {
	auth := ""
	if r.Password != "" {
		auth = ":" + r.Password + "@"
	}
	return fmt.Sprintf("redis://%s%s/%d", auth, r.Addr, r.DB)
}

// Client returns a go-redis client on this Redis, closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password, DB: r.DB})
	t.Cleanup(func() { c.Close() })
	return c
}

// Flush empties this test's database (FLUSHDB): what a FLUSHALL does to it,
// without touching other tests' databases.
func (r *Redis) Flush(t testing.TB) {
	t.Helper()
	if r.Mini != nil {
		r.Mini.FlushAll()
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Client(t).FlushDB(ctx).Err(); err != nil {
		t.Fatalf("redistest: flush: %v", err)
	}
}

// New returns a Redis of the test's own, emptied, and emptied and released
// again when the test ends.
func New(t testing.TB) *Redis {
	t.Helper()
	raw := os.Getenv("TEST_REDIS_URL")
	if raw == "" {
		m := miniredis.NewMiniRedis()
		// TTLs count down with the wall clock, so Asynq's leases and
		// uniqueness locks expire as on a real server.
		m.ClockTTL(true)
		if err := m.Start(); err != nil {
			t.Fatalf("redistest: start miniredis: %v", err)
		}
		t.Cleanup(m.Close)
		return &Redis{Addr: m.Addr(), Mini: m}
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("redistest: TEST_REDIS_URL: %v", err)
	}
	return lease(t, opt)
}

// lease takes an index 1..15 by SET NX of a lease key in the URL's own
// database, renews it while the test runs, and gives it back at cleanup.
func lease(t testing.TB, opt *redis.Options) *Redis {
	t.Helper()
	admin := redis.NewClient(opt)
	token := randomToken()
	ctx := context.Background()
	deadline := time.Now().Add(leaseWait)
	for {
		for i := 1; i <= 15; i++ {
			if i == opt.DB {
				continue
			}
			key := leaseKey(i)
			ok, err := admin.SetNX(ctx, key, token, leaseTTL).Result()
			if err != nil {
				admin.Close()
				t.Fatalf("redistest: lease a database: %v", err)
			}
			if !ok {
				continue
			}
			r := &Redis{Addr: opt.Addr, Password: opt.Password, DB: i}
			db := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: i})
			if err := db.FlushDB(ctx).Err(); err != nil {
				db.Close()
				admin.Close()
				t.Fatalf("redistest: flush database %d: %v", i, err)
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(leaseTTL / 3)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						admin.Expire(ctx, key, leaseTTL)
					}
				}
			}()
			t.Cleanup(func() {
				close(stop)
				<-done
				db.FlushDB(ctx)
				db.Close()
				// Release only our own lease.
				if v, _ := admin.Get(ctx, key).Result(); v == token {
					admin.Del(ctx, key)
				}
				admin.Close()
			})
			return r
		}
		if time.Now().After(deadline) {
			admin.Close()
			t.Fatalf("redistest: no free Redis database (1-15) after %s", leaseWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func leaseKey(i int) string { return "packline:test:redis-lease:" + strconv.Itoa(i) }

func randomToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServerProcess is a redis-server of the test's own, on a free port of
// 127.0.0.1, without persistence: stopping it loses everything, as a
// restarted production Redis without persistence would.
type ServerProcess struct {
	Redis
	port int
	dir  string
	cmd  *exec.Cmd
}

// Server starts a redis-server for the test, stopped (by its pid) when the
// test ends. It skips the test when redis-server is not installed, unless CI
// is set, where that is a failure.
func Server(t testing.TB) *ServerProcess {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redistest: redis-server is not installed")
		}
		t.Skip("redistest: redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &ServerProcess{Redis: Redis{Addr: "127.0.0.1:" + strconv.Itoa(port)}, port: port, dir: t.TempDir()}
	s.Start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Start starts the server (again) on its port.
func (s *ServerProcess) Start(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("redistest: server already running")
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.Stop(t)
			t.Fatalf("redistest: redis-server on port %d did not answer: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL, by pid) and waits for it to exit.
func (s *ServerProcess) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}
