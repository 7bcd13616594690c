-- +goose Up
-- starts counts the runs a worker began of the row. A payment effect whose
-- earlier run may have reached the provider (starts > 1) asks the provider
-- again for that run's answer, whatever the order has moved to since, so a
-- charge made just before a crash is recorded and, if the order can no
-- longer take it, reversed.
ALTER TABLE outbox ADD COLUMN starts INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE outbox DROP COLUMN starts;
