package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/flows"
)

// Shipment is an order's parcel with a courier: its label, its tracking
// number and its canonical tracking status. An order has at most one.
type Shipment struct {
	ID             string          `db:"id"`
	OrderID        string          `db:"order_id"`
	StoreID        string          `db:"store_id"`
	Courier        string          `db:"courier"`
	TrackingNumber string          `db:"tracking_number"`
	TrackingURL    string          `db:"tracking_url"`
	Status         couriers.Status `db:"status"`
	// StatusAt is when the courier says Status happened (the label's
	// creation for pre_transit).
	StatusAt  time.Time `db:"status_at"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
	// Events is the shipment's tracking history, oldest first; filled by
	// Shipments only.
	Events []ShipmentEvent `db:"-"`
}

// ShipmentEvent is one tracking update a shipment received.
type ShipmentEvent struct {
	ShipmentID    string          `db:"shipment_id"`
	Status        couriers.Status `db:"status"`
	CourierStatus string          `db:"courier_status"`
	OccurredAt    time.Time       `db:"occurred_at"`
	ReceivedAt    time.Time       `db:"received_at"`
}

const shipmentColumns = `id, order_id, store_id, courier, tracking_number, tracking_url, status, status_at, created_at, updated_at`

func (s *Shipment) utc() {
	s.StatusAt, s.CreatedAt, s.UpdatedAt = s.StatusAt.UTC(), s.CreatedAt.UTC(), s.UpdatedAt.UTC()
}

// NewShipment is a label a courier made for an order, to be stored.
type NewShipment struct {
	OrderID        string
	StoreID        string
	Courier        string
	TrackingNumber string
	TrackingURL    string
	LabelPDF       []byte
}

// CreateShipment stores an order's shipment, in pre_transit, with its first
// tracking event. It is idempotent on the order: when the order has a
// shipment already, that one is returned (created false) and nothing is
// written, so a courier:label task run twice stores one label.
func (db *DB) CreateShipment(ctx context.Context, n NewShipment) (sh Shipment, created bool, err error) {
	if n.OrderID == "" || n.StoreID == "" || n.Courier == "" || n.TrackingNumber == "" || len(n.LabelPDF) == 0 {
		return Shipment{}, false, fmt.Errorf("store shipment of order %s: order, store, courier, tracking number and label are required", n.OrderID)
	}
	now := db.Now()
	err = db.inTx(ctx, func(tx *sqlx.Tx) error {
		id := NewID("shp", now)
		r, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO shipments (id, order_id, store_id, courier, tracking_number, tracking_url,
			label_pdf, status, status_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			id, n.OrderID, n.StoreID, n.Courier, n.TrackingNumber, n.TrackingURL, n.LabelPDF,
			couriers.StatusPreTransit, now, now, now)
		if err != nil {
			return fmt.Errorf("store shipment of order %s: %w", n.OrderID, err)
		}
		if k, _ := r.RowsAffected(); k == 1 {
			created = true
			_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO shipment_events (shipment_id, status, courier_status, occurred_at, received_at)
				VALUES (?, ?, 'label_created', ?, ?)`), id, couriers.StatusPreTransit, now, now)
			if err != nil {
				return fmt.Errorf("record the first tracking event of order %s: %w", n.OrderID, err)
			}
		}
		err = tx.GetContext(ctx, &sh, db.rebind(`SELECT `+shipmentColumns+` FROM shipments WHERE order_id = ?`), n.OrderID)
		if isNoRows(err) {
			// Not the order's: the courier's tracking number is on another
			// order's shipment.
			return fmt.Errorf("store shipment of order %s: %s tracking number %s belongs to another order", n.OrderID, n.Courier, n.TrackingNumber)
		}
		if err != nil {
			return fmt.Errorf("read shipment of order %s: %w", n.OrderID, err)
		}
		return nil
	})
	if err != nil {
		return Shipment{}, false, err
	}
	sh.utc()
	return sh, created, nil
}

// ShipmentOfOrder returns the order's shipment; ENOTFOUND when it has none.
func (db *DB) ShipmentOfOrder(ctx context.Context, orderID string) (Shipment, error) {
	return db.getShipment(ctx, db.db, `order_id = ?`, orderID)
}

