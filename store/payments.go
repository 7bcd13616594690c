package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
)

// PaymentKind is what a payment did: one kind per payment task type
// (payment:<kind>).
type PaymentKind string

// Payment kinds.
const (
	PaymentAuthorize PaymentKind = "authorize"
	PaymentCapture   PaymentKind = "capture"
	PaymentConfirm   PaymentKind = "confirm"
	PaymentVoid      PaymentKind = "void"
	PaymentRefund    PaymentKind = "refund"
)

// PaymentKindOf is the kind of a payment task type (payment:confirm is
// PaymentConfirm); ok is false for another type.
func PaymentKindOf(taskType string) (k PaymentKind, ok bool) {
	rest, ok := strings.CutPrefix(taskType, "payment:")
	return PaymentKind(rest), ok
}

// PaymentStatus is how a payment attempt ended.
type PaymentStatus string

// Payment statuses.
const (
	PaymentSucceeded PaymentStatus = "succeeded"
	PaymentFailed    PaymentStatus = "failed"
)

// Payment is one payment attempt of an order: an entry of its payments[].
type Payment struct {
	ID             string        `db:"id" json:"id"`
	OrderID        string        `db:"order_id" json:"-"`
	StoreID        string        `db:"store_id" json:"-"`
	IdempotencyKey string        `db:"idempotency_key" json:"-"`
	Kind           PaymentKind   `db:"kind" json:"kind"`
	Purpose        string        `db:"purpose" json:"purpose,omitempty"`
	Amount         int64         `db:"amount" json:"amount"`
	Currency       string        `db:"currency" json:"currency"`
	Status         PaymentStatus `db:"status" json:"status"`
	ErrorCode      string        `db:"error_code" json:"error_code,omitempty"`
	Provider       string        `db:"provider" json:"provider"`
	// ProviderRef is the provider's id of the operation (a charge, an
	// authorization): what a later void, capture or refund names.
	ProviderRef   string    `db:"provider_ref" json:"-"`
	PaymentMethod string    `db:"payment_method" json:"-"`
	CreatedAt     time.Time `db:"created_at" json:"created_at"`
}

const paymentColumns = `id, order_id, store_id, idempotency_key, kind, purpose, amount, currency, status, error_code,
	provider, provider_ref, payment_method, created_at`

// RecordPayment records a payment attempt once per idempotency key (the
// effect id that made it) and returns the stored attempt: a retried task
// gets back the first record, and adds none.
func (db *DB) RecordPayment(ctx context.Context, p Payment) (Payment, error) {
	return db.recordPayment(ctx, db.db, p, db.Now())
}

