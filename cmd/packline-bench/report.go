package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// Num is a measured figure: NaN means not measured (n/a), +Inf beyond the
// wait. JSON has neither, so both are written as null.
type Num float64

// MarshalJSON writes a finite figure as a number, any other as null.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(math.Round(f*1000) / 1000)
}

// UnmarshalJSON reads null as not measured.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*n = Num(f)
	return err
}

// Report is everything one run measured: the table and the JSON file.
type Report struct {
	StartedAt  time.Time        `json:"started_at"`
	Settings   Settings         `json:"settings"`
	References References       `json:"references"`
	Flows      []FlowResult     `json:"flows"`
	Intake     []IntakeResult   `json:"intake"`
	Latency    []LatencyResult  `json:"created_to_first_effect"`
	Resources  []ResourceResult `json:"resources"`
	PeakRSSMiB map[string]Num   `json:"peak_rss_mib"`
	// HTTP counts the answers packline gave, by "METHOD route status".
	HTTP map[string]int `json:"http"`
	// Webhooks is how many deliveries the benchmark's receiver took.
	Webhooks int64 `json:"webhook_deliveries"`
	// Problems are what went wrong while driving packline.
	Problems []string `json:"problems,omitempty"`
}

// Settings are the knobs of the run.
type Settings struct {
	Quick             bool    `json:"quick"`
	Cores             int     `json:"cores"`
	Stores            int     `json:"stores"`
	WorkerConcurrency int     `json:"worker_concurrency"`
	Journeys          int     `json:"journeys_in_flight"`
	PhaseSeconds      float64 `json:"phase_seconds"`
	TimerScale        string  `json:"timer_scale"`
	Commit            string  `json:"commit,omitempty"`
}

// References are the raw parts measured in the same run.
type References struct {
	Concurrency int `json:"concurrency"`
	// InsertTxPerSec: one-row INSERT transactions per second, Concurrency clients.
	InsertTxPerSec Num `json:"insert_tx_per_sec"`
	// AsynqNoopPerSec: asynq tasks per second with a handler that does nothing.
	AsynqNoopPerSec Num `json:"asynq_noop_tasks_per_sec"`
	// AsynqTxPerSec: asynq tasks per second, each committing one one-row transaction.
	AsynqTxPerSec Num `json:"asynq_tx_tasks_per_sec"`
	// AsynqTxCPUMs: CPU (benchmark process + PostgreSQL) per such task.
	AsynqTxCPUMs Num `json:"asynq_tx_cpu_ms_per_task"`
}

// FlowResult is one lifecycle phase: a flow alone, or "mix" (all five).
type FlowResult struct {
	Flow            string `json:"flow"`
	Completed       int    `json:"orders_completed"`
	Unfinished      int    `json:"orders_unfinished"`
	OrdersPerSec    Num    `json:"orders_completed_per_sec"`
	EffectsPerSec   Num    `json:"effects_per_sec"`
	EffectsPerOrder Num    `json:"effects_per_order"`
	// CeilingOrders is the reference ceiling divided by effects per order.
	CeilingOrders Num `json:"ceiling_orders_per_sec"`
}

// IntakeResult is POST /v1/orders as fast as Clients clients can.
type IntakeResult struct {
	Clients      int         `json:"clients"`
	Orders       int         `json:"orders"`
	Failed       int         `json:"failed"`
	OrdersPerSec Num         `json:"orders_per_sec"`
	Latency      Percentiles `json:"latency"`
}

// LatencyResult is created → first effect started under one load.
type LatencyResult struct {
	Load string `json:"load"`
	// Offered is the intake rate offered meanwhile, Rate the rate taken
	// (both 0: idle).
	Offered Num         `json:"intake_offered_per_sec"`
	Rate    Num         `json:"intake_per_sec"`
	Latency Percentiles `json:"latency"`
}

// ResourceResult is what one lifecycle phase cost, per completed order.
type ResourceResult struct {
	Phase              string         `json:"phase"`
	Orders             int            `json:"orders"`
	Effects            int            `json:"effects"`
	CPUMsPerOrder      map[string]Num `json:"cpu_ms_per_order"`
	CPUMsPerEffect     Num            `json:"cpu_ms_per_effect"`
	StatementsPerOrder Num            `json:"statements_per_order"`
}

// costCentres are the processes whose CPU is counted, in table order.
var costCentres = []string{"api", "worker", "relay", "scheduler", "postgres"}

// writeJSON writes the report to path.
func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// row is one line of the table.
type row struct{ what, packline, reference, ratio string }

// writeTable renders the report as one Markdown table.
func (r *Report) writeTable(w io.Writer) {
	rows := r.flowRows()
	rows = append(rows, r.intakeRows()...)
	rows = append(rows, r.latencyRows()...)
	rows = append(rows, r.resourceRows()...)
	fmt.Fprintln(w, "| measured in one run | packline | reference in the same run | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, x := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.what, x.packline, x.reference, x.ratio)
	}
}