// GetShipment returns a shipment of the store; ENOTFOUND when there is none
// (or it is another store's).
func (db *DB) GetShipment(ctx context.Context, storeID, id string) (Shipment, error) {
	return db.getShipment(ctx, db.db, `id = ? AND store_id = ?`, id, storeID)
}

// ShipmentByTracking returns the courier's shipment with the tracking
// number, whatever its store (callbacks name no store); ENOTFOUND when
// there is none.
func (db *DB) ShipmentByTracking(ctx context.Context, courier, trackingNumber string) (Shipment, error) {
	return db.getShipment(ctx, db.db, `courier = ? AND tracking_number = ?`, courier, trackingNumber)
}

func (db *DB) getShipment(ctx context.Context, q sqlx.QueryerContext, where string, args ...any) (Shipment, error) {
	var sh Shipment
	err := sqlx.GetContext(ctx, q, &sh, db.rebind(`SELECT `+shipmentColumns+` FROM shipments WHERE `+where), args...)
	if isNoRows(err) {
		return Shipment{}, packline.Errorf(packline.ENOTFOUND, "shipment not found")
	}
	if err != nil {
		return Shipment{}, fmt.Errorf("read shipment: %w", err)
	}
	sh.utc()
	return sh, nil
}

// ShipmentLabel returns a shipment of the store and its label PDF;
// ENOTFOUND when there is none (or it is another store's).
func (db *DB) ShipmentLabel(ctx context.Context, storeID, id string) (Shipment, []byte, error) {
	var row struct {
		Shipment
		LabelPDF []byte `db:"label_pdf"`
	}
	err := db.db.GetContext(ctx, &row, db.rebind(`SELECT `+shipmentColumns+`, label_pdf FROM shipments WHERE id = ? AND store_id = ?`), id, storeID)
	if isNoRows(err) {
		return Shipment{}, nil, packline.Errorf(packline.ENOTFOUND, "shipment %s not found", id)
	}
	if err != nil {
		return Shipment{}, nil, fmt.Errorf("read label of shipment %s: %w", id, err)
	}
	row.Shipment.utc()
	return row.Shipment, row.LabelPDF, nil
}

// Shipments returns an order's shipments with their tracking history,
// oldest first (the order's shipments[]).
func (db *DB) Shipments(ctx context.Context, orderID string) ([]Shipment, error) {
	by, err := db.shipmentsOf(ctx, []string{orderID})
	if err != nil {
		return nil, err
	}
	if by[orderID] == nil {
		return []Shipment{}, nil
	}
	return by[orderID], nil
}

// shipmentsOf reads the shipments of several orders, with their tracking
// histories, in two queries, by order.
func (db *DB) shipmentsOf(ctx context.Context, orderIDs []string) (map[string][]Shipment, error) {
	q, args, err := sqlx.In(`SELECT `+shipmentColumns+` FROM shipments WHERE order_id IN (?) ORDER BY created_at, id`, orderIDs)
	if err != nil {
		return nil, err
	}
	var shs []Shipment
	if err := db.db.SelectContext(ctx, &shs, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read shipments: %w", err)
	}
	by := make(map[string][]Shipment, len(orderIDs))
	if len(shs) == 0 {
		return by, nil
	}
	q, args, err = sqlx.In(`SELECT e.shipment_id, e.status, e.courier_status, e.occurred_at, e.received_at
		FROM shipment_events e JOIN shipments s ON s.id = e.shipment_id
		WHERE s.order_id IN (?) ORDER BY e.occurred_at, e.id`, orderIDs)
	if err != nil {
		return nil, err
	}
	var evs []ShipmentEvent
	if err := db.db.SelectContext(ctx, &evs, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read tracking: %w", err)
	}
	events := map[string][]ShipmentEvent{}
	for _, e := range evs {
		e.OccurredAt, e.ReceivedAt = e.OccurredAt.UTC(), e.ReceivedAt.UTC()
		events[e.ShipmentID] = append(events[e.ShipmentID], e)
	}
	for _, sh := range shs {
		sh.utc()
		sh.Events = events[sh.ID]
		if sh.Events == nil {
			sh.Events = []ShipmentEvent{}
		}
		by[sh.OrderID] = append(by[sh.OrderID], sh)
	}
	return by, nil
}

