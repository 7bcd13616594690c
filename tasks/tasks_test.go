package tasks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/tasks"
)

func TestNewSetsPolicyInOnePlace(t *testing.T) {
	cases := []struct {
		typ, queue string
		retry      int
		timeout    time.Duration
	}{
		{tasks.TypePaymentConfirm, tasks.QueueCritical, 10, 30 * time.Second},
		{tasks.TypeStockDecrement, tasks.QueueCritical, 10, 15 * time.Second},
		{tasks.TypeOrderTimer, tasks.QueueCritical, 10, 15 * time.Second},
		{tasks.TypeCourierLabel, tasks.QueueDefault, 12, 60 * time.Second},
		{tasks.TypeWebhookDeliver, tasks.QueueDefault, 15, 30 * time.Second},
		{tasks.TypeNotifySMS, tasks.QueueLow, 8, 30 * time.Second},
	}
	for _, c := range cases {
		p, ok := tasks.PolicyOf(c.typ)
		if !ok || p.Queue != c.queue || p.MaxRetry != c.retry || p.Timeout != c.timeout {
			t.Errorf("%s: policy %+v", c.typ, p)
		}
		if p.Timeout > tasks.MaxTimeout {
			t.Errorf("%s: timeout %s over MaxTimeout", c.typ, p.Timeout)
		}
		task, err := tasks.New(tasks.Payload{EffectID: "eff_1", OrderID: "ord_1", Type: c.typ, Delivery: 1, Effect: &flows.Effect{Type: c.typ}})
		if err != nil || task.Type() != c.typ {
			t.Fatalf("%s: %v", c.typ, err)
		}
		p2, err := tasks.Parse(task)
		if err != nil || p2.EffectID != "eff_1" || p2.Effect.Type != c.typ {
			t.Fatalf("%s: parse %+v %v", c.typ, p2, err)
		}
	}
	for _, typ := range tasks.Types() {
		if _, ok := tasks.Queues[mustPolicy(t, typ).Queue]; !ok {
			t.Errorf("%s: queue without a weight", typ)
		}
	}
}

// MaxTimeout is derived from the catalogue; the relay's redelivery default
// (2m) is set against this value.
func TestMaxTimeoutIsTheLongestTimeout(t *testing.T) {
	if tasks.MaxTimeout != 60*time.Second {
		t.Errorf("MaxTimeout = %s, want 60s (courier:label)", tasks.MaxTimeout)
	}
	if len(tasks.Types()) != 12 {
		t.Errorf("Types() = %q, want the 12 effect types of the catalogue", tasks.Types())
	}
}

func mustPolicy(t *testing.T, typ string) tasks.Policy {
	p, ok := tasks.PolicyOf(typ)
	if !ok {
		t.Fatalf("no policy for %s", typ)
	}
	return p
}

func TestTaskIDs(t *testing.T) {
	if got := tasks.TaskID("eff_ab", 1); got != "eff_ab" {
		t.Fatal(got)
	}
	if got := tasks.TaskID("eff_ab", 3); got != "eff_ab-r3" || tasks.EffectIDOf(got) != "eff_ab" || tasks.EffectIDOf("eff_ab") != "eff_ab" {
		t.Fatal(got)
	}
}

func TestNewRefusesUnknownAndIncomplete(t *testing.T) {
	if _, err := tasks.New(tasks.Payload{EffectID: "e", OrderID: "o", Type: "sheets:sync"}); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, err := tasks.New(tasks.Payload{Type: tasks.TypeStockRestore}); err == nil {
		t.Fatal("payload without ids accepted")
	}
	if _, err := tasks.Parse(asynq.NewTask(tasks.TypeStockRestore, []byte("{"))); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("bad payload: %v", err)
	}
}

// Every effect type a flow may name has a task type here.
func TestEveryFlowEffectHasATaskType(t *testing.T) {
	reg, err := flows.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range reg.Names() {
		f := reg.Get(name)
		check := func(specs []flows.EffectSpec) {
			for _, s := range specs {
				if _, ok := tasks.PolicyOf(s.Type); !ok {
					t.Errorf("flow %s: effect %s has no task type", name, s.Type)
				}
			}
		}
		check(f.OnCreate)
		for _, ev := range f.Events {
			for _, tr := range ev.Transitions {
				check(tr.Effects)
			}
		}
		for _, tr := range f.Automatic {
			check(tr.Effects)
		}
	}
}
