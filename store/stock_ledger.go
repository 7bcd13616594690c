package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
)

// Stock ledger kinds: one row per (order, sku, kind).
const (
	LedgerDecrement = "decrement"
	LedgerRestore   = "restore"
)

// LedgerEntry is one stock movement of an order.
type LedgerEntry struct {
	OrderID   string    `db:"order_id" json:"order_id"`
	SKU       string    `db:"sku" json:"sku"`
	Kind      string    `db:"kind" json:"kind"`
	Quantity  int64     `db:"quantity" json:"quantity"`
	EffectID  string    `db:"effect_id" json:"effect_id"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
}

// StockShortage is one SKU an order could not be filled with: the data of
// the stock_short event.
type StockShortage struct {
	SKU       string `json:"sku"`
	Needed    int64  `json:"needed"`
	Available int64  `json:"available"`
}

// errShort rolls back a decrement that met a shortfall.
var errShort = errors.New("stock short")

// TakeStock runs the stock:decrement effect id: it takes every line of the
// order from stock, or none. In one transaction it decrements each SKU with
// a conditional UPDATE (on_hand >= needed), writes one ledger row per SKU,
// reports stock_taken and marks the effect done. On any shortfall nothing is
// taken: it reports stock_short with data {short: [{sku, needed, available}]}
// instead. A SKU without a stock row has 0 available. An order whose stock
// was taken already (the ledger has its rows) reports stock_taken without
// moving anything, so the effect is safe to run twice. When the order no
// longer takes the report (it was cancelled meanwhile) nothing is taken.
func (db *DB) TakeStock(ctx context.Context, id string) (EffectOutcome, []StockShortage, error) {
	var short []StockShortage
	out, err := db.runEffect(ctx, id, func(ctx context.Context, tx *sqlx.Tx, row EffectRow) (*EffectReport, error) {
		actor := packline.Actor{Type: packline.ActorSystem, ID: id}
		var taken int
		if err := tx.GetContext(ctx, &taken, db.rebind(`SELECT COUNT(*) FROM stock_ledger WHERE order_id = ? AND kind = 'decrement'`), row.OrderID); err != nil {
			return nil, fmt.Errorf("read stock ledger of %s: %w", row.OrderID, err)
		}
		if taken > 0 {
			return &EffectReport{Event: string(flows.EventStockTaken), Actor: actor, Note: "stock was taken for this order already"}, nil
		}
		needs, err := db.stockNeeds(ctx, tx, row.OrderID)
		if err != nil {
			return nil, err
		}
		now := db.Now()
		for _, n := range needs {
			r, err := tx.ExecContext(ctx, db.rebind(`UPDATE stock SET on_hand = on_hand - ?, updated_at = ?
				WHERE store_id = ? AND sku = ? AND on_hand >= ?`), n.qty, now, row.StoreID, n.sku, n.qty)
			if err != nil {
				return nil, fmt.Errorf("take %d of %s: %w", n.qty, n.sku, err)
			}
			if k, err := r.RowsAffected(); err != nil || k == 1 {
				if err != nil {
					return nil, err
				}
				continue
			}
			var avail []int64
			if err := tx.SelectContext(ctx, &avail, db.rebind(`SELECT on_hand FROM stock WHERE store_id = ? AND sku = ?`), row.StoreID, n.sku); err != nil {
				return nil, fmt.Errorf("read stock of %s: %w", n.sku, err)
			}
			s := StockShortage{SKU: n.sku, Needed: n.qty}
			if len(avail) > 0 {
				s.Available = avail[0]
			}
			short = append(short, s)
		}
		if len(short) > 0 {
			return nil, errShort
		}
		for _, n := range needs {
			if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO stock_ledger (order_id, store_id, sku, kind, quantity, effect_id, created_at)
				VALUES (?, ?, ?, 'decrement', ?, ?, ?)`), row.OrderID, row.StoreID, n.sku, n.qty, id, now); err != nil {
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
// the ledger says the order took and has not been given back, writes a
// restore row per SKU, and marks the effect done, in one transaction. Run
// twice, or for an order that took nothing, it moves nothing.
func (db *DB) RestoreStock(ctx context.Context, id string) (EffectOutcome, error) {
	return db.runEffect(ctx, id, func(ctx context.Context, tx *sqlx.Tx, row EffectRow) (*EffectReport, error) {
		var rows []LedgerEntry
		err := tx.SelectContext(ctx, &rows, db.rebind(`SELECT d.order_id, d.sku, d.kind, d.quantity, d.effect_id, d.created_at
			FROM stock_ledger d WHERE d.order_id = ? AND d.kind = 'decrement'
			AND NOT EXISTS (SELECT 1 FROM stock_ledger r WHERE r.order_id = d.order_id AND r.sku = d.sku AND r.kind = 'restore')
			ORDER BY d.sku`), row.OrderID)
		if err != nil {
			return nil, fmt.Errorf("read stock ledger of %s: %w", row.OrderID, err)
		}
		now := db.Now()
		for _, d := range rows {
			if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO stock (store_id, sku, on_hand, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (store_id, sku) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand, updated_at = excluded.updated_at`),
				row.StoreID, d.SKU, d.Quantity, now); err != nil {
				return nil, fmt.Errorf("give back %d of %s: %w", d.Quantity, d.SKU, err)
			}
			if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO stock_ledger (order_id, store_id, sku, kind, quantity, effect_id, created_at)
				VALUES (?, ?, ?, 'restore', ?, ?, ?)`), row.OrderID, row.StoreID, d.SKU, d.Quantity, id, now); err != nil {
				return nil, fmt.Errorf("record stock restored for %s: %w", row.OrderID, err)
			}
		}
		return nil, nil
	})
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
		if r.Kind == LedgerDecrement {
			taken = r.Sum
		} else {
			restored = r.Sum
		}
	}
	return taken, restored, nil
}

type stockNeed struct {
	sku string
	qty int64
}

// stockNeeds sums an order's lines by SKU, sorted by SKU so that concurrent
// decrements lock stock rows in one order and cannot deadlock.
func (db *DB) stockNeeds(ctx context.Context, tx *sqlx.Tx, orderID string) ([]stockNeed, error) {
	var lines []lineRow
	if err := tx.SelectContext(ctx, &lines, db.rebind(`SELECT order_id, line_no, sku, name, quantity, unit_price, customizable, customization
		FROM order_lines WHERE order_id = ?`), orderID); err != nil {
		return nil, fmt.Errorf("read lines of %s: %w", orderID, err)
	}
	sum := map[string]int64{}
	for _, l := range lines {
		sum[l.SKU] += l.Quantity
	}
	out := make([]stockNeed, 0, len(sum))
	for sku, q := range sum {
		out = append(out, stockNeed{sku, q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].sku < out[j].sku })
	return out, nil
}
