-- +goose Up
-- The fleet: delivery bookkeeping on the outbox, the stock ledger, payment
-- attempts, and the sandbox payment provider's own state.

-- deliveries counts how many times the relay handed a row to Asynq (the first
-- task's id is the effect id, a redelivery's is effect id + "-r<n>");
-- started_at is when a worker last began running it. A row enqueued and not
-- started for the relay's RedeliverAfter is handed to Asynq again.
ALTER TABLE outbox ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN started_at DATETIME;
CREATE INDEX outbox_enqueued ON outbox (status, enqueued_at);

-- One row per (order, sku, kind): stock is taken at most once and given back
-- at most once per order, whatever the retries.
CREATE TABLE stock_ledger (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    store_id    TEXT NOT NULL,
    sku         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('decrement', 'restore')),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    effect_id   TEXT NOT NULL,
    created_at  DATETIME NOT NULL,
    PRIMARY KEY (order_id, sku, kind)
);
CREATE INDEX stock_ledger_sku ON stock_ledger (store_id, sku);

-- One row per payment attempt (the order's payments[]); idempotency_key is
-- the effect id that made the attempt, so a retried task records nothing new.
CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders (id),
    store_id        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('authorize', 'capture', 'confirm', 'void', 'refund')),
    purpose         TEXT NOT NULL DEFAULT '',
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    error_code      TEXT NOT NULL DEFAULT '',
    provider        TEXT NOT NULL,
    provider_ref    TEXT NOT NULL DEFAULT '',
    payment_method  TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL
);
CREATE INDEX payments_order ON payments (order_id, created_at);

-- The sandbox payment provider's ledger: what it answered to each
-- idempotency key, so a repeated call gets the same answer (as Stripe does).
CREATE TABLE sandbox_payments (
    idempotency_key TEXT PRIMARY KEY,
    ref             TEXT NOT NULL UNIQUE,
    operation       TEXT NOT NULL,
    payment_method  TEXT NOT NULL DEFAULT '',
    amount          INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL,
    error_code      TEXT NOT NULL DEFAULT '',
    target_ref      TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL
);

-- +goose Down
DROP TABLE sandbox_payments;
DROP TABLE payments;
DROP TABLE stock_ledger;
DROP INDEX outbox_enqueued;
ALTER TABLE outbox DROP COLUMN started_at;
ALTER TABLE outbox DROP COLUMN deliveries;
