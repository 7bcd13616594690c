// Command packline-chaos is the chaos suite (make chaos): it runs
// packline's production roles as separate processes (api, two workers, two
// relays, scheduler) on a PostgreSQL cluster and a redis-server of its own,
// drives a mixed workload over the five flows while it SIGKILLs workers,
// relays and the api, flushes and kills Redis and restarts PostgreSQL, then
// waits for the fleet to settle and checks what the guarantees promise
// (docs/reliability.md). It exits with status 1 on any violation, printing
// the violating ids.
//
// Usage:
//
//	packline-chaos [-orders 3000] [-fault-window D] [-seed N] [-json out.json] [-keep]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/packline/packline/internal/fleet"
)

type options struct {
	orders         int
	faultWindow    time.Duration
	killEvery      time.Duration
	seed           uint64
	jsonPath       string
	keep           bool
	packline       string
	quiesceTimeout time.Duration
	failRate       float64
	maxFails       int
	inflight       int
	timerScale     string
	concurrency    int
	storesPerFlow  int
	selfTest       bool
	faults         bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("packline-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.orders, "orders", 3000, "orders of the workload, over the five flows")
	fs.DurationVar(&o.faultWindow, "fault-window", 0, "how long the orders are started and the faults run (default: 40 s + 80 s per 3,000 orders)")
	fs.DurationVar(&o.killEvery, "kill-every", 0, "a worker is SIGKILLed this often during the fault window (default: a twelfth of it)")
	fs.Uint64Var(&o.seed, "seed", 1, "the seed of the workload's plan and the receiver's failures")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's folder (PostgreSQL data, role logs) and print where it is")
	fs.StringVar(&o.packline, "packline", "", "the packline binary to run (default: go build ./cmd/packline of this tree)")
	fs.DurationVar(&o.quiesceTimeout, "quiesce-timeout", 10*time.Minute, "the longest wait, after the last fault, for every script to finish and the outbox to drain")
	fs.Float64Var(&o.failRate, "webhook-fail-rate", 0.2, "share of webhook requests the receiver answers with 500")
	fs.IntVar(&o.maxFails, "webhook-max-fails", 2, "the receiver fails one webhook-id at most this many times in a row")
	fs.IntVar(&o.inflight, "inflight", 150, "scripts running at once at most")
	fs.StringVar(&o.timerScale, "timer-scale", "0.01", "PACKLINE_TIMER_SCALE: a day lasts 14.4 minutes, so no expiry fires in a healthy run")
	fs.IntVar(&o.concurrency, "concurrency", 10, "PACKLINE_WORKER_CONCURRENCY of each worker")
	fs.IntVar(&o.storesPerFlow, "stores-per-flow", 2, "stores of each flow")
	fs.BoolVar(&o.faults, "faults", true, "run the faults; -faults=false is the control run (quiescence is then timed from the end of the workload)")
	fs.BoolVar(&o.selfTest, "self-test", false, "after the checks, break the results once for each check and fail unless every check sees it (the database is left broken)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.orders < len(flowNames) || o.inflight < 1 || o.storesPerFlow < 1 {
		return o, errors.New("-orders must be at least 5, -inflight and -stores-per-flow at least 1")
	}
	if o.faultWindow <= 0 {
		o.faultWindow = 40*time.Second + time.Duration(float64(80*time.Second)*float64(o.orders)/3000)
	}
	if o.killEvery <= 0 {
		o.killEvery = (o.faultWindow / 12).Round(100 * time.Millisecond)
	}
	return o, nil
}

// Result is one run, as the JSON file holds it.
type Result struct {
	StartedAt       time.Time      `json:"started_at"`
	Commit          string         `json:"commit"`
	Orders          int            `json:"orders"`
	Seed            uint64         `json:"seed"`
	FaultWindow     float64        `json:"fault_window_seconds"`
	KillEvery       float64        `json:"kill_every_seconds"`
	Faults          []faultLog     `json:"faults"`
	WorkloadSeconds float64        `json:"workload_seconds"`
	QuiescenceAfter float64        `json:"quiescence_after_last_fault_seconds"`
	ScriptsAfter    float64        `json:"scripts_ended_after_last_fault_seconds"`
	Quiesced        bool           `json:"quiesced"`
	TotalSeconds    float64        `json:"total_seconds"`
	Scripts         map[string]int `json:"scripts"`
	Checks          []Check        `json:"checks"`
	Violations      int            `json:"violations"`
	HTTP            map[string]int `json:"http"`
	LogErrors       map[string]int `json:"log_errors"`
	Dir             string         `json:"dir,omitempty"`
}

// errViolations is returned when the run completed and found violations.
var errViolations = errors.New("violations found")

func main() {
	redis.SetLogger(fleet.QuietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "packline-chaos:", err)
		}
		os.Exit(1)
	}
}

