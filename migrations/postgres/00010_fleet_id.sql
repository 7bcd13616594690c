-- +goose Up
-- One row: this database's fleet id. Every role stamps it into Redis at
-- start (relay.Stamp), so a second fleet pointed at the same Redis database
-- is refused instead of eating this fleet's tasks.
CREATE TABLE fleet_id (
    id         TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO fleet_id (id) VALUES ('flt_' || substr(md5(random()::text || clock_timestamp()::text), 1, 20));

-- +goose Down
DROP TABLE fleet_id;
