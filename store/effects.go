package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/internal/testhook"
)

// Outbox row statuses: pending → enqueued → done, or failed once the fleet
// gave up (last_error says why). Redelivery keeps a row enqueued.
const (
	EffectPending  EffectStatus = "pending"
	EffectEnqueued EffectStatus = "enqueued"
	EffectDone     EffectStatus = "done"
	EffectFailed   EffectStatus = "failed"
)

// EffectStatus is an outbox row's status.
type EffectStatus string

// sql is the status as an SQL literal (see literal).
func (s EffectStatus) sql() string { return literal(s) }

// runnable is the SQL list of the statuses a row can still run in.
var runnable = "(" + EffectPending.sql() + ", " + EffectEnqueued.sql() + ")"

// EffectRow is an outbox row with the fleet's delivery bookkeeping.
type EffectRow struct {
	OutboxRow
	// Deliveries counts the times the relay handed the row to Asynq.
	Deliveries int `db:"deliveries"`
	// StartedAt is when a worker last began running the row.
	StartedAt sql.NullTime `db:"started_at"`
}

// Final reports whether the row is done or failed: nothing more will run.
func (r *OutboxRow) Final() bool { return r.Status == EffectDone || r.Status == EffectFailed }

const effectColumns = outboxColumns + `, deliveries, started_at`

func (r *EffectRow) utc() {
	r.RunAt, r.CreatedAt = r.RunAt.UTC(), r.CreatedAt.UTC()
}

// Effect returns one outbox row by its effect id; ENOTFOUND when there is none.
func (db *DB) Effect(ctx context.Context, id string) (EffectRow, error) {
	var r EffectRow
	err := db.db.GetContext(ctx, &r, db.rebind(`SELECT `+effectColumns+` FROM outbox WHERE id = ?`), id)
	if isNoRows(err) {
		return r, packline.Errorf(packline.ENOTFOUND, "effect %s not found", id)
	}
	if err != nil {
		return r, fmt.Errorf("read effect %s: %w", id, err)
	}
	r.utc()
	return r, nil
}

// typeFilter returns " AND type IN (?, ...)" and its args, or nothing when
// types is empty (every type).
func typeFilter(types []string) (string, []any) {
	if len(types) == 0 {
		return "", nil
	}
	q, args, _ := sqlx.In(` AND type IN (?)`, types)
	return q, args
}

// ClaimDueEffects marks up to limit pending rows whose run_at has come as
// enqueued (enqueued_at now, deliveries + 1) and returns them (the oldest
// due are the ones claimed; the returned order is not guaranteed). On PostgreSQL the rows are claimed with FOR UPDATE SKIP LOCKED, so
// several relays share the work without handing one row out twice. types, when
// not empty, limits the claim to those effect types: the others stay pending.
func (db *DB) ClaimDueEffects(ctx context.Context, limit int, types []string) ([]EffectRow, error) {
	now := db.Now()
	tf, targs := typeFilter(types)
	lock := db.skipLocked()
	q := `UPDATE outbox SET status = ` + EffectEnqueued.sql() + `, enqueued_at = ?, deliveries = deliveries + 1
		WHERE id IN (SELECT id FROM outbox WHERE status = ` + EffectPending.sql() + ` AND run_at <= ?` + tf + ` ORDER BY run_at LIMIT ?` + lock + `)
		RETURNING ` + effectColumns
	args := append([]any{now, now}, targs...)
	args = append(args, limit)
	var rows []EffectRow
	if err := db.relaxed.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("claim due effects: %w", err)
	}
	for i := range rows {
		rows[i].utc()
	}
	return rows, nil
}

