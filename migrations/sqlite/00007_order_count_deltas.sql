-- +goose Up
-- Every transition used to upsert one order_counts row per (flow, status):
-- rows every store's orders share, locked until COMMIT, the hottest rows in
-- the database. A transition now only appends its +1/-1 here (inserts never
-- wait for each other); a scrape folds the deltas into order_counts.
CREATE TABLE order_count_deltas (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    flow    TEXT NOT NULL,
    status  TEXT NOT NULL,
    delta   BIGINT NOT NULL
);

-- +goose Down
INSERT INTO order_counts (flow, status, count)
    SELECT flow, status, SUM(delta) FROM order_count_deltas GROUP BY flow, status
    ON CONFLICT (flow, status) DO UPDATE SET count = order_counts.count + excluded.count;
DROP TABLE order_count_deltas;
