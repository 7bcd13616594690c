// Package fleettest runs the fleet (relay, worker server, optionally the
// scheduler) inside a test, against the test's own database and Redis, and
// stops it when the test ends. Use it for end-to-end tests at the store
// level (drive events with db.ApplyEvent) or over HTTP (start the API on the
// same *store.DB):
//
//	db := fleettest.OpenDB(t, storetest.Default(), store.Options{})
//	f := fleettest.Start(t, db.DB, redistest.New(t).Opt(), fleettest.Options{Waker: db.Waker, ListenURL: db.ListenURL()})
//	... db.ApplyEvent(...) ...
//	fleettest.WaitFor(t, 10*time.Second, "order paid", func() bool { ... })
package fleettest

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers"
)

// DB is a test's own migrated database, with the URL it was opened on and
// a Waker wired to its OnOutbox.
type DB struct {
	*store.DB
	URL   string
	Waker *relay.Waker
}

// ListenURL is the URL a relay LISTENs on: the database URL on PostgreSQL,
// "" on SQLite.
func (d *DB) ListenURL() string {
	if d.Dialect() == store.Postgres {
		return d.URL
	}
	return ""
}

// OpenDB opens a migrated database of the dialect for the test (a SQLite
// file, or a PostgreSQL schema with TEST_DATABASE_URL), closed at cleanup.
// opts.Flows defaults to the built-in flows; opts.OnOutbox is set to the
// returned Waker.
func OpenDB(t testing.TB, dialect string, opts store.Options) *DB {
	t.Helper()
	return OpenURL(t, storetest.URL(t, dialect), opts)
}

// OpenURL is OpenDB on a URL of the caller's (another process of the same
// test opens the same database with it).
func OpenURL(t testing.TB, url string, opts store.Options) *DB {
	t.Helper()
	w := &relay.Waker{}
	if opts.OnOutbox == nil {
		opts.OnOutbox = w.Wake
	}
	return &DB{DB: storetest.OpenURL(t, url, opts), URL: url, Waker: w}
}

// Options configure a test fleet.
type Options struct {
	// Deps are the workers' dependencies; DB is set by Start.
	Deps workers.Deps
	// Relay options; Redis and Types default to the fleet's, PollInterval
	// to 200ms, RedeliverAfter to the relay's default.
	Relay relay.Options
	// ListenURL, when set, makes the relay LISTEN for commits.
	ListenURL string
	// Worker tunes the worker server; ShutdownTimeout defaults to 2s.
	Worker workers.Config
	// NoWorker starts the relay (and scheduler) only: for tests that run
	// the worker elsewhere, e.g. in a process they kill.
	NoWorker bool
	// Scheduler also runs a relay.Scheduler sweeping every
	// Relay.SweepInterval.
	Scheduler bool
	// Waker, when set, is pointed at the relay's Wake.
	Waker *relay.Waker
}

// Fleet is a running test fleet.
type Fleet struct {
	DB     *store.DB
	Redis  asynq.RedisConnOpt
	Client *asynq.Client
	Relay  *relay.Relay
	Deps   workers.Deps

	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start runs a relay and a worker server (and a scheduler, if asked) on db
// and the Redis of redisOpt until the test ends.
func Start(t testing.TB, db *store.DB, redisOpt asynq.RedisConnOpt, opts Options) *Fleet {
	t.Helper()
	opts.Deps.DB = db
	if opts.Deps.Logger == nil {
		opts.Deps.Logger = Logger()
	}
	if opts.Relay.Redis == nil {
		opts.Relay.Redis = redisOpt
	}
	if opts.Relay.Types == nil {
		opts.Relay.Types = workers.HandledTypes(opts.Deps)
	}
	if opts.Relay.PollInterval == 0 {
		opts.Relay.PollInterval = 200 * time.Millisecond
	}
	if opts.Relay.ListenURL == "" {
		opts.Relay.ListenURL = opts.ListenURL
	}
	if opts.Relay.Logger == nil {
		opts.Relay.Logger = opts.Deps.Logger
	}
	if opts.Worker.ShutdownTimeout == 0 {
		opts.Worker.ShutdownTimeout = 2 * time.Second
	}
	if opts.Worker.Logger == nil {
		opts.Worker.Logger = opts.Deps.Logger
	}
	client := asynq.NewClient(redisOpt)
	f := &Fleet{DB: db, Redis: redisOpt, Client: client, Deps: opts.Deps, opts: opts}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.Relay = relay.New(db, client, opts.Relay)
	if opts.Waker != nil {
		opts.Waker.Set(f.Relay.Wake)
	}
	t.Cleanup(func() {
		f.cancel()
		f.wg.Wait()
		client.Close()
	})
	f.goRun(func(ctx context.Context) { f.Relay.Run(ctx) })
	if opts.Scheduler {
		s := relay.NewScheduler(db, client, opts.Relay)
		f.goRun(func(ctx context.Context) { s.Run(ctx) })
	}
	if !opts.NoWorker {
		f.StartWorker(t)
	}
	return f
}

// StartWorker starts one more worker server on the fleet's Redis (with the
// fleet's Deps), stopped at the end of the test or by the returned func.
func (f *Fleet) StartWorker(t testing.TB) (stop func()) {
	t.Helper()
	srv := workers.NewServer(f.Redis, f.opts.Worker)
	mux := workers.NewMux(f.Deps)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		if err := workers.Run(ctx, srv, mux); err != nil {
			t.Errorf("fleettest: worker: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func (f *Fleet) goRun(fn func(ctx context.Context)) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn(f.ctx)
	}()
}

// WaitFor polls cond every 20ms until it holds, and fails the test naming
// what when timeout passes first. Tests wait on conditions, never sleeps.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("fleettest: timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logger is the fleet's logger in tests: warnings and errors to stderr,
// everything with PACKLINE_TEST_LOG=debug.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("PACKLINE_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