// ClaimStaleEffects returns up to limit rows that were enqueued, and neither
// relayed nor started by a worker, for longer than olderThan, and sets their
// enqueued_at to now so that no other relay looks at them for olderThan
// again. The caller decides whether each is lost (and redelivers it, then
// calls MarkRedelivered) or merely waiting in a queue.
func (db *DB) ClaimStaleEffects(ctx context.Context, olderThan time.Duration, limit int, types []string) ([]EffectRow, error) {
	now := db.Now()
	cutoff := now.Add(-olderThan)
	tf, targs := typeFilter(types)
	lock := db.skipLocked()
	q := `UPDATE outbox SET enqueued_at = ?
		WHERE id IN (SELECT id FROM outbox WHERE status = ` + EffectEnqueued.sql() + ` AND enqueued_at < ?
			AND (started_at IS NULL OR started_at < ?)` + tf + ` ORDER BY enqueued_at LIMIT ?` + lock + `)
		RETURNING ` + effectColumns
	args := append([]any{now, cutoff, cutoff}, targs...)
	args = append(args, limit)
	var rows []EffectRow
	if err := db.relaxed.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("claim stale effects: %w", err)
	}
	for i := range rows {
		rows[i].utc()
	}
	return rows, nil
}

// MarkRedelivered records that enqueued rows were handed to Asynq again,
// in one statement.
func (db *DB) MarkRedelivered(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	q, args, err := sqlx.In(`UPDATE outbox SET deliveries = deliveries + 1, enqueued_at = ?
		WHERE id IN (?) AND status = `+EffectEnqueued.sql(), db.Now(), ids)
	if err != nil {
		return err
	}
	if _, err := db.relaxed.ExecContext(ctx, db.rebind(q), args...); err != nil {
		return fmt.Errorf("mark %d effects redelivered: %w", len(ids), err)
	}
	return nil
}

