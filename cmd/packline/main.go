// Command packline is the one binary of the fleet: its first argument picks
// the role (see the Procfile).
//
//	packline api                 intake HTTP
//	packline worker              Asynq server running every task handler
//	packline relay               moves committed outbox rows into Asynq
//	packline scheduler           periodic sweeps (overdue timers, stuck effects)
//	packline migrate             applies migrations
//	packline dev                 every role in one process on embedded defaults
//	packline stores create       creates a store and prints its keys
//	packline stores set-rate-limit  sets or clears a store's API rate limit
//	packline stores test-mode    marks a store a test store (the sandbox in production)
//	packline flows list|show     lists and renders flows
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/mail"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"text/tabwriter"

	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
)

const usage = `packline — an order-fulfillment worker fleet

Usage:
  packline api                              intake HTTP API (PACKLINE_HTTP_ADDR)
  packline worker                           Asynq worker running every task handler
  packline relay                            moves committed outbox rows into Asynq
  packline scheduler                        sweeps overdue timers and stuck effects
  packline migrate                          applies database migrations
  packline dev [-data DIR] [-http ADDR] [-ops ADDR]
                                            every role in one process, no servers needed
  packline stores create --name NAME --flow FLOW [--email ADDRESS]
                                            creates a store and prints its two keys once
  packline stores set-rate-limit --name NAME (--rate N [--burst N] | --default)
                                            sets a store's per-key API rate limit (requests/s);
                                            --default returns it to PACKLINE_RATE_LIMIT/_BURST
  packline stores test-mode --name NAME (--on | --off)
                                            marks a store a test store: with PACKLINE_ENV=production
                                            only a test store may pay on the sandbox
  packline flows list                       lists the flows
  packline flows show NAME [--format mermaid|dot]
                                            renders a flow as a diagram

Configuration comes from the environment: DATABASE_URL, REDIS_URL,
PACKLINE_HTTP_ADDR, PACKLINE_OPS_ADDR, PACKLINE_TIMER_SCALE,
PACKLINE_RATE_LIMIT, PACKLINE_RATE_BURST, LOG_LEVEL, LOG_FORMAT and more
(README: Configuration).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "packline:", err)
		}
		os.Exit(1)
	}
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errors.New("no role given")
		}
		return nil
	}
	cfg, err := readConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "api", "worker", "relay", "scheduler":
		return runRoles(ctx, cfg, []string{args[0]}, stderr)
	case "migrate":
		return migrate(ctx, cfg, stdout)
	case "dev":
		return dev(ctx, cfg, args[1:], stdout, stderr)
	case "stores":
		return stores(ctx, cfg, args[1:], stdout)
	case "flows":
		return flowsCmd(cfg, args[1:], stdout)
	}
	return fmt.Errorf("unknown role %q; run packline --help", args[0])
}

func loadFlows(cfg Config) (*flows.Registry, error) {
	r, err := flows.Load(cfg.FlowsDir)
	if err != nil {
		return nil, fmt.Errorf("load flows: %w", err)
	}
	return r, nil
}

// openDB opens DATABASE_URL with the flows loaded.
func openDB(ctx context.Context, cfg Config, onOutbox func()) (*store.DB, error) {
	if err := cfg.need("DATABASE_URL"); err != nil {
		return nil, err
	}
	reg, err := loadFlows(cfg)
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, cfg.DatabaseURL, store.Options{Flows: reg, TimerScale: cfg.TimerScale, OnOutbox: onOutbox})
}

// openMigrated opens the database for a command that needs its schema up
// to date, and says to run packline migrate when it is not.
func openMigrated(ctx context.Context, cfg Config) (*store.DB, error) {
	db, err := openDB(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	if err := db.Migrated(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func migrate(ctx context.Context, cfg Config, stdout io.Writer) error {
	db, err := openDB(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func stores(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "set-rate-limit" {
		return storesSetRateLimit(ctx, cfg, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "test-mode" {
		return storesTestMode(ctx, cfg, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: packline stores create --name NAME --flow FLOW | packline stores set-rate-limit --name NAME --rate N")
	}
	fs := flag.NewFlagSet("stores create", flag.ContinueOnError)
	name := fs.String("name", "", "the store's name")
	flow := fs.String("flow", "", "the store's default flow (packline flows list)")
	email := fs.String("email", "", "where the store's merchant notifications go (optional; PATCH /v1/store changes it)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *email != "" {
		if a, err := mail.ParseAddress(*email); err != nil || a.Address != *email {
			return fmt.Errorf("--email %q is not an email address", *email)
		}
	}
	if *name == "" || *flow == "" {
		return errors.New("usage: packline stores create --name NAME --flow FLOW")
	}
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	s, sf, mk, err := db.CreateStore(ctx, *name, *flow)
	if err != nil {
		return err
	}
	if *email != "" {
		if _, err := db.UpdateStoreContact(ctx, s.ID, store.ContactUpdate{Email: email}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "store %s (%s) runs %s\n\n", s.Name, s.ID, s.Flow)
	fmt.Fprintf(stdout, "storefront key: %s\nmerchant key:   %s\n\nThese keys are shown once; only their hashes are kept.\n", sf, mk)
	return nil
}

const testModeUsage = "usage: packline stores test-mode --name NAME (--on | --off)"

// storesTestMode marks a store a test store, or not: in production
// (PACKLINE_ENV=production) only a test store may pay on the sandbox.
func storesTestMode(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stores test-mode", flag.ContinueOnError)
	name := fs.String("name", "", "the store's name")
	on := fs.Bool("on", false, "mark the store a test store")
	off := fs.Bool("off", false, "mark the store a real one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *on == *off {
		return errors.New(testModeUsage)
	}
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := db.SetStoreTestMode(ctx, *name, *on)
	if err != nil {
		return err
	}
	if *on {
		fmt.Fprintf(stdout, "store %s (%s) is a test store: without a Stripe account it pays on the sandbox, in production too\n", s.Name, s.ID)
		return nil
	}
	fmt.Fprintf(stdout, "store %s (%s) is a real store: in production it pays only through its own Stripe account\n", s.Name, s.ID)
	return nil
}

const setRateLimitUsage = "usage: packline stores set-rate-limit --name NAME (--rate N [--burst N] | --default)"

// storesSetRateLimit sets or clears a store's override of the API's per-key
// rate limit; every API process applies it on each key's next request.
func storesSetRateLimit(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stores set-rate-limit", flag.ContinueOnError)
	name := fs.String("name", "", "the store's name")
	perSecond := fs.Float64("rate", 0, "requests per second per API key of the store")
	burst := fs.Int("burst", 0, "requests an API key of the store may send at once (default: twice --rate)")
	def := fs.Bool("default", false, "clear the store's limit: its keys take PACKLINE_RATE_LIMIT and PACKLINE_RATE_BURST")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *def == (*perSecond != 0) || (*def && *burst != 0) {
		return errors.New(setRateLimitUsage)
	}
	if !*def && (!(*perSecond > 0) || math.IsInf(*perSecond, 0) || *burst < 0) {
		return fmt.Errorf("--rate %v --burst %d: want requests per second above 0 and a burst of at least 1", *perSecond, *burst)
	}
	var l store.RateLimit
	if !*def {
		if *burst == 0 {
			*burst = max(1, int(math.Ceil(2**perSecond)))
		}
		l = store.RateLimit{PerSecond: perSecond, Burst: burst}
	}
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := db.SetStoreRateLimit(ctx, *name, l)
	if err != nil {
		return err
	}
	if *def {
		fmt.Fprintf(stdout, "store %s (%s): the default rate limit (PACKLINE_RATE_LIMIT, PACKLINE_RATE_BURST)\n", s.Name, s.ID)
		return nil
	}
	fmt.Fprintf(stdout, "store %s (%s): %s requests/s per API key, burst %d\n", s.Name, s.ID,
		strconv.FormatFloat(*perSecond, 'f', -1, 64), *burst)
	return nil
}

func flowsCmd(cfg Config, args []string, stdout io.Writer) error {
	reg, err := loadFlows(cfg)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("usage: packline flows list | packline flows show NAME [--format mermaid|dot]")
	}
	switch args[0] {
	case "list":
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "FLOW\tINITIAL\tSTATES\tEVENTS\tSOURCE")
		names := reg.Names()
		sort.Strings(names)
		for _, n := range names {
			f := reg.Get(n)
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", f.Name, f.Initial, len(f.States), len(f.Events), f.Source)
		}
		return w.Flush()
	case "show":
		if len(args) < 2 {
			return errors.New("usage: packline flows show NAME [--format mermaid|dot]")
		}
		fs := flag.NewFlagSet("flows show", flag.ContinueOnError)
		format := fs.String("format", "mermaid", "mermaid or dot")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		f := reg.Get(args[1])
		if f == nil {
			return fmt.Errorf("unknown flow %q (one of %v)", args[1], reg.Names())
		}
		out, err := f.Render(*format)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, out)
		return nil
	}
	return fmt.Errorf("unknown flows command %q: list or show", args[0])
}
