// Command packline-bench is the fleet benchmark (make bench-fleet): it runs
// packline's production roles as separate processes on the operator's
// PostgreSQL and Redis, drives the five built-in flows through their
// lifecycles with merchant, customer and courier played at once, and prints
// one table of what the fleet does next to the raw parts it is made of,
// measured in the same run (docs/performance.md).
//
// Usage:
//
//	DATABASE_URL=postgres://… REDIS_URL=redis://… packline-bench [-quick] [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/internal/fleet"
	"github.com/redis/go-redis/v9"
)

// options are the benchmark's flags.
type options struct {
	packline    string
	jsonPath    string
	quick       bool
	reset       bool
	stores      int
	concurrency int
	journeys    int
	phase       time.Duration
	intake      time.Duration
	warmup      time.Duration
	reference   time.Duration
	idleOrders  int
	refTasks    int
	refRedisDB  int
	patience    time.Duration
	timerScale  string
	median      bool
	args        []string // -median's files
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("packline-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.packline, "packline", "", "the packline binary to run (default: go build ./cmd/packline of this tree into a temporary folder)")
	fs.StringVar(&o.jsonPath, "json", "bench-fleet.json", "where to write the results as JSON")
	fs.BoolVar(&o.quick, "quick", false, "a short run (under about 2 minutes): shorter phases, fewer reference tasks")
	fs.BoolVar(&o.reset, "reset", false, "drop and recreate the database first (its name must contain \"bench\") and flush the Redis databases it uses")
	fs.IntVar(&o.stores, "stores", 50, "stores to create, each with one webhook endpoint")
	fs.IntVar(&o.concurrency, "concurrency", 10, "worker concurrency (PACKLINE_WORKER_CONCURRENCY), and the references' concurrency")
	fs.IntVar(&o.journeys, "journeys", 50, "orders driven through their lifecycle at once")
	fs.DurationVar(&o.phase, "phase", 20*time.Second, "how long each flow's lifecycle phase starts orders (the mix runs twice as long)")
	fs.DurationVar(&o.intake, "intake", 10*time.Second, "how long each intake phase posts orders")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "the start of each lifecycle phase left out of its rates")
	fs.DurationVar(&o.reference, "reference", 5*time.Second, "how long the one-row INSERT reference runs")
	fs.IntVar(&o.idleOrders, "idle-orders", 30, "orders posted one at a time for the idle latency")
	fs.IntVar(&o.refTasks, "reference-tasks", 20000, "tasks of the asynq no-op reference (a quarter as many for asynq + PostgreSQL)")
	fs.IntVar(&o.refRedisDB, "reference-redis-db", -1, "the Redis database of the asynq references; it must be empty (default: the one below REDIS_URL's, or 1 for 0)")
	fs.DurationVar(&o.patience, "patience", time.Minute, "the longest wait for any one step of the fleet's work")
	fs.BoolVar(&o.median, "median", false, "print the table of the median of the JSON files named as arguments, and run nothing")
	fs.StringVar(&o.timerScale, "timer-scale", "0.01", "PACKLINE_TIMER_SCALE: short enough for demos, long enough that no expiry fires mid-run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.args = fs.Args()
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quick("phase", func() { o.phase = 5 * time.Second })
		quick("intake", func() { o.intake = 3 * time.Second })
		quick("warmup", func() { o.warmup = 1500 * time.Millisecond })
		quick("reference", func() { o.reference = 2 * time.Second })
		quick("idle-orders", func() { o.idleOrders = 10 })
		quick("reference-tasks", func() { o.refTasks = 6000 })
		quick("patience", func() { o.patience = 30 * time.Second })
	}
	if o.stores < 1 || o.concurrency < 1 || o.journeys < 1 || o.warmup >= o.phase {
		return o, errors.New("-stores, -concurrency and -journeys must be at least 1, and -warmup shorter than -phase")
	}
	return o, nil
}

func main() {
	redis.SetLogger(fleet.QuietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "packline-bench:", err)
		}
		os.Exit(1)
	}
}

