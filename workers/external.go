package workers

import (
	"context"
	"fmt"

	"github.com/packline/packline/store"
)

// outside adapts an EffectHandler of Deps (courier:label, notify:email,
// notify:sms, webhook:deliver) to the effect protocol: the handler does the
// outside call with e.ID as its idempotency key, and its Report, if any, is
// sent to the order as the system in the transaction that marks the row
// done. Policies per type are in package tasks.
func (w *worker) outside(h EffectHandler) func(ctx context.Context, e Effect) error {
	return func(ctx context.Context, e Effect) error {
		rep, err := h.HandleEffect(ctx, e)
		if err != nil {
			return fmt.Errorf("%s for order %s: %w", e.Type, e.OrderID, err)
		}
		if rep != nil && rep.Done {
			return nil
		}
		var r *store.EffectReport
		if rep != nil && rep.Event != "" {
			r = &store.EffectReport{Event: rep.Event, Actor: systemActor(e.ID), Data: rep.Data, Note: rep.Note}
		}
		return w.complete(ctx, e, r)
	}
}
