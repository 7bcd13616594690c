// Package opstest gives tests of the ops listener the real things it talks
// to: a private Redis server per test, and the external tools (promtool,
// prometheus, chromium) found on PATH.
package opstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Tool returns the path of the named program. When it is not installed the
// test is skipped, unless CI is set: in CI a missing tool fails the test, so
// a check can never silently stop running there.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed and CI is set: install it (see deploy/README or docs/operations.md)", name)
	}
	t.Skipf("%s is not installed (and CI is unset): skipping", name)
	return ""
}

// Redis starts a redis-server of this test's own, listening only on a unix
// socket (no TCP port at all), and returns the connection options for it.
// The server is stopped when the test ends. Each test gets an empty Redis, so
// tests run in parallel without sharing Asynq's keys.
func Redis(t testing.TB) asynq.RedisClientOpt {
	t.Helper()
	bin := Tool(t, "redis-server")
	// Short path: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "plr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")

	cmd := exec.Command(bin,
		"--port", "0", // no TCP listener
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--loglevel", "warning",
	)
	logFile, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
	})

	opt := asynq.RedisClientOpt{Network: "unix", Addr: sock}
	rc := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, MaxRetries: -1})
	defer rc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := rc.Ping(ctx).Err()
		cancel()
		if err == nil {
			return opt
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("redis-server exited (%v) before answering: %s", werr, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within 30s: %v", sock, err)
		}
	}
}

// Enqueue puts n tasks of type typ into each of queues, for tests that need
// Asynq to have something to show.
func Enqueue(t testing.TB, opt asynq.RedisConnOpt, typ string, n int, queues ...string) {
	t.Helper()
	c := asynq.NewClient(opt)
	defer c.Close()
	for _, q := range queues {
		for i := 0; i < n; i++ {
			if _, err := c.Enqueue(asynq.NewTask(typ, []byte(fmt.Sprintf(`{"n":%d}`, i))), asynq.Queue(q)); err != nil {
				t.Fatalf("enqueue %s into %s: %v", typ, q, err)
			}
		}
	}
}
