-- +goose Up
-- The relay claims due rows of the types it handles; rows of other types
-- (effects with no handler configured) stay pending, and without the type
-- in the index every claim would walk past all of them.
CREATE INDEX outbox_claim ON outbox (status, type, run_at);

-- +goose Down
DROP INDEX outbox_claim;
