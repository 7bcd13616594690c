package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// batch is writes that commit together (a transition's order update,
// timeline rows, outbox rows and count deltas), built with ? placeholders.
// On PostgreSQL they reach the server as one statement (data-modifying
// WITH clauses), so a transaction spends one round trip on them however
// many rows they are; on SQLite, which has no network to wait on, they run
// one after the other.
//
// Statements in a batch must not depend on each other's effects (one
// statement sees one snapshot) and must not touch one row twice.
type batch struct {
	stmts []batchStmt
}

type batchStmt struct {
	query string
	args  []any
	// check, when set, is the error returned if the statement changed no
	// row (a compare-and-set that lost).
	check error
}

// add appends a statement.
func (b *batch) add(query string, args ...any) {
	b.stmts = append(b.stmts, batchStmt{query: query, args: args})
}

// addChecked appends a statement that must change at least one row; the
// batch fails with errNone when it changes none, and nothing of it is
// written.
func (b *batch) addChecked(errNone error, query string, args ...any) {
	b.stmts = append(b.stmts, batchStmt{query: query, args: args, check: errNone})
}

// insertRows appends one multi-row INSERT of rows into table (see
// insertQuery); nothing when there are no rows.
func (b *batch) insertRows(table string, cols []string, rows [][]any, suffix string) {
	if len(rows) == 0 {
		return
	}
	q, args := insertQuery(table, cols, rows, suffix)
	b.add(q, args...)
}

// insertQuery is one multi-row INSERT of rows into table, with ?
// placeholders: columns named by cols, every row len(cols) values, and
// suffix after the VALUES list (ON CONFLICT …, RETURNING …).
func insertQuery(table string, cols []string, rows [][]any, suffix string) (string, []any) {
	var q strings.Builder
	q.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	args := make([]any, 0, len(rows)*len(cols))
	for i, r := range rows {
		if len(r) != len(cols) {
			panic(fmt.Sprintf("store: insert into %s: row %d has %d values for %d columns", table, i, len(r), len(cols)))
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(one)
		args = append(args, r...)
	}
	if suffix != "" {
		q.WriteString(" " + suffix)
	}
	return q.String(), args
}

// write commits b on its own: on PostgreSQL as one statement, which is a
// transaction by itself (no BEGIN or COMMIT round trip), on SQLite in a
// transaction.
func (db *DB) write(ctx context.Context, b *batch) error {
	if db.batchIsOneStatement() {
		return db.exec(ctx, db.db, b)
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error { return db.exec(ctx, tx, b) })
}

// exec runs the batch within tx (a *sqlx.Tx, or the pool for a batch that
// is one statement on PostgreSQL).
func (db *DB) exec(ctx context.Context, tx sqlx.ExtContext, b *batch) error {
	if len(b.stmts) == 0 {
		return nil
	}
	if db.batchIsOneStatement() && len(b.stmts) > 1 {
		return db.execOne(ctx, tx, b)
	}
	for _, s := range b.stmts {
		r, err := tx.ExecContext(ctx, db.rebind(s.query), s.args...)
		if err != nil {
			return err
		}
		if s.check != nil {
			if n, _ := r.RowsAffected(); n == 0 {
				return s.check
			}
		}
	}
	return nil
}

// execOne sends the batch as one PostgreSQL statement: every statement but
// the last becomes a WITH clause, and the checked ones report how many
// rows they changed, so a lost compare-and-set fails the statement (and
// the transaction rolls back whatever the others wrote).
func (db *DB) execOne(ctx context.Context, tx sqlx.ExtContext, b *batch) error {
	var (
		q      strings.Builder
		args   []any
		checks []int
	)
	q.WriteString("WITH ")
	for i, s := range b.stmts {
		if i > 0 {
			q.WriteString(", ")
		}
		name := "s" + strconv.Itoa(i)
		q.WriteString(name + " AS (" + s.query)
		if s.check != nil {
			q.WriteString(" RETURNING 1")
			checks = append(checks, i)
		}
		q.WriteString(")")
		args = append(args, s.args...)
	}
	q.WriteString(" SELECT ")
	if len(checks) == 0 {
		q.WriteString("1")
	}
	for j, i := range checks {
		if j > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(SELECT COUNT(*) FROM s" + strconv.Itoa(i) + ")")
	}
	rows, err := tx.QueryContext(ctx, db.rebind(q.String()), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("store: batch returned no row")
	}
	if len(checks) == 0 {
		return rows.Close()
	}
	counts := make([]int64, len(checks))
	dest := make([]any, len(checks))
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for j, i := range checks {
		if counts[j] == 0 {
			return b.stmts[i].check
		}
	}
	return nil
}
