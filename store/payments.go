package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Payment kinds, one per payment task type.
const (
	PaymentAuthorize = "authorize"
	PaymentCapture   = "capture"
	PaymentConfirm   = "confirm"
	PaymentVoid      = "void"
	PaymentRefund    = "refund"
)

// Payment statuses.
const (
	PaymentSucceeded = "succeeded"
	PaymentFailed    = "failed"
)

// Payment is one payment attempt of an order: an entry of its payments[].
type Payment struct {
	ID             string `db:"id" json:"id"`
	OrderID        string `db:"order_id" json:"-"`
	StoreID        string `db:"store_id" json:"-"`
	IdempotencyKey string `db:"idempotency_key" json:"-"`
	Kind           string `db:"kind" json:"kind"`
	Purpose        string `db:"purpose" json:"purpose,omitempty"`
	Amount         int64  `db:"amount" json:"amount"`
	Currency       string `db:"currency" json:"currency"`
	Status         string `db:"status" json:"status"`
	ErrorCode      string `db:"error_code" json:"error_code,omitempty"`
	Provider       string `db:"provider" json:"provider"`
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
	now := db.Now()
	if p.ID == "" {
		p.ID = NewID("pay", now)
	}
	_, err := db.db.ExecContext(ctx, db.rebind(`INSERT INTO payments (`+paymentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`),
		p.ID, p.OrderID, p.StoreID, p.IdempotencyKey, p.Kind, p.Purpose, p.Amount, p.Currency, p.Status, p.ErrorCode,
		p.Provider, p.ProviderRef, p.PaymentMethod, now)
	if err != nil {
		return Payment{}, fmt.Errorf("record %s payment of order %s: %w", p.Kind, p.OrderID, err)
	}
	var got Payment
	if err := db.db.GetContext(ctx, &got, db.rebind(`SELECT `+paymentColumns+` FROM payments WHERE idempotency_key = ?`), p.IdempotencyKey); err != nil {
		return Payment{}, fmt.Errorf("read payment %s: %w", p.IdempotencyKey, err)
	}
	got.CreatedAt = got.CreatedAt.UTC()
	return got, nil
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
