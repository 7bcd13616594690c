package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// benchMarker tags the benchmark's own statements, so statement counts
// leave them out.
const benchMarker = "/* packline-bench */ "

// dbHandle is the benchmark's own connection to packline's database.
type dbHandle struct {
	*sqlx.DB
	name  string
	stmts *statements
}

// openDatabase connects to DATABASE_URL, creating the database when it is
// missing, and (with reset) dropping and creating it first. A database
// whose name lacks "bench" is never dropped.
func openDatabase(ctx context.Context, dsn string, reset bool) (*sqlx.DB, string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || strings.Trim(u.Path, "/") == "" {
		return nil, "", fmt.Errorf("DATABASE_URL %q: want postgres://USER@HOST:PORT/DBNAME?sslmode=disable", redact(dsn))
	}
	name := strings.Trim(u.Path, "/")
	if reset {
		if !strings.Contains(name, "bench") {
			return nil, "", fmt.Errorf("-reset drops the database: refusing for %q, whose name does not say bench", name)
		}
		if err := adminExec(ctx, u, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pq.QuoteIdentifier(name))); err != nil {
			return nil, "", err
		}
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, "", err
	}
	err = db.PingContext(ctx)
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "3D000" { // invalid_catalog_name: no such database
		if err = adminExec(ctx, u, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err == nil {
			err = db.PingContext(ctx)
		}
	}
	if err != nil {
		db.Close()
		return nil, "", fmt.Errorf("cannot use PostgreSQL at %s: %w\n"+
			"bench-fleet needs DATABASE_URL naming a PostgreSQL 13+ server it may create the database on "+
			"(e.g. postgres://postgres@127.0.0.1:5432/packline_bench?sslmode=disable)", redact(dsn), err)
	}
	db.SetMaxOpenConns(40)
	return db, name, nil
}

// adminExec runs one statement on the server's postgres database.
func adminExec(ctx context.Context, u *url.URL, stmt string) error {
	admin := *u
	admin.Path = "/postgres"
	db, err := sql.Open("postgres", admin.String())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s (on %s): %w", stmt, redact(admin.String()), err)
	}
	return nil
}

// redact drops a URL's password.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "…")
	}
	return u.String()
}

// statements counts the statements PostgreSQL ran for database dbname,
// leaving out the benchmark's own; ok is false without pg_stat_statements.
type statements struct {
	db     *sqlx.DB
	dbname string
	ok     bool
}

// newStatements enables pg_stat_statements in the database when the server
// preloads it.
func newStatements(ctx context.Context, db *sqlx.DB, dbname string) *statements {
	s := &statements{db: db, dbname: dbname}
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return s
	}
	var n int64
	s.ok = db.GetContext(ctx, &n, "SELECT count(*) FROM pg_stat_statements LIMIT 1") == nil
	return s
}

// reset zeroes the counts of this database.
func (s *statements) reset(ctx context.Context) {
	if s.ok {
		s.db.ExecContext(ctx, benchMarker+`SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = $1), 0)`, s.dbname)
	}
}

// calls is the number of statements run in this database since reset; -1
// when unknown.
func (s *statements) calls(ctx context.Context) int64 {
	if !s.ok {
		return -1
	}
	var n sql.NullInt64
	err := s.db.GetContext(ctx, &n, benchMarker+`SELECT sum(calls) FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND query NOT LIKE '%packline-bench%'`, s.dbname)
	if err != nil {
		return -1
	}
	return n.Int64
}

// effectsDone counts the outbox rows done in [from, to), by the flow of
// their order.
func effectsDone(ctx context.Context, db *sqlx.DB, from, to time.Time) (map[string]int, error) {
	var rows []struct {
		Flow string `db:"flow"`
		N    int    `db:"n"`
	}
	err := db.SelectContext(ctx, &rows, benchMarker+`SELECT o.flow, count(*) AS n FROM outbox x JOIN orders o ON o.id = x.order_id
		WHERE x.status = 'done' AND x.done_at >= $1 AND x.done_at < $2 GROUP BY o.flow`, from, to)
	out := map[string]int{}
	for _, r := range rows {
		out[r.Flow] = r.N
	}
	return out, err
}

// effectsOf counts the outbox rows of the given orders (any status).
func effectsOf(ctx context.Context, db *sqlx.DB, ids []string) (int, error) {
	var n int
	err := db.GetContext(ctx, &n, benchMarker+`SELECT count(*) FROM outbox WHERE order_id = ANY($1)`, pq.Array(ids))
	return n, err
}

// backlog counts the outbox rows due and not yet done or failed.
func backlog(ctx context.Context, db *sqlx.DB) (int, error) {
	var n int
	err := db.GetContext(ctx, &n, benchMarker+`SELECT count(*) FROM outbox WHERE status IN ('pending', 'enqueued') AND run_at <= now()`)
	return n, err
}

// firstEffectLatencies is, for each order that has one, the time from its
// creation to the start of its first effect; missing counts the others.
func firstEffectLatencies(ctx context.Context, db *sqlx.DB, ids []string) (lat []time.Duration, missing int, err error) {
	var rows []struct {
		Created time.Time    `db:"created_at"`
		Started sql.NullTime `db:"started"`
	}
	err = db.SelectContext(ctx, &rows, benchMarker+`SELECT o.created_at, min(x.started_at) AS started
		FROM orders o LEFT JOIN outbox x ON x.order_id = o.id WHERE o.id = ANY($1) GROUP BY o.id, o.created_at`, pq.Array(ids))
	if err != nil {
		return nil, 0, err
	}
	missing = len(ids) - len(rows)
	for _, r := range rows {
		if !r.Started.Valid {
			missing++
			continue
		}
		lat = append(lat, max(0, r.Started.Time.Sub(r.Created)))
	}
	return lat, missing, nil
}
