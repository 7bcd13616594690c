package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
)

// Message statuses. A message row is made sending before the provider is
// asked, and becomes sent (or failed, or skipped when there was nobody to
// send it to) once: a sent or skipped key is never sent again.
const (
	MessageSending MessageStatus = "sending"
	MessageSent    MessageStatus = "sent"
	MessageSkipped MessageStatus = "skipped"
	MessageFailed  MessageStatus = "failed"
)

// MessageStatus is a message row's status.
type MessageStatus string

// Message is one notification, rendered, with what became of it: the row a
// notify:* task keeps per notify.Key(effect id, template), and an entry of
// GET /v1/orders/{id}/messages.
type Message struct {
	Key     string `db:"key"`
	OrderID string `db:"order_id"`
	StoreID string `db:"store_id"`
	// EffectID is the effect that owed the message.
	EffectID string `db:"effect_id"`
	Channel  string `db:"channel"` // email, sms
	Template string `db:"template"`
	// RecipientType is customer or merchant; Recipient the address or
	// E.164 number it went to ("" when there was none: skipped).
	RecipientType string `db:"recipient_type"`
	Recipient     string `db:"recipient"`
	RecipientName string `db:"recipient_name"`
	FromName      string `db:"from_name"`
	ReplyTo       string `db:"reply_to"`
	Subject       string `db:"subject"`
	// Body is an email's text part, or the SMS.
	Body       string        `db:"body"`
	HTML       string        `db:"html"`
	Status     MessageStatus `db:"status"`
	Provider   string        `db:"provider"`
	ProviderID string        `db:"provider_id"`
	Error      string        `db:"error"`
	Attempts   int           `db:"attempts"`
	CreatedAt  time.Time     `db:"created_at"`
	SentAt     sql.NullTime  `db:"sent_at"`
}

// Final reports whether nothing more will be done with the message.
func (m *Message) Final() bool { return m.Status != MessageSending }

const messageColumns = `key, COALESCE(order_id, '') AS order_id, store_id, effect_id, channel, template, recipient_type, recipient,
	recipient_name, from_name, reply_to, subject, body, html, status, provider, provider_id, error, attempts, created_at, sent_at`

func (m *Message) utc() {
	m.CreatedAt = m.CreatedAt.UTC()
	if m.SentAt.Valid {
		m.SentAt.Time = m.SentAt.Time.UTC()
	}
}

// RecordMessage keeps m under its key unless a row of that key exists, and
// returns the stored row: the new one, or the one a previous run made. m's
// Status is what a new row starts as (sending, or skipped/failed for a
// message that will never be sent).
func (db *DB) RecordMessage(ctx context.Context, m Message) (Message, error) {
	stored, _, err := db.insertMessage(ctx, m, 0, "ON CONFLICT (key) DO UPDATE SET key = excluded.key")
	// A row of the key that exists comes back as it is: the no-op update
	// is what makes RETURNING give it.
	return stored, err
}

// StartMessage records m under its key and, when m is to be sent (status
// sending), leases it to the caller for lease, in one statement: the
// caller may send it when claimed is true. When a row of the key exists
// already (an earlier run made it) it is claimed as ClaimMessage does.
func (db *DB) StartMessage(ctx context.Context, m Message, lease time.Duration) (stored Message, claimed bool, err error) {
	stored, inserted, err := db.insertMessage(ctx, m, lease, "ON CONFLICT (key) DO NOTHING")
	if err != nil {
		return Message{}, false, err
	}
	if inserted {
		return stored, stored.Status == MessageSending, nil
	}
	return db.ClaimMessage(ctx, m.Key, lease)
}

