package workers_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// An outside handler plugs in through Deps: its report reaches the order,
// and a panic in it is recorded on the row and retried, not fatal.
func TestOutsideHandlerPlugsInAndPanicIsRetried(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		var calls atomic.Int32
		courier := workers.EffectHandlerFunc(func(ctx context.Context, e workers.Effect) (*workers.Report, error) {
			if calls.Add(1) == 1 {
				panic("courier API exploded")
			}
			if e.Order == nil || e.Order.ID != e.OrderID {
				t.Errorf("effect without its order: %+v", e)
			}
			return &workers.Report{Event: "label_created", Data: map[string]any{"tracking": "TRK" + e.ID}}, nil
		})
		e := setup(t, dialect, "wholesale", setupOpts{fleet: fleettest.Options{Deps: workers.Deps{Courier: courier}}})
		o := e.create("", line("TEE-1", 10))
		for _, ev := range []string{"confirm", "start_production", "ship"} {
			e.send(o.ID, ev, merchant, nil)
		}
		e.waitStatus(o.ID, "shipped")
		var label store.OutboxRow
		for _, r := range e.waitSettled(o.ID) {
			if r.Type == "courier:label" {
				label = r
			}
		}
		if label.Status != store.EffectDone || label.Attempts != 1 || !strings.Contains(label.LastError, "courier API exploded") {
			t.Fatalf("label row %+v", label)
		}
		if calls.Load() != 2 {
			t.Fatalf("%d calls", calls.Load())
		}
	})
}
