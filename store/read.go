package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
)

const orderColumns = `id, store_id, flow, status, version, state_version, external_id, currency, customer,
	shipping_address, ship_date, payment_method, notes, metadata, subtotal, total, amount_paid, flags, created_at, updated_at`

type orderRow struct {
	ID              string         `db:"id"`
	StoreID         string         `db:"store_id"`
	Flow            string         `db:"flow"`
	Status          string         `db:"status"`
	Version         int64          `db:"version"`
	StateVersion    int64          `db:"state_version"`
	ExternalID      string         `db:"external_id"`
	Currency        string         `db:"currency"`
	Customer        string         `db:"customer"`
	ShippingAddress sql.NullString `db:"shipping_address"`
	ShipDate        string         `db:"ship_date"`
	PaymentMethod   string         `db:"payment_method"`
	Notes           string         `db:"notes"`
	Metadata        sql.NullString `db:"metadata"`
	Subtotal        int64          `db:"subtotal"`
	Total           int64          `db:"total"`
	AmountPaid      int64          `db:"amount_paid"`
	Flags           string         `db:"flags"`
	CreatedAt       time.Time      `db:"created_at"`
	UpdatedAt       time.Time      `db:"updated_at"`
}

func (r *orderRow) order() (*packline.Order, error) {
	o := &packline.Order{
		ID: r.ID, StoreID: r.StoreID, Flow: r.Flow, Status: r.Status, Version: r.Version, StateVersion: r.StateVersion,
		ExternalID: r.ExternalID, Currency: r.Currency, ShipDate: r.ShipDate, PaymentMethod: r.PaymentMethod,
		Notes: r.Notes, Subtotal: r.Subtotal, Total: r.Total, AmountPaid: r.AmountPaid,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Lines: []packline.Line{},
	}
	if err := json.Unmarshal([]byte(r.Customer), &o.Customer); err != nil {
		return nil, fmt.Errorf("order %s: customer: %w", r.ID, err)
	}
	if r.ShippingAddress.Valid {
		o.ShippingAddress = &packline.Address{}
		if err := json.Unmarshal([]byte(r.ShippingAddress.String), o.ShippingAddress); err != nil {
			return nil, fmt.Errorf("order %s: shipping address: %w", r.ID, err)
		}
	}
	if r.Metadata.Valid {
		o.Metadata = json.RawMessage(r.Metadata.String)
	}
	if err := json.Unmarshal([]byte(r.Flags), &o.Flags); err != nil {
		return nil, fmt.Errorf("order %s: flags: %w", r.ID, err)
	}
	if o.Flags == nil {
		o.Flags = packline.Flags{}
	}
	return o, nil
}

type lineRow struct {
	OrderID       string         `db:"order_id"`
	LineNo        int            `db:"line_no"`
	SKU           string         `db:"sku"`
	Name          string         `db:"name"`
	Quantity      int64          `db:"quantity"`
	UnitPrice     int64          `db:"unit_price"`
	Customizable  bool           `db:"customizable"`
	Customization sql.NullString `db:"customization"`
}

// lockOrder reads an order of the store for update within tx; ENOTFOUND when
// there is none (or it is another store's).
func (db *DB) lockOrder(ctx context.Context, tx *sqlx.Tx, storeID, orderID string) (*packline.Order, error) {
	return db.readOrder(ctx, tx, storeID, orderID, true)
}

// GetOrder returns an order of the store with its lines; ENOTFOUND when there
// is none, or it belongs to another store.
func (db *DB) GetOrder(ctx context.Context, storeID, orderID string) (*packline.Order, error) {
	return db.readOrder(ctx, db.db, storeID, orderID, false)
}

