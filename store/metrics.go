package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline/metrics"
)

// OrderCounts returns the orders in each state. Transitions append their
// +1/-1 to order_count_deltas, which no two writers contend on; a scrape
// folds the deltas into order_counts and reads it, so it never counts the
// orders table and costs what happened since the last scrape.
func (db *DB) OrderCounts(ctx context.Context) ([]metrics.OrderCount, error) {
	var rows []struct {
		Flow   string `db:"flow"`
		Status string `db:"status"`
		Count  int64  `db:"count"`
	}
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := db.foldCountDeltas(ctx, tx); err != nil {
			return fmt.Errorf("fold order count deltas: %w", err)
		}
		return tx.SelectContext(ctx, &rows, `SELECT flow, status, count FROM order_counts`)
	})
	if err != nil {
		return nil, fmt.Errorf("order counts: %w", err)
	}
	out := make([]metrics.OrderCount, len(rows))
	for i, r := range rows {
		out[i] = metrics.OrderCount{Flow: r.Flow, Status: r.Status, Count: r.Count}
	}
	return out, nil
}

// StuckOrders counts, for every state with an SLA, the orders that entered it
// longer ago than the SLA. Each count is an index range on (flow, status,
// state_entered_at): it grows with the stuck orders, not with all orders.
func (db *DB) StuckOrders(ctx context.Context) ([]metrics.OrderCount, error) {
	now := db.Now()
	var out []metrics.OrderCount
	for _, name := range db.opts.Flows.Names() {
		f := db.opts.Flows.Get(name)
		for _, s := range f.States {
			if s.SLA <= 0 || s.Terminal {
				continue
			}
			var n int64
			err := db.db.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM orders WHERE flow = ? AND status = ? AND state_entered_at < ?`),
				f.Name, s.Name, now.Add(-s.SLA))
			if err != nil {
				return nil, fmt.Errorf("stuck orders: %w", err)
			}
			out = append(out, metrics.OrderCount{Flow: f.Name, Status: s.Name, Count: n})
		}
	}
	return out, nil
}

// OutboxStats returns the pending outbox rows that are due, and the age of
// the oldest of them.
func (db *DB) OutboxStats(ctx context.Context) (int64, time.Duration, error) {
	now := db.Now()
	var row struct {
		N      int64   `db:"n"`
		Oldest *string `db:"oldest"`
	}
	// MIN over a timestamp comes back as text from SQLite; read it as a
	// string in both dialects and parse.
	q := `SELECT COUNT(*) AS n, ` + db.utcText("MIN(run_at)") + ` AS oldest FROM outbox WHERE status = ` + EffectPending.sql() + ` AND run_at <= ?`
	if err := db.db.GetContext(ctx, &row, db.rebind(q), now); err != nil {
		return 0, 0, fmt.Errorf("outbox stats: %w", err)
	}
	if row.Oldest == nil || row.N == 0 {
		return row.N, 0, nil
	}
	oldest, err := parseDBTime(*row.Oldest)
	if err != nil {
		return row.N, 0, fmt.Errorf("outbox stats: %w", err)
	}
	return row.N, now.Sub(oldest), nil
}

func parseDBTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read time %q", s)
}
