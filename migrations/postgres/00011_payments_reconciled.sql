-- +goose Up
-- reconciled_version is the order version whose payments the scheduler's
-- reconciliation last found to match the provider and the flow (0: never
-- checked). The index holds only the orders to look at.
ALTER TABLE orders ADD COLUMN reconciled_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX orders_to_reconcile ON orders (updated_at) WHERE reconciled_version < version;

-- +goose Down
DROP INDEX orders_to_reconcile;
ALTER TABLE orders DROP COLUMN reconciled_version;
