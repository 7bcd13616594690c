package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// OrderState is what a journey waits on: an order's status and flags.
type OrderState struct {
	Status string
	Flags  map[string]bool
}

// Watcher reads the state of every order some journey waits on with one
// query per tick, and wakes the journeys whose condition holds. It stands
// for the merchant's screen: the journeys do not poll the API, so the
// requests packline serves are only the ones the actors would send.
type Watcher struct {
	db     *sqlx.DB
	tick   time.Duration
	marker string

	mu      sync.Mutex
	waiting map[string][]*wait
}

type wait struct {
	cond func(OrderState) bool
	done chan OrderState
}

// NewWatcher is a Watcher reading db every tick; marker (an SQL comment)
// starts its query, so statement counts can leave it out.
func NewWatcher(db *sqlx.DB, tick time.Duration, marker string) *Watcher {
	return &Watcher{db: db, tick: tick, marker: marker, waiting: map[string][]*wait{}}
}

// Until blocks until the order's state satisfies cond, ctx ends, or d
// passes.
func (w *Watcher) Until(ctx context.Context, id, what string, d time.Duration, cond func(OrderState) bool) (OrderState, error) {
	wt := &wait{cond: cond, done: make(chan OrderState, 1)}
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
		return OrderState{}, ctx.Err()
	case <-t.C:
		return OrderState{}, fmt.Errorf("order %s did not %s within %s", id, what, d)
	}
}

func (w *Watcher) forget(id string, wt *wait) {
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

// Run reads the watched orders every tick until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
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

func (w *Watcher) pass(ctx context.Context) {
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
	if err := w.db.SelectContext(ctx, &rows, w.marker+`SELECT id, status, flags FROM orders WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		return // the next tick tries again; a journey's own deadline ends a real outage
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rows {
		st := OrderState{Status: r.Status}
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

// InStatus is a condition: the order is in status.
func InStatus(status string) func(OrderState) bool {
	return func(s OrderState) bool { return s.Status == status }
}

// HasFlag is a condition: the order has flag set.
func HasFlag(flag string) func(OrderState) bool {
	return func(s OrderState) bool { return s.Flags[flag] }
}
