-- +goose Up
-- A store's override of the API's per-key rate limit (requests per second
-- and burst per API key); NULL takes the server's default
-- (PACKLINE_RATE_LIMIT, PACKLINE_RATE_BURST). Set by the operator with
-- packline stores set-rate-limit; the API reads it with every key lookup.
ALTER TABLE stores ADD COLUMN rate_limit REAL CHECK (rate_limit > 0);
ALTER TABLE stores ADD COLUMN rate_burst INTEGER CHECK (rate_burst > 0);

-- +goose Down
ALTER TABLE stores DROP COLUMN rate_burst;
ALTER TABLE stores DROP COLUMN rate_limit;
