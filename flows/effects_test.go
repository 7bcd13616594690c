package flows

import (
	"testing"
)

// TestCatalogueIsComplete checks that every entry says how it runs, how it
// stays idempotent and, when it reports events, as whom.
func TestCatalogueIsComplete(t *testing.T) {
	t.Parallel()
	queues := map[string]bool{QueueCritical: true, QueueDefault: true, QueueLow: true}
	seen := map[EffectType]bool{}
	for _, e := range Effects() {
		if seen[e.Type] {
			t.Errorf("%s: listed twice", e.Type)
		}
		seen[e.Type] = true
		if !queues[e.Queue] || e.MaxRetry <= 0 || e.Timeout <= 0 {
			t.Errorf("%s: queue %q, MaxRetry %d, Timeout %s", e.Type, e.Queue, e.MaxRetry, e.Timeout)
		}
		if e.IdempotencyKey == "" {
			t.Errorf("%s: no idempotency key", e.Type)
		}
		if (len(e.Reports) > 0) != e.Reporter.Valid() {
			t.Errorf("%s: reports %q as %q", e.Type, e.Reports, e.Reporter)
		}
		if got, ok := EffectOf(e.Type); !ok || got.Type != e.Type {
			t.Errorf("EffectOf(%s) = %+v, %v", e.Type, got, ok)
		}
	}
	if len(seen) != 12 {
		t.Errorf("%d effect types, want 12", len(seen))
	}
	if _, ok := EffectOf("sheets:sync"); ok {
		t.Error("EffectOf found sheets:sync")
	}
}

// TestEffectOfReturnsACopy checks that a caller cannot change the catalogue.
func TestEffectOfReturnsACopy(t *testing.T) {
	t.Parallel()
	e, _ := EffectOf(EffectStockDecrement)
	e.Reports[0] = "changed"
	Effects()[0].Reports[0] = "changed"
	if again, _ := EffectOf(EffectStockDecrement); again.Reports[0] != EventStockTaken {
		t.Errorf("the catalogue changed: %q", again.Reports)
	}
	if first := Effects()[0]; first.Reports[0] != EventPaymentSucceeded {
		t.Errorf("the catalogue changed: %q", first.Reports)
	}
}
