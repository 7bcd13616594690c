package workers

import (
	"context"
)

// timer runs order:timer (catalogue entry flows.EffectOrderTimer): the
// timer's own event, which the flow's loader checked the system may send,
// sent only if the order is still in the state and state version that
// armed it, committed with the row's done mark (store.FireTimer). A timer
// whose order moved on is done, not retried.
func (w *worker) timer(ctx context.Context, e Effect) error {
	out, err := w.db.FireTimer(ctx, e.ID)
	if err != nil {
		return err
	}
	w.logOutcome(ctx, e, out)
	return nil
}
