-- +goose Up
-- Couriers: one shipment per order (its label, tracking number and canonical
-- tracking status) and every tracking update the courier sent for it.

-- ship_from is where a store's parcels leave from, the sender on its labels,
-- as JSON {"name", "phone", "address": {...}}; NULL until the store sets it
-- (labels then carry the store's name and a marked placeholder).
-- default_courier is the courier a label is bought from when the event that
-- asked for it names none; NULL means the fleet's default (sandbox).
ALTER TABLE stores ADD COLUMN ship_from TEXT;
ALTER TABLE stores ADD COLUMN default_courier TEXT;

-- One shipment per order (order_id UNIQUE): a courier:label task run twice,
-- or two effects asking, make one label. status is a canonical tracking
-- status (couriers.Status); status_at is when the courier says it happened.
CREATE TABLE shipments (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL UNIQUE REFERENCES orders (id),
    store_id        TEXT NOT NULL,
    courier         TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    tracking_url    TEXT NOT NULL DEFAULT '',
    label_pdf       BLOB NOT NULL,
    status          TEXT NOT NULL,
    status_at       DATETIME NOT NULL,
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL,
    UNIQUE (courier, tracking_number)
);
CREATE INDEX shipments_status ON shipments (courier, status, status_at);

-- Every tracking update of a shipment, once: a repeated callback (same
-- status, same time) inserts nothing and so changes nothing.
CREATE TABLE shipment_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    shipment_id    TEXT NOT NULL REFERENCES shipments (id),
    status         TEXT NOT NULL,
    courier_status TEXT NOT NULL DEFAULT '',
    occurred_at    DATETIME NOT NULL,
    received_at    DATETIME NOT NULL,
    UNIQUE (shipment_id, status, occurred_at)
);

-- +goose Down
DROP TABLE shipment_events;
DROP TABLE shipments;
ALTER TABLE stores DROP COLUMN default_courier;
ALTER TABLE stores DROP COLUMN ship_from;
