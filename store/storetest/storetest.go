// Package storetest gives each test its own migrated database: a fresh
// SQLite file always, and a fresh PostgreSQL schema when TEST_DATABASE_URL
// is set, so tests run in parallel against one server without colliding.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
)

// Dialects lists the dialects tests run on here: SQLite, and PostgreSQL when
// TEST_DATABASE_URL is set.
func Dialects() []string {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		return []string{store.SQLite, store.Postgres}
	}
	return []string{store.SQLite}
}

// Each runs fn once per dialect, as parallel subtests named after it.
func Each(t *testing.T, fn func(t *testing.T, dialect string)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// Default is the dialect a single-database test uses: PostgreSQL when
// TEST_DATABASE_URL is set, else SQLite.
func Default() string {
	d := Dialects()
	return d[len(d)-1]
}

// URL returns a database URL of its own for this test: a new SQLite file, or
// a new PostgreSQL schema dropped when the test ends. Nothing is migrated.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == store.SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "packline.db")
	}
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		t.Fatal("storetest: PostgreSQL needs TEST_DATABASE_URL")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a migrated database of the dialect, closed when the test ends.
// opts.Flows defaults to the built-in flows.
func Open(t testing.TB, dialect string, opts store.Options) *store.DB {
	t.Helper()
	return OpenURL(t, URL(t, dialect), opts)
}

// OpenURL is Open on a URL of the caller's (from URL, or one another process
// of the same test opens too).
func OpenURL(t testing.TB, url string, opts store.Options) *store.DB {
	t.Helper()
	if opts.Flows == nil {
		r, err := flows.Builtin()
		if err != nil {
			t.Fatal(err)
		}
		opts.Flows = r
	}
	ctx := t.Context()
	db, err := store.Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
