// Package stock decides an order's stock movements: what a decrement
// takes, what a restore gives back, and what an order that cannot be
// filled is told. It is pure: the store reads the order's lines and
// ledger, asks here, and writes the answer in the transaction that marks
// the effect done.
//
// The ledger has one row per (order, SKU, kind): a decrement row when the
// order took the SKU, a restore row when it was given back. That is what
// makes the stock effects safe to run twice.
package stock

import "sort"

// Kind is a ledger row's kind.
type Kind string

// Ledger kinds.
const (
	Decrement Kind = "decrement"
	Restore   Kind = "restore"
)

// Line is an order line as stock sees it.
type Line struct {
	SKU      string
	Quantity int64
}

// Entry is a ledger row as a plan reads it.
type Entry struct {
	SKU      string
	Kind     Kind
	Quantity int64
}

// Move is one SKU's movement: one ledger row, and the stock it changes.
type Move struct {
	SKU      string
	Quantity int64
}

// Shortage is one SKU an order could not be filled with: the data of the
// stock_short event.
type Shortage struct {
	SKU       string `json:"sku"`
	Needed    int64  `json:"needed"`
	Available int64  `json:"available"`
}

// Taken reports whether the ledger shows the order's stock taken already
// (a decrement run twice moves nothing the second time).
func Taken(ledger []Entry) bool {
	for _, e := range ledger {
		if e.Kind == Decrement {
			return true
		}
	}
	return false
}

// Take returns what a decrement takes for lines: one move per SKU, the
// lines' quantities summed, sorted by SKU so that concurrent decrements
// lock stock rows in one order and cannot deadlock. All or none: the
// store takes each move only if the SKU has that much on hand, and when
// any falls short it takes none and reports the Shortages.
func Take(lines []Line) []Move {
	sum := map[string]int64{}
	for _, l := range lines {
		sum[l.SKU] += l.Quantity
	}
	out := make([]Move, 0, len(sum))
	for sku, q := range sum {
		out = append(out, Move{sku, q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	return out
}

// Short is the shortage of a move the stock could not cover, with what
// was on hand (0 for a SKU never stocked).
func Short(m Move, available int64) Shortage {
	return Shortage{SKU: m.SKU, Needed: m.Quantity, Available: available}
}

// Give returns what a restore gives back: exactly what the ledger says the
// order took and has not been given back, one move per SKU, by SKU. Run
// twice, or for an order that took nothing, it gives back nothing.
func Give(ledger []Entry) []Move {
	restored := map[string]bool{}
	for _, e := range ledger {
		if e.Kind == Restore {
			restored[e.SKU] = true
		}
	}
	var out []Move
	for _, e := range ledger {
		if e.Kind == Decrement && !restored[e.SKU] {
			out = append(out, Move{e.SKU, e.Quantity})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	return out
}
