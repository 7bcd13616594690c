package relay

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/redistest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/tasks"
)

// A task a worker took (active in Asynq) and died with before it marked its
// row started is lost once no live server has listed it for a heartbeat;
// until then it may be a task a live worker took a moment ago.
func TestStateOfATakenTaskNoServerLists(t *testing.T) {
	unlistedGrace = 300 * time.Millisecond
	db := storetest.Open(t, storetest.Default(), store.Options{})
	s, _, _, err := db.CreateStore(t.Context(), "shop", "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := db.CreateOrder(t.Context(), s.ID, packline.Order{Currency: "USD", Customer: packline.Customer{Name: "Ada"},
		Lines: []packline.Line{{SKU: "MUG-1", Name: "Mug", Quantity: 1, UnitPrice: 100}}}, packline.Actor{Type: packline.ActorCustomer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd := redistest.New(t)
	client := asynq.NewClient(rd.Opt())
	t.Cleanup(func() { client.Close() })
	r := New(db, client, Options{Redis: rd.Opt(), Types: []string{tasks.TypeNotifyEmail}})
	t.Cleanup(r.close)
	if _, err := r.RelayDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Outbox(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	var row store.EffectRow
	for _, x := range rows {
		if x.Type == tasks.TypeNotifyEmail {
			row = store.EffectRow{OutboxRow: x, Deliveries: 1}
		}
	}
	// A worker takes the task and never starts the row.
	release := make(chan struct{})
	srv := asynq.NewServer(rd.Opt(), asynq.Config{Concurrency: 1, Queues: map[string]int{tasks.QueueLow: 1}, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	taken := make(chan struct{}, 1)
	mux.HandleFunc(tasks.TypeNotifyEmail, func(context.Context, *asynq.Task) error {
		taken <- struct{}{}
		<-release
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release); srv.Shutdown() })
	select {
	case <-taken:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker never took the task")
	}
	ctx := t.Context()
	if got := r.state(ctx, row, map[string]bool{tasks.TaskID(row.ID, 1): true}, true); got != taskRunning {
		t.Fatalf("listed by a live server: %v", got)
	}
	none := map[string]bool{}
	if got := r.state(ctx, row, none, true); got != taskRunning {
		t.Fatalf("unlisted the first time: %v", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for r.state(ctx, row, none, true) != taskLost {
		if time.Now().After(deadline) {
			t.Fatal("the unlisted task was never found lost")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := r.state(ctx, row, none, false); got != taskRunning {
		t.Fatalf("when the servers cannot be listed: %v", got)
	}
}
