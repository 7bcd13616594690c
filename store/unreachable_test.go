package store_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/lib/pq"
	"github.com/packline/packline/store"
)

// Unreachable tells a database that is restarting or gone from a query
// that failed, so the API answers 503 and a storefront retries.
func TestUnreachable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown (pg_ctl restart)", &pq.Error{Code: "57P01"}, true},
		{"cannot connect now (starting up)", fmt.Errorf("create order: %w", &pq.Error{Code: "57P03"}), true},
		{"connection failure", &pq.Error{Code: "08006"}, true},
		{"too many connections", &pq.Error{Code: "53300"}, true},
		{"bad connection", fmt.Errorf("begin: %w", driver.ErrBadConn), true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"cut mid-answer", io.ErrUnexpectedEOF, true},
		{"unique violation", &pq.Error{Code: "23505"}, false},
		{"syntax error", &pq.Error{Code: "42601"}, false},
		{"any other", errors.New("boom"), false},
		{"none", nil, false},
	} {
		if got := store.Unreachable(c.err); got != c.want {
			t.Errorf("%s: Unreachable = %v, want %v", c.name, got, c.want)
		}
	}
}
