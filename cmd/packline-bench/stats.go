package main

import (
	"math"
	"sort"
	"time"
)

// Percentiles summarises a set of latencies. Missing counts the samples
// that never finished within the wait (they are the slowest: a percentile
// that falls on them is reported as infinite).
type Percentiles struct {
	N       int `json:"n"`
	Missing int `json:"missing,omitempty"`
	P50Ms   Num `json:"p50_ms"`
	P99Ms   Num `json:"p99_ms"`
	MaxMs   Num `json:"max_ms"`
}

// summarize returns the p50, p99 and max of samples by the nearest-rank
// method, counting missing samples as slower than any observed one.
func summarize(samples []time.Duration, missing int) Percentiles {
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	p := Percentiles{N: len(s) + missing, Missing: missing}
	p.P50Ms = rankMs(s, p.N, 0.50)
	p.P99Ms = rankMs(s, p.N, 0.99)
	p.MaxMs = rankMs(s, p.N, 1)
	return p
}

// rankMs is the q-quantile of n samples, the first len(sorted) of which are
// known and sorted; the rest are infinite. NaN when there are none.
func rankMs(sorted []time.Duration, n int, q float64) Num {
	if n == 0 {
		return Num(math.NaN())
	}
	r := int(math.Ceil(q*float64(n))) - 1
	r = max(0, min(r, n-1))
	if r >= len(sorted) {
		return Num(math.Inf(1))
	}
	return Num(float64(sorted[r]) / float64(time.Millisecond))
}

// perSecond is n events over d, 0 for an empty window.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ratio is a/b, NaN when either is unknown or b is zero.
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) {
		return math.NaN()
	}
	return a / b
}

// nan is a figure not measured.
func nan() float64 { return math.NaN() }