// recordPayment is RecordPayment in one statement on q: an attempt already
// recorded under the key is returned as it is.
func (db *DB) recordPayment(ctx context.Context, q sqlx.QueryerContext, p Payment, now time.Time) (Payment, error) {
	if p.ID == "" {
		p.ID = NewID("pay", now)
	}
	var got Payment
	err := sqlx.GetContext(ctx, q, &got, db.rebind(`INSERT INTO payments (`+paymentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = excluded.idempotency_key
		RETURNING `+paymentColumns),
		p.ID, p.OrderID, p.StoreID, p.IdempotencyKey, p.Kind, p.Purpose, p.Amount, p.Currency, p.Status, p.ErrorCode,
		p.Provider, p.ProviderRef, p.PaymentMethod, now)
	if err != nil {
		return Payment{}, fmt.Errorf("record %s payment of order %s: %w", p.Kind, p.OrderID, err)
	}
	got.CreatedAt = got.CreatedAt.UTC()
	return got, nil
}

// CompletePayment finishes a payment effect with the provider's answer p,
// in one transaction: it records p (once per idempotency key: what an
// earlier run recorded wins), reports the event that report makes of the
// recorded payment (report may be nil, or return nil), and marks the row
// done.
//
// When the order no longer takes the event (it was cancelled or expired
// while the money moved), the answer is recorded all the same, with a note
// on the timeline, and a payment that took or held money owes its reversal
// in that transaction: payment:refund for a charge, payment:void for a hold,
// unless a reversal of that kind is still to run for the order (it waits
// for this effect, and will see the payment). The customer's money never
// stays with the provider unrecorded.
func (db *DB) CompletePayment(ctx context.Context, id string, p Payment, report func(Payment) *EffectReport) (EffectOutcome, Payment, error) {
	now := db.Now()
	var (
		got  Payment
		owed bool
	)
	out, err := db.runEffectKeeping(ctx, id, func(ctx context.Context, tx *sqlx.Tx, _ EffectRow) (*EffectReport, error) {
		var err error
		if got, err = db.recordPayment(ctx, tx, p, now); err != nil {
			return nil, err
		}
		if report == nil {
			return nil, nil
		}
		return report(got), nil
	}, func(ctx context.Context, tx *sqlx.Tx, row EffectRow, b *batch) error {
		var err error
		if got, err = db.recordPayment(ctx, tx, p, now); err != nil {
			return err
		}
		owed, err = db.oweReversal(ctx, tx, b, row, got, now)
		return err
	})
	if err != nil {
		return EffectOutcome{}, Payment{}, err
	}
	if owed {
		db.wakeOutbox()
	}
	return out, got, nil
}

// PaymentResult is the event a recorded charge or authorization reports to
// its order: payment_succeeded, or payment_failed with the decline code.
// What was recorded first is the answer, even if a later one (a retried
// run, the provider's webhook) differs: the worker and the payment webhooks
// both report through it, so whichever records first wins.
func PaymentResult(p Payment) *EffectReport {
	rep := &EffectReport{Event: string(flows.EventPaymentSucceeded), Actor: packline.Actor{Type: packline.ActorPayment, ID: p.Provider},
		Data: map[string]any{"payment_id": p.ID}}
	if p.Status != PaymentSucceeded {
		rep.Event = string(flows.EventPaymentFailed)
		rep.Data["error_code"] = p.ErrorCode
	}
	return rep
}

// Reversal is the effect type that gives back what a payment of kind took
// or holds (a charge is refunded, a hold voided); ok is false for a kind that
// moves no money to the merchant.
func Reversal(kind PaymentKind) (typ string, ok bool) {
	info, _ := flows.EffectOf(flows.EffectType("payment:" + string(kind)))
	return string(info.ReversedBy), info.ReversedBy != ""
}

// ReversalID is the id of the effect that reverses the payment made by
// effect effectID: one reversal per payment, however often it is owed.
func ReversalID(effectID string) string {
	h := sha256.Sum256([]byte(effectID + "|reversal"))
	return "eff_" + hex.EncodeToString(h[:12])
}

// oweReversal adds to b the reversal of payment p, made by the effect row,
// which the order refused, and a timeline note saying so. It owes nothing
// for a payment that failed or moves no money, or while a reversal of that
// kind is still to run for the order.
func (db *DB) oweReversal(ctx context.Context, tx *sqlx.Tx, b *batch, row EffectRow, p Payment, now time.Time) (bool, error) {
	typ, ok := Reversal(p.Kind)
	if !ok || p.Status != PaymentSucceeded {
		return false, nil
	}
	var pending int
	if err := tx.GetContext(ctx, &pending, db.rebind(`SELECT COUNT(*) FROM outbox
		WHERE order_id = ? AND type = ? AND status IN `+runnable+` AND id <> ?`), row.OrderID, typ, row.ID); err != nil {
		return false, fmt.Errorf("read reversals of order %s: %w", row.OrderID, err)
	}
	if pending > 0 {
		return false, nil
	}
	owing, err := row.Effect()
	if err != nil {
		return false, err
	}
	data, _ := json.Marshal(map[string]string{"reverses": row.ID, "payment_id": p.ID})
	rid := ReversalID(row.ID)
	note := fmt.Sprintf("the provider's %s %s (%d %s) came after the order moved on: %s %s owed", p.Kind, p.ID, p.Amount, p.Currency, typ, rid)
	if err := owePaymentEffect(b, rid, row.OrderID, row.StoreID, row.Version, row.Seq, flows.Effect{Type: typ, Amount: p.Amount, Purpose: p.Purpose, Event: owing.Event, Data: data}, p.Provider, note, now); err != nil {
		return false, err
	}
	return true, nil
}

// Payments returns an order's payment attempts, oldest first.
func (db *DB) Payments(ctx context.Context, orderID string) ([]Payment, error) {
	by, err := db.paymentsOf(ctx, []string{orderID})
	if err != nil {
		return nil, err
	}
	if by[orderID] == nil {
		return []Payment{}, nil
	}
	return by[orderID], nil
}

// paymentsOf reads the payments of several orders in one query, by order.
func (db *DB) paymentsOf(ctx context.Context, orderIDs []string) (map[string][]Payment, error) {
	q, args, err := sqlx.In(`SELECT `+paymentColumns+` FROM payments WHERE order_id IN (?) ORDER BY created_at, id`, orderIDs)
	if err != nil {
		return nil, err
	}
	var rows []Payment
	if err := db.db.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read payments: %w", err)
	}
	by := make(map[string][]Payment, len(orderIDs))
	for _, p := range rows {
		p.CreatedAt = p.CreatedAt.UTC()
		by[p.OrderID] = append(by[p.OrderID], p)
	}
	return by, nil
}

// owePaymentEffect adds to b a payment effect owed outside a transition (a
// reversal, a reconciliation's fix), once per id, and a timeline note from
// the payment provider saying why.
func owePaymentEffect(b *batch, id, orderID, storeID string, version int64, seq int, e flows.Effect, provider, note string, now time.Time) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b.insertRows("outbox", []string{"id", "order_id", "store_id", "version", "seq", "type", "payload", "status", "run_at", "created_at"},
		[][]any{{id, orderID, storeID, version, seq, e.Type, string(payload), EffectPending, now, now}}, "ON CONFLICT (id) DO NOTHING")
	b.add(`INSERT INTO timeline (order_id, version, at, event, from_state, to_state, actor_type, actor_id, note)
		SELECT id, version, ?, 'note', status, status, ?, ?, ? FROM orders WHERE id = ?`,
		now, string(packline.ActorPayment), provider, note, orderID)
	return nil
}

// OrderToReconcile is an order whose payments the reconciliation looks at.
type OrderToReconcile struct {
	ID      string `db:"id"`
	StoreID string `db:"store_id"`
	Version int64  `db:"version"`
}

// OrdersToReconcile returns up to limit orders, the longest unchanged first,
// that have not been reconciled at their current version, changed last
// before before, and have no payment effect still to run.
func (db *DB) OrdersToReconcile(ctx context.Context, before time.Time, limit int) ([]OrderToReconcile, error) {
	var out []OrderToReconcile
	err := db.db.SelectContext(ctx, &out, db.rebind(`SELECT o.id, o.store_id, o.version FROM orders o
		WHERE o.reconciled_version < o.version AND o.updated_at < ?
			AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.order_id = o.id AND x.type LIKE 'payment:%' AND x.status IN `+runnable+`)
		ORDER BY o.updated_at LIMIT ?`), before, limit)
	if err != nil {
		return nil, fmt.Errorf("read orders to reconcile: %w", err)
	}
	return out, nil
}

// MarkReconciled records that the order's payments matched at version.
func (db *DB) MarkReconciled(ctx context.Context, o OrderToReconcile) error {
	_, err := db.relaxed.ExecContext(ctx, db.rebind(`UPDATE orders SET reconciled_version = ? WHERE id = ? AND reconciled_version < ?`),
		o.Version, o.ID, o.Version)
	if err != nil {
		return fmt.Errorf("mark order %s reconciled: %w", o.ID, err)
	}
	return nil
}

// OweReconciliation owes the order a payment effect of type typ (a refund
// or a void the reconciliation found missing), with a timeline note: once
// per order version and type, however often it is found missing.
func (db *DB) OweReconciliation(ctx context.Context, o OrderToReconcile, typ, provider, note string) error {
	h := sha256.Sum256([]byte(o.ID + "|" + strconv.FormatInt(o.Version, 10) + "|reconcile|" + typ))
	id := "eff_" + hex.EncodeToString(h[:12])
	data, _ := json.Marshal(map[string]string{"reconciliation": note})
	b := &batch{}
	if err := owePaymentEffect(b, id, o.ID, o.StoreID, o.Version, 1000, flows.Effect{Type: typ, Event: "reconciliation", Data: data}, provider, note, db.Now()); err != nil {
		return err
	}
	if err := db.write(ctx, b); err != nil {
		return fmt.Errorf("owe %s to order %s: %w", typ, o.ID, err)
	}
	db.wakeOutbox()
	return nil
}
