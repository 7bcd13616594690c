-- +goose Up
-- The relay asks, on every pass, for the earliest pending row (due now, or
-- the next timer), and the sweep for enqueued rows older than a cutoff.
-- With (status, type, run_at) alone, both read every row of their status
-- and sort: every pending timer of every order on each pass, and the whole
-- outbox on each sweep. These indexes hold only the rows the questions are
-- about, in the order they are asked in.
CREATE INDEX outbox_pending_run_at ON outbox (run_at) WHERE status = 'pending';
CREATE INDEX outbox_enqueued_at ON outbox (enqueued_at) WHERE status = 'enqueued';

-- +goose Down
DROP INDEX outbox_enqueued_at;
DROP INDEX outbox_pending_run_at;
