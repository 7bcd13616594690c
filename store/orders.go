package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/metrics"
)

// Idempotency is a client's Idempotency-Key and the hash of its request.
type Idempotency struct {
	Key         string
	RequestHash string
}

// CreateOrder records a new order, starts its flow, and commits the order,
// its lines, its first timeline entry and the effects it owes in one
// transaction. With an idempotency key seen before, it returns the order of
// the first request (created false) when the request hash matches, and
// EIDEMPOTENCY when it does not.
func (db *DB) CreateOrder(ctx context.Context, storeID string, o packline.Order, actor packline.Actor, idem *Idempotency) (order *packline.Order, created bool, err error) {
	if idem != nil {
		if order, err := db.replay(ctx, storeID, *idem); order != nil || err != nil {
			return order, false, err
		}
	}
	if o.Flow == "" {
		s, err := db.GetStore(ctx, storeID)
		if err != nil {
			return nil, false, err
		}
		o.Flow = s.Flow
	}
	flow := db.opts.Flows.Get(o.Flow)
	if flow == nil {
		return nil, false, packline.FieldError("flow", "unknown flow %q (one of %v)", o.Flow, db.opts.Flows.Names())
	}
	if err := computeTotals(&o); err != nil {
		return nil, false, err
	}
	now := db.Now()
	o.ID = NewID("ord", now)
	o.StoreID = storeID
	res, err := flow.Start(o, actor, now, db.TimerScale())
	if err != nil {
		return nil, false, err
	}
	b := &batch{}
	db.insertOrder(b, &res.Order)
	if idem != nil {
		b.add(`INSERT INTO idempotency_keys (store_id, key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?, ?)`,
			storeID, idem.Key, idem.RequestHash, res.Order.ID, now)
	}
	if err := db.writeResult(b, "", res, now); err != nil {
		return nil, false, err
	}
	err = db.write(ctx, b)
	if err != nil {
		if idem != nil && isUniqueViolation(err) {
			// Another request with the same key won the race.
			if order, rerr := db.replay(ctx, storeID, *idem); order != nil || rerr != nil {
				return order, false, rerr
			}
		}
		return nil, false, err
	}
	db.committed(res)
	return &res.Order, true, nil
}

func (db *DB) replay(ctx context.Context, storeID string, idem Idempotency) (*packline.Order, error) {
	var row struct {
		RequestHash string `db:"request_hash"`
		OrderID     string `db:"order_id"`
	}
	err := db.db.GetContext(ctx, &row, db.rebind(`SELECT request_hash, order_id FROM idempotency_keys WHERE store_id = ? AND key = ?`), storeID, idem.Key)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up idempotency key: %w", err)
	}
	if row.RequestHash != idem.RequestHash {
		return nil, &packline.Error{Code: packline.EIDEMPOTENCY, Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used with a different request body"}
	}
	return db.GetOrder(ctx, storeID, row.OrderID)
}

// computeTotals sums the lines, refusing a total that overflows int64.
func computeTotals(o *packline.Order) error {
	var sum int64
	for i, l := range o.Lines {
		if l.Quantity > 0 && l.UnitPrice > math.MaxInt64/l.Quantity {
			return packline.FieldError("lines["+strconv.Itoa(i)+"]", "quantity × unit_price overflows")
		}
		t := l.Quantity * l.UnitPrice
		if t > math.MaxInt64-sum {
			return packline.FieldError("lines", "the order total overflows")
		}
		sum += t
	}
	o.Subtotal, o.Total = sum, sum
	return nil
}

