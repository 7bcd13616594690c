package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/stock"
)

// LedgerEntry is one stock movement of an order.
type LedgerEntry struct {
	OrderID   string     `db:"order_id" json:"order_id"`
	SKU       string     `db:"sku" json:"sku"`
	Kind      stock.Kind `db:"kind" json:"kind"`
	Quantity  int64      `db:"quantity" json:"quantity"`
	EffectID  string     `db:"effect_id" json:"effect_id"`
	CreatedAt time.Time  `db:"created_at" json:"created_at"`
}

// errShort rolls back a decrement that met a shortfall.
var errShort = errors.New("stock short")

// TakeStock runs the stock:decrement effect id: it takes every line of the
// order from stock, or none (the moves of stock.Take). In one transaction
// it decrements each SKU with a conditional UPDATE (on_hand >= needed),
// writes one ledger row per SKU,
// reports stock_taken and marks the effect done. On any shortfall nothing is
// taken: it reports stock_short with data {short: [{sku, needed, available}]}
// instead. A SKU without a stock row has 0 available. An order whose stock
// was taken already (the ledger has its rows) reports stock_taken without
// moving anything, so the effect is safe to run twice. When the order no
// longer takes the report (it was cancelled meanwhile) nothing is taken.
func (db *DB) TakeStock(ctx context.Context, id string) (EffectOutcome, []stock.Shortage, error) {
	var short []stock.Shortage
	out, err := db.runEffect(ctx, id, func(ctx context.Context, tx *sqlx.Tx, row EffectRow) (*EffectReport, error) {
		actor := packline.Actor{Type: packline.ActorSystem, ID: id}
		ledger, err := db.ledgerOf(ctx, tx, row.OrderID, stock.Decrement)
		if err != nil {
			return nil, err
		}
		if stock.Taken(ledger) {
			return &EffectReport{Event: string(flows.EventStockTaken), Actor: actor, Note: "stock was taken for this order already"}, nil
		}
		var lines []stock.Line
		if err := tx.SelectContext(ctx, &lines, db.rebind(`SELECT sku, quantity FROM order_lines WHERE order_id = ?`), row.OrderID); err != nil {
			return nil, fmt.Errorf("read lines of %s: %w", row.OrderID, err)
		}
		moves := stock.Take(lines)
		now := db.Now()
		for _, n := range moves {
			r, err := tx.ExecContext(ctx, db.rebind(`UPDATE stock SET on_hand = on_hand - ?, updated_at = ?
				WHERE store_id = ? AND sku = ? AND on_hand >= ?`), n.Quantity, now, row.StoreID, n.SKU, n.Quantity)
			if err != nil {
				return nil, fmt.Errorf("take %d of %s: %w", n.Quantity, n.SKU, err)
			}
			if k, err := r.RowsAffected(); err != nil || k == 1 {
				if err != nil {
					return nil, err
				}
				continue
			}
			var avail []int64
			if err := tx.SelectContext(ctx, &avail, db.rebind(`SELECT on_hand FROM stock WHERE store_id = ? AND sku = ?`), row.StoreID, n.SKU); err != nil {
				return nil, fmt.Errorf("read stock of %s: %w", n.SKU, err)
			}
			var onHand int64
			if len(avail) > 0 {
				onHand = avail[0]
			}
			short = append(short, stock.Short(n, onHand))
		}
		if len(short) > 0 {
			return nil, errShort
		}
		for _, n := range moves {
			if err := db.writeLedger(ctx, tx, row, stock.Decrement, n, now); err != nil {
				return nil, fmt.Errorf("record stock taken for %s: %w", row.OrderID, err)
			}
		}
		return &EffectReport{Event: string(flows.EventStockTaken), Actor: actor}, nil
	})
	if errors.Is(err, errShort) {
		out, err = db.runEffect(ctx, id, func(context.Context, *sqlx.Tx, EffectRow) (*EffectReport, error) {
			return &EffectReport{Event: string(flows.EventStockShort), Actor: packline.Actor{Type: packline.ActorSystem, ID: id},
				Data: map[string]any{"short": short}}, nil
		})
	}
	if err != nil {
		return EffectOutcome{}, nil, err
	}
	return out, short, nil
}

