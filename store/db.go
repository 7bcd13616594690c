// Package store is packline's persistence on sqlx: one code path for
// PostgreSQL (lib/pq) and SQLite (modernc.org/sqlite). Exported methods own
// their transaction; small unexported helpers take the *sqlx.Tx.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/migrations"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialects.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

func init() {
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Options configure a DB.
type Options struct {
	// Flows is the registry orders are run against (required).
	Flows *flows.Registry
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// TimerScale multiplies every timer delay (PACKLINE_TIMER_SCALE).
	TimerScale float64
	// OnOutbox is called after a commit that wrote outbox rows, so an
	// in-process relay wakes at once.
	OnOutbox func()
}

// DB is packline's database.
type DB struct {
	db      *sqlx.DB
	dialect string
	opts    Options
	// notifier wakes relays in other processes (PostgreSQL only).
	notifier *outboxNotifier
	// relaxed is the pool for bookkeeping a database crash may lose without
	// harm (see openRelaxed); db itself on SQLite.
	relaxed *sqlx.DB
	// where names the database without credentials (Where).
	where string
}

// Open connects to a database URL: postgres://… (or postgresql://…) or
// sqlite:PATH. It does not migrate.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	if opts.Flows == nil {
		return nil, errors.New("store: Options.Flows is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var (
		db      *sqlx.DB
		err     error
		dialect string
	)
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		dialect = Postgres
		db, err = sqlx.Open("postgres", withBinaryParameters(rawURL))
		if err == nil {
			// As many idle as open: a pool that may keep fewer closes
			// connections under a burst and opens new ones after it, and
			// each new PostgreSQL backend costs a fork and a cold cache.
			db.SetMaxOpenConns(20)
			db.SetMaxIdleConns(20)
			db.SetConnMaxIdleTime(5 * time.Minute)
		}
	case strings.HasPrefix(rawURL, "sqlite:"):
		dialect = SQLite
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//")
		if path == "" {
			return nil, errors.New("DATABASE_URL: sqlite: needs a path, e.g. sqlite:/var/lib/packline/packline.db")
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		q.Set("_time_format", "sqlite")
		db, err = sqlx.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err == nil {
			// One writer at a time is SQLite's nature; one connection keeps
			// transactions serialized without busy errors.
			db.SetMaxOpenConns(1)
		}
	default:
		return nil, errors.New("DATABASE_URL must start with postgres:// or sqlite:")
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	out := &DB{db: db, dialect: dialect, opts: opts, relaxed: db, where: where(rawURL)}
	if dialect == Postgres {
		if out.relaxed, err = openRelaxed(rawURL); err != nil {
			db.Close()
			return nil, err
		}
		out.notifier = newOutboxNotifier(db)
	}
	return out, nil
}

// where names the database of a URL without its credentials: host:port/name
// (and the schema, when the URL picks one) or sqlite:path.
func where(rawURL string) string {
	if strings.HasPrefix(rawURL, "sqlite:") {
		return strings.SplitN(rawURL, "?", 2)[0]
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "postgres"
	}
	w := u.Host + u.Path
	if sp := u.Query().Get("search_path"); sp != "" {
		w += " (schema " + sp + ")"
	}
	return w
}

// Where names the database without credentials, for messages: host:port/name
// or sqlite:path.
func (db *DB) Where() string { return db.where }

// FleetID returns the database's fleet id (made by the migrations, one per
// database): what the roles stamp into Redis so two fleets never share it.
func (db *DB) FleetID(ctx context.Context) (string, error) {
	var id string
	if err := db.db.GetContext(ctx, &id, `SELECT id FROM fleet_id`); err != nil {
		return "", fmt.Errorf("read fleet id: %w", err)
	}
	return id, nil
}

// openRelaxed opens a second, small PostgreSQL pool whose commits do not
// wait for the WAL to reach the disk (synchronous_commit=off), for writes a
// database crash may lose without harm: the relay's claims of outbox rows
// (a lost claim leaves the row pending, and it is handed over again under
// the same task id) and a worker's start mark (a lost one makes the sweep
// ask Asynq about a running task). Every write that decides anything, an
// effect's completion first, stays on the durable pool; and WAL order
// makes a relaxed commit durable as soon as any later durable one is.
//
// On this machine's disk a commit waits about as long as the rest of a
// worker's round trips together: the "asynq + one PostgreSQL transaction"
// reference is bound by it.
func openRelaxed(rawURL string) (*sqlx.DB, error) {
	u, err := url.Parse(withBinaryParameters(rawURL))
	if err != nil {
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	q := u.Query()
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// withBinaryParameters adds binary_parameters=yes to a PostgreSQL URL that
// does not set it: lib/pq then sends a parameterised statement as one
// unnamed Parse/Bind/Execute in a single round trip, instead of preparing it
// first (two round trips, each inside the open transaction).
func withBinaryParameters(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL // lib/pq reports the bad URL
	}
	q := u.Query()
	if q.Has("binary_parameters") {
		return rawURL
	}
	q.Set("binary_parameters", "yes")
	u.RawQuery = q.Encode()
	return u.String()
}

// Close closes the connection pool.
func (db *DB) Close() error {
	if db.notifier != nil {
		db.notifier.close()
	}
	if db.relaxed != db.db {
		db.relaxed.Close()
	}
	return db.db.Close()
}

// wakeOutbox runs after a commit that wrote outbox rows: it wakes an
// in-process relay (Options.OnOutbox) and, on PostgreSQL, the relays that
// LISTEN.
func (db *DB) wakeOutbox() {
	if db.opts.OnOutbox != nil {
		db.opts.OnOutbox()
	}
	if db.notifier != nil {
		db.notifier.signal()
	}
}

// Dialect is Postgres or SQLite.
func (db *DB) Dialect() string { return db.dialect }

// SQL returns the underlying pool, for packages that add their own tables
// (the fleet's ledgers) and for tests.
func (db *DB) SQL() *sqlx.DB { return db.db }

// Flows returns the flow registry.
func (db *DB) Flows() *flows.Registry { return db.opts.Flows }

// Now returns the store's clock, in UTC, at microsecond precision (what
// PostgreSQL keeps).
func (db *DB) Now() time.Time { return db.opts.Now().UTC().Truncate(time.Microsecond) }

// TimerScale returns the timer scale (1 when unset).
func (db *DB) TimerScale() float64 {
	if db.opts.TimerScale <= 0 {
		return 1
	}
	return db.opts.TimerScale
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.db.PingContext(ctx) }

func (db *DB) migrationsDir() string { return db.dialect }

func (db *DB) goose() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations.FS, db.migrationsDir())
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(db.gooseDialect(), db.db.DB, sub)
}

