package workers

import (
	"context"
)

// timer runs order:timer (policy: tasks.TypeOrderTimer): the timer's event,
// sent as the system only if the order is still in the state and state
// version that armed it, committed with the row's done mark
// (store.FireTimer). A timer whose order moved on is done, not retried.
func (w *worker) timer(ctx context.Context, e Effect) error {
	out, err := w.db.FireTimer(ctx, e.ID)
	if err != nil {
		return err
	}
	w.logOutcome(ctx, e, out)
	return nil
}
