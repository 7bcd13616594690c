package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/packline/packline/api"
	"github.com/packline/packline/logging"
	"github.com/packline/packline/metrics"
	"github.com/packline/packline/notify"
	"github.com/packline/packline/ops"
	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/webhooks"
	"github.com/packline/packline/workers"
)

// allRoles are the long-running roles, in the order dev starts them.
var allRoles = []string{"api", "worker", "relay", "scheduler"}

// runRoles runs the named roles in this process until ctx is done: they
// share one database pool, one Redis connection and one ops listener.
// started, when set, is told the addresses the API and ops listeners bound.
func runRoles(ctx context.Context, cfg Config, roles []string, stderr io.Writer, started ...func(api, ops string)) error {
	log, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	has := map[string]bool{}
	for _, r := range roles {
		has[r] = true
	}
	needsRedis := has["worker"] || has["relay"] || has["scheduler"]
	if needsRedis {
		if err := cfg.need("REDIS_URL"); err != nil {
			return err
		}
	}

	// The store wakes the in-process relay after a commit; the relay is
	// made after the store, so the waker is pointed at it later.
	var waker relay.Waker
	db, err := openDB(ctx, cfg, waker.Wake)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrated(ctx); err != nil {
		return fmt.Errorf("%w (DATABASE_URL %s)", err, redactURL(cfg.DatabaseURL))
	}

	var (
		redisOpt asynq.RedisConnOpt
		fleet    relay.Fleet
	)
	if cfg.RedisURL != "" {
		if redisOpt, err = asynq.ParseRedisURI(cfg.RedisURL); err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		fleet, err = stampFleet(ctx, db, redisOpt)
		switch {
		case errors.Is(err, relay.ErrForeignFleet):
			return fmt.Errorf("REDIS_URL %s: %w", redactURL(cfg.RedisURL), err)
		case err != nil:
			// Redis is down: the roles wait for it as they always do, and
			// the sweeps stamp the fleet once it is back.
			log.Warn("could not stamp the fleet id in Redis", "err", err)
		}
	}

	deps := workers.Deps{DB: db, Logger: log, Metrics: workers.MetricsFunc(metrics.ObserveEffect)}
	pw := wirePayments(cfg, db, log)
	deps.Payments = pw.accounts
	cw, err := wireCouriers(ctx, cfg, roles, db, log)
	if err != nil {
		return err
	}
	deps.Courier = cw.handler
	if err := wireNotifications(cfg, db, log, &deps); err != nil {
		return err
	}
	relayOpts := relay.Options{Redis: redisOpt, Logger: log, Types: workers.HandledTypes(deps), Fleet: fleet}
	if db.Dialect() == store.Postgres {
		relayOpts.ListenURL = cfg.DatabaseURL
	}

	g, ctx := errgroup.WithContext(ctx)
	var client *asynq.Client
	if needsRedis {
		client = asynq.NewClient(redisOpt)
		defer client.Close()
	}

	// Every role serves the ops listener.
	checks := []ops.Check{
		{Name: "database", Func: db.Ping},
		{Name: "migrations", Func: db.Migrated},
	}
	opsSrv := ops.New(ops.Config{Redis: redisOpt, User: cfg.OpsUser, Password: cfg.OpsPassword, Checks: checks, Orders: db, Logger: log})
	defer opsSrv.Close()
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		return fmt.Errorf("PACKLINE_OPS_ADDR %s: %w", cfg.OpsAddr, err)
	}
	g.Go(func() error { return serve(ctx, log, "ops", opsLn, opsSrv) })

	apiAddr := ""
	if has["api"] {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("PACKLINE_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
		apiAddr = ln.Addr().String()
		h := api.New(pw.apiConfig(api.Config{DB: db, Logger: log, Middleware: metrics.Instrument,
			RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst,
			Couriers: cw.registry, PublicURL: cfg.PublicURL, WebhookAllowPrivate: cfg.AllowPrivate}))
		g.Go(func() error { return serve(ctx, log, "api", ln, h) })
		if cw.player != nil {
			g.Go(func() error { return cw.player.run(ctx, apiAddr) })
		}
	}
	if has["relay"] {
		rl := relay.New(db, client, relayOpts)
		waker.Set(rl.Wake)
		g.Go(func() error { return rl.Run(ctx) })
	}
	if has["scheduler"] {
		sc := relay.NewScheduler(db, client, relayOpts)
		g.Go(func() error { return sc.Run(ctx) })
		// Couriers without callbacks are asked where their shipments are.
		poller := workers.NewTrackingPoller(db, cw.registry, workers.PollOptions{Logger: log})
		g.Go(func() error { return poller.Run(ctx) })
		// Payments are compared with the provider's records.
		rec := workers.NewReconciler(db, deps.Payments, workers.ReconcileOptions{Logger: log})
		g.Go(func() error { return rec.Run(ctx) })
	}
	if has["worker"] {
		srv := workers.NewServer(redisOpt, workers.Config{Concurrency: cfg.Concurrency, Logger: log})
		mux := workers.NewMux(deps)
		g.Go(func() error { return workers.Run(ctx, srv, mux) })
	}
	log.Info("packline started", "roles", strings.Join(roles, ","), "api", apiAddr, "ops", opsLn.Addr().String())
	for _, fn := range started {
		fn(apiAddr, opsLn.Addr().String())
	}
	err = g.Wait()
	log.Info("packline stopped", "roles", strings.Join(roles, ","))
	return err
}

