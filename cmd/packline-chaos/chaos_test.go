package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChaos runs the chaos suite at 300 orders, with its faults packed into
// 40 s: every check must hold, and then (-self-test) every check must see
// the results broken on purpose. It needs initdb, pg_ctl (PostgreSQL 13+)
// and redis-server, and fails, naming them, when they are missing. make
// chaos runs the full size.
func TestChaos(t *testing.T) {
	if _, err := findTools(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 9*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "packline")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/packline/packline/cmd/packline").CombinedOutput(); err != nil {
		t.Fatalf("go build packline: %v\n%s", err, out)
	}
	var stdout bytes.Buffer
	start := time.Now()
	res, err := run(ctx, []string{"-orders", "300", "-fault-window", "40s", "-quiesce-timeout", "3m", "-self-test", "-packline", bin},
		&stdout, testLog{t})
	t.Logf("chaos run took %s\n%s", time.Since(start).Round(time.Second), stdout.String())
	if errors.Is(err, errViolations) {
		t.Fatalf("%v: the violating ids are in the table above", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Violations != 0 {
		t.Fatalf("%d violations", res.Violations)
	}
}

// testLog writes the suite's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
