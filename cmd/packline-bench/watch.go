package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// orderState is what a journey waits on: an order's status and flags.
type orderState struct {
	Status string
	Flags  map[string]bool
}

// watcher reads the state of every order some journey waits on with one
// query per tick, and wakes the journeys whose condition holds. It stands
// for the merchant's screen: the journeys do not poll the API, so the
// requests packline serves are only the ones the actors would send.
type watcher struct {
	db   *sqlx.DB
	tick time.Duration

	mu      sync.Mutex
	waiting map[string][]*wait
}

type wait struct {
	cond func(orderState) bool
	done chan orderState
}

func newWatcher(db *sqlx.DB, tick time.Duration) *watcher {
	return &watcher{db: db, tick: tick, waiting: map[string][]*wait{}}
}

// until blocks until the order's state satisfies cond, ctx ends, or d
// passes.
func (w *watcher) until(ctx context.Context, id, what string, d time.Duration, cond func(orderState) bool) (orderState, error) {
	wt := &wait{cond: cond, done: make(chan orderState, 1)}
	w.mu.Lock()
	w.waiting[id] = append(w.waiting[id], wt)
	w.mu.Unlock()
	defer w.forget(id, wt)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case st := <-wt.done:
		return st, nil
	case <-ctx.Done():
		return orderState{}, ctx.Err()
	case <-t.C:
		return orderState{}, fmt.Errorf("order %s did not %s within %s", id, what, d)
	}
}

func (w *watcher) forget(id string, wt *wait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.waiting[id]
	for i, x := range ws {
		if x == wt {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(w.waiting, id)
	} else {
		w.waiting[id] = ws
	}
}

// run reads the watched orders every tick until ctx ends.
func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.pass(ctx)
	}
}

func (w *watcher) pass(ctx context.Context) {
	w.mu.Lock()
	ids := make([]string, 0, len(w.waiting))
	for id := range w.waiting {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	var rows []struct {
		ID     string `db:"id"`
		Status string `db:"status"`
		Flags  string `db:"flags"`
	}
	if err := w.db.SelectContext(ctx, &rows, benchMarker+`SELECT id, status, flags FROM orders WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		return // the next tick tries again; a journey's own deadline ends a real outage
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rows {
		st := orderState{Status: r.Status}
		json.Unmarshal([]byte(r.Flags), &st.Flags)
		for _, wt := range w.waiting[r.ID] {
			if wt.cond(st) {
				select {
				case wt.done <- st:
				default:
				}
			}
		}
	}
}

// inStatus is a condition: the order is in status.
func inStatus(status string) func(orderState) bool {
	return func(s orderState) bool { return s.Status == status }
}

// hasFlag is a condition: the order has flag set.
func hasFlag(flag string) func(orderState) bool {
	return func(s orderState) bool { return s.Flags[flag] }
}
