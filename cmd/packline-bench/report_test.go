package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	var out []time.Duration
	for _, x := range v {
		out = append(out, time.Duration(x)*time.Millisecond)
	}
	return out
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name          string
		samples       []time.Duration
		missing       int
		p50, p99, max float64
	}{
		{"one", ms(7), 0, 7, 7, 7},
		{"nearest rank, unsorted", ms(5, 1, 4, 2, 3), 0, 3, 5, 5},
		{"hundred", func() []time.Duration {
			var s []time.Duration
			for i := 100; i >= 1; i-- {
				s = append(s, time.Duration(i)*time.Millisecond)
			}
			return s
		}(), 0, 50, 99, 100},
		{"missing are the slowest", ms(1, 2, 3), 1, 2, math.Inf(1), math.Inf(1)},
		{"all missing", nil, 2, math.Inf(1), math.Inf(1), math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := summarize(tc.samples, tc.missing)
			if float64(p.P50Ms) != tc.p50 || float64(p.P99Ms) != tc.p99 || float64(p.MaxMs) != tc.max {
				t.Errorf("p50 %v p99 %v max %v, want %v %v %v", p.P50Ms, p.P99Ms, p.MaxMs, tc.p50, tc.p99, tc.max)
			}
			if p.N != len(tc.samples)+tc.missing || p.Missing != tc.missing {
				t.Errorf("n %d missing %d", p.N, p.Missing)
			}
		})
	}
	if p := summarize(nil, 0); !math.IsNaN(float64(p.P50Ms)) {
		t.Errorf("no samples: p50 %v, want NaN", p.P50Ms)
	}
}

func TestNumJSON(t *testing.T) {
	b, err := json.Marshal(map[string]Num{"a": 1.23456, "nan": Num(math.NaN()), "inf": Num(math.Inf(1))})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"a":1.235,"inf":null,"nan":null}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var back map[string]Num
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["a"] != 1.235 || !math.IsNaN(float64(back["nan"])) {
		t.Fatalf("read back %v", back)
	}
}

// sampleReport is a small report with every section.
func sampleReport() *Report {
	return &Report{
		Settings:   Settings{WorkerConcurrency: 10, Stores: 2},
		References: References{Concurrency: 10, InsertTxPerSec: 5000, AsynqNoopPerSec: 7000, AsynqTxPerSec: 1000, AsynqTxCPUMs: 0.5},
		Flows: []FlowResult{
			{Flow: "cash-on-delivery", Completed: 100, OrdersPerSec: 10, EffectsPerSec: 150, EffectsPerOrder: 15, CeilingOrders: Num(1000.0 / 15)},
			{Flow: mixName, Completed: 100, Unfinished: 2, OrdersPerSec: 12, EffectsPerSec: 175, EffectsPerOrder: 14.5, CeilingOrders: 69},
		},
		Intake: []IntakeResult{{Clients: 10, Orders: 1000, OrdersPerSec: 100, Latency: Percentiles{N: 1000, P50Ms: 50, P99Ms: 300, MaxMs: 400}}},
		Latency: []LatencyResult{
			{Load: "idle", Latency: Percentiles{N: 3, P50Ms: 4.2, P99Ms: 1500, MaxMs: 1500}},
			{Load: "loaded", Offered: 90, Rate: 86.4, Latency: Percentiles{N: 3, Missing: 1, P50Ms: 20, P99Ms: Num(math.Inf(1)), MaxMs: Num(math.Inf(1))}},
		},
		Resources: []ResourceResult{{Phase: "cash-on-delivery", Orders: 100, Effects: 1500, StatementsPerOrder: 366, CPUMsPerEffect: 7,
			CPUMsPerOrder: map[string]Num{"api": 15, "worker": 33, "relay": 4, "scheduler": 0, "postgres": Num(math.NaN())}}},
		PeakRSSMiB: map[string]Num{"api": 38, "worker": 39, "relay": 35, "scheduler": 30},
	}
}

