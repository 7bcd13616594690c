package notify

import (
	"strconv"
	"strings"

	"github.com/packline/packline"
)

// FormatMoney formats an amount of minor units in its currency, with the
// currency's own number of decimals (packline.CurrencyExponent) and a comma
// between thousands: "USD 1,234.50", "JPY 1,500", "KWD 12.345". An unknown
// code is shown with two decimals.
func FormatMoney(minor int64, currency string) string {
	exp, ok := packline.CurrencyExponent(currency)
	if !ok {
		exp = 2
	}
	neg := minor < 0
	// Work on the decimal digits so the most negative int64 formats too.
	digits := strconv.FormatInt(minor, 10)
	digits = strings.TrimPrefix(digits, "-")
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-exp], digits[len(digits)-exp:]
	var b strings.Builder
	b.WriteString(currency)
	b.WriteByte(' ')
	if neg {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if exp > 0 {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
