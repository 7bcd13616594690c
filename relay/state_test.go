package relay

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/tasks"
)

// fakeInspector answers the sweep's questions as a test scripts them.
type fakeInspector struct {
	servers []*asynq.ServerInfo
	active  map[string][]*asynq.TaskInfo // by queue
}

func (f *fakeInspector) Servers() ([]*asynq.ServerInfo, error) { return f.servers, nil }
func (f *fakeInspector) ListActiveTasks(q string, _ ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
	return f.active[q], nil
}
func (f *fakeInspector) GetTaskInfo(string, string) (*asynq.TaskInfo, error) {
	return nil, errors.New("not asked in this test")
}
func (f *fakeInspector) Close() error { return nil }

// A task Asynq shows active is handed over again when no live server runs
// it: at once when a heartbeat listed it before (its server died), after a
// heartbeat's grace when none ever did (a worker that died before its first
// heartbeat, or a live one that took it a moment ago); never while a live
// server lists it.
func TestSweepHandsOverDeadWorkersTasks(t *testing.T) {
	unlistedGrace = 200 * time.Millisecond
	db := storetest.Open(t, storetest.Default(), store.Options{})
	s, _, _, err := db.CreateStore(t.Context(), "shop", "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	create := func() store.EffectRow {
		t.Helper()
		o, _, err := db.CreateOrder(t.Context(), s.ID, packline.Order{Currency: "USD", Customer: packline.Customer{Name: "Ada"},
			Lines: []packline.Line{{SKU: "MUG-1", Name: "Mug", Quantity: 1, UnitPrice: 100}}}, packline.Actor{Type: packline.ActorCustomer}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.Outbox(t.Context(), o.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range rows {
			if x.Type == tasks.TypeNotifyEmail {
				return store.EffectRow{OutboxRow: x, Deliveries: 1}
			}
		}
		t.Fatal("no notify:email row")
		return store.EffectRow{}
	}
	listedRow, unlistedRow := create(), create()
	rd := redistest.New(t)
	client := asynq.NewClient(rd.Opt())
	t.Cleanup(func() { client.Close() })
	r := New(db, client, Options{Types: []string{tasks.TypeNotifyEmail}, Logger: slog.New(slog.DiscardHandler)})
	if _, err := r.RelayDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	listed, unlisted := tasks.TaskID(listedRow.ID, 1), tasks.TaskID(unlistedRow.ID, 1)
	fake := &fakeInspector{
		servers: []*asynq.ServerInfo{{ActiveWorkers: []*asynq.WorkerInfo{{TaskID: listed}}}},
		active:  map[string][]*asynq.TaskInfo{tasks.QueueLow: {{ID: listed}, {ID: unlisted}}},
	}
	r.inspector = fake
	sweep := func() SweepResult {
		t.Helper()
		var res SweepResult
		if err := r.sweepDeadWorkers(t.Context(), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	deliveries := func(row store.EffectRow) int {
		t.Helper()
		got, err := db.Effect(t.Context(), row.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Deliveries
	}
	if res := sweep(); res.Redelivered != 0 {
		t.Fatalf("first look: %+v", res)
	}
	// The unlisted task gets its grace, then is handed over; the listed
	// one stays.
	deadline := time.Now().Add(10 * time.Second)
	for deliveries(unlistedRow) == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a task no server ever listed was never handed over")
		}
		sweep()
		time.Sleep(20 * time.Millisecond)
	}
	if deliveries(listedRow) != 1 {
		t.Fatal("a task a live server runs was handed over")
	}
	// The server that listed it stops beating: handed over at the next sweep.
	fake.servers = nil
	if res := sweep(); res.Redelivered != 1 || deliveries(listedRow) != 2 {
		t.Fatalf("after its server died: %+v, %d deliveries", res, deliveries(listedRow))
	}
	// The old task ids are no longer the rows' latest: nothing more.
	if res := sweep(); res.Redelivered != 0 {
		t.Fatalf("again: %+v", res)
	}
}
