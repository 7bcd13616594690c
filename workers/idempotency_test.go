package workers_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/relay"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/tasks"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// effectCase brings an order to the point where it owes one effect of typ,
// running what comes before it through the mux.
type effectCase struct {
	typ   string
	flow  string
	event string // what the effect reports, "" for nothing
	setup func(e *env, run func(typ string)) (orderID string)
}

var effectCases = []effectCase{
	{tasks.TypePaymentConfirm, "made-to-order", "payment_succeeded", func(e *env, run func(string)) string {
		return e.create(payments.MethodVisa).ID
	}},
	{tasks.TypePaymentAuthorize, "request-approval", "payment_succeeded", func(e *env, run func(string)) string {
		return e.create(payments.MethodVisa).ID
	}},
	{tasks.TypePaymentCapture, "request-approval", "payment_succeeded", func(e *env, run func(string)) string {
		o := e.create(payments.MethodVisa)
		run(tasks.TypePaymentAuthorize)
		e.send(o.ID, "accept", merchant, nil)
		return o.ID
	}},
	{tasks.TypePaymentVoid, "request-approval", "", func(e *env, run func(string)) string {
		o := e.create(payments.MethodVisa)
		run(tasks.TypePaymentAuthorize)
		return o.ID
	}},
	{tasks.TypePaymentRefund, "prepaid-simple", "", func(e *env, run func(string)) string {
		o := e.create(payments.MethodVisa)
		run(tasks.TypePaymentConfirm)
		e.send(o.ID, "cancel", merchant, nil)
		return o.ID
	}},
	{tasks.TypeStockDecrement, "cash-on-delivery", "stock_taken", func(e *env, run func(string)) string {
		e.setStock("MUG-1", 10)
		o := e.create("", line("MUG-1", 3))
		e.send(o.ID, "confirm", merchant, nil)
		return o.ID
	}},
	{tasks.TypeStockRestore, "cash-on-delivery", "", func(e *env, run func(string)) string {
		e.setStock("MUG-1", 10)
		o := e.create("", line("MUG-1", 3))
		e.send(o.ID, "confirm", merchant, nil)
		run(tasks.TypeStockDecrement)
		e.send(o.ID, "cancel", merchant, nil)
		return o.ID
	}},
	{tasks.TypeOrderTimer, "made-to-order", "expire", func(e *env, run func(string)) string {
		return e.create(payments.MethodVisa).ID
	}},
}

// snapshot is everything an effect may change.
type snapshot struct {
	Version  int64
	Status   string
	Events   []string
	Payments []string
	Sandbox  int
	OnHand   int64
	Ledger   int
}

func (e *env) snapshot(id string) snapshot {
	e.t.Helper()
	s := snapshot{Events: e.events(id), OnHand: e.stock("MUG-1")}
	o := e.order(id)
	s.Version, s.Status = o.Version, o.Status
	for _, p := range e.payments(id) {
		s.Payments = append(s.Payments, fmt.Sprintf("%s/%s/%d/%s", p.Kind, p.Status, p.Amount, p.ID))
	}
	sq := e.db.SQL()
	if err := sq.Get(&s.Sandbox, `SELECT COUNT(*) FROM sandbox_payments`); err != nil {
		e.t.Fatal(err)
	}
	l, err := e.db.StockLedger(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	s.Ledger = len(l)
	return s
}

// taskFor returns the task of the order's newest pending row of typ.
func (e *env) taskFor(id, typ string) (*asynq.Task, string) {
	e.t.Helper()
	rows, err := e.db.Outbox(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if r.Type == typ && r.Status == store.EffectPending {
			task, err := relay.Task(r, 1)
			if err != nil {
				e.t.Fatal(err)
			}
			return task, r.ID
		}
	}
	e.t.Fatalf("order %s owes no pending %s", id, typ)
	return nil, ""
}

// Each handler run twice, and raced by four workers at once, has the effect
// of one run: one provider call recorded, one payment, one event, one stock
// movement.
func TestEachHandlerTwiceAndRacedIsOneEffect(t *testing.T) {
	for _, c := range effectCases {
		for _, mode := range []string{"twice", "raced"} {
			t.Run(c.typ+"/"+mode, func(t *testing.T) {
				t.Parallel()
				storetest.Each(t, func(t *testing.T, dialect string) {
					e := setup(t, dialect, c.flow, setupOpts{noStart: true, store: store.Options{TimerScale: 0.000001}})
					mux := workers.NewMux(workers.Deps{DB: e.db.DB, Logger: fleettest.Logger()})
					ctx := t.Context()
					var id string
					run := func(typ string) {
						task, _ := e.taskFor(id, typ)
						if err := mux.ProcessTask(ctx, task); err != nil {
							t.Fatalf("%s: %v", typ, err)
						}
					}
					// setup may call run before it returns the id: give it
					// the order through a lookup of the newest order.
					id = c.setup(e, func(typ string) {
						id = e.newestOrder()
						run(typ)
					})
					task, effectID := e.taskFor(id, c.typ)
					before := e.snapshot(id)
					runTask(t, mux, task, mode)
					after := e.snapshot(id)
					row, err := e.db.Effect(ctx, effectID)
					if err != nil || row.Status != store.EffectDone {
						t.Fatalf("row %+v %v", row, err)
					}
					if c.event != "" && count(after.Events, c.event)-count(before.Events, c.event) != 1 {
						t.Fatalf("%s reported %d times: %v", c.event, count(after.Events, c.event)-count(before.Events, c.event), after.Events)
					}
					if c.event == "" && len(after.Events) != len(before.Events) {
						t.Fatalf("events changed: %v → %v", before.Events, after.Events)
					}
					if kind := paymentKind(c.typ); kind != "" {
						if len(after.Payments) != len(before.Payments)+1 || after.Sandbox != before.Sandbox+1 {
							t.Fatalf("payments %v → %v, sandbox %d → %d", before.Payments, after.Payments, before.Sandbox, after.Sandbox)
						}
					}
					switch c.typ {
					case tasks.TypeStockDecrement:
						if after.OnHand != before.OnHand-3 || after.Ledger != before.Ledger+1 {
							t.Fatalf("stock %d → %d, ledger %d → %d", before.OnHand, after.OnHand, before.Ledger, after.Ledger)
						}
					case tasks.TypeStockRestore:
						if after.OnHand != before.OnHand+3 || after.Ledger != before.Ledger+1 {
							t.Fatalf("stock %d → %d, ledger %d → %d", before.OnHand, after.OnHand, before.Ledger, after.Ledger)
						}
					}
					// And once more, much later: nothing at all changes.
					if err := mux.ProcessTask(ctx, task); err != nil {
						t.Fatal(err)
					}
					if again := e.snapshot(id); !reflect.DeepEqual(again, after) {
						t.Fatalf("a third run changed %+v → %+v", after, again)
					}
				})
			})
		}
	}
}

func paymentKind(typ string) string {
	if len(typ) > 8 && typ[:8] == "payment:" {
		return typ[8:]
	}
	return ""
}

func (e *env) newestOrder() string {
	e.t.Helper()
	os, _, err := e.db.ListOrders(e.t.Context(), e.store.ID, store.ListFilter{Limit: 1})
	if err != nil || len(os) == 0 {
		e.t.Fatalf("no order: %v", err)
	}
	return os[0].ID
}
