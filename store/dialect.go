package store

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
)

// This file holds what differs between PostgreSQL and SQLite, one small
// method a difference, so the rest of the store asks a question rather
// than testing db.dialect. Elsewhere: the connection set-up (Open), the
// driver error codes (isUniqueViolation), NOTIFY (notify.go), and the
// relay's claims (ClaimDueEffects, ClaimStaleEffects) still choose their
// lock clause themselves.

// forUpdate is the clause that locks the rows a SELECT in a transaction
// reads: " FOR UPDATE" on PostgreSQL (" FOR UPDATE OF t" for the table
// t of a join), nothing on SQLite, whose write transaction (BEGIN
// IMMEDIATE on its one connection) already shuts out every other writer.
func (db *DB) forUpdate(of string) string {
	if db.dialect != Postgres {
		return ""
	}
	if of != "" {
		return ` FOR UPDATE OF ` + of
	}
	return ` FOR UPDATE`
}

// skipLocked is the clause with which claimers share rows: " FOR UPDATE
// SKIP LOCKED" on PostgreSQL (each of several relays claims rows no other
// holds), nothing on SQLite (one writer at a time).
func (db *DB) skipLocked() string {
	if db.dialect != Postgres {
		return ""
	}
	return ` FOR UPDATE SKIP LOCKED`
}

// batchIsOneStatement reports whether a batch of several statements is
// sent as one (PostgreSQL: a chain of WITH clauses, see execOne), which is
// a transaction by itself; SQLite runs them one by one in a transaction.
func (db *DB) batchIsOneStatement() bool { return db.dialect == Postgres }

// gooseDialect is the migrations tool's name for the dialect.
func (db *DB) gooseDialect() goose.Dialect {
	if db.dialect == SQLite {
		return goose.DialectSQLite3
	}
	return goose.DialectPostgres
}

// utcText is the SQL expression reading the timestamp expression ts as
// text that parseDBTime reads: SQLite returns its stored text; PostgreSQL
// formats it in UTC with microseconds.
func (db *DB) utcText(ts string) string {
	if db.dialect == Postgres {
		return `to_char(` + ts + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`
	}
	return ts
}

// foldCountDeltas moves the deltas into order_counts. On PostgreSQL the
// delete and the sum are one statement, so a delta committed meanwhile is
// either folded or left for the next scrape, never lost; SQLite has one
// writer at a time, so two statements do.
func (db *DB) foldCountDeltas(ctx context.Context, tx *sqlx.Tx) error {
	const upsert = ` ON CONFLICT (flow, status) DO UPDATE SET count = order_counts.count + excluded.count`
	if db.dialect == Postgres {
		_, err := tx.ExecContext(ctx, `WITH d AS (DELETE FROM order_count_deltas RETURNING flow, status, delta)
			INSERT INTO order_counts (flow, status, count) SELECT flow, status, SUM(delta) FROM d GROUP BY flow, status`+upsert)
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO order_counts (flow, status, count)
		SELECT flow, status, SUM(delta) FROM order_count_deltas WHERE true GROUP BY flow, status`+upsert); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM order_count_deltas`)
	return err
}
