package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/flows"
)

// PaymentAccount is a store's own account at a payment provider. The secret
// key and the webhook signing secret are sealed (internal/secrets) by the
// caller: the store never sees them in clear.
type PaymentAccount struct {
	StoreID             string    `db:"store_id"`
	Provider            string    `db:"provider"`
	AccountID           string    `db:"account_id"`
	Livemode            bool      `db:"livemode"`
	SecretKeySealed     string    `db:"secret_key_sealed"`
	SecretKeyLast4      string    `db:"secret_key_last4"`
	WebhookSecretSealed string    `db:"webhook_secret_sealed"`
	CreatedAt           time.Time `db:"created_at"`
	UpdatedAt           time.Time `db:"updated_at"`
}

const paymentAccountColumns = `store_id, provider, account_id, livemode, secret_key_sealed, secret_key_last4,
	webhook_secret_sealed, created_at, updated_at`

// PutPaymentAccount creates or replaces the store's account at a.Provider.
func (db *DB) PutPaymentAccount(ctx context.Context, a PaymentAccount) (PaymentAccount, error) {
	now := db.Now()
	var got PaymentAccount
	err := db.db.GetContext(ctx, &got, db.rebind(`INSERT INTO payment_accounts (`+paymentAccountColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (store_id, provider) DO UPDATE SET account_id = excluded.account_id, livemode = excluded.livemode,
			secret_key_sealed = excluded.secret_key_sealed, secret_key_last4 = excluded.secret_key_last4,
			webhook_secret_sealed = excluded.webhook_secret_sealed, updated_at = excluded.updated_at
		RETURNING `+paymentAccountColumns),
		a.StoreID, a.Provider, a.AccountID, a.Livemode, a.SecretKeySealed, a.SecretKeyLast4, a.WebhookSecretSealed, now, now)
	if err != nil {
		return PaymentAccount{}, fmt.Errorf("put %s account of store %s: %w", a.Provider, a.StoreID, err)
	}
	got.CreatedAt, got.UpdatedAt = got.CreatedAt.UTC(), got.UpdatedAt.UTC()
	return got, nil
}

// GetPaymentAccount returns the store's account at provider, or ENOTFOUND.
func (db *DB) GetPaymentAccount(ctx context.Context, storeID, provider string) (PaymentAccount, error) {
	var a PaymentAccount
	err := db.db.GetContext(ctx, &a, db.rebind(`SELECT `+paymentAccountColumns+` FROM payment_accounts
		WHERE store_id = ? AND provider = ?`), storeID, provider)
	if isNoRows(err) {
		return PaymentAccount{}, packline.Errorf(packline.ENOTFOUND, "the store has no %s account", provider)
	}
	if err != nil {
		return PaymentAccount{}, fmt.Errorf("read %s account of store %s: %w", provider, storeID, err)
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// StoreTestMode reports whether the store is marked a test store (it may
// run on the sandbox provider in production).
func (db *DB) StoreTestMode(ctx context.Context, storeID string) (bool, error) {
	var on bool
	err := db.db.GetContext(ctx, &on, db.rebind(`SELECT test_mode FROM stores WHERE id = ?`), storeID)
	if isNoRows(err) {
		return false, packline.Errorf(packline.ENOTFOUND, "store not found")
	}
	if err != nil {
		return false, fmt.Errorf("read test mode of store %s: %w", storeID, err)
	}
	return on, nil
}

// SetStoreTestMode marks the store named name a test store, or not.
func (db *DB) SetStoreTestMode(ctx context.Context, name string, on bool) (Store, error) {
	var s Store
	err := db.db.GetContext(ctx, &s, db.rebind(`UPDATE stores SET test_mode = ? WHERE name = ? RETURNING id, name, flow, created_at`), on, name)
	if isNoRows(err) {
		return Store{}, packline.Errorf(packline.ENOTFOUND, "no store named %q", name)
	}
	if err != nil {
		return Store{}, fmt.Errorf("set test mode of store %s: %w", name, err)
	}
	s.CreatedAt = s.CreatedAt.UTC()
	return s, nil
}

// ProviderRequest is one call to a payment provider, journalled before it
// is made: Lookup knows from it whether a key was ever sent.
type ProviderRequest struct {
	IdempotencyKey string    `db:"idempotency_key"`
	Provider       string    `db:"provider"`
	StoreID        string    `db:"store_id"`
	Kind           string    `db:"kind"`
	TargetRef      string    `db:"target_ref"`
	ObjectID       string    `db:"object_id"`
	StartedAt      time.Time `db:"started_at"`
}

const providerRequestColumns = `idempotency_key, provider, store_id, kind, target_ref, object_id, started_at`

// BeginProviderRequest journals r once per idempotency key and returns the
// journalled request: a repeated call gets the first one back.
func (db *DB) BeginProviderRequest(ctx context.Context, r ProviderRequest) (ProviderRequest, error) {
	var got ProviderRequest
	err := db.db.GetContext(ctx, &got, db.rebind(`INSERT INTO provider_requests (`+providerRequestColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = excluded.idempotency_key
		RETURNING `+providerRequestColumns), r.IdempotencyKey, r.Provider, r.StoreID, r.Kind, r.TargetRef, r.ObjectID, db.Now())
	if err != nil {
		return ProviderRequest{}, fmt.Errorf("journal %s request %s: %w", r.Provider, r.IdempotencyKey, err)
	}
	got.StartedAt = got.StartedAt.UTC()
	return got, nil
}

// SetProviderRequestObject records the provider's id of what the request
// made (a PaymentIntent, a Refund).
func (db *DB) SetProviderRequestObject(ctx context.Context, key, objectID string) error {
	_, err := db.db.ExecContext(ctx, db.rebind(`UPDATE provider_requests SET object_id = ? WHERE idempotency_key = ? AND object_id = ''`), objectID, key)
	if err != nil {
		return fmt.Errorf("journal the object of request %s: %w", key, err)
	}
	return nil
}

// GetProviderRequest returns the journalled request under key; found is
// false when none was ever begun.
func (db *DB) GetProviderRequest(ctx context.Context, key string) (r ProviderRequest, found bool, err error) {
	var rows []ProviderRequest
	if err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT `+providerRequestColumns+` FROM provider_requests WHERE idempotency_key = ?`), key); err != nil {
		return r, false, fmt.Errorf("read request %s: %w", key, err)
	}
	if len(rows) == 0 {
		return r, false, nil
	}
	rows[0].StartedAt = rows[0].StartedAt.UTC()
	return rows[0], true, nil
}

// PaymentEvent is a webhook event from a payment provider.
type PaymentEvent struct {
	Provider, EventID, StoreID, Type string
	// ObjectID is what the event is about (a PaymentIntent, a Charge);
	// Created is when the provider made the event (Unix seconds).
	ObjectID string
	Created  int64
}

// PaymentEventSeen reports whether a webhook event was taken already (a
// replay), and whether an event about the same object made later than this
// one was taken before it (stale: it came out of order, and must not act).
func (db *DB) PaymentEventSeen(ctx context.Context, e PaymentEvent) (taken, stale bool, err error) {
	var got struct {
		Taken int `db:"taken"`
		Newer int `db:"newer"`
	}
	err = db.db.GetContext(ctx, &got, db.rebind(`SELECT
		(SELECT COUNT(*) FROM payment_events WHERE provider = ? AND event_id = ?) AS taken,
		(SELECT COUNT(*) FROM payment_events WHERE provider = ? AND object_id = ? AND created > ?) AS newer`),
		e.Provider, e.EventID, e.Provider, e.ObjectID, e.Created)
	if err != nil {
		return false, false, fmt.Errorf("read %s event %s: %w", e.Provider, e.EventID, err)
	}
	return got.Taken > 0, got.Newer > 0, nil
}

// TakePaymentEvent records that a webhook event was taken (once per event
// id). The caller acts on the event first, idempotently, and records it
// after: a crash between the two makes the provider's redelivery act again
// (a no-op), never lose the event.
func (db *DB) TakePaymentEvent(ctx context.Context, e PaymentEvent) error {
	_, err := db.db.ExecContext(ctx, db.rebind(`INSERT INTO payment_events (provider, event_id, store_id, type, object_id, created, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, event_id) DO NOTHING`),
		e.Provider, e.EventID, e.StoreID, e.Type, e.ObjectID, e.Created, db.Now())
	if err != nil {
		return fmt.Errorf("take %s event %s: %w", e.Provider, e.EventID, err)
	}
	return nil
}

// PaymentByProviderRef returns the store's newest payment whose provider
// reference is ref (a PaymentIntent id), or ENOTFOUND.
func (db *DB) PaymentByProviderRef(ctx context.Context, storeID, provider, ref string) (Payment, error) {
	var rows []Payment
	err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT `+paymentColumns+` FROM payments
		WHERE provider_ref = ? AND provider = ? AND store_id = ? ORDER BY created_at DESC, id DESC LIMIT 1`), ref, provider, storeID)
	if err != nil {
		return Payment{}, fmt.Errorf("read payment %s: %w", ref, err)
	}
	if len(rows) == 0 {
		return Payment{}, packline.Errorf(packline.ENOTFOUND, "no %s payment %s", provider, ref)
	}
	rows[0].CreatedAt = rows[0].CreatedAt.UTC()
	return rows[0], nil
}