// run is the whole suite. It returns errViolations when the checks fail.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (*Result, error) {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	t, err := findTools()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{StartedAt: start.UTC(), Commit: gitCommit(), Orders: opts.orders, Seed: opts.seed,
		FaultWindow: opts.faultWindow.Seconds(), KillEvery: opts.killEvery.Seconds()}
	note := func(format string, a ...any) {
		fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	dir, err := os.MkdirTemp("", "packline-chaos-")
	if err != nil {
		return nil, err
	}
	if opts.keep {
		res.Dir = dir
		defer note("kept %s (PostgreSQL data in pgdata/, role logs *.log)", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	note("starting PostgreSQL (initdb) and redis-server")
	pg, err := startPostgres(ctx, t, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := pg.stop(); err != nil {
			note("stop PostgreSQL: %v", err)
		}
	}()
	rs, err := startRedis(ctx, t, dir)
	if err != nil {
		return nil, err
	}
	defer rs.stop()

	bin := opts.packline
	if bin == "" {
		note("building packline")
		if bin, err = fleet.Build(ctx, dir); err != nil {
			return nil, err
		}
	}
	courierSecret := fleet.RandomHex(24)
	env := fleet.RoleEnv(os.Environ(), fleet.Settings{DatabaseURL: pg.url("packline"), RedisURL: rs.url(),
		TimerScale: opts.timerScale, Concurrency: opts.concurrency, CourierSecret: courierSecret})
	if _, err := fleet.Run(ctx, bin, env, "migrate"); err != nil {
		return nil, err
	}
	hooks, err := startReceiver(opts.failRate, opts.maxFails, opts.seed)
	if err != nil {
		return nil, err
	}
	defer hooks.close()
	note("starting the fleet: %d processes", len(roleLayout))
	f, err := startRoles(ctx, bin, env, dir)
	if err != nil {
		return nil, err
	}
	stopped := false
	stopFleet := func() {
		if !stopped {
			stopped = true
			for _, err := range f.stop() {
				note("%v", err)
			}
		}
	}
	defer stopFleet()

	db, err := sqlx.Open("postgres", pg.url("packline"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(8)

	api := fleet.NewClient(f.api())
	// The storefront, merchant and courier keep trying while the api is
	// down or the database restarts.
	api.Retry = fleet.Retry{Within: 3 * time.Minute, Step: 100 * time.Millisecond, MaxPause: time.Second}
	stores, err := createStores(ctx, bin, env, api, hooks, opts.storesPerFlow)
	if err != nil {
		return nil, err
	}
	runID := time.Now().UTC().Format("150405")
	orders := plan(opts.orders, opts.seed, stores, runID)
	var all []*chaosStore
	for _, fl := range flowNames {
		all = append(all, stores[fl]...)
	}
	if err := stockUp(ctx, api, stores["cash-on-delivery"], orders); err != nil {
		return nil, err
	}

	watch := fleet.NewWatcher(db, 50*time.Millisecond, marker)
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	go watch.Run(wctx)
	dr := &driver{api: api, watch: watch, db: db, courierSecret: courierSecret, patience: opts.quiesceTimeout}

	if opts.faults {
		note("workload: %d orders over %s; faults: a worker SIGKILLed every %s, then relays, FLUSHALL, Redis, PostgreSQL, api",
			opts.orders, opts.faultWindow, opts.killEvery)
	} else {
		note("workload: %d orders over %s; no faults (the control run)", opts.orders, opts.faultWindow)
	}
	workStart := time.Now()
	var faults []fault
	if opts.faults {
		faults = schedule(opts.faultWindow, opts.killEvery, f, rs, pg)
	}
	var (
		lastFault time.Time
		wg        sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.Faults, lastFault = runFaults(ctx, workStart, faults, func(s string) { note("%s", s) })
	}()
	dctx, dcancel := context.WithTimeout(ctx, opts.faultWindow+opts.quiesceTimeout+time.Minute)
	defer dcancel()
	progress := newProgress(note, len(orders))
	drive(dctx, dr, orders, opts.faultWindow, opts.inflight, progress.done)
	scriptsDone := time.Now()
	res.WorkloadSeconds = scriptsDone.Sub(workStart).Seconds()
	wg.Wait()
	if lastFault.IsZero() {
		lastFault = scriptsDone // the control run: no fault
	}
	if ctx.Err() != nil {
		return nil, errors.New("interrupted: nothing is checked")
	}
	note("every script has ended; waiting for the outbox to drain")
	quiet, ok := waitQuiet(ctx, db, lastFault.Add(opts.quiesceTimeout), note)
	res.Quiesced = ok
	settled := quiet
	if scriptsDone.After(settled) {
		settled = scriptsDone
	}
	res.QuiescenceAfter = settled.Sub(lastFault).Seconds()
	res.ScriptsAfter = scriptsDone.Sub(lastFault).Seconds()
	stopFleet()

	c := &checker{db: db, orders: orders, stores: all, hooks: hooks}
	checks, err := c.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("checks: %w", err)
	}
	dbChecks := checks
	checks = append(checks[:len(checks):len(checks)], c.fleetChecks(f, res, ok, opts.quiesceTimeout)...)
	res.Checks = checks
	for _, ch := range checks {
		res.Violations += ch.Violations
	}
	res.Scripts = map[string]int{}
	for _, o := range orders {
		k := o.script.name
		if o.branch != "" {
			k += " (" + o.branch + ")"
		}
		res.Scripts[k]++
	}
	res.HTTP = api.Counts()
	res.LogErrors = f.logErrors()
	res.TotalSeconds = time.Since(start).Seconds()
	writeReport(stdout, res)
	if opts.jsonPath != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(opts.jsonPath, append(b, '\n'), 0o644); err != nil {
			return res, fmt.Errorf("-json %s: %w", opts.jsonPath, err)
		}
	}
	if res.Violations > 0 {
		return res, fmt.Errorf("%w: %d (see the table)", errViolations, res.Violations)
	}
	if opts.selfTest {
		if err := c.selfTest(ctx, dbChecks); err != nil {
			return res, err
		}
		note("self-test: every check saw the results broken")
	}
	return res, nil
}

// fleetChecks are the run's own checks: faults applied, no role died by
// itself, the fleet quiet within the timeout.
func (c *checker) fleetChecks(f *roles, res *Result, quiesced bool, timeout time.Duration) []Check {
	faults := Check{Name: "every fault applied, every role back up"}
	for _, l := range res.Faults {
		if l.Error != "" {
			faults.fail("%s at %.1fs: %s", l.Name, l.Offset, fleet.Tail(l.Error, 400))
		}
	}
	faults.Checked = fmt.Sprintf("%d faults", len(res.Faults))
	crashes := Check{Name: "no role exited by itself", Checked: fmt.Sprintf("%d processes", len(roleLayout))}
	for _, s := range f.crashed() {
		crashes.fail("%s", s)
	}
	quiet := Check{Name: "quiescence after the last fault", Checked: fmt.Sprintf("%.1f s (timeout %s)", res.QuiescenceAfter, timeout)}
	if !quiesced {
		quiet.fail("the outbox still had due rows %s after the last fault", timeout)
	}
	return []Check{faults, crashes, quiet}
}

// createStores makes storesPerFlow stores of each flow, each with its
// merchant's email and phone, and one webhook endpoint (every order event)
// at the receiver.
func createStores(ctx context.Context, bin string, env []string, api *fleet.Client, hooks *receiver, perFlow int) (map[string][]*chaosStore, error) {
	out := map[string][]*chaosStore{}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	run := time.Now().UTC().Format("150405")
	for _, flow := range flowNames {
		for i := range perFlow {
			g.Go(func() error {
				fs, err := fleet.CreateStore(ctx, bin, env, fmt.Sprintf("chaos-%s-%s-%d", run, flow, i), flow)
				if err != nil {
					return err
				}
				s := &chaosStore{Store: fs, stock: map[string]int64{}}
				if err := api.Call(ctx, "PATCH /v1/store", "PATCH", "/v1/store", s.Merchant,
					map[string]any{"email": "merchant@chaos.example.com", "phone": "+12025550101"}, nil, 200); err != nil {
					return fmt.Errorf("store %s: %w", s.Name, err)
				}
				var ep struct {
					Secret string `json:"secret"`
				}
				if err := api.Call(ctx, "POST /v1/webhook-endpoints", "POST", "/v1/webhook-endpoints", s.Merchant,
					map[string]any{"url": hooks.endpoint(s.ID), "events": []string{"order.*"}}, &ep, 201); err != nil {
					return fmt.Errorf("webhook endpoint for store %s: %w", s.Name, err)
				}
				if err := hooks.setSecret(s.ID, ep.Secret); err != nil {
					return err
				}
				mu.Lock()
				out[flow] = append(out[flow], s)
				mu.Unlock()
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, ss := range out {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
	}
	return out, nil
}

// stockUp gives each cash-on-delivery store plenty of plentySKU and, of
// shortSKU, about 40% of what its orders will ask for, so some are
// refused.
func stockUp(ctx context.Context, api *fleet.Client, stores []*chaosStore, orders []*orderRun) error {
	want := map[*chaosStore]int64{}
	for _, o := range orders {
		for _, l := range o.lines {
			if l.SKU == shortSKU {
				want[o.store] += int64(l.Quantity)
			}
		}
	}
	for _, s := range stores {
		s.stock[plentySKU] = plentyStock
		s.stock[shortSKU] = max(2, want[s]*2/5)
		for sku, n := range s.stock {
			if err := api.Call(ctx, "PUT /v1/stock/{sku}", "PUT", "/v1/stock/"+sku, s.Merchant, map[string]any{"on_hand": n}, nil, 200); err != nil {
				return fmt.Errorf("stock %s for store %s: %w", sku, s.Name, err)
			}
		}
	}
	return nil
}

// waitQuiet waits until no outbox row is pending or enqueued other than a
// timer not due yet, until deadline. It returns when that was first seen.
func waitQuiet(ctx context.Context, db *sqlx.DB, deadline time.Time, note func(string, ...any)) (time.Time, bool) {
	lastNote := time.Now()
	for {
		var n int
		err := db.GetContext(ctx, &n, marker+`SELECT count(*) FROM outbox WHERE status IN ('pending', 'enqueued')
			AND (run_at <= now() OR type <> 'order:timer')`)
		if err == nil && n == 0 {
			return time.Now(), true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Now(), false
		}
		if time.Since(lastNote) > 10*time.Second {
			note("outbox: %d rows to go (%v)", n, err)
			lastNote = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// progress notes how many scripts have ended, every tenth.
type progress struct {
	note  func(string, ...any)
	total int
	mu    sync.Mutex
	last  time.Time
}

func newProgress(note func(string, ...any), total int) *progress {
	return &progress{note: note, total: total, last: time.Now()}
}

func (p *progress) done(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == p.total || time.Since(p.last) > 10*time.Second {
		p.last = time.Now()
		p.note("scripts ended: %d of %d", n, p.total)
	}
}

// writeReport prints the run's summary and its table.
func writeReport(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\npackline chaos run: %d orders, seed %d, commit %s, %s\n", r.Orders, r.Seed, r.Commit, r.StartedAt.Format(time.RFC3339))
	if len(r.Faults) == 0 {
		fmt.Fprintf(w, "no faults (the control run): quiescence is timed from the end of the workload\n")
	} else {
		fmt.Fprintf(w, "faults (over %.0f s, a worker killed every %.1f s):\n", r.FaultWindow, r.KillEvery)
	}
	for _, f := range r.Faults {
		fmt.Fprintf(w, "  %6.1fs  %s (%.1f s)%s\n", f.Offset, f.Name, f.Took, map[bool]string{true: ": " + fleet.Tail(f.Error, 200)}[f.Error != ""])
	}
	fmt.Fprintf(w, "workload ended after %.1f s; quiescence %.1f s after the last fault (the last script ended %.1f s after it); whole run %.0f s\n\n",
		r.WorkloadSeconds, r.QuiescenceAfter, r.ScriptsAfter, r.TotalSeconds)
	writeTable(w, r.Checks)
	var keys []string
	for k := range r.Scripts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "\nscripts:")
	for _, k := range keys {
		fmt.Fprintf(w, " %s %d;", k, r.Scripts[k])
	}
	fmt.Fprintf(w, "\nHTTP:")
	keys = keys[:0]
	for k := range r.HTTP {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, " %s ×%d;", k, r.HTTP[k])
	}
	fmt.Fprintf(w, "\nerror lines in role logs: %v\n", r.LogErrors)
	if r.Violations > 0 {
		fmt.Fprintf(w, "\nFAIL: %d violations\n", r.Violations)
	} else {
		fmt.Fprintln(w, "\nOK: no violations")
	}
}

// gitCommit is the tree's commit, "-dirty" when it has changes.
func gitCommit() string {
	s := fleet.GitCommit()
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); s != "" && err == nil && len(st) > 0 {
		s += "-dirty"
	}
	return s
}