// insertMessage inserts m with conflict (an ON CONFLICT clause) and
// returns the row RETURNING gives, if any. A sending message is leased for
// lease when lease is set (its first attempt counted).
func (db *DB) insertMessage(ctx context.Context, m Message, lease time.Duration, conflict string) (Message, bool, error) {
	now := db.Now()
	var orderID *string
	if m.OrderID != "" {
		orderID = &m.OrderID
	}
	var sentAt, lockedUntil *time.Time
	if m.Status == MessageSent {
		sentAt = &now
	}
	attempts := 0
	if lease > 0 && m.Status == MessageSending {
		until := now.Add(lease)
		lockedUntil, attempts = &until, 1
	}
	var rows []Message
	err := db.db.SelectContext(ctx, &rows, db.rebind(`INSERT INTO messages (key, order_id, store_id, effect_id, channel, template,
		recipient_type, recipient, recipient_name, from_name, reply_to, subject, body, html, status, provider, provider_id, error,
		attempts, locked_until, created_at, sent_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		`+conflict+` RETURNING `+messageColumns),
		m.Key, orderID, m.StoreID, m.EffectID, m.Channel, m.Template, m.RecipientType, m.Recipient, m.RecipientName,
		m.FromName, m.ReplyTo, m.Subject, m.Body, m.HTML, m.Status, m.Provider, m.ProviderID, truncate(m.Error),
		attempts, lockedUntil, now, sentAt)
	if err != nil {
		return Message{}, false, fmt.Errorf("record message %s: %w", m.Key, err)
	}
	if len(rows) == 0 {
		return Message{}, false, nil
	}
	rows[0].utc()
	return rows[0], true, nil
}

// MessageByKey returns the message of a key; ENOTFOUND when there is none.
func (db *DB) MessageByKey(ctx context.Context, key string) (Message, error) {
	var m Message
	err := db.db.GetContext(ctx, &m, db.rebind(`SELECT `+messageColumns+` FROM messages WHERE key = ?`), key)
	if isNoRows(err) {
		return m, packline.Errorf(packline.ENOTFOUND, "message %s not found", key)
	}
	if err != nil {
		return m, fmt.Errorf("read message %s: %w", key, err)
	}
	m.utc()
	return m, nil
}

// ClaimMessage leases a sending message to one worker for lease: it counts
// an attempt and returns the row with claimed true. It returns claimed false
// when the message is final (sent, skipped, failed) or another worker's
// lease on it has not run out: then the caller must not send.
func (db *DB) ClaimMessage(ctx context.Context, key string, lease time.Duration) (m Message, claimed bool, err error) {
	now := db.Now()
	var rows []Message
	err = db.db.SelectContext(ctx, &rows, db.rebind(`UPDATE messages SET attempts = attempts + 1, locked_until = ?
		WHERE key = ? AND status = `+literal(MessageSending)+` AND (locked_until IS NULL OR locked_until < ?) RETURNING `+messageColumns), now.Add(lease), key, now)
	if err != nil {
		return Message{}, false, fmt.Errorf("claim message %s: %w", key, err)
	}
	if len(rows) == 1 {
		rows[0].utc()
		return rows[0], true, nil
	}
	m, err = db.MessageByKey(ctx, key)
	return m, false, err
}

// MarkMessageSent records that the provider accepted a sending message.
func (db *DB) MarkMessageSent(ctx context.Context, key, provider, providerID string) error {
	return db.MarkMessageSentAndDone(ctx, key, provider, providerID, "")
}

// MarkMessageSentAndDone is MarkMessageSent that also marks effectID (the
// notify effect that owes the message) done, in the same commit: one wait
// for the disk, not two.
func (db *DB) MarkMessageSentAndDone(ctx context.Context, key, provider, providerID, effectID string) error {
	b := &batch{}
	now := db.Now()
	b.add(`UPDATE messages SET status = `+literal(MessageSent)+`, provider = ?, provider_id = ?, error = '',
		sent_at = ?, locked_until = NULL WHERE key = ? AND status = `+literal(MessageSending), provider, providerID, now, key)
	if effectID != "" {
		db.markDone(b, effectID, "", now)
	}
	if err := db.write(ctx, b); err != nil {
		return fmt.Errorf("mark message %s sent: %w", key, err)
	}
	return nil
}

