package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/webhooks"
)

// MaxWebhookEndpoints is how many endpoints (not deleted) one store may have.
const MaxWebhookEndpoints = 20

// WebhookEndpoint is a merchant's webhook endpoint. Secret signs every
// delivery; the API shows it once, when the endpoint is made.
type WebhookEndpoint struct {
	ID      string
	StoreID string
	URL     string
	Secret  string
	// Events are the filters: "order.*", "order.shipped", "*".
	Events    []string
	CreatedAt time.Time
	// DisabledAt is set once the endpoint is disabled (it answered 410
	// Gone, or failed every delivery for webhooks.DisableAfter), with the
	// reason; nothing is sent to it any more.
	DisabledAt     *time.Time
	DisabledReason string
	// FailingSince is the first failed attempt after the last success.
	FailingSince *time.Time
	DeletedAt    *time.Time
}

// Enabled reports whether deliveries go to the endpoint.
func (e WebhookEndpoint) Enabled() bool { return e.DisabledAt == nil && e.DeletedAt == nil }

type endpointRow struct {
	ID             string       `db:"id"`
	StoreID        string       `db:"store_id"`
	URL            string       `db:"url"`
	Secret         string       `db:"secret"`
	Events         string       `db:"events"`
	CreatedAt      time.Time    `db:"created_at"`
	DisabledAt     sql.NullTime `db:"disabled_at"`
	DisabledReason string       `db:"disabled_reason"`
	FailingSince   sql.NullTime `db:"failing_since"`
	DeletedAt      sql.NullTime `db:"deleted_at"`
}

const endpointColumns = `id, store_id, url, secret, events, created_at, disabled_at, disabled_reason, failing_since, deleted_at`

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func (r *endpointRow) endpoint() (WebhookEndpoint, error) {
	e := WebhookEndpoint{ID: r.ID, StoreID: r.StoreID, URL: r.URL, Secret: r.Secret, CreatedAt: r.CreatedAt.UTC(),
		DisabledAt: nullTime(r.DisabledAt), DisabledReason: r.DisabledReason, FailingSince: nullTime(r.FailingSince),
		DeletedAt: nullTime(r.DeletedAt)}
	if err := json.Unmarshal([]byte(r.Events), &e.Events); err != nil {
		return e, fmt.Errorf("webhook endpoint %s: events: %w", r.ID, err)
	}
	return e, nil
}

// CreateWebhookEndpoint adds an endpoint to a store. The caller has checked
// the URL and the filters, and made the secret (webhooks.NewSecret).
func (db *DB) CreateWebhookEndpoint(ctx context.Context, storeID, url, secret string, events []string) (WebhookEndpoint, error) {
	now := db.Now()
	e := WebhookEndpoint{ID: NewID("we", now), StoreID: storeID, URL: url, Secret: secret, Events: events, CreatedAt: now}
	ev, err := json.Marshal(events)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	err = db.inTx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM webhook_endpoints WHERE store_id = ? AND deleted_at IS NULL`), storeID); err != nil {
			return fmt.Errorf("count webhook endpoints: %w", err)
		}
		if n >= MaxWebhookEndpoints {
			return packline.FieldError("url", "a store may have at most %d webhook endpoints; delete one first", MaxWebhookEndpoints)
		}
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO webhook_endpoints (id, store_id, url, secret, events, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`), e.ID, storeID, url, secret, string(ev), now)
		if err != nil {
			return fmt.Errorf("create webhook endpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return WebhookEndpoint{}, err
	}
	return e, nil
}

