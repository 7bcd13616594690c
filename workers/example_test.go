package workers_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/workers"
)

// How the roles are assembled: the worker, the relay and the scheduler on
// one database and one Redis (packline dev runs all three in one process;
// packline worker, relay and scheduler one each).
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg, _ := flows.Builtin()
	redisOpt := asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}
	databaseURL := "postgres://packline@127.0.0.1/packline"

	// The relay wakes on in-process commits through OnOutbox; the waker
	// bridges the store, opened first, to the relay made from it.
	waker := &relay.Waker{}
	db, err := store.Open(ctx, databaseURL, store.Options{Flows: reg, OnOutbox: waker.Wake})
	if err != nil {
		slog.Error("open database", "err", err)
		return
	}
	defer db.Close()

	deps := workers.Deps{DB: db /* Payments: nil = sandbox; Courier, Email, SMS, Webhooks: when written */}

	// packline relay: only the types a worker handles, so the others stay
	// pending and visible.
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	rl := relay.New(db, client, relay.Options{
		Types:     workers.HandledTypes(deps),
		Redis:     redisOpt,
		ListenURL: databaseURL, // PostgreSQL only
	})
	waker.Set(rl.Wake)
	go rl.Run(ctx)

	// packline scheduler: the sweep alone.
	go relay.NewScheduler(db, client, relay.Options{Types: workers.HandledTypes(deps), Redis: redisOpt}).Run(ctx)

	// packline worker: returns once ctx is done and running tasks finished.
	srv := workers.NewServer(redisOpt, workers.Config{})
	if err := workers.Run(ctx, srv, workers.NewMux(deps)); err != nil {
		slog.Error("worker", "err", err)
	}
}