func TestWriteTable(t *testing.T) {
	var out strings.Builder
	sampleReport().writeTable(&out)
	table := out.String()
	for _, want := range []string{
		"| measured in one run | packline | reference in the same run | ratio |\n|---|---|---|---|\n",
		"| effects/s, cash-on-delivery (worker concurrency 10) | 150 (15.0 per order) | asynq + one PostgreSQL transaction, concurrency 10: 1,000 tasks/s | 0.15 |",
		"| orders completed/s, cash-on-delivery | 10.0 | that ceiling ÷ effects per order: 66.7/s | 0.15 |",
		"| orders completed/s, mix | 12.0 (2 unfinished) |",
		"| effects/s, mix, against no-op tasks | 175 | raw asynq no-op handlers, concurrency 10: 7,000 tasks/s | 0.025 |",
		"| intake POST /v1/orders, 10 clients | 100/s, p50 50 ms, p99 300 ms | one-row INSERT transactions, 10 clients: 5,000/s | 0.02 |",
		"| created → first effect started, idle | p50 4.2 ms, p99 1.5 s (3 orders) |  |  |",
		"| created → first effect started, loaded (90/s offered, 86/s taken) | p50 20 ms, p99 never (within the wait) (3 orders, 1 not started) |",
		"| CPU ms per order, cash-on-delivery (100 orders) | api 15.0, worker 33.0, relay 4.0, scheduler 0.0, postgres n/a; total 52.0 |",
		"| CPU per effect (all roles + PostgreSQL), cash-on-delivery | 7.00 ms | asynq + one PostgreSQL transaction: 0.50 ms per task | 14 |",
		"| statements per order, cash-on-delivery | 366 |",
		"| peak RSS MiB (worker concurrency 10) | api 38, worker 39, relay 35, scheduler 30 |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q; it is:\n%s", want, table)
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(table), "\n") {
		if strings.Count(line, "|") != 5 {
			t.Errorf("line %d has %d cells: %s", i+1, strings.Count(line, "|")-1, line)
		}
	}
}

// The JSON file holds what the table shows, and reads back.
func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := sampleReport().writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v in\n%s", err, b)
	}
	if back.Flows[0].EffectsPerSec != 150 || back.References.AsynqTxPerSec != 1000 || back.Intake[0].Latency.P99Ms != 300 {
		t.Errorf("read back %+v", back)
	}
	if !math.IsNaN(float64(back.Resources[0].CPUMsPerOrder["postgres"])) {
		t.Errorf("postgres CPU not measured should read back as n/a, got %v", back.Resources[0].CPUMsPerOrder["postgres"])
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc allows.
	line := "4242 (packline (x) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 0 0\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 3*time.Second {
		t.Fatalf("got %v, %v; want 3s (300 ticks)", got, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("no error for a line without a command name")
	}
}

func TestServesDatabase(t *testing.T) {
	for title, want := range map[string]bool{
		"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main": true,
		"postgres: 15/main: checkpointer ":                                   true,
		"postgres: 15/main: autovacuum launcher ":                            true,
		"postgres: 15/main: postgres packline_bench 127.0.0.1(5432) idle":    true,
		"postgres: 15/main: postgres test 127.0.0.1(40000) idle":             false,
		"postgres: postgres packline_bench [local] SELECT":                   true,
		"postgres: postgres other [local] idle":                              false,
	} {
		if got := servesDatabase(title, "packline_bench"); got != want {
			t.Errorf("%q: %v, want %v", title, got, want)
		}
	}
}

func TestMedianOf(t *testing.T) {
	var runs []any
	for _, j := range []string{
		`{"flow":"a","n":3,"x":[1,{"p":null}],"m":{"q":10}}`,
		`{"flow":"b","n":1,"x":[5,{"p":2}],"m":{"q":30}}`,
		`{"flow":"c","n":2,"x":[9,{"p":4}],"m":{"q":20}}`,
	} {
		var v any
		if err := json.Unmarshal([]byte(j), &v); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, v)
	}
	b, _ := json.Marshal(medianOf(runs))
	if got, want := string(b), `{"flow":"a","m":{"q":20},"n":2,"x":[5,{"p":3}]}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// A backend that exited takes its CPU with it, a new one counts in full:
// PostgreSQL's figure may fall short, never below zero.
func TestPostgresCPUSince(t *testing.T) {
	start := pgCPU{1: 10 * time.Millisecond, 2: 50 * time.Millisecond}
	end := pgCPU{1: 25 * time.Millisecond, 3: 5 * time.Millisecond}
	if got := end.since(start); got != 20*time.Millisecond {
		t.Fatalf("since = %v, want 20ms (15 from pid 1, 5 from the new pid 3, nothing from the exited pid 2)", got)
	}
}