// RestoreStock runs the stock:restore effect id: it gives back exactly what
// the ledger says the order took and has not been given back (stock.Give),
// writes a restore row per SKU, and marks the effect done, in one
// transaction. Run twice, or for an order that took nothing, it moves
// nothing.
func (db *DB) RestoreStock(ctx context.Context, id string) (EffectOutcome, error) {
	return db.runEffect(ctx, id, func(ctx context.Context, tx *sqlx.Tx, row EffectRow) (*EffectReport, error) {
		ledger, err := db.ledgerOf(ctx, tx, row.OrderID, "")
		if err != nil {
			return nil, err
		}
		now := db.Now()
		for _, d := range stock.Give(ledger) {
			if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO stock (store_id, sku, on_hand, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (store_id, sku) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand, updated_at = excluded.updated_at`),
				row.StoreID, d.SKU, d.Quantity, now); err != nil {
				return nil, fmt.Errorf("give back %d of %s: %w", d.Quantity, d.SKU, err)
			}
			if err := db.writeLedger(ctx, tx, row, stock.Restore, d, now); err != nil {
				return nil, fmt.Errorf("record stock restored for %s: %w", row.OrderID, err)
			}
		}
		return nil, nil
	})
}

// ledgerOf reads an order's ledger rows within tx, of one kind or ("")
// of both.
func (db *DB) ledgerOf(ctx context.Context, tx *sqlx.Tx, orderID string, kind stock.Kind) ([]stock.Entry, error) {
	q := `SELECT sku, kind, quantity FROM stock_ledger WHERE order_id = ?`
	if kind != "" {
		q += ` AND kind = ` + literal(kind)
	}
	var ledger []stock.Entry
	if err := tx.SelectContext(ctx, &ledger, db.rebind(q), orderID); err != nil {
		return nil, fmt.Errorf("read stock ledger of %s: %w", orderID, err)
	}
	return ledger, nil
}

// writeLedger writes the ledger row of a move the effect row made.
func (db *DB) writeLedger(ctx context.Context, tx *sqlx.Tx, row EffectRow, kind stock.Kind, m stock.Move, now time.Time) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO stock_ledger (order_id, store_id, sku, kind, quantity, effect_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), row.OrderID, row.StoreID, m.SKU, kind, m.Quantity, row.ID, now)
	return err
}

// StockLedger returns an order's stock movements, by SKU then kind.
func (db *DB) StockLedger(ctx context.Context, orderID string) ([]LedgerEntry, error) {
	var rows []LedgerEntry
	err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT order_id, sku, kind, quantity, effect_id, created_at
		FROM stock_ledger WHERE order_id = ? ORDER BY sku, kind`), orderID)
	if err != nil {
		return nil, fmt.Errorf("read stock ledger of %s: %w", orderID, err)
	}
	for i := range rows {
		rows[i].CreatedAt = rows[i].CreatedAt.UTC()
	}
	return rows, nil
}

// StockMoved sums a store's ledger for a SKU: what orders took and what was
// given back.
func (db *DB) StockMoved(ctx context.Context, storeID, sku string) (taken, restored int64, err error) {
	var rows []struct {
		Kind string `db:"kind"`
		Sum  int64  `db:"total"`
	}
	err = db.db.SelectContext(ctx, &rows, db.rebind(`SELECT kind, COALESCE(SUM(quantity), 0) AS total FROM stock_ledger
		WHERE store_id = ? AND sku = ? GROUP BY kind`), storeID, sku)
	if err != nil {
		return 0, 0, fmt.Errorf("sum stock ledger of %s: %w", sku, err)
	}
	for _, r := range rows {
		if stock.Kind(r.Kind) == stock.Decrement {
			taken = r.Sum
		} else {
			restored = r.Sum
		}
	}
	return taken, restored, nil
}