func (r *Report) flowRows() []row {
	ref := r.References
	c := ref.Concurrency
	var rows []row
	for _, f := range r.Flows {
		rows = append(rows, row{
			fmt.Sprintf("effects/s, %s (worker concurrency %d)", f.Flow, r.Settings.WorkerConcurrency),
			fmt.Sprintf("%s (%s per order)", fmtRate(f.EffectsPerSec), fmtNum(f.EffectsPerOrder, 1)),
			fmt.Sprintf("asynq + one PostgreSQL transaction, concurrency %d: %s tasks/s", c, fmtRate(ref.AsynqTxPerSec)),
			fmtRatio(ratio(float64(f.EffectsPerSec), float64(ref.AsynqTxPerSec))),
		}, row{
			fmt.Sprintf("orders completed/s, %s", f.Flow),
			fmtNum(f.OrdersPerSec, 1) + unfinished(f.Unfinished),
			fmt.Sprintf("that ceiling ÷ effects per order: %s/s", fmtNum(f.CeilingOrders, 1)),
			fmtRatio(ratio(float64(f.OrdersPerSec), float64(f.CeilingOrders))),
		})
		if f.Flow == mixName {
			rows = append(rows, row{
				"effects/s, mix, against no-op tasks",
				fmtRate(f.EffectsPerSec),
				fmt.Sprintf("raw asynq no-op handlers, concurrency %d: %s tasks/s", c, fmtRate(ref.AsynqNoopPerSec)),
				fmtRatio(ratio(float64(f.EffectsPerSec), float64(ref.AsynqNoopPerSec))),
			})
		}
	}
	return rows
}

func unfinished(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d unfinished)", n)
}

func (r *Report) intakeRows() []row {
	ref := r.References
	var rows []row
	for _, in := range r.Intake {
		failed := ""
		if in.Failed > 0 {
			failed = fmt.Sprintf(", %d failed", in.Failed)
		}
		rows = append(rows, row{
			fmt.Sprintf("intake POST /v1/orders, %d clients", in.Clients),
			fmt.Sprintf("%s/s, p50 %s, p99 %s%s", fmtRate(in.OrdersPerSec), fmtMs(in.Latency.P50Ms), fmtMs(in.Latency.P99Ms), failed),
			fmt.Sprintf("one-row INSERT transactions, %d clients: %s/s", ref.Concurrency, fmtRate(ref.InsertTxPerSec)),
			fmtRatio(ratio(float64(in.OrdersPerSec), float64(ref.InsertTxPerSec))),
		})
	}
	return rows
}

func (r *Report) latencyRows() []row {
	var rows []row
	for _, l := range r.Latency {
		missing := ""
		if l.Latency.Missing > 0 {
			missing = fmt.Sprintf(", %d not started", l.Latency.Missing)
		}
		load := l.Load
		if l.Offered > 0 {
			load += fmt.Sprintf(" (%s/s offered, %s/s taken)", fmtRate(l.Offered), fmtRate(l.Rate))
		}
		rows = append(rows, row{
			"created → first effect started, " + load,
			fmt.Sprintf("p50 %s, p99 %s (%d orders%s)", fmtMs(l.Latency.P50Ms), fmtMs(l.Latency.P99Ms), l.Latency.N, missing),
			"", "",
		})
	}
	return rows
}

func (r *Report) resourceRows() []row {
	var rows []row
	for _, res := range r.Resources {
		var parts []string
		total := 0.0
		for _, c := range costCentres {
			v := res.CPUMsPerOrder[c]
			parts = append(parts, c+" "+fmtNum(v, 1))
			if !math.IsNaN(float64(v)) {
				total += float64(v)
			}
		}
		rows = append(rows, row{
			fmt.Sprintf("CPU ms per order, %s (%d orders)", res.Phase, res.Orders),
			strings.Join(parts, ", ") + fmt.Sprintf("; total %.1f", total), "", "",
		}, row{
			fmt.Sprintf("CPU per effect (all roles + PostgreSQL), %s", res.Phase),
			fmtNum(res.CPUMsPerEffect, 2) + " ms",
			fmt.Sprintf("asynq + one PostgreSQL transaction: %s ms per task", fmtNum(r.References.AsynqTxCPUMs, 2)),
			fmtRatio(ratio(float64(res.CPUMsPerEffect), float64(r.References.AsynqTxCPUMs))),
		}, row{
			fmt.Sprintf("statements per order, %s", res.Phase),
			fmtNum(res.StatementsPerOrder, 0), "", "",
		})
	}
	if len(r.PeakRSSMiB) > 0 {
		var parts []string
		for _, c := range costCentres[:4] {
			parts = append(parts, c+" "+fmtNum(r.PeakRSSMiB[c], 0))
		}
		rows = append(rows, row{fmt.Sprintf("peak RSS MiB (worker concurrency %d)", r.Settings.WorkerConcurrency), strings.Join(parts, ", "), "", ""})
	}
	return rows
}

// fmtRate prints a rate with a thousands separator and no decimals (one
// below 10).
func fmtRate(n Num) string {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	if f < 10 {
		return fmt.Sprintf("%.1f", f)
	}
	s := fmt.Sprintf("%.0f", f)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fmtNum prints n with the given decimals, or n/a.
func fmtNum(n Num, decimals int) string {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", decimals, f)
}

// fmtRatio prints a ratio with three significant digits.
func fmtRatio(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return ""
	}
	return fmt.Sprintf("%.3g", f)
}

// fmtMs prints a latency in ms (or s from a second up); an infinite one
// did not happen within the wait.
func fmtMs(n Num) string {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return "n/a"
	case math.IsInf(f, 1):
		return "never (within the wait)"
	case f >= 1000:
		return fmt.Sprintf("%.1f s", f/1000)
	case f >= 10:
		return fmt.Sprintf("%.0f ms", f)
	}
	return fmt.Sprintf("%.1f ms", f)
}