// WebhookEndpoints returns a store's endpoints (not deleted), oldest first.
func (db *DB) WebhookEndpoints(ctx context.Context, storeID string) ([]WebhookEndpoint, error) {
	var rows []endpointRow
	err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE store_id = ? AND deleted_at IS NULL ORDER BY id`), storeID)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	out := make([]WebhookEndpoint, 0, len(rows))
	for i := range rows {
		e, err := rows[i].endpoint()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// WebhookEndpoint returns one of a store's endpoints; ENOTFOUND when it is
// another store's, deleted, or was never made.
func (db *DB) WebhookEndpoint(ctx context.Context, storeID, id string) (WebhookEndpoint, error) {
	e, err := db.endpointByID(ctx, db.db, id)
	if err != nil {
		return e, err
	}
	if e.StoreID != storeID || e.DeletedAt != nil {
		return WebhookEndpoint{}, packline.Errorf(packline.ENOTFOUND, "webhook endpoint %s not found", id)
	}
	return e, nil
}

func (db *DB) endpointByID(ctx context.Context, q sqlx.QueryerContext, id string) (WebhookEndpoint, error) {
	var r endpointRow
	err := sqlx.GetContext(ctx, q, &r, db.rebind(`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = ?`), id)
	if isNoRows(err) {
		return WebhookEndpoint{}, packline.Errorf(packline.ENOTFOUND, "webhook endpoint %s not found", id)
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("read webhook endpoint %s: %w", id, err)
	}
	return r.endpoint()
}

// DeleteWebhookEndpoint deletes one of a store's endpoints: nothing more is
// sent to it, and its pending deliveries stop.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, storeID, id string) error {
	now := db.Now()
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		r, err := tx.ExecContext(ctx, db.rebind(`UPDATE webhook_endpoints SET deleted_at = ?
			WHERE id = ? AND store_id = ? AND deleted_at IS NULL`), now, id, storeID)
		if err != nil {
			return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return packline.Errorf(packline.ENOTFOUND, "webhook endpoint %s not found", id)
		}
		return db.stopDeliveries(ctx, tx, id, "the endpoint was deleted")
	})
}

// stopDeliveries marks the endpoint's pending deliveries disabled. Their
// scheduled attempts find them so and do nothing.
func (db *DB) stopDeliveries(ctx context.Context, tx *sqlx.Tx, endpointID, why string) error {
	_, err := tx.ExecContext(ctx, db.rebind(`UPDATE webhook_deliveries SET status = `+literal(webhooks.DeliveryDisabled)+`, next_attempt_at = NULL, last_error = ?
		WHERE endpoint_id = ? AND status = `+literal(webhooks.DeliveryPending)), why, endpointID)
	if err != nil {
		return fmt.Errorf("stop deliveries of %s: %w", endpointID, err)
	}
	return nil
}

// WebhookDelivery is one message to one endpoint, with its attempts.
type WebhookDelivery struct {
	ID string `db:"id"`
	// MessageID is the webhook-id, the same on every attempt.
	MessageID  string `db:"message_id"`
	EndpointID string `db:"endpoint_id"`
	StoreID    string `db:"store_id"`
	OrderID    string `db:"order_id"`
	// EffectID is the webhook:deliver effect that owed the message.
	EffectID  string `db:"effect_id"`
	EventType string `db:"event_type"`
	// Payload is the body, frozen when the delivery was made:
	// {"type", "timestamp", "data"}.
	Payload        string                  `db:"payload"`
	Status         webhooks.DeliveryStatus `db:"status"`
	Attempts       int                     `db:"attempts"`
	NextAttemptAt  sql.NullTime            `db:"next_attempt_at"`
	LastStatusCode int                     `db:"last_status_code"`
	LastError      string                  `db:"last_error"`
	CreatedAt      time.Time               `db:"created_at"`
	DeliveredAt    sql.NullTime            `db:"delivered_at"`
	// Log is the attempts, first first (filled by WebhookDeliveries).
	Log []WebhookAttempt `db:"-"`
}

func (d *WebhookDelivery) utc() {
	d.CreatedAt = d.CreatedAt.UTC()
	for _, t := range []*sql.NullTime{&d.NextAttemptAt, &d.DeliveredAt} {
		if t.Valid {
			t.Time = t.Time.UTC()
		}
	}
}

const deliveryColumns = `id, message_id, endpoint_id, store_id, order_id, effect_id, event_type, payload, status, attempts,
	next_attempt_at, last_status_code, last_error, created_at, delivered_at`

// WebhookAttempt is one attempt of a delivery.
type WebhookAttempt struct {
	DeliveryID   string           `db:"delivery_id"`
	Attempt      int              `db:"attempt"`
	AttemptedAt  time.Time        `db:"attempted_at"`
	Outcome      webhooks.Outcome `db:"outcome"`
	StatusCode   int              `db:"status_code"`
	Error        string           `db:"error"`
	LatencyMS    int64            `db:"latency_ms"`
	ResponseBody string           `db:"response_body"`
}

// WebhookAttemptPurpose marks an outbox row of type webhook:deliver that is
// one attempt of one delivery (its data names both), not an event to fan
// out to the endpoints. See CreateWebhookDeliveries.
const WebhookAttemptPurpose = "webhook_attempt"

// webhookDeliverType is the type of webhook attempt rows.
const webhookDeliverType = string(flows.EffectWebhookDeliver)

// WebhookAttemptOf reads the delivery and attempt number of an attempt
// row's effect; ok is false for a webhook:deliver effect owed by a
// transition.
func WebhookAttemptOf(e flows.Effect) (deliveryID string, attempt int, ok bool) {
	if e.Purpose != WebhookAttemptPurpose {
		return "", 0, false
	}
	var d struct {
		DeliveryID string `json:"delivery_id"`
		Attempt    int    `json:"attempt"`
	}
	if json.Unmarshal(e.Data, &d) != nil || d.DeliveryID == "" || d.Attempt < 1 {
		return "", 0, false
	}
	return d.DeliveryID, d.Attempt, true
}

// attemptRowID is the outbox id (and so the Asynq TaskID) of a delivery's
// n-th attempt: a re-sent or re-scheduled attempt is one row, one task.
func attemptRowID(deliveryID string, n int) string {
	return deliveryID + "-a" + strconv.Itoa(n)
}

// scheduleAttempt writes the outbox row of a delivery's n-th attempt, due at
// runAt, in the order version and position of the effect that owed the
// message. An existing row of that attempt is left as it is.
func (db *DB) scheduleAttempt(ctx context.Context, tx *sqlx.Tx, d WebhookDelivery, n int, runAt time.Time) error {
	data, _ := json.Marshal(map[string]any{"delivery_id": d.ID, "attempt": n})
	payload, err := json.Marshal(flows.Effect{Type: webhookDeliverType, Webhook: d.EventType, Purpose: WebhookAttemptPurpose,
		Event: "webhook_attempt", Data: data})
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO outbox (id, order_id, store_id, version, seq, type, payload, status, run_at, created_at)
		SELECT ?, order_id, store_id, version, seq, ?, ?, `+EffectPending.sql()+`, ?, ? FROM outbox WHERE id = ?
		ON CONFLICT (id) DO NOTHING`),
		attemptRowID(d.ID, n), webhookDeliverType, string(payload), runAt.UTC().Truncate(time.Microsecond), db.Now(), d.EffectID)
	if err != nil {
		return fmt.Errorf("schedule attempt %d of webhook delivery %s: %w", n, d.ID, err)
	}
	return nil
}