// Migrate applies every pending migration.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.goose()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Migrated reports an error when a migration is pending (for /readyz).
func (db *DB) Migrated(ctx context.Context) error {
	p, err := db.goose()
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("read migration state: %w", err)
	}
	if pending {
		return errors.New("migrations pending: run packline migrate")
	}
	return nil
}

// rebind turns ? placeholders into the dialect's.
func (db *DB) rebind(q string) string { return db.db.Rebind(q) }

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns prefix_ and 26 characters that sort by creation time (48 bits
// of milliseconds, then 80 random bits), so ids double as a cursor.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// isUniqueViolation reports a unique-constraint failure in either dialect,
// by the driver's error code: PostgreSQL's SQLSTATE 23505, SQLite's
// extended codes for a UNIQUE or PRIMARY KEY constraint.
// Unreachable reports an error that says the database could not be
// reached or is going away (a restart, a failover, a dropped connection):
// the request may be retried as it was. Any other error is not.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch {
		case strings.HasPrefix(string(pqErr.Code), "08"): // connection exception
			return true
		case pqErr.Code == "57P01", pqErr.Code == "57P02", pqErr.Code == "57P03", pqErr.Code == "53300":
			// admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
			return true
		}
		return false
	}
	var opErr *net.OpError
	return errors.Is(err, driver.ErrBadConn) || errors.As(err, &opErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

func isUniqueViolation(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "23505"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}