// orderWithLine is a row of an order joined to one of its lines (the line
// columns are NULL for an order without lines).
type orderWithLine struct {
	orderRow
	LineNo        sql.NullInt64  `db:"l_line_no"`
	SKU           sql.NullString `db:"l_sku"`
	Name          sql.NullString `db:"l_name"`
	Quantity      sql.NullInt64  `db:"l_quantity"`
	UnitPrice     sql.NullInt64  `db:"l_unit_price"`
	Customizable  sql.NullBool   `db:"l_customizable"`
	Customization sql.NullString `db:"l_customization"`
}

// readOrder reads an order and its lines in one query (a row per line),
// locking the order row when lock is set (PostgreSQL; SQLite has one writer).
func (db *DB) readOrder(ctx context.Context, q sqlx.QueryerContext, storeID, orderID string, lock bool) (*packline.Order, error) {
	query := `SELECT ` + prefixed("o.", orderColumns) + `, l.line_no AS l_line_no, l.sku AS l_sku, l.name AS l_name,
		l.quantity AS l_quantity, l.unit_price AS l_unit_price, l.customizable AS l_customizable, l.customization AS l_customization
		FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
		WHERE o.id = ? AND o.store_id = ? ORDER BY l.line_no`
	if lock {
		query += db.forUpdate("o")
	}
	var rows []orderWithLine
	if err := sqlx.SelectContext(ctx, q, &rows, db.rebind(query), orderID, storeID); err != nil {
		return nil, fmt.Errorf("read order %s: %w", orderID, err)
	}
	if len(rows) == 0 {
		return nil, packline.Errorf(packline.ENOTFOUND, "order %s not found", orderID)
	}
	o, err := rows[0].order()
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if !r.LineNo.Valid {
			continue
		}
		l := packline.Line{SKU: r.SKU.String, Name: r.Name.String, Quantity: r.Quantity.Int64, UnitPrice: r.UnitPrice.Int64,
			Customizable: r.Customizable.Bool}
		if r.Customization.Valid {
			l.Customization = json.RawMessage(r.Customization.String)
		}
		o.Lines = append(o.Lines, l)
	}
	return o, nil
}

// prefixed qualifies each column of a comma-separated list with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// OrderByID returns an order whatever its store: for the fleet, which acts on
// effect rows that name the order.
func (db *DB) OrderByID(ctx context.Context, orderID string) (*packline.Order, error) {
	var storeID string
	err := db.db.GetContext(ctx, &storeID, db.rebind(`SELECT store_id FROM orders WHERE id = ?`), orderID)
	if isNoRows(err) {
		return nil, packline.Errorf(packline.ENOTFOUND, "order %s not found", orderID)
	}
	if err != nil {
		return nil, fmt.Errorf("read order %s: %w", orderID, err)
	}
	return db.GetOrder(ctx, storeID, orderID)
}

func (db *DB) loadLines(ctx context.Context, q sqlx.QueryerContext, orders []*packline.Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	byID := make(map[string]*packline.Order, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
		byID[o.ID] = o
	}
	query, args, err := sqlx.In(`SELECT order_id, line_no, sku, name, quantity, unit_price, customizable, customization
		FROM order_lines WHERE order_id IN (?) ORDER BY order_id, line_no`, ids)
	if err != nil {
		return err
	}
	var rows []lineRow
	if err := sqlx.SelectContext(ctx, q, &rows, db.rebind(query), args...); err != nil {
		return fmt.Errorf("read order lines: %w", err)
	}
	for _, r := range rows {
		l := packline.Line{SKU: r.SKU, Name: r.Name, Quantity: r.Quantity, UnitPrice: r.UnitPrice, Customizable: r.Customizable}
		if r.Customization.Valid {
			l.Customization = json.RawMessage(r.Customization.String)
		}
		byID[r.OrderID].Lines = append(byID[r.OrderID].Lines, l)
	}
	return nil
}

// ListFilter selects a page of a store's orders, newest first.
type ListFilter struct {
	Status string
	Limit  int
	// Cursor is the next_cursor of the previous page: the last id it held.
	Cursor string
}