// run is the whole benchmark.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if opts.median {
		return medianCmd(opts.args, stdout)
	}
	if len(opts.args) > 0 {
		return fmt.Errorf("unexpected arguments %q (flags come before them; -median takes files)", opts.args)
	}
	dsn, redisURL := getenv("DATABASE_URL"), getenv("REDIS_URL")
	if dsn == "" || redisURL == "" {
		return errors.New("set DATABASE_URL (postgres://USER@HOST:PORT/packline_bench?sslmode=disable) and REDIS_URL " +
			"(redis://HOST:6379/15): a PostgreSQL server it may create that database on, and an empty Redis database; make bench-fleet sets both")
	}
	tmp, err := os.MkdirTemp("", "packline-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b := &bench{opts: opts, problems: map[string]int{}, report: &Report{StartedAt: time.Now().UTC(), HTTP: map[string]int{}}}
	b.report.Settings = Settings{Quick: opts.quick, Cores: runtime.NumCPU(), Stores: opts.stores, WorkerConcurrency: opts.concurrency,
		Journeys: opts.journeys, PhaseSeconds: opts.phase.Seconds(), TimerScale: opts.timerScale, Commit: fleet.GitCommit()}
	err = b.prepare(ctx, dsn, redisURL)
	if b.db != nil {
		defer b.db.Close()
	}
	if err != nil {
		return err
	}
	defer b.lease.release()
	bin := opts.packline
	if bin == "" {
		fmt.Fprintln(stderr, "building packline…")
		if bin, err = fleet.Build(ctx, tmp); err != nil {
			return err
		}
	}
	b.progress = newProgress(stderr)
	err = b.measure(ctx, bin, dsn, redisURL, tmp)
	b.progress.close()
	if err != nil {
		return err
	}
	b.report.writeTable(stdout)
	if err := b.report.writeJSON(opts.jsonPath); err != nil {
		return fmt.Errorf("-json %s: %w", opts.jsonPath, err)
	}
	fmt.Fprintf(stdout, "\n%s written. The benchmark's stores and orders stay in the database.\n", opts.jsonPath)
	return nil
}

// prepare connects to PostgreSQL and both Redis databases and checks they
// may be used.
func (b *bench) prepare(ctx context.Context, dsn, redisURL string) error {
	db, name, err := openDatabase(ctx, dsn, b.opts.reset)
	if err != nil {
		return err
	}
	b.db = &dbHandle{DB: db, name: name}
	conn, err := asynq.ParseRedisURI(redisURL)
	opt, ok := conn.(asynq.RedisClientOpt)
	if err != nil || !ok {
		return fmt.Errorf("REDIS_URL %q: want redis://HOST:PORT/DB", redact(redisURL))
	}
	ref := opt
	ref.DB = b.opts.refRedisDB
	if ref.DB < 0 {
		ref.DB = max(opt.DB-1, 0)
		if opt.DB == 0 {
			ref.DB = 1
		}
	}
	b.refRedis = ref
	if b.lease, err = leaseRedis(ctx, opt, ref); err != nil {
		return err
	}
	for _, o := range []asynq.RedisClientOpt{opt, ref} {
		if err := checkRedis(ctx, o, b.opts.reset); err != nil {
			b.lease.release()
			return err
		}
	}
	return nil
}

// checkRedis pings the Redis database of o and wants it empty (flushing it
// with reset).
func checkRedis(ctx context.Context, o asynq.RedisClientOpt, reset bool) error {
	rdb := redis.NewClient(&redis.Options{Addr: o.Addr, Password: o.Password, DB: o.DB})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cannot reach Redis at %s: %w; bench-fleet needs REDIS_URL naming a Redis 6.2+ server", o.Addr, err)
	}
	if reset {
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			return fmt.Errorf("flush Redis database %d: %w", o.DB, err)
		}
	}
	n, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("Redis database %d at %s holds %d keys: give the benchmark empty databases (REDIS_URL, -reference-redis-db), or pass -reset to flush them", o.DB, o.Addr, n)
	}
	return nil
}

