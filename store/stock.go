package store

import (
	"context"
	"fmt"
	"time"

	"github.com/packline/packline"
)

// StockLevel is what a store has on hand of one SKU.
type StockLevel struct {
	SKU       string    `db:"sku" json:"sku"`
	OnHand    int64     `db:"on_hand" json:"on_hand"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

// SetStock sets the on-hand count of a SKU (a merchant's stock take).
func (db *DB) SetStock(ctx context.Context, storeID, sku string, onHand int64) (StockLevel, error) {
	if onHand < 0 {
		return StockLevel{}, packline.FieldError("on_hand", "must be zero or more")
	}
	now := db.Now()
	_, err := db.db.ExecContext(ctx, db.rebind(`INSERT INTO stock (store_id, sku, on_hand, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (store_id, sku) DO UPDATE SET on_hand = excluded.on_hand, updated_at = excluded.updated_at`), storeID, sku, onHand, now)
	if err != nil {
		return StockLevel{}, fmt.Errorf("set stock of %s: %w", sku, err)
	}
	return StockLevel{SKU: sku, OnHand: onHand, UpdatedAt: now}, nil
}

// GetStock returns the on-hand count of a SKU; ENOTFOUND when it was never set.
func (db *DB) GetStock(ctx context.Context, storeID, sku string) (StockLevel, error) {
	var s StockLevel
	err := db.db.GetContext(ctx, &s, db.rebind(`SELECT sku, on_hand, updated_at FROM stock WHERE store_id = ? AND sku = ?`), storeID, sku)
	if isNoRows(err) {
		return StockLevel{}, packline.Errorf(packline.ENOTFOUND, "no stock recorded for SKU %s", sku)
	}
	if err != nil {
		return StockLevel{}, fmt.Errorf("read stock of %s: %w", sku, err)
	}
	s.UpdatedAt = s.UpdatedAt.UTC()
	return s, nil
}