// NewWebhookMessage is one event to deliver to some of a store's endpoints.
type NewWebhookMessage struct {
	// EffectID is the webhook:deliver effect that owes the message, of
	// OrderID and StoreID (read from the effect's row when empty).
	EffectID string
	OrderID  string
	StoreID  string
	// MessageID is the webhook-id (webhooks.MessageID of the effect id).
	MessageID string
	EventType string
	// Payload is the body every endpoint gets on every attempt.
	Payload []byte
	// Endpoints are the ids of the endpoints that want the event.
	Endpoints []string
}

// CreateWebhookDeliveries makes one delivery per (message, endpoint), in
// one statement, and returns those deliveries, oldest first. The caller makes
// the first attempt of each (workers.Webhooks does, before it marks the
// effect done); the next ones are outbox rows that RecordWebhookAttempt
// schedules. Run again for the same message it adds nothing: a delivery
// that exists keeps its payload and progress.
func (db *DB) CreateWebhookDeliveries(ctx context.Context, m NewWebhookMessage) ([]WebhookDelivery, error) {
	now := db.Now()
	if len(m.Endpoints) == 0 {
		return nil, nil
	}
	if m.OrderID == "" || m.StoreID == "" {
		var eff struct {
			OrderID string `db:"order_id"`
			StoreID string `db:"store_id"`
		}
		if err := db.db.GetContext(ctx, &eff, db.rebind(`SELECT order_id, store_id FROM outbox WHERE id = ?`), m.EffectID); err != nil {
			if isNoRows(err) {
				return nil, packline.Errorf(packline.ENOTFOUND, "effect %s not found", m.EffectID)
			}
			return nil, fmt.Errorf("read effect %s: %w", m.EffectID, err)
		}
		m.OrderID, m.StoreID = eff.OrderID, eff.StoreID
	}
	rows := make([][]any, len(m.Endpoints))
	for i, ep := range m.Endpoints {
		rows[i] = []any{NewID("whd", now), m.MessageID, ep, m.StoreID, m.OrderID, m.EffectID, m.EventType, string(m.Payload), webhooks.DeliveryPending, now, now}
	}
	// One statement, inserted and existing rows alike: the no-op update
	// on a conflict is what makes RETURNING give back a delivery an
	// earlier run made, with its payload and progress untouched.
	q, args := insertQuery("webhook_deliveries", []string{"id", "message_id", "endpoint_id", "store_id", "order_id", "effect_id",
		"event_type", "payload", "status", "next_attempt_at", "created_at"}, rows,
		`ON CONFLICT (message_id, endpoint_id) DO UPDATE SET message_id = excluded.message_id RETURNING `+deliveryColumns)
	// The relaxed pool: a database crash that loses these rows loses no
	// guarantee. The effect is not done until the attempts' records commit
	// durably, which makes these rows durable too (WAL order); a crash
	// before that runs the fan-out again, under the same webhook-id.
	var out []WebhookDelivery
	if err := db.relaxed.SelectContext(ctx, &out, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("create webhook deliveries of %s: %w", m.MessageID, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		out[i].utc()
	}
	return out, nil
}

// WebhookDeliveryToAttempt returns a delivery and its endpoint, for an
// attempt.
func (db *DB) WebhookDeliveryToAttempt(ctx context.Context, deliveryID string) (WebhookDelivery, WebhookEndpoint, error) {
	d, err := db.deliveryByID(ctx, db.db, deliveryID, false)
	if err != nil {
		return d, WebhookEndpoint{}, err
	}
	e, err := db.endpointByID(ctx, db.db, d.EndpointID)
	return d, e, err
}

func (db *DB) deliveryByID(ctx context.Context, q sqlx.QueryerContext, id string, lock bool) (WebhookDelivery, error) {
	query := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE id = ?`
	if lock {
		query += db.forUpdate("")
	}
	var d WebhookDelivery
	err := sqlx.GetContext(ctx, q, &d, db.rebind(query), id)
	if isNoRows(err) {
		return d, packline.Errorf(packline.ENOTFOUND, "webhook delivery %s not found", id)
	}
	if err != nil {
		return d, fmt.Errorf("read webhook delivery %s: %w", id, err)
	}
	d.utc()
	return d, nil
}

// AttemptRecord is one attempt's result, for RecordWebhookAttempt.
type AttemptRecord struct {
	DeliveryID string
	// Attempt counts from 1; it must be the delivery's attempts + 1.
	Attempt      int
	AttemptedAt  time.Time
	Outcome      webhooks.Outcome
	StatusCode   int
	Error        string
	Latency      time.Duration
	ResponseBody string
	// RetryAfter is the receiver's Retry-After (webhooks.Result), for the
	// policy's NextRetry.
	RetryAfter time.Duration
	// Policy decides the next attempt and when a failing endpoint is
	// disabled (webhooks.Decide); nil means webhooks.Scaled(TimerScale()).
	Policy webhooks.Policy
	// FinishEffect, when set, is an outbox row (the fan-out whose one
	// first attempt this is) marked done in the transaction that records
	// the attempt.
	FinishEffect string
}

// AttemptResult is what recording an attempt did.
type AttemptResult struct {
	// Recorded is false when the delivery had moved on (another run of the
	// same attempt recorded it, a replay overtook it, or the endpoint was
	// disabled or deleted): nothing was written.
	Recorded bool
	Delivery WebhookDelivery
	// Disabled is set when this attempt disabled the endpoint, with the
	// reason: the merchant is to be told.
	Disabled       bool
	DisabledReason string
}

// RecordWebhookAttempt records an attempt and what follows from it
// (webhooks.Decide, asked with the endpoint's health as this transaction
// finds it), in one transaction: the attempt row; the delivery delivered,
// failed, or pending with its next attempt scheduled as an outbox row (id
// delivery id + "-a" + n); the endpoint's failing_since cleared by a
// success or set by the first failure; and the endpoint disabled (with
// every pending delivery of it) when the plan says so.
func (db *DB) RecordWebhookAttempt(ctx context.Context, rec AttemptRecord) (AttemptResult, error) {
	now := db.Now()
	policy := rec.Policy
	if policy == nil {
		policy = webhooks.Scaled(db.TimerScale())
	}
	var res AttemptResult
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		// The endpoint first, then the delivery: the order in which
		// deleting or disabling an endpoint takes them, so the two never
		// wait for each other. A success writes the endpoint only when it
		// was failing, so deliveries to a healthy endpoint share no lock.
		health, err := db.noteEndpointHealth(ctx, tx, rec.DeliveryID, rec.Outcome.EndpointChange(), now)
		if err != nil {
			return err
		}
		d, err := db.deliveryByID(ctx, tx, rec.DeliveryID, true)
		if err != nil {
			return err
		}
		if d.Status != webhooks.DeliveryPending || d.Attempts != rec.Attempt-1 {
			res.Delivery = d
			return errNotRecorded
		}
		_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, outcome, status_code,
			error, latency_ms, response_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			d.ID, rec.Attempt, rec.AttemptedAt.UTC().Truncate(time.Microsecond), rec.Outcome, rec.StatusCode,
			truncate(rec.Error), rec.Latency.Milliseconds(), truncate(rec.ResponseBody))
		if err != nil {
			return fmt.Errorf("record attempt %d of webhook delivery %s: %w", rec.Attempt, d.ID, err)
		}
		res.Recorded = true
		plan := webhooks.Decide(webhooks.Attempt{N: rec.Attempt, Outcome: rec.Outcome, StatusCode: rec.StatusCode,
			RetryAfter: rec.RetryAfter}, health, policy, now)
		var next, deliveredAt *time.Time
		if !plan.NextAttempt.IsZero() {
			next = &plan.NextAttempt
			if err := db.scheduleAttempt(ctx, tx, d, rec.Attempt+1, plan.NextAttempt); err != nil {
				return err
			}
		}
		if plan.Status == webhooks.DeliveryDelivered {
			deliveredAt = &now
		}
		_, err = tx.ExecContext(ctx, db.rebind(`UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?,
			last_status_code = ?, last_error = ?, delivered_at = COALESCE(?, delivered_at) WHERE id = ?`),
			plan.Status, rec.Attempt, next, rec.StatusCode, truncate(rec.Error), deliveredAt, d.ID)
		if err != nil {
			return fmt.Errorf("update webhook delivery %s: %w", d.ID, err)
		}
		if plan.DisableEndpoint {
			res.Disabled, res.DisabledReason = true, plan.DisabledReason
			r, err := tx.ExecContext(ctx, db.rebind(`UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?
				WHERE id = ? AND disabled_at IS NULL`), now, res.DisabledReason, d.EndpointID)
			if err != nil {
				return fmt.Errorf("disable webhook endpoint %s: %w", d.EndpointID, err)
			}
			if n, _ := r.RowsAffected(); n == 0 {
				res.Disabled = false // another attempt disabled it first and tells the merchant
			}
			if err := db.stopDeliveries(ctx, tx, d.EndpointID, "the endpoint was disabled"); err != nil {
				return err
			}
		}
		if rec.FinishEffect != "" {
			b := &batch{}
			db.markDone(b, rec.FinishEffect, "", now)
			if err := db.exec(ctx, tx, b); err != nil {
				return fmt.Errorf("finish effect %s: %w", rec.FinishEffect, err)
			}
		}
		d.Status, d.Attempts, d.LastStatusCode, d.LastError = plan.Status, rec.Attempt, rec.StatusCode, truncate(rec.Error)
		d.NextAttemptAt = sql.NullTime{}
		if next != nil {
			d.NextAttemptAt = sql.NullTime{Time: next.UTC(), Valid: true}
		}
		if deliveredAt != nil {
			d.DeliveredAt = sql.NullTime{Time: deliveredAt.UTC(), Valid: true}
		}
		res.Delivery = d
		return nil
	})
	if errors.Is(err, errNotRecorded) {
		return res, nil
	}
	if err != nil {
		return AttemptResult{}, err
	}
	if res.Recorded {
		db.wakeOutbox()
	}
	return res, nil
}

// errNotRecorded rolls back an attempt record whose delivery moved on.
var errNotRecorded = errors.New("webhook attempt not recorded")

// noteEndpointHealth writes on the delivery's endpoint what an attempt
// says of it (webhooks.Outcome.EndpointChange): a success ends a failing
// streak, a failure starts one (once) and returns when it started, a 410
// locks the endpoint it is about to disable; giving up leaves it alone.
func (db *DB) noteEndpointHealth(ctx context.Context, tx *sqlx.Tx, deliveryID string, change webhooks.EndpointChange, now time.Time) (webhooks.Health, error) {
	const endpointOf = `(SELECT endpoint_id FROM webhook_deliveries WHERE id = ?)`
	switch change {
	case webhooks.EndpointHealthy:
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE webhook_endpoints SET failing_since = NULL
			WHERE id = `+endpointOf+` AND failing_since IS NOT NULL`), deliveryID); err != nil {
			return webhooks.Health{}, fmt.Errorf("clear failures of the endpoint of webhook delivery %s: %w", deliveryID, err)
		}
	case webhooks.EndpointDisabling:
		// The endpoint is about to be disabled: take its lock now, first.
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE webhook_endpoints SET failing_since = failing_since
			WHERE id = `+endpointOf), deliveryID); err != nil {
			return webhooks.Health{}, fmt.Errorf("lock the endpoint of webhook delivery %s: %w", deliveryID, err)
		}
	case webhooks.EndpointFailing:
		var since []time.Time
		if err := tx.SelectContext(ctx, &since, db.rebind(`UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?)
			WHERE id = `+endpointOf+` RETURNING failing_since`), now, deliveryID); err != nil {
			return webhooks.Health{}, fmt.Errorf("record failure of the endpoint of webhook delivery %s: %w", deliveryID, err)
		}
		if len(since) == 1 {
			return webhooks.Health{FailingSince: since[0].UTC()}, nil
		}
	}
	return webhooks.Health{}, nil
}

// StopWebhookDelivery marks a pending delivery disabled (its endpoint is
// disabled or gone), without an attempt.
func (db *DB) StopWebhookDelivery(ctx context.Context, deliveryID, why string) error {
	_, err := db.db.ExecContext(ctx, db.rebind(`UPDATE webhook_deliveries SET status = `+literal(webhooks.DeliveryDisabled)+`, next_attempt_at = NULL, last_error = ?
		WHERE id = ? AND status = `+literal(webhooks.DeliveryPending)), why, deliveryID)
	if err != nil {
		return fmt.Errorf("stop webhook delivery %s: %w", deliveryID, err)
	}
	return nil
}

// ReplayWebhookDelivery sends a delivery of one of the store's endpoints
// again, now, with the same webhook-id and body: one more attempt, whatever
// became of the earlier ones. A delivery waiting for a retry has that retry
// brought forward. ECONFLICT when the endpoint is disabled or an attempt is
// under way; ENOTFOUND when the endpoint or delivery is not the store's.
func (db *DB) ReplayWebhookDelivery(ctx context.Context, storeID, endpointID, deliveryID string) (WebhookDelivery, error) {
	now := db.Now()
	var d WebhookDelivery
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		ep, err := db.endpointByID(ctx, tx, endpointID)
		if err != nil {
			return err
		}
		if ep.StoreID != storeID || ep.DeletedAt != nil {
			return packline.Errorf(packline.ENOTFOUND, "webhook endpoint %s not found", endpointID)
		}
		if ep.DisabledAt != nil {
			return packline.Errorf(packline.ECONFLICT, "webhook endpoint %s is disabled (%s); create a new endpoint", endpointID, ep.DisabledReason)
		}
		d, err = db.deliveryByID(ctx, tx, deliveryID, true)
		if err != nil {
			return err
		}
		if d.EndpointID != endpointID {
			return packline.Errorf(packline.ENOTFOUND, "webhook delivery %s not found", deliveryID)
		}
		next := d.Attempts + 1
		id := attemptRowID(d.ID, next)
		var rowStatus []string
		if err := tx.SelectContext(ctx, &rowStatus, db.rebind(`SELECT status FROM outbox WHERE id = ?`), id); err != nil {
			return fmt.Errorf("read attempt %s: %w", id, err)
		}
		switch {
		case len(rowStatus) == 1 && EffectStatus(rowStatus[0]) == EffectEnqueued:
			return packline.Errorf(packline.ECONFLICT, "an attempt of webhook delivery %s is under way; try again when it is logged", d.ID)
		case len(rowStatus) == 1:
			// Waiting for its time (a retry): bring it forward. Done without
			// being logged (it found the delivery stopped, or gave up on a
			// database error): run it again.
			_, err := tx.ExecContext(ctx, db.rebind(`UPDATE outbox SET status = `+EffectPending.sql()+`, run_at = ?, done_at = NULL, started_at = NULL
				WHERE id = ?`), now, id)
			if err != nil {
				return fmt.Errorf("bring attempt %s forward: %w", id, err)
			}
		default:
			if err := db.scheduleAttempt(ctx, tx, d, next, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE webhook_deliveries SET status = `+literal(webhooks.DeliveryPending)+`, next_attempt_at = ? WHERE id = ?`), now, d.ID); err != nil {
			return fmt.Errorf("replay webhook delivery %s: %w", d.ID, err)
		}
		d, err = db.deliveryByID(ctx, tx, d.ID, false)
		return err
	})
	if err != nil {
		return WebhookDelivery{}, err
	}
	db.wakeOutbox()
	ds := []WebhookDelivery{d}
	if err := db.loadAttempts(ctx, ds); err != nil {
		return WebhookDelivery{}, err
	}
	return ds[0], nil
}