// measure runs every phase and fills the report.
func (b *bench) measure(ctx context.Context, bin, dsn, redisURL, tmp string) error {
	if err := b.references(ctx); err != nil {
		return err
	}
	env := packlineEnv(os.Environ(), dsn, redisURL, b.opts, fleet.RandomHex(24))
	b.progress.phase("migrate")
	if _, err := fleet.Run(ctx, bin, env, "migrate"); err != nil {
		return err
	}
	b.db.stmts = newStatements(ctx, b.db.DB, b.db.name)
	hooks, err := startReceiver()
	if err != nil {
		return err
	}
	defer hooks.close()
	b.progress.phase("start the fleet")
	if b.fleet, err = startFleet(ctx, bin, env, tmp); err != nil {
		return err
	}
	defer b.stopFleet()
	api := fleet.NewClient(b.fleet.api())
	watch := fleet.NewWatcher(b.db.DB, 10*time.Millisecond, benchMarker)
	go watch.Run(ctx)
	b.actors = &actors{api: api, watch: watch, courierSecret: fleet.EnvValue(env, "PACKLINE_SANDBOX_COURIER_SECRET"), patience: b.opts.patience}
	b.progress.phase(fmt.Sprintf("create %d stores", b.opts.stores))
	if b.stores, err = createStores(ctx, bin, env, api, hooks, time.Now().UTC().Format("20060102T150405"), b.opts.stores); err != nil {
		return err
	}
	if err := b.drive(ctx); err != nil {
		return err
	}
	b.report.PeakRSSMiB = b.fleet.peakRSS()
	for role, n := range b.fleet.logErrors() {
		b.problem(fmt.Errorf("packline %s logged %d errors (see its log)", role, n))
	}
	b.report.HTTP = api.Counts()
	b.report.Webhooks = hooks.deliveries.Load()
	b.report.Problems = b.problemList()
	return nil
}

// drive runs the phases against the fleet, quietest first.
func (b *bench) drive(ctx context.Context) error {
	r := b.report
	r.Latency = append(r.Latency, b.latencyIdle(ctx, b.opts.idleOrders))
	for _, f := range flowNames {
		fr, cost := b.lifecycle(ctx, f, []string{f}, b.opts.phase)
		r.Flows, r.Resources = append(r.Flows, fr), append(r.Resources, cost)
		if err := b.alive(ctx); err != nil {
			return err
		}
	}
	fr, cost := b.lifecycle(ctx, mixName, flowNames, 2*b.opts.phase)
	r.Flows, r.Resources = append(r.Flows, fr), append(r.Resources, cost)
	for _, clients := range []int{10, 50} {
		r.Intake = append(r.Intake, b.intake(ctx, clients, b.opts.intake))
		if err := b.alive(ctx); err != nil {
			return err
		}
	}
	top := max(float64(r.Intake[0].OrdersPerSec), float64(r.Intake[1].OrdersPerSec))
	// The intake phases leave a backlog; the loaded latency starts without it.
	b.progress.phase("intake")
	b.drain(ctx)
	r.Latency = append(r.Latency, b.latencyLoaded(ctx, top/2, b.opts.intake))
	return b.alive(ctx)
}

// alive fails when the run was interrupted or a role died.
func (b *bench) alive(ctx context.Context) error {
	if ctx.Err() != nil {
		return errors.New("interrupted: the fleet is stopped, nothing is reported")
	}
	return b.fleet.exitedEarly()
}

func (b *bench) stopFleet() {
	b.progress.phase("stop the fleet")
	for _, err := range b.fleet.stop() {
		b.report.Problems = append(b.report.Problems, err.Error())
	}
}

// problemList is the problems seen, most frequent first.
func (b *bench) problemList() []string {
	b.problemsMu.Lock()
	defer b.problemsMu.Unlock()
	var out []string
	for p, n := range b.problems {
		out = append(out, fmt.Sprintf("%d× %s", n, p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

// packlineEnv is the roles' environment (fleet.RoleEnv).
func packlineEnv(base []string, dsn, redisURL string, o options, courierSecret string) []string {
	return fleet.RoleEnv(base, fleet.Settings{DatabaseURL: dsn, RedisURL: redisURL, TimerScale: o.timerScale,
		Concurrency: o.concurrency, CourierSecret: courierSecret})
}
