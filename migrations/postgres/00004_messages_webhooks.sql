-- +goose Up
-- Notifications and outbound webhooks.

-- Where a store's merchant notifications go (new order, stock short, a
-- disabled webhook endpoint): packline stores create --email, or
-- PATCH /v1/store. NULL: the store has none, and such messages are skipped.
ALTER TABLE stores ADD COLUMN email TEXT;
ALTER TABLE stores ADD COLUMN phone TEXT;

-- One row per message: key is notify.Key(effect id, template), so a
-- notify:* task run twice finds its row and never sends twice. The rendered
-- message is kept as sent (the sandbox notifier's only record). order_id is
-- NULL for a message about the store itself (a webhook endpoint disabled).
-- locked_until is a worker's lease while it sends.
CREATE TABLE messages (
    key            TEXT PRIMARY KEY,
    order_id       TEXT REFERENCES orders (id),
    store_id       TEXT NOT NULL REFERENCES stores (id),
    effect_id      TEXT NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    template       TEXT NOT NULL,
    recipient_type TEXT NOT NULL CHECK (recipient_type IN ('customer', 'merchant')),
    recipient      TEXT NOT NULL DEFAULT '',
    recipient_name TEXT NOT NULL DEFAULT '',
    from_name      TEXT NOT NULL DEFAULT '',
    reply_to       TEXT NOT NULL DEFAULT '',
    subject        TEXT NOT NULL DEFAULT '',
    body           TEXT NOT NULL DEFAULT '',
    html           TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'skipped', 'failed')),
    provider       TEXT NOT NULL DEFAULT '',
    provider_id    TEXT NOT NULL DEFAULT '',
    error          TEXT NOT NULL DEFAULT '',
    attempts       INTEGER NOT NULL DEFAULT 0,
    locked_until   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    sent_at        TIMESTAMPTZ
);
CREATE INDEX messages_order ON messages (order_id, created_at);

-- A merchant's webhook endpoints. The secret signs deliveries (shown to the
-- merchant once, at creation); events is a JSON array of filters. A deleted
-- endpoint is kept (deleted_at) so its delivery log stays readable to ops.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    store_id        TEXT NOT NULL REFERENCES stores (id),
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    events          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    disabled_at     TIMESTAMPTZ,
    disabled_reason TEXT NOT NULL DEFAULT '',
    failing_since   TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ
);
CREATE INDEX webhook_endpoints_store ON webhook_endpoints (store_id, id);

-- One delivery per (message, endpoint): message_id is the webhook-id,
-- derived from the webhook:deliver effect id, and payload the body frozen
-- when the delivery was made, sent byte for byte on every attempt.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    message_id       TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id),
    store_id         TEXT NOT NULL,
    order_id         TEXT NOT NULL REFERENCES orders (id),
    effect_id        TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'disabled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, status);

-- Every attempt of a delivery, as the delivery log shows it.
CREATE TABLE webhook_attempts (
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt       INTEGER NOT NULL,
    attempted_at  TIMESTAMPTZ NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'disable', 'give_up')),
    status_code   INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    latency_ms    BIGINT NOT NULL,
    response_body TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE messages;
ALTER TABLE stores DROP COLUMN phone;
ALTER TABLE stores DROP COLUMN email;
