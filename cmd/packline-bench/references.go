package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
)

// The references are the raw parts packline is made of, measured on the
// same machine in the same run, before packline starts.

const (
	refTable    = "packline_bench_reference"
	refTaskType = "bench:noop"
)

// insertRate is one-row INSERT transactions per second from clients
// clients for d, each BEGIN; INSERT; COMMIT through lib/pq, as packline
// sends them.
func insertRate(ctx context.Context, db *sqlx.DB, clients int, d time.Duration) (float64, error) {
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := insertOne(ctx, db); err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, fmt.Errorf("reference INSERT: %w", err)
	}
	return perSecond(int(n.Load()), d), nil
}

// insertOne commits one transaction that inserts one row.
func insertOne(ctx context.Context, db *sqlx.DB) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, benchMarker+`INSERT INTO `+refTable+` (payload, at) VALUES ($1, $2)`, "effect", time.Now()); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// createRefTable makes the reference table (dropped by dropRefTable).
func createRefTable(ctx context.Context, db *sqlx.DB) error {
	_, err := db.ExecContext(ctx, benchMarker+`CREATE TABLE IF NOT EXISTS `+refTable+` (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, at TIMESTAMPTZ NOT NULL)`)
	return err
}

func dropRefTable(ctx context.Context, db *sqlx.DB) {
	db.ExecContext(ctx, benchMarker+`DROP TABLE IF EXISTS `+refTable)
}

// asynqRate enqueues tasks tasks on the empty Redis database of opt, then
// runs an asynq.Server at concurrency with handler until every task is
// done, and returns tasks per second (from the server's start to the last
// task).
func asynqRate(ctx context.Context, opt asynq.RedisClientOpt, tasks, concurrency int, handler func(context.Context) error) (float64, error) {
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	defer rdb.Close()
	defer rdb.FlushDB(context.Background())
	if err := enqueueAll(ctx, opt, tasks); err != nil {
		return 0, err
	}
	var done atomic.Int64
	all := make(chan struct{})
	var failed atomic.Value
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: concurrency, Queues: map[string]int{"default": 1},
		LogLevel: asynq.ErrorLevel, ShutdownTimeout: 5 * time.Second})
	mux := asynq.NewServeMux()
	mux.HandleFunc(refTaskType, func(ctx context.Context, t *asynq.Task) error {
		if err := handler(ctx); err != nil {
			failed.Store(err)
			return err
		}
		if done.Add(1) == int64(tasks) {
			close(all)
		}
		return nil
	})
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, fmt.Errorf("start the reference asynq server: %w", err)
	}
	defer srv.Shutdown()
	select {
	case <-all:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("reference asynq server: %d of %d tasks done after 5 minutes (last error: %v)", done.Load(), tasks, failed.Load())
	}
	return perSecond(tasks, time.Since(start)), nil
}

// enqueueAll puts n no-op tasks on the default queue, from 16 clients at
// once.
func enqueueAll(ctx context.Context, opt asynq.RedisClientOpt, n int) error {
	client := asynq.NewClient(opt)
	defer client.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.EnqueueContext(ctx, asynq.NewTask(refTaskType, []byte(`{}`)), asynq.MaxRetry(0)); err != nil {
					errc <- fmt.Errorf("enqueue reference tasks: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// references measures the raw parts, before packline starts.
func (b *bench) references(ctx context.Context) error {
	ref := &b.report.References
	ref.Concurrency = b.opts.concurrency
	if err := createRefTable(ctx, b.db.DB); err != nil {
		return fmt.Errorf("create the reference table: %w", err)
	}
	defer dropRefTable(context.WithoutCancel(ctx), b.db.DB)

	b.progress.phase("reference: one-row INSERT transactions")
	r, err := insertRate(ctx, b.db.DB, b.opts.concurrency, b.opts.reference)
	if err != nil {
		return err
	}
	ref.InsertTxPerSec = Num(r)

	b.progress.phase("reference: asynq no-op tasks")
	if r, err = asynqRate(ctx, b.refRedis, b.opts.refTasks, b.opts.concurrency, func(context.Context) error { return nil }); err != nil {
		return err
	}
	ref.AsynqNoopPerSec = Num(r)

	b.progress.phase("reference: asynq tasks, one PostgreSQL transaction each")
	n := max(b.opts.refTasks/4, 1)
	self0, _ := processCPU(os.Getpid())
	pg0, pgOK := postgresCPU(b.db.name)
	if r, err = asynqRate(ctx, b.refRedis, n, b.opts.concurrency, func(ctx context.Context) error { return insertOne(ctx, b.db.DB) }); err != nil {
		return err
	}
	ref.AsynqTxPerSec = Num(r)
	self1, _ := processCPU(os.Getpid())
	cpu := self1 - self0
	if pg1, ok := postgresCPU(b.db.name); ok && pgOK {
		cpu += pg1.since(pg0)
	}
	ref.AsynqTxCPUMs = Num(float64(cpu) / float64(time.Millisecond) / float64(n))
	return nil
}
