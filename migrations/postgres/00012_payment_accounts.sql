-- +goose Up
-- A store marked test_mode may run on the sandbox provider in production
-- (PACKLINE_ENV=production refuses the sandbox to every other store).
ALTER TABLE stores ADD COLUMN test_mode BOOLEAN NOT NULL DEFAULT FALSE;

-- A store's own account at a payment provider (Stripe): its secret key and
-- webhook signing secret sealed with PACKLINE_SECRET_KEY (internal/secrets),
-- never stored or returned in clear; last4 and account_id are what the API
-- shows of it.
CREATE TABLE payment_accounts (
    store_id              TEXT NOT NULL REFERENCES stores (id),
    provider              TEXT NOT NULL,
    account_id            TEXT NOT NULL DEFAULT '',
    livemode              BOOLEAN NOT NULL DEFAULT FALSE,
    secret_key_sealed     TEXT NOT NULL,
    secret_key_last4      TEXT NOT NULL,
    webhook_secret_sealed TEXT NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (store_id, provider)
);

-- The journal of calls made to a provider, one row per idempotency key,
-- written before the call: what Provider.Lookup reads to know whether a key
-- was ever sent, and what it was sent for (target_ref: the intent a void or
-- a refund acts on), so that its answer is authoritative.
CREATE TABLE provider_requests (
    idempotency_key TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    store_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    target_ref      TEXT NOT NULL DEFAULT '',
    object_id       TEXT NOT NULL DEFAULT '',
    started_at      TIMESTAMPTZ NOT NULL
);

-- Payment webhook events taken, one per provider event id (a replay is a
-- no-op), with the object they are about and when the provider made them,
-- so that an older event about an object never overrides a newer one.
CREATE TABLE payment_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    store_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    created     BIGINT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX payment_events_object ON payment_events (provider, object_id, created);
CREATE INDEX payments_provider_ref ON payments (provider_ref);

-- +goose Down
DROP INDEX payments_provider_ref;
DROP INDEX payment_events_object;
DROP TABLE payment_events;
DROP TABLE provider_requests;
DROP TABLE payment_accounts;
ALTER TABLE stores DROP COLUMN test_mode;
