package workers

import (
	"context"
	"encoding/json"
	"fmt"
	plog "github.com/packline/packline/logging"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/hibiken/asynq"
)

// logging logs every task run with its task id, type and order id, and
// observes it on m.
func logging(log *slog.Logger, m Metrics) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			id, _ := asynq.GetTaskID(ctx)
			retry, _ := asynq.GetRetryCount(ctx)
			var p struct {
				OrderID string `json:"order_id"`
			}
			_ = json.Unmarshal(t.Payload(), &p)
			// Every log line of the task carries its ids (logging's context
			// handler adds them).
			ctx = plog.WithAttrs(ctx, slog.String("task_id", id), slog.String("type", t.Type()), slog.String("order_id", p.OrderID))
			attrs := []any{"retry", retry}
			err := next.ProcessTask(ctx, t)
			d := time.Since(start)
			attrs = append(attrs, "duration", d)
			outcome := "ok"
			if err != nil {
				outcome = "error"
				log.WarnContext(ctx, "task failed", append(attrs, "err", err)...)
			} else {
				log.DebugContext(ctx, "task done", attrs...)
			}
			if m != nil {
				m.ObserveEffect(t.Type(), outcome, d)
			}
			return err
		})
	}
}

// recovery turns a panic in a handler into an error, logged with its stack,
// so the task is retried like any failure and the worker goes on.
func recovery(log *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
			defer func() {
				if r := recover(); r != nil {
					id, _ := asynq.GetTaskID(ctx)
					log.ErrorContext(ctx, "task panicked", "task_id", id, "type", t.Type(), "panic", r, "stack", string(debug.Stack()))
					err = fmt.Errorf("panic in %s: %v", t.Type(), r)
				}
			}()
			return next.ProcessTask(ctx, t)
		})
	}
}
