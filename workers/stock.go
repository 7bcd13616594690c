package workers

import (
	"context"

	"github.com/packline/packline/internal/testhook"
)

// stockDecrement runs stock:decrement (policy: tasks.TypeStockDecrement):
// all lines or none, in one transaction with the ledger rows, the
// report (flows.EventStockTaken or flows.EventStockShort, the events the
// catalogue lists for it) and the done mark (store.TakeStock).
func (w *worker) stockDecrement(ctx context.Context, e Effect) error {
	if w.hold != nil {
		ctx = testhook.WithBeforeCommit(ctx, func(ctx context.Context) { w.pause(ctx, "stock:before_commit", e) })
	}
	out, short, err := w.db.TakeStock(ctx, e.ID)
	if err != nil {
		return err
	}
	if len(short) > 0 && out.Applied {
		w.log.InfoContext(ctx, "stock short", "effect_id", e.ID, "order_id", e.OrderID, "short", short)
	}
	w.logOutcome(ctx, e, out)
	return nil
}

// stockRestore runs stock:restore (policy: tasks.TypeStockRestore): gives
// back what the ledger says the order took, once (store.RestoreStock).
func (w *worker) stockRestore(ctx context.Context, e Effect) error {
	out, err := w.db.RestoreStock(ctx, e.ID)
	if err != nil {
		return err
	}
	w.logOutcome(ctx, e, out)
	return nil
}