// insertOrder adds the order and its lines to b.
func (db *DB) insertOrder(b *batch, o *packline.Order) {
	customer, _ := json.Marshal(o.Customer)
	var addr, meta *string
	if o.ShippingAddress != nil {
		b, _ := json.Marshal(o.ShippingAddress)
		s := string(b)
		addr = &s
	}
	if len(o.Metadata) > 0 {
		s := string(o.Metadata)
		meta = &s
	}
	flags, _ := json.Marshal(o.Flags)
	b.add(`INSERT INTO orders (id, store_id, flow, status, version, state_version, state_entered_at,
		external_id, currency, customer, shipping_address, ship_date, payment_method, notes, metadata,
		subtotal, total, amount_paid, flags, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.StoreID, o.Flow, o.Status, o.Version, o.StateVersion, o.CreatedAt,
		o.ExternalID, o.Currency, string(customer), addr, o.ShipDate, o.PaymentMethod, o.Notes, meta,
		o.Subtotal, o.Total, o.AmountPaid, string(flags), o.CreatedAt, o.UpdatedAt)
	lines := make([][]any, len(o.Lines))
	for i, l := range o.Lines {
		var cust *string
		if len(l.Customization) > 0 {
			s := string(l.Customization)
			cust = &s
		}
		lines[i] = []any{o.ID, i + 1, l.SKU, l.Name, l.Quantity, l.UnitPrice, l.Customizable, cust}
	}
	b.insertRows("order_lines", []string{"order_id", "line_no", "sku", "name", "quantity", "unit_price", "customizable", "customization"}, lines, "")
}

// EventInput is an event sent to an order through the store.
type EventInput struct {
	Event string
	Actor packline.Actor
	Data  map[string]any
	Note  string
	// ExpectedVersion, when not zero, makes the event a compare-and-set: it
	// fails with ECONFLICT unless the order is at that version.
	ExpectedVersion int64
	// OnlyIn, when set, makes the event a no-op returning ErrStale unless the
	// order is in one of these states (and, with StateVersion, has not left
	// and re-entered it): how timers re-check before acting.
	OnlyIn       []string
	StateVersion int64
}

// ErrStale is returned when an event's OnlyIn precondition no longer holds:
// the order moved on, and the event (a timer, usually) has nothing to do.
var ErrStale = packline.Errorf(packline.ECONFLICT, "the order has left the state this event was meant for")

// ApplyEvent sends an event to an order and commits the transition, its
// timeline entries and the effects it owes in one transaction. Transitions of
// one order are serialized: the order row is locked (PostgreSQL) or the
// database is (SQLite), and the update is a compare-and-set on the version.
func (db *DB) ApplyEvent(ctx context.Context, storeID, orderID string, in EventInput) (*packline.Order, error) {
	var res flows.Result
	now := db.Now()
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		b := &batch{}
		var err error
		if res, err = db.applyEvent(ctx, tx, b, storeID, orderID, in, now); err != nil {
			return err
		}
		return db.exec(ctx, tx, b)
	})
	if err != nil {
		return nil, err
	}
	db.committed(res)
	return &res.Order, nil
}

// applyEvent is ApplyEvent within tx, for callers that commit the event with
// other writes (the fleet marks an effect done in the same transaction as
// the event it reports): it locks and reads the order, runs the flow, and
// adds the transition's writes to b, which the caller executes. The caller
// calls db.committed after the commit.
func (db *DB) applyEvent(ctx context.Context, tx *sqlx.Tx, b *batch, storeID, orderID string, in EventInput, now time.Time) (flows.Result, error) {
	var res flows.Result
	err := func() error {
		o, err := db.lockOrder(ctx, tx, storeID, orderID)
		if err != nil {
			return err
		}
		flow := db.opts.Flows.Get(o.Flow)
		if flow == nil {
			return fmt.Errorf("order %s runs flow %q, which is not loaded", o.ID, o.Flow)
		}
		if in.ExpectedVersion != 0 && in.ExpectedVersion != o.Version {
			return &packline.Error{Code: packline.ECONFLICT,
				Message:       fmt.Sprintf("the order is at version %d, not %d", o.Version, in.ExpectedVersion),
				AllowedEvents: flow.AllowedEvents(o, in.Actor.Type)}
		}
		if len(in.OnlyIn) > 0 && !flows.StillIn(o, in.OnlyIn, in.StateVersion) {
			return ErrStale
		}
		res, err = flow.Apply(*o, flows.Input{Event: in.Event, Actor: in.Actor, Data: in.Data, Note: in.Note, Now: now, TimerScale: db.TimerScale()})
		if err != nil {
			return err
		}
		db.updateOrder(b, o, &res.Order, now)
		return db.writeResult(b, o.Status, res, now)
	}()
	return res, err
}

// errOrderMoved is the answer when the order's version moved under a
// transition (it cannot while the row is locked; the check guards the
// compare-and-set regardless).
var errOrderMoved = packline.Errorf(packline.ECONFLICT, "the order changed while this event was applied; send it again")

// updateOrder adds the compare-and-set of the order from old to o to b.
func (db *DB) updateOrder(b *batch, old, o *packline.Order, now time.Time) {
	flags, _ := json.Marshal(o.Flags)
	q := `UPDATE orders SET status = ?, version = ?, state_version = ?, amount_paid = ?, flags = ?, updated_at = ?`
	args := []any{o.Status, o.Version, o.StateVersion, o.AmountPaid, string(flags), now}
	if o.StateVersion != old.StateVersion {
		q += `, state_entered_at = ?`
		args = append(args, now)
	}
	q += ` WHERE id = ? AND version = ?`
	args = append(args, o.ID, old.Version)
	b.addChecked(errOrderMoved, q, args...)
}

// EffectID is the deterministic id of the n-th effect owed at an order's
// version: the relay uses it as the Asynq TaskID, so a re-send is a no-op.
func EffectID(orderID string, version int64, n int, typ string) string {
	h := sha256.Sum256([]byte(orderID + "|" + strconv.FormatInt(version, 10) + "|" + strconv.Itoa(n) + "|" + typ))
	return "eff_" + hex.EncodeToString(h[:12])
}

// TimerType is the outbox type of a timer row.
const TimerType = string(flows.EffectOrderTimer)

// writeResult adds what a transition produced to b: timeline rows, outbox
// rows (effects, then timers) and the change of the per-state order counts.
func (db *DB) writeResult(b *batch, prevStatus string, res flows.Result, now time.Time) error {
	o := &res.Order
	timeline := make([][]any, len(res.Steps))
	for i, s := range res.Steps {
		var data *string
		if len(s.Data) > 0 {
			d := string(s.Data)
			data = &d
		}
		timeline[i] = []any{o.ID, o.Version, now, s.Event, s.From, s.To, string(s.Actor.Type), s.Actor.ID, s.Note, data}
	}
	b.insertRows("timeline", []string{"order_id", "version", "at", "event", "from_state", "to_state", "actor_type", "actor_id", "note", "data"}, timeline, "")
	outbox := make([][]any, 0, len(res.Effects)+len(res.Timers))
	row := func(typ string, payload any, runAt time.Time) error {
		p, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("encode %s of order %s: %w", typ, o.ID, err)
		}
		n := len(outbox)
		outbox = append(outbox, []any{EffectID(o.ID, o.Version, n, typ), o.ID, o.StoreID, o.Version, n, typ, string(p), EffectPending, runAt, now})
		return nil
	}
	for _, e := range res.Effects {
		if err := row(e.Type, e, now); err != nil {
			return err
		}
	}
	for _, t := range res.Timers {
		if err := row(TimerType, t, t.RunAt.UTC().Truncate(time.Microsecond)); err != nil {
			return err
		}
	}
	b.insertRows("outbox", []string{"id", "order_id", "store_id", "version", "seq", "type", "payload", "status", "run_at", "created_at"}, outbox, "")
	if prevStatus != o.Status {
		deltas := [][]any{{o.Flow, o.Status, 1}}
		if prevStatus != "" {
			deltas = append(deltas, []any{o.Flow, prevStatus, -1})
		}
		b.insertRows("order_count_deltas", []string{"flow", "status", "delta"}, deltas, "")
	}
	return nil
}

// committed runs after a commit: count it, and wake the relay when effects
// were written.
func (db *DB) committed(res flows.Result) {
	for _, st := range res.Steps {
		if st.Event == "created" {
			metrics.OrderCreated(res.Order.Flow)
			continue
		}
		metrics.Transition(res.Order.Flow, st.Event, st.To)
	}
	if len(res.Effects) > 0 || len(res.Timers) > 0 {
		db.wakeOutbox()
	}
}

// AddNote adds a note to an order's timeline. A note does not change the
// order's state or version.
func (db *DB) AddNote(ctx context.Context, storeID, orderID string, actor packline.Actor, text string) (*packline.Order, error) {
	var o *packline.Order
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		o, err = db.lockOrder(ctx, tx, storeID, orderID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO timeline (order_id, version, at, event, from_state, to_state, actor_type, actor_id, note)
			VALUES (?, ?, ?, 'note', ?, ?, ?, ?, ?)`), o.ID, o.Version, db.Now(), o.Status, o.Status, string(actor.Type), actor.ID, text)
		if err != nil {
			return fmt.Errorf("add note: %w", err)
		}
		return nil
	})
	return o, err
}
