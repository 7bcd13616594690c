package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// fault is one scheduled fault.
type fault struct {
	at   time.Duration // from the start of the workload
	name string
	do   func(ctx context.Context) error
}

// faultLog is what happened, when, and how long it took.
type faultLog struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Took   float64   `json:"took_seconds"`
	Error  string    `json:"error,omitempty"`
	Offset float64   `json:"offset_seconds"`
}

// schedule is the faults of a run over window: a worker SIGKILLed (and
// started again) every killEvery, the two workers in turn; and once each,
// spread over the window: both relays SIGKILLed and restarted, FLUSHALL,
// Redis SIGKILLed and restarted (empty), PostgreSQL restarted
// (pg_ctl restart -m fast), the api SIGKILLed and restarted after a pause
// (the storefronts retry with the same Idempotency-Key meanwhile).
func schedule(window, killEvery time.Duration, f *roles, rs *redisServer, pg *postgres) []fault {
	var out []fault
	w := 0
	for at := killEvery; at < window; at += killEvery {
		name := fmt.Sprintf("worker-%d", w%2+1)
		w++
		out = append(out, fault{at: at, name: "SIGKILL " + name, do: func(ctx context.Context) error { return f.kill(ctx, 0, name) }})
	}
	frac := func(x float64) time.Duration { return time.Duration(float64(window) * x) }
	out = append(out,
		fault{at: frac(0.18), name: "SIGKILL relay-1 and relay-2", do: func(ctx context.Context) error {
			return f.kill(ctx, 0, "relay-1", "relay-2")
		}},
		fault{at: frac(0.33), name: "Redis FLUSHALL", do: rs.flushAll},
		fault{at: frac(0.48), name: "SIGKILL redis-server, restart it empty", do: func(ctx context.Context) error {
			rs.kill()
			time.Sleep(time.Second)
			return rs.start(ctx)
		}},
		fault{at: frac(0.63), name: "pg_ctl restart -m fast", do: func(ctx context.Context) error { return pg.ctl(ctx, "restart") }},
		fault{at: frac(0.78), name: "SIGKILL api, restart after 3 s", do: func(ctx context.Context) error {
			return f.kill(ctx, 3*time.Second, "api")
		}},
	)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out
}

// runFaults runs the schedule from start; faults that fall due while one
// runs wait for it. It returns the log, and the time the last fault ended.
func runFaults(ctx context.Context, start time.Time, faults []fault, note func(string)) ([]faultLog, time.Time) {
	var (
		logs []faultLog
		last time.Time
		mu   sync.Mutex
	)
	for _, ft := range faults {
		select {
		case <-ctx.Done():
			return logs, last
		case <-time.After(time.Until(start.Add(ft.at))):
		}
		t0 := time.Now()
		err := ft.do(ctx)
		took := time.Since(t0)
		l := faultLog{Name: ft.name, At: t0.UTC(), Took: took.Seconds(), Offset: t0.Sub(start).Seconds()}
		if err != nil {
			l.Error = err.Error()
		}
		mu.Lock()
		logs = append(logs, l)
		last = time.Now()
		mu.Unlock()
		msg := fmt.Sprintf("fault at %5.1fs: %s (%.1fs)", l.Offset, ft.name, took.Seconds())
		if err != nil {
			msg += ": " + err.Error()
		}
		note(msg)
	}
	return logs, last
}