// ListOrders returns a page of orders and the cursor of the next page ("" at
// the end).
func (db *DB) ListOrders(ctx context.Context, storeID string, f ListFilter) ([]*packline.Order, string, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 50
	}
	q := `SELECT ` + orderColumns + ` FROM orders WHERE store_id = ?`
	args := []any{storeID}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Cursor != "" {
		q += ` AND id < ?`
		args = append(args, f.Cursor)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	var rows []orderRow
	if err := db.db.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	next := ""
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		next = rows[len(rows)-1].ID
	}
	out := make([]*packline.Order, 0, len(rows))
	for i := range rows {
		o, err := rows[i].order()
		if err != nil {
			return nil, "", err
		}
		out = append(out, o)
	}
	return out, next, db.loadLines(ctx, db.db, out)
}

type timelineRow struct {
	Version   int64          `db:"version"`
	At        time.Time      `db:"at"`
	Event     string         `db:"event"`
	From      string         `db:"from_state"`
	To        string         `db:"to_state"`
	ActorType string         `db:"actor_type"`
	ActorID   string         `db:"actor_id"`
	Note      string         `db:"note"`
	Data      sql.NullString `db:"data"`
}

// OrderDetails returns the payments and the shipments (with their tracking
// histories) of several orders, by order id, in three queries whatever
// their number: what the API's view of a page of orders needs besides the
// orders.
func (db *DB) OrderDetails(ctx context.Context, orderIDs []string) (map[string][]Payment, map[string][]Shipment, error) {
	payments, err := db.paymentsOf(ctx, orderIDs)
	if err != nil {
		return nil, nil, err
	}
	shipments, err := db.shipmentsOf(ctx, orderIDs)
	if err != nil {
		return nil, nil, err
	}
	return payments, shipments, nil
}

// Timeline returns an order's timeline, oldest first.
func (db *DB) Timeline(ctx context.Context, orderID string) ([]packline.TimelineEntry, error) {
	var rows []timelineRow
	err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT version, at, event, from_state, to_state, actor_type, actor_id, note, data
		FROM timeline WHERE order_id = ? ORDER BY id`), orderID)
	if err != nil {
		return nil, fmt.Errorf("read timeline of %s: %w", orderID, err)
	}
	out := make([]packline.TimelineEntry, 0, len(rows))
	for _, r := range rows {
		e := packline.TimelineEntry{At: r.At.UTC(), Version: r.Version, Event: r.Event, From: r.From, To: r.To,
			Actor: packline.Actor{Type: packline.ActorType(r.ActorType), ID: r.ActorID}, Note: r.Note}
		if r.Data.Valid {
			e.Data = json.RawMessage(r.Data.String)
		}
		out = append(out, e)
	}
	return out, nil
}

// OutboxRow is one effect or timer owed by a transition.
type OutboxRow struct {
	ID         string       `db:"id"`
	OrderID    string       `db:"order_id"`
	StoreID    string       `db:"store_id"`
	Version    int64        `db:"version"`
	Seq        int          `db:"seq"`
	Type       string       `db:"type"`
	Payload    string       `db:"payload"`
	Status     EffectStatus `db:"status"`
	RunAt      time.Time    `db:"run_at"`
	Attempts   int          `db:"attempts"`
	LastError  string       `db:"last_error"`
	CreatedAt  time.Time    `db:"created_at"`
	EnqueuedAt sql.NullTime `db:"enqueued_at"`
	DoneAt     sql.NullTime `db:"done_at"`
}

const outboxColumns = `id, order_id, store_id, version, seq, type, payload, status, run_at, attempts, last_error, created_at, enqueued_at, done_at`

// Outbox returns an order's outbox rows in the order they were owed.
func (db *DB) Outbox(ctx context.Context, orderID string) ([]OutboxRow, error) {
	var rows []OutboxRow
	err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT `+outboxColumns+` FROM outbox WHERE order_id = ? ORDER BY version, seq`), orderID)
	if err != nil {
		return nil, fmt.Errorf("read outbox of %s: %w", orderID, err)
	}
	return rows, nil
}