// WebhookDeliveries returns a page of an endpoint's deliveries, newest
// first, each with its attempts, and the cursor of the next page ("" at the
// end); ENOTFOUND when the endpoint is not the store's.
func (db *DB) WebhookDeliveries(ctx context.Context, storeID, endpointID string, limit int, cursor string) ([]WebhookDelivery, string, error) {
	if _, err := db.WebhookEndpoint(ctx, storeID, endpointID); err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE endpoint_id = ?`
	args := []any{endpointID}
	if cursor != "" {
		q += ` AND id < ?`
		args = append(args, cursor)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1)
	out := []WebhookDelivery{}
	if err := db.db.SelectContext(ctx, &out, db.rebind(q), args...); err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries of %s: %w", endpointID, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[len(out)-1].ID
	}
	for i := range out {
		out[i].utc()
	}
	return out, next, db.loadAttempts(ctx, out)
}

// loadAttempts fills the Log of each delivery.
func (db *DB) loadAttempts(ctx context.Context, ds []WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]string, len(ds))
	byID := make(map[string]*WebhookDelivery, len(ds))
	for i := range ds {
		ds[i].Log = []WebhookAttempt{}
		ids[i] = ds[i].ID
		byID[ds[i].ID] = &ds[i]
	}
	query, args, err := sqlx.In(`SELECT delivery_id, attempt, attempted_at, outcome, status_code, error, latency_ms, response_body
		FROM webhook_attempts WHERE delivery_id IN (?) ORDER BY delivery_id, attempt`, ids)
	if err != nil {
		return err
	}
	var attempts []WebhookAttempt
	if err := db.db.SelectContext(ctx, &attempts, db.rebind(query), args...); err != nil {
		return fmt.Errorf("read webhook attempts: %w", err)
	}
	for _, a := range attempts {
		a.AttemptedAt = a.AttemptedAt.UTC()
		byID[a.DeliveryID].Log = append(byID[a.DeliveryID].Log, a)
	}
	return nil
}