// MarkMessageFailed records a failed send. With final the message becomes
// failed (a permanent refusal, or the last retry); without, it stays sending
// with the error noted and its lease released, for the next retry.
func (db *DB) MarkMessageFailed(ctx context.Context, key, provider, cause string, final bool) error {
	q := `UPDATE messages SET provider = ?, error = ?, locked_until = NULL`
	if final {
		q += `, status = ` + literal(MessageFailed)
	}
	_, err := db.db.ExecContext(ctx, db.rebind(q+` WHERE key = ? AND status = `+literal(MessageSending)), provider, truncate(cause), key)
	if err != nil {
		return fmt.Errorf("record failure of message %s: %w", key, err)
	}
	return nil
}

// OrderMessages returns the messages of a store's order, oldest first;
// ENOTFOUND when the order is not the store's.
func (db *DB) OrderMessages(ctx context.Context, storeID, orderID string) ([]Message, error) {
	var n int
	if err := db.db.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM orders WHERE id = ? AND store_id = ?`), orderID, storeID); err != nil {
		return nil, fmt.Errorf("read order %s: %w", orderID, err)
	}
	if n == 0 {
		return nil, packline.Errorf(packline.ENOTFOUND, "order %s not found", orderID)
	}
	rows := []Message{}
	err := db.db.SelectContext(ctx, &rows, db.rebind(`SELECT `+messageColumns+` FROM messages WHERE order_id = ? ORDER BY created_at, key`), orderID)
	if err != nil {
		return nil, fmt.Errorf("read messages of %s: %w", orderID, err)
	}
	for i := range rows {
		rows[i].utc()
	}
	return rows, nil
}

// StoreContact is where a store's own notifications go.
type StoreContact struct {
	ID    string `db:"id" json:"id"`
	Name  string `db:"name" json:"name"`
	Flow  string `db:"flow" json:"flow"`
	Email string `db:"email" json:"email"`
	Phone string `db:"phone" json:"phone"`
}

// StoreContact returns a store's name and notification addresses.
func (db *DB) StoreContact(ctx context.Context, storeID string) (StoreContact, error) {
	return storeContact(ctx, db, db.db, storeID)
}

func storeContact(ctx context.Context, db *DB, q sqlx.QueryerContext, storeID string) (StoreContact, error) {
	var c StoreContact
	err := sqlx.GetContext(ctx, q, &c, db.rebind(`SELECT id, name, flow, COALESCE(email, '') AS email, COALESCE(phone, '') AS phone
		FROM stores WHERE id = ?`), storeID)
	if isNoRows(err) {
		return c, packline.Errorf(packline.ENOTFOUND, "store not found")
	}
	if err != nil {
		return c, fmt.Errorf("read store %s: %w", storeID, err)
	}
	return c, nil
}

// ContactUpdate changes a store's notification addresses: a nil field is
// left as it is, an empty one is cleared. The caller validates them.
type ContactUpdate struct {
	Email *string
	Phone *string
}

// UpdateStoreContact changes where a store's notifications go and returns
// the result.
func (db *DB) UpdateStoreContact(ctx context.Context, storeID string, u ContactUpdate) (StoreContact, error) {
	var c StoreContact
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, f := range []struct {
			col string
			v   *string
		}{{"email", u.Email}, {"phone", u.Phone}} {
			if f.v == nil {
				continue
			}
			var v *string
			if *f.v != "" {
				v = f.v
			}
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE stores SET `+f.col+` = ? WHERE id = ?`), v, storeID); err != nil {
				return fmt.Errorf("update store %s %s: %w", storeID, f.col, err)
			}
		}
		var err error
		c, err = storeContact(ctx, db, tx, storeID)
		return err
	})
	return c, err
}
