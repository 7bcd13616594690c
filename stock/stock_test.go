package stock_test

import (
	"reflect"
	"testing"

	"github.com/packline/packline/stock"
)

func TestTake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		lines []stock.Line
		want  []stock.Move
	}{
		{name: "no lines take nothing", want: []stock.Move{}},
		{name: "one line", lines: []stock.Line{{"MUG", 2}}, want: []stock.Move{{"MUG", 2}}},
		{name: "lines of one SKU are summed, SKUs sorted for the lock order",
			lines: []stock.Line{{"TEE", 1}, {"MUG", 2}, {"CAP", 1}, {"MUG", 3}},
			want:  []stock.Move{{"CAP", 1}, {"MUG", 5}, {"TEE", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stock.Take(tc.lines); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Take = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTakenAndGive(t *testing.T) {
	t.Parallel()
	dec := func(sku string, q int64) stock.Entry {
		return stock.Entry{SKU: sku, Kind: stock.Decrement, Quantity: q}
	}
	res := func(sku string, q int64) stock.Entry { return stock.Entry{SKU: sku, Kind: stock.Restore, Quantity: q} }
	for _, tc := range []struct {
		name   string
		ledger []stock.Entry
		taken  bool
		give   []stock.Move
	}{
		{name: "an order that took nothing gives back nothing"},
		{name: "what was taken is given back, by SKU", ledger: []stock.Entry{dec("TEE", 1), dec("MUG", 5)},
			taken: true, give: []stock.Move{{"MUG", 5}, {"TEE", 1}}},
		{name: "a restore run twice gives back nothing more", ledger: []stock.Entry{dec("MUG", 5), res("MUG", 5), dec("TEE", 1), res("TEE", 1)},
			taken: true},
		{name: "only what was not given back yet", ledger: []stock.Entry{dec("MUG", 5), res("MUG", 5), dec("TEE", 1)},
			taken: true, give: []stock.Move{{"TEE", 1}}},
		{name: "a restore row alone is not a take", ledger: []stock.Entry{res("MUG", 5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stock.Taken(tc.ledger); got != tc.taken {
				t.Errorf("Taken = %v, want %v", got, tc.taken)
			}
			if got := stock.Give(tc.ledger); !reflect.DeepEqual(got, tc.give) {
				t.Errorf("Give = %v, want %v", got, tc.give)
			}
		})
	}
}

func TestShort(t *testing.T) {
	t.Parallel()
	if got, want := stock.Short(stock.Move{SKU: "MUG", Quantity: 3}, 1), (stock.Shortage{SKU: "MUG", Needed: 3, Available: 1}); got != want {
		t.Errorf("Short = %+v, want %+v", got, want)
	}
}