// NoteFromProvider writes a note from the payment provider on the order's
// timeline (a dispute, a refund made in the provider's dashboard) and, when
// webhook is set (order.disputed), owes the merchant's endpoints that
// webhook: once per key (the provider's event id), however often it is sent.
func (db *DB) NoteFromProvider(ctx context.Context, storeID, orderID, provider, key, note, webhook string) error {
	var o struct {
		Version int64 `db:"version"`
	}
	err := db.db.GetContext(ctx, &o, db.rebind(`SELECT version FROM orders WHERE id = ? AND store_id = ?`), orderID, storeID)
	if isNoRows(err) {
		return packline.Errorf(packline.ENOTFOUND, "order %s not found", orderID)
	}
	if err != nil {
		return fmt.Errorf("read order %s: %w", orderID, err)
	}
	now := db.Now()
	b := &batch{}
	// Once per note, however often the provider sends its event.
	b.add(`INSERT INTO timeline (order_id, version, at, event, from_state, to_state, actor_type, actor_id, note)
		SELECT id, version, ?, 'note', status, status, ?, ?, ? FROM orders WHERE id = ?
		AND NOT EXISTS (SELECT 1 FROM timeline WHERE order_id = ? AND event = 'note' AND actor_type = ? AND note = ?)`,
		now, string(packline.ActorPayment), provider, note, orderID, orderID, string(packline.ActorPayment), note)
	if webhook != "" {
		h := sha256.Sum256([]byte(orderID + "|" + provider + "|" + key))
		payload, err := json.Marshal(flows.Effect{Type: string(flows.EffectWebhookDeliver), Webhook: webhook, Event: "provider_event"})
		if err != nil {
			return err
		}
		b.insertRows("outbox", []string{"id", "order_id", "store_id", "version", "seq", "type", "payload", "status", "run_at", "created_at"},
			[][]any{{"eff_" + hex.EncodeToString(h[:12]), orderID, storeID, o.Version, 2000, string(flows.EffectWebhookDeliver), string(payload), EffectPending, now, now}},
			"ON CONFLICT (id) DO NOTHING")
	}
	if err := db.write(ctx, b); err != nil {
		return fmt.Errorf("note %s event on order %s: %w", provider, orderID, err)
	}
	if webhook != "" {
		db.wakeOutbox()
	}
	return nil
}