// EnqueuedEffects returns the rows of ids that are enqueued (handed to
// Asynq, not done), in one query.
func (db *DB) EnqueuedEffects(ctx context.Context, ids ...string) ([]EffectRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT `+effectColumns+` FROM outbox WHERE id IN (?) AND status = `+EffectEnqueued.sql(), ids)
	if err != nil {
		return nil, err
	}
	var rows []EffectRow
	if err := db.db.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read %d effects: %w", len(ids), err)
	}
	for i := range rows {
		rows[i].utc()
	}
	return rows, nil
}

// ReleaseEffect puts a claimed row back to pending after the relay failed to
// hand it to Asynq, so the next pass tries again. The claim's delivery is
// given back too: the next try uses the same task id, so an enqueue that
// reached Redis although it reported an error is not run a second time.
func (db *DB) ReleaseEffect(ctx context.Context, id, cause string) error {
	_, err := db.db.ExecContext(ctx, db.rebind(`UPDATE outbox SET status = `+EffectPending.sql()+`, last_error = ?, deliveries = deliveries - 1
		WHERE id = ? AND status = `+EffectEnqueued.sql()+` AND deliveries > 0`), truncate(cause), id)
	if err != nil {
		return fmt.Errorf("release effect %s: %w", id, err)
	}
	return nil
}

// NextDueEffect returns the earliest run_at of a pending row that is not due
// yet (a timer), so the relay can sleep until then; ok is false when there
// is none.
func (db *DB) NextDueEffect(ctx context.Context, types []string) (at time.Time, ok bool, err error) {
	tf, targs := typeFilter(types)
	var rows []time.Time
	q := `SELECT run_at FROM outbox WHERE status = ` + EffectPending.sql() + ` AND run_at > ?` + tf + ` ORDER BY run_at LIMIT 1`
	if err := db.db.SelectContext(ctx, &rows, db.rebind(q), append([]any{db.Now()}, targs...)...); err != nil {
		return time.Time{}, false, fmt.Errorf("read next due effect: %w", err)
	}
	if len(rows) == 0 {
		return time.Time{}, false, nil
	}
	return rows[0].UTC(), true, nil
}

// EffectStart is what StartEffect found.
type EffectStart struct {
	// Final is set when the row is done or failed already: the caller has
	// nothing to do.
	Final bool
	// Runs counts the runs a worker began of the row, this one included:
	// above 1, an earlier run may have acted outside before it died.
	Runs int
}

// StartEffect records that a worker begins running the row (started_at
// now, starts + 1), in one statement. ENOTFOUND when there is no row.
//
// The mark is a hint a crash may lose (it commits without waiting for the
// disk) unless durable is set: an effect that moves money sets it, because
// its next run decides from Runs whether the provider may have been asked
// already.
func (db *DB) StartEffect(ctx context.Context, id string, durable bool) (EffectStart, error) {
	pool := db.relaxed
	if durable {
		pool = db.db
	}
	var runs []int
	err := pool.SelectContext(ctx, &runs, db.rebind(`UPDATE outbox SET started_at = ?, starts = starts + 1
		WHERE id = ? AND status IN `+runnable+` RETURNING starts`), db.Now(), id)
	if err != nil {
		return EffectStart{}, fmt.Errorf("start effect %s: %w", id, err)
	}
	if len(runs) == 1 {
		return EffectStart{Runs: runs[0]}, nil
	}
	// Done, failed, or never written: only the rare path reads the row.
	if _, err := db.Effect(ctx, id); err != nil {
		return EffectStart{}, err
	}
	return EffectStart{Final: true}, nil
}

// FailEffect records a failed run of the row: attempts + 1 and the error.
// With final (the fleet gave up: no retry left, or a permanent error) the
// row becomes failed. A row already done stays done.
func (db *DB) FailEffect(ctx context.Context, id, cause string, final bool) error {
	q := `UPDATE outbox SET attempts = attempts + 1, last_error = ?`
	if final {
		q += `, status = ` + EffectFailed.sql() + `, done_at = ?`
	} else {
		q += `, started_at = ?`
	}
	q += ` WHERE id = ? AND status IN ` + runnable + ``
	_, err := db.db.ExecContext(ctx, db.rebind(q), truncate(cause), db.Now(), id)
	if err != nil {
		return fmt.Errorf("record failure of effect %s: %w", id, err)
	}
	return nil
}

// EffectReport is the event an effect sends back to its order, through the
// same compare-and-set path as any other event.
type EffectReport struct {
	Event string
	Actor packline.Actor
	Data  map[string]any
	Note  string
	// OnlyIn and StateVersion make the event a no-op unless the order is
	// still where it was (timers); see EventInput.
	OnlyIn       []string
	StateVersion int64
}

// EffectOutcome says what finishing an effect did.
type EffectOutcome struct {
	// AlreadyDone is set when the row was done or failed before this run:
	// nothing was changed.
	AlreadyDone bool
	// Applied is set when the report's event was applied; Order is then the
	// order after it.
	Applied bool
	Order   *packline.Order
	// Refused is the order's answer when it no longer takes the reported
	// event (it moved on): the row is done, with the refusal in last_error,
	// and the effect's own writes were rolled back.
	Refused error
}

// CompleteEffect finishes an effect: in one transaction it applies the
// reported event (if any) to the order and marks the row done, so an effect
// run twice reports once. A row already done or failed changes nothing.
func (db *DB) CompleteEffect(ctx context.Context, id string, report *EffectReport) (EffectOutcome, error) {
	if report == nil || report.Event == "" {
		return db.finishEffect(ctx, id)
	}
	return db.runEffect(ctx, id, func(context.Context, *sqlx.Tx, EffectRow) (*EffectReport, error) {
		return report, nil
	})
}

// finishEffect marks a row done that reports nothing: one statement, no
// transaction around it.
func (db *DB) finishEffect(ctx context.Context, id string) (EffectOutcome, error) {
	r, err := db.db.ExecContext(ctx, db.rebind(`UPDATE outbox SET status = `+EffectDone.sql()+`, done_at = ?
		WHERE id = ? AND status IN `+runnable+``), db.Now(), id)
	if err != nil {
		return EffectOutcome{}, fmt.Errorf("mark effect %s done: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 1 {
		return EffectOutcome{}, nil
	}
	if _, err := db.Effect(ctx, id); err != nil {
		return EffectOutcome{}, err
	}
	return EffectOutcome{AlreadyDone: true}, nil
}

// errRefused rolls back an effect transaction whose event the order refused.
var errRefused = errors.New("event refused")

// effectWork is an effect's own writes, run inside the transaction that marks
// it done; it returns the event to report, or nil.
type effectWork func(ctx context.Context, tx *sqlx.Tx, row EffectRow) (*EffectReport, error)

// refusedWork is what an effect writes when the order refuses its report,
// in the transaction that marks the row done with the refusal: what must
// be kept whatever the order made of it (a payment the provider made).
type refusedWork func(ctx context.Context, tx *sqlx.Tx, row EffectRow, b *batch) error

// runEffect is the one path that finishes an effect: mark the row done
// (which locks it), unless it is final already; run work, apply the event it
// reports, and commit all of it together. When the order refuses the event (it moved on,
// or a timer found it elsewhere) everything work wrote is rolled back and the
// row is marked done with the refusal as its last error: retrying could never
// succeed.
func (db *DB) runEffect(ctx context.Context, id string, work effectWork) (EffectOutcome, error) {
	return db.runEffectKeeping(ctx, id, work, nil)
}

// runEffectKeeping is runEffect with onRefused: what the transaction that
// marks a refused row done writes as well.
func (db *DB) runEffectKeeping(ctx context.Context, id string, work effectWork, onRefused refusedWork) (EffectOutcome, error) {
	var (
		out     EffectOutcome
		res     flows.Result
		report  *EffectReport
		refused error
	)
	now := db.Now()
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		row, ok, err := db.takeEffect(ctx, tx, id, now)
		if err != nil {
			return err
		}
		if !ok {
			out.AlreadyDone = true
			return nil
		}
		report, err = work(ctx, tx, row)
		if err != nil {
			return err
		}
		b := &batch{}
		if report != nil && report.Event != "" {
			res, err = db.applyEvent(ctx, tx, b, row.StoreID, row.OrderID, EventInput{
				Event: report.Event, Actor: report.Actor, Data: report.Data, Note: report.Note,
				OnlyIn: report.OnlyIn, StateVersion: report.StateVersion,
			}, now)
			if err != nil {
				if refusal(err) {
					refused = err
					return errRefused
				}
				return fmt.Errorf("report %s to order %s: %w", report.Event, row.OrderID, err)
			}
			out.Applied, out.Order = true, &res.Order
		}
		if err := db.exec(ctx, tx, b); err != nil {
			return fmt.Errorf("finish effect %s: %w", id, err)
		}
		testhook.BeforeCommit(ctx)
		return nil
	})
	if errors.Is(err, errRefused) {
		out = EffectOutcome{Refused: refused}
		note := fmt.Sprintf("%s not applied: %s", report.Event, packline.ErrorMessage(refused))
		err = db.inTx(ctx, func(tx *sqlx.Tx) error {
			row, err := db.lockEffect(ctx, tx, id)
			if err != nil {
				return err
			}
			if row.Final() {
				out = EffectOutcome{AlreadyDone: true}
				return nil
			}
			b := &batch{}
			db.markDone(b, id, note, now)
			if onRefused != nil {
				if err := onRefused(ctx, tx, row, b); err != nil {
					return err
				}
			}
			return db.exec(ctx, tx, b)
		})
	}
	if err != nil {
		return EffectOutcome{}, err
	}
	if out.Applied {
		db.committed(res)
	}
	return out, nil
}

// refusal reports an error that says the order will not take the event, now
// or ever: a state conflict, a stale timer, bad data, or no such order.
func refusal(err error) bool {
	switch packline.ErrorCode(err) {
	case packline.ECONFLICT, packline.EINVALID, packline.ENOTFOUND:
		return true
	}
	return false
}

// takeEffect marks the row done within tx, which locks it until the
// commit, and returns it as a running row (status enqueued); ok is false
// when the row was done or failed already. ENOTFOUND when there is no row.
func (db *DB) takeEffect(ctx context.Context, tx *sqlx.Tx, id string, now time.Time) (row EffectRow, ok bool, err error) {
	var rows []EffectRow
	err = tx.SelectContext(ctx, &rows, db.rebind(`UPDATE outbox SET status = `+EffectDone.sql()+`, done_at = ?
		WHERE id = ? AND status IN `+runnable+` RETURNING `+effectColumns), now, id)
	if err != nil {
		return row, false, fmt.Errorf("take effect %s: %w", id, err)
	}
	if len(rows) == 0 {
		_, err := db.lockEffect(ctx, tx, id)
		return row, false, err
	}
	row = rows[0]
	row.utc()
	row.Status, row.DoneAt = EffectEnqueued, sql.NullTime{}
	return row, true, nil
}

func (db *DB) lockEffect(ctx context.Context, tx *sqlx.Tx, id string) (EffectRow, error) {
	q := `SELECT ` + effectColumns + ` FROM outbox WHERE id = ?` + db.forUpdate("")
	var r EffectRow
	err := tx.GetContext(ctx, &r, db.rebind(q), id)
	if isNoRows(err) {
		return r, packline.Errorf(packline.ENOTFOUND, "effect %s not found", id)
	}
	if err != nil {
		return r, fmt.Errorf("lock effect %s: %w", id, err)
	}
	r.utc()
	return r, nil
}

// markDone adds marking the row done to b. A note (why the result was not
// applied) replaces last_error; without one, the error of an earlier failed
// attempt stays for the record.
func (db *DB) markDone(b *batch, id, note string, now time.Time) {
	q, args := `UPDATE outbox SET status = `+EffectDone.sql()+`, done_at = ?`, []any{now}
	if note != "" {
		q += `, last_error = ?`
		args = append(args, truncate(note))
	}
	b.add(q+` WHERE id = ? AND status IN `+runnable+``, append(args, id)...)
}

// FireTimer runs an order:timer row: it sends the timer's event as the
// system, only if the order is still in the state (and state version) that
// armed it, and marks the row done in the same transaction. A timer whose
// order moved on is done, with the reason in last_error.
func (db *DB) FireTimer(ctx context.Context, id string) (EffectOutcome, error) {
	return db.runEffect(ctx, id, func(_ context.Context, _ *sqlx.Tx, row EffectRow) (*EffectReport, error) {
		if row.Type != TimerType {
			return nil, fmt.Errorf("effect %s is a %s, not a timer", id, row.Type)
		}
		t, err := row.Timer()
		if err != nil {
			return nil, err
		}
		return &EffectReport{Event: t.Event, Actor: packline.Actor{Type: packline.ActorSystem, ID: id},
			OnlyIn: t.States, StateVersion: t.StateVersion}, nil
	})
}

// Timer decodes the payload of an order:timer row.
func (r *OutboxRow) Timer() (flows.Timer, error) {
	var t flows.Timer
	if err := jsonUnmarshal(r.Payload, &t); err != nil {
		return t, fmt.Errorf("effect %s: timer payload: %w", r.ID, err)
	}
	return t, nil
}

// Effect decodes the payload of an effect row (any type but order:timer).
func (r *OutboxRow) Effect() (flows.Effect, error) {
	var e flows.Effect
	if err := jsonUnmarshal(r.Payload, &e); err != nil {
		return e, fmt.Errorf("effect %s: payload: %w", r.ID, err)
	}
	return e, nil
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// truncate keeps stored error texts to a sane size.
func truncate(s string) string {
	const max = 2000
	if len(s) > max {
		return s[:max]
	}
	return s
}
