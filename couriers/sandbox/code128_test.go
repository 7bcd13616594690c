package sandbox_test

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// code128Widths are the bar/space widths of the 107 Code 128 symbols (ISO/IEC
// 15417, table 1), written out here so the label's barcode is checked by a
// decoder that shares nothing with the encoder.
var code128Widths = strings.Fields(`
212222 222122 222221 121223 121322 131222 122213 122312 132212 221213
221312 231212 112232 122132 122231 113222 123122 123221 223211 221132
221231 213212 223112 312131 311222 321122 321221 312212 322112 322211
212123 212321 232121 111323 131123 131321 112313 132113 132311 211313
231113 231311 112133 112331 132131 113123 113321 133121 313121 211331
231131 213113 213311 213131 311123 311321 331121 312113 312311 332111
314111 221411 431111 111224 111422 121124 121421 141122 141221 112214
112412 122114 122411 142112 142211 241211 221114 413111 241112 134111
111242 121142 121241 114212 124112 124211 411212 421112 421211 212141
214121 412121 111143 111341 131141 114113 114311 411113 411311 113141
114131 311141 411131 211412 211214 211232 2331112`)

var rectRe = regexp.MustCompile(`(?m)^([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) re$`)

// decodeCode128 reads the barcode drawn as filled rectangles in a content
// stream and decodes it, checking the symbol checksum.
func decodeCode128(t *testing.T, content string) string {
	t.Helper()
	type bar struct{ x, w float64 }
	var bars []bar
	for _, m := range rectRe.FindAllStringSubmatch(content, -1) {
		x, _ := strconv.ParseFloat(m[1], 64)
		w, _ := strconv.ParseFloat(m[3], 64)
		bars = append(bars, bar{x, w})
	}
	if len(bars) < 3 {
		t.Fatalf("no barcode in the label (%d bars)", len(bars))
	}
	sort.Slice(bars, func(i, j int) bool { return bars[i].x < bars[j].x })
	module := math.Inf(1)
	for _, b := range bars {
		module = math.Min(module, b.w)
	}
	// Alternate bar and space widths, in modules.
	var widths []int
	for i, b := range bars {
		if i > 0 {
			gap := b.x - (bars[i-1].x + bars[i-1].w)
			widths = append(widths, int(math.Round(gap/module)))
		}
		widths = append(widths, int(math.Round(b.w/module)))
	}
	var pattern strings.Builder
	for _, w := range widths {
		if w < 1 || w > 4 {
			t.Fatalf("element of %d modules: not Code 128", w)
		}
		pattern.WriteString(strconv.Itoa(w))
	}
	p := pattern.String()
	if !strings.HasSuffix(p, code128Widths[106]) {
		t.Fatalf("barcode does not end with the stop symbol: %s", p)
	}
	p = strings.TrimSuffix(p, code128Widths[106])
	if len(p)%6 != 0 {
		t.Fatalf("barcode has %d elements before the stop symbol, not a multiple of 6", len(p))
	}
	var values []int
	for i := 0; i < len(p); i += 6 {
		v := -1
		for j, w := range code128Widths[:106] {
			if w == p[i:i+6] {
				v = j
			}
		}
		if v < 0 {
			t.Fatalf("no Code 128 symbol has widths %s", p[i:i+6])
		}
		values = append(values, v)
	}
	if len(values) < 3 {
		t.Fatal("barcode too short")
	}
	sum := values[0]
	for i, v := range values[1 : len(values)-1] {
		sum += (i + 1) * v
	}
	if sum%103 != values[len(values)-1] {
		t.Fatalf("checksum %d, barcode says %d", sum%103, values[len(values)-1])
	}
	var out strings.Builder
	set := map[int]byte{103: 'A', 104: 'B', 105: 'C'}[values[0]]
	if set == 0 {
		t.Fatalf("barcode starts with %d, not a start symbol", values[0])
	}
	for _, v := range values[1 : len(values)-1] {
		switch {
		case set == 'C' && v < 100:
			out.WriteString(strconv.Itoa(v/10) + strconv.Itoa(v%10))
		case set == 'C' && v == 100, set == 'A' && v == 100:
			set = 'B'
		case set == 'B' && v == 99, set == 'A' && v == 99:
			set = 'C'
		case set == 'B' && v == 101, set == 'C' && v == 101:
			set = 'A'
		case set == 'B' && v < 96:
			out.WriteByte(byte(32 + v))
		case set == 'A' && v < 64:
			out.WriteByte(byte(32 + v))
		case set == 'A' && v < 96:
			out.WriteByte(byte(v - 64))
		default:
			t.Fatalf("symbol %d in code set %c is not handled by this decoder", v, set)
		}
	}
	return out.String()
}