// ShipmentsInStatus returns up to limit shipments of the courier whose
// status is one of statuses, longest in it first: what packline dev's
// sandbox courier plays forward, and what a poller would Track.
func (db *DB) ShipmentsInStatus(ctx context.Context, courier string, statuses []couriers.Status, limit int) ([]Shipment, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT `+shipmentColumns+` FROM shipments WHERE courier = ? AND status IN (?) ORDER BY status_at, id LIMIT ?`, courier, statuses, limit)
	if err != nil {
		return nil, err
	}
	var out []Shipment
	if err := db.db.SelectContext(ctx, &out, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("list %s shipments: %w", courier, err)
	}
	for i := range out {
		out[i].utc()
	}
	return out, nil
}

// TrackingResult says what a tracking update did.
type TrackingResult struct {
	// Shipment and Order are as they are after the update.
	Shipment Shipment
	Order    *packline.Order
	// Duplicate is set when the shipment had this update already (same
	// status, same time): nothing was written.
	Duplicate bool
	// Newer is set when the update superseded the shipment's status
	// (couriers.Supersedes), which moved to it. An update that is not newer
	// (an older status arriving late) is kept in the shipment's history and
	// on the timeline, and moves nothing.
	Newer bool
	// Event is the flow event the update applied to the order, "" when it
	// applied none: the status implies none, the update is not newer, or
	// the order does not take the event now (Refused says why).
	Event   string
	Refused error
}

// RecordTracking records a courier's tracking update of a shipment and, in
// the same transaction, what it implies for the order:
//
//   - the update joins the shipment's history once (a duplicate changes
//     nothing, and is reported as one);
//   - couriers.Track decides the rest: the shipment moves to the update's
//     status only if it supersedes the current one, so a late older status
//     never moves it, or its order, backwards; a newer status sends its
//     flow event to the order as the courier, and an order that does not
//     take it (a conflict: already delivered, a flow without the event)
//     simply does not move;
//   - every update that is not a duplicate is on the order's timeline: as the
//     applied event's own entry, else as a tracking_update entry.
//
// ENOTFOUND when the courier has no shipment with that tracking number.
func (db *DB) RecordTracking(ctx context.Context, u couriers.Update) (TrackingResult, error) {
	if !u.Status.Valid() {
		return TrackingResult{}, packline.FieldError("status", "unknown tracking status %q", u.Status)
	}
	if u.OccurredAt.IsZero() {
		return TrackingResult{}, packline.FieldError("occurred_at", "a tracking update needs the time it occurred")
	}
	var (
		out     TrackingResult
		res     flows.Result
		applied bool
	)
	now := db.Now()
	at := u.OccurredAt.UTC().Truncate(time.Microsecond)
	u.OccurredAt = at // as the shipment stores it, for couriers.Track
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		out, applied = TrackingResult{}, false
		sh, err := db.getShipment(ctx, tx, `courier = ? AND tracking_number = ?`+db.forUpdate(""), u.Courier, u.TrackingNumber)
		if err != nil {
			if packline.ErrorCode(err) == packline.ENOTFOUND {
				return packline.Errorf(packline.ENOTFOUND, "no %s shipment has tracking number %s", u.Courier, u.TrackingNumber)
			}
			return err
		}
		o, err := db.lockOrder(ctx, tx, sh.StoreID, sh.OrderID)
		if err != nil {
			return err
		}
		out.Shipment, out.Order = sh, o
		r, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO shipment_events (shipment_id, status, courier_status, occurred_at, received_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (shipment_id, status, occurred_at) DO NOTHING`),
			sh.ID, u.Status, truncateTo(u.CourierStatus, 200), at, now)
		if err != nil {
			return fmt.Errorf("record tracking of shipment %s: %w", sh.ID, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			out.Duplicate = true
			return nil
		}
		plan := couriers.Track(sh.Status, sh.StatusAt, u)
		if plan.Newer {
			out.Newer = true
			_, err := tx.ExecContext(ctx, db.rebind(`UPDATE shipments SET status = ?, status_at = ?, updated_at = ? WHERE id = ?`),
				u.Status, at, now, sh.ID)
			if err != nil {
				return fmt.Errorf("update shipment %s: %w", sh.ID, err)
			}
			out.Shipment.Status, out.Shipment.StatusAt, out.Shipment.UpdatedAt = u.Status, at, now
		}
		if plan.Event != "" {
			b := &batch{}
			res, err = db.applyEvent(ctx, tx, b, sh.StoreID, sh.OrderID, EventInput{
				Event: plan.Event, Actor: packline.Actor{Type: packline.ActorCourier, ID: u.Courier}, Note: plan.Note}, now)
			if err == nil {
				err = db.exec(ctx, tx, b)
			}
			switch code := packline.ErrorCode(err); {
			case err == nil:
				applied, out.Event, out.Order = true, plan.Event, &res.Order
			case code == packline.ECONFLICT || code == packline.EINVALID:
				// The order does not take the event now, or its flow
				// has none: the update moves the shipment only.
				out.Refused = err
			default:
				return err
			}
		}
		if applied {
			return nil
		}
		data, _ := json.Marshal(map[string]any{"courier": u.Courier, "tracking_number": u.TrackingNumber,
			"status": u.Status, "courier_status": u.CourierStatus, "occurred_at": at})
		_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO timeline (order_id, version, at, event, from_state, to_state, actor_type, actor_id, note, data)
			VALUES (?, ?, ?, 'tracking_update', ?, ?, ?, ?, ?, ?)`),
			o.ID, o.Version, now, o.Status, o.Status, string(packline.ActorCourier), u.Courier, plan.Note, string(data))
		if err != nil {
			return fmt.Errorf("add tracking update to the timeline of %s: %w", o.ID, err)
		}
		return nil
	})
	if err != nil {
		return TrackingResult{}, err
	}
	if applied {
		db.committed(res)
	}
	return out, nil
}

// ShipFrom is where a store's parcels leave from: the sender on its labels.
type ShipFrom struct {
	// Name is the sender's name; the store's name when empty.
	Name    string           `json:"name,omitempty"`
	Phone   string           `json:"phone,omitempty"`
	Address packline.Address `json:"address"`
}

// Shipping is a store's shipping settings.
type Shipping struct {
	StoreName string
	// Courier is the store's default courier; "" means the fleet's.
	Courier string
	// From is the sender on the store's labels; nil until set.
	From *ShipFrom
}

// StoreShipping returns a store's shipping settings.
func (db *DB) StoreShipping(ctx context.Context, storeID string) (Shipping, error) {
	var row struct {
		Name     string         `db:"name"`
		ShipFrom sql.NullString `db:"ship_from"`
		Courier  sql.NullString `db:"default_courier"`
	}
	err := db.db.GetContext(ctx, &row, db.rebind(`SELECT name, ship_from, default_courier FROM stores WHERE id = ?`), storeID)
	if isNoRows(err) {
		return Shipping{}, packline.Errorf(packline.ENOTFOUND, "store not found")
	}
	if err != nil {
		return Shipping{}, fmt.Errorf("read shipping settings of store %s: %w", storeID, err)
	}
	s := Shipping{StoreName: row.Name, Courier: row.Courier.String}
	if row.ShipFrom.Valid && row.ShipFrom.String != "" {
		s.From = &ShipFrom{}
		if err := json.Unmarshal([]byte(row.ShipFrom.String), s.From); err != nil {
			return Shipping{}, fmt.Errorf("store %s: ship_from: %w", storeID, err)
		}
	}
	return s, nil
}

// SetStoreShipping sets a store's default courier ("" for the fleet's) and
// ship-from address (nil to clear it).
func (db *DB) SetStoreShipping(ctx context.Context, storeID, courier string, from *ShipFrom) error {
	var fromJSON, courierCol *string
	if from != nil {
		b, _ := json.Marshal(from)
		s := string(b)
		fromJSON = &s
	}
	if courier != "" {
		courierCol = &courier
	}
	r, err := db.db.ExecContext(ctx, db.rebind(`UPDATE stores SET ship_from = ?, default_courier = ? WHERE id = ?`), fromJSON, courierCol, storeID)
	if err != nil {
		return fmt.Errorf("set shipping settings of store %s: %w", storeID, err)
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return packline.Errorf(packline.ENOTFOUND, "store not found")
	}
	return nil
}

func truncateTo(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
