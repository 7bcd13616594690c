package workers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/tasks"
)

// Config tunes the worker server. Zero values take the defaults noted.
type Config struct {
	// Concurrency is how many tasks run at once (default 20: most time is
	// spent waiting on the database or a provider).
	Concurrency int
	// TaskCheckInterval is how long an idle server waits before looking at
	// empty queues again (default 5ms: Asynq sleeps between half and one
	// and a half of it, so a quiet shop's effect waits 5ms on average
	// for a worker; Asynq's own default is 1s). Each look is one small
	// script on Redis: 200 a second per idle worker process.
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often scheduled and retrying tasks
	// are moved to their queue (default 500ms; Asynq's is 5s).
	DelayedTaskCheckInterval time.Duration
	// ShutdownTimeout is how long a shutdown waits for running tasks
	// before it hands them back to their queue (default 10s).
	ShutdownTimeout time.Duration
	// RetryDelay is the wait before retry n (default RetryDelay).
	RetryDelay asynq.RetryDelayFunc
	// Logger defaults to slog.Default(); Asynq's own messages go to it at
	// LogLevel (default warn).
	Logger   *slog.Logger
	LogLevel asynq.LogLevel
	// BaseContext is the context every handler's context derives from.
	BaseContext func() context.Context
}

// RetryDelay is the default retry backoff: 1s, 2s, 4s, … up to 256s (the
// ninth retry on). Effects are idempotent, so retrying soon is cheap, and a short
// first delay keeps a transient blip from showing.
func RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	if n > 8 {
		n = 8
	}
	return time.Second << n
}

// NewServer returns an Asynq server on the tasks queues with their weights.
// Run it with Run.
func NewServer(redisOpt asynq.RedisConnOpt, cfg Config) *asynq.Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 20
	}
	if cfg.TaskCheckInterval <= 0 {
		cfg.TaskCheckInterval = 5 * time.Millisecond
	}
	if cfg.DelayedTaskCheckInterval <= 0 {
		cfg.DelayedTaskCheckInterval = 500 * time.Millisecond
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.RetryDelay == nil {
		cfg.RetryDelay = RetryDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogLevel == 0 {
		cfg.LogLevel = asynq.WarnLevel
	}
	queues := make(map[string]int, len(tasks.Queues))
	for q, w := range tasks.Queues {
		queues[q] = w
	}
	return asynq.NewServer(redisOpt, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           cfg.RetryDelay,
		Logger:                   asynqLogger{cfg.Logger},
		LogLevel:                 cfg.LogLevel,
		BaseContext:              cfg.BaseContext,
	})
}

// Run starts srv with h and stops it when ctx is done: running tasks get
// the server's ShutdownTimeout to finish, and the rest go back to their
// queue. It returns when the server has stopped.
func Run(ctx context.Context, srv *asynq.Server, h asynq.Handler) error {
	if err := srv.Start(h); err != nil {
		return fmt.Errorf("start worker server: %w", err)
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

// asynqLogger sends Asynq's log lines to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq")
	os.Exit(1) // the asynq.Logger contract

}
