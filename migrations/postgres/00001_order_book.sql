-- +goose Up
CREATE TABLE stores (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    flow        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    store_id    TEXT NOT NULL REFERENCES stores (id),
    scope       TEXT NOT NULL CHECK (scope IN ('storefront', 'merchant')),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    store_id         TEXT NOT NULL REFERENCES stores (id),
    flow             TEXT NOT NULL,
    status           TEXT NOT NULL,
    version          BIGINT NOT NULL,
    state_version    BIGINT NOT NULL,
    state_entered_at TIMESTAMPTZ NOT NULL,
    external_id      TEXT NOT NULL DEFAULT '',
    currency         TEXT NOT NULL,
    customer         TEXT NOT NULL,
    shipping_address TEXT,
    ship_date        TEXT NOT NULL DEFAULT '',
    payment_method   TEXT NOT NULL DEFAULT '',
    notes            TEXT NOT NULL DEFAULT '',
    metadata         TEXT,
    subtotal         BIGINT NOT NULL,
    total            BIGINT NOT NULL,
    amount_paid      BIGINT NOT NULL DEFAULT 0,
    flags            TEXT NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_store_id ON orders (store_id, id);
CREATE INDEX orders_store_status ON orders (store_id, status, id);
CREATE INDEX orders_sla ON orders (flow, status, state_entered_at);

CREATE TABLE order_lines (
    order_id      TEXT NOT NULL REFERENCES orders (id),
    line_no       INTEGER NOT NULL,
    sku           TEXT NOT NULL,
    name          TEXT NOT NULL,
    quantity      BIGINT NOT NULL CHECK (quantity > 0),
    unit_price    BIGINT NOT NULL CHECK (unit_price >= 0),
    customizable  BOOLEAN NOT NULL DEFAULT FALSE,
    customization TEXT,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE timeline (
    id          BIGSERIAL PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    version     BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    event       TEXT NOT NULL,
    from_state  TEXT NOT NULL DEFAULT '',
    to_state    TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    data        TEXT
);
CREATE INDEX timeline_order ON timeline (order_id, id);

-- One row per effect a committed transition owes (transactional outbox).
-- id is derived from (order, version, position, type): a re-send is a no-op.
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    store_id     TEXT NOT NULL,
    version      BIGINT NOT NULL,
    seq          INTEGER NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'enqueued', 'done', 'failed')),
    run_at       TIMESTAMPTZ NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    enqueued_at  TIMESTAMPTZ,
    done_at      TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (status, run_at);
CREATE INDEX outbox_order ON outbox (order_id);

CREATE TABLE idempotency_keys (
    store_id      TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    order_id      TEXT NOT NULL REFERENCES orders (id),
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (store_id, key)
);

CREATE TABLE stock (
    store_id    TEXT NOT NULL REFERENCES stores (id),
    sku         TEXT NOT NULL,
    on_hand     BIGINT NOT NULL CHECK (on_hand >= 0),
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (store_id, sku)
);

-- Orders in each state, kept in step by every commit so metrics never count
-- the orders table.
CREATE TABLE order_counts (
    flow    TEXT NOT NULL,
    status  TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (flow, status)
);

-- +goose Down
DROP TABLE order_counts;
DROP TABLE stock;
DROP TABLE idempotency_keys;
DROP TABLE outbox;
DROP TABLE timeline;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE api_keys;
DROP TABLE stores;