// serve runs an HTTP server on ln until ctx is done, then shuts it down
// gracefully.
func serve(ctx context.Context, log *slog.Logger, name string, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s listener: %w", name, err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		log.Warn("shutdown", "listener", name, "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// redactURL drops the password from a URL for messages.
// stampFleet claims the Redis database for this database's fleet
// (relay.Stamp): a second fleet on the same Redis database is an error at
// start, naming both.
func stampFleet(ctx context.Context, db *store.DB, opt asynq.RedisConnOpt) (relay.Fleet, error) {
	id, err := db.FleetID(ctx)
	if err != nil {
		return relay.Fleet{}, err
	}
	f := relay.Fleet{ID: id, Database: db.Where()}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return f, nil
	}
	defer rdb.Close()
	return f, relay.Stamp(ctx, rdb, f)
}

func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.Index(u[i+3:], "@"); j >= 0 {
			return u[:i+3] + "…@" + u[i+3+j+1:]
		}
	}
	return u
}

// wireNotifications sets the notify:email, notify:sms and webhook:deliver
// handlers of deps: the sandbox notifier (messages stored, sent nowhere)
// unless PACKLINE_SMTP_URL and PACKLINE_SMS_* name real senders, and
// webhooks to public addresses unless PACKLINE_WEBHOOK_ALLOW_PRIVATE.
func wireNotifications(cfg Config, db *store.DB, log *slog.Logger, deps *workers.Deps) error {
	if err := notify.Check(db.Flows()); err != nil {
		return fmt.Errorf("load flows: %w", err)
	}
	ncfg := workers.NotifierConfig{Logger: log}
	if cfg.SMTP != nil {
		s, err := notify.NewSMTPSender(*cfg.SMTP)
		if err != nil {
			return fmt.Errorf("PACKLINE_SMTP_URL: %w", err)
		}
		ncfg.Email = s
	}
	if cfg.SMS != nil {
		s, err := notify.NewTwilioSender(*cfg.SMS)
		if err != nil {
			return fmt.Errorf("PACKLINE_SMS_*: %w", err)
		}
		ncfg.SMS = s
	}
	n := workers.NewNotifier(db, ncfg)
	deps.Email, deps.SMS = n, n
	deps.Webhooks = workers.NewWebhooks(db, workers.WebhooksConfig{Notices: n, PublicURL: cfg.PublicURL, Logger: log,
		Client: webhooks.NewClient(webhooks.Options{AllowPrivate: cfg.AllowPrivate})})
	return nil
}
