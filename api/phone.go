package api

import (
	"errors"
	"strings"
)

// trunkCountries are the countries whose national numbers start with a 0
// trunk prefix that E.164 drops, with their calling codes. A national number
// (0555 12 34 56) is understood only for these; anything else must be sent in
// international form.
var trunkCountries = map[string]string{
	"DZ": "213", "MA": "212", "TN": "216", "EG": "20", "FR": "33", "GB": "44", "DE": "49", "ES": "34",
	"IT": "39", "NL": "31", "BE": "32", "CH": "41", "AT": "43", "PT": "351", "IE": "353", "SE": "46",
	"TR": "90", "ZA": "27", "NG": "234", "KE": "254", "IN": "91", "PK": "92", "AU": "61", "NZ": "64",
	"JP": "81", "KR": "82", "BR": "55", "AR": "54",
}

// NormalizePhone returns a phone number in E.164 (+213555123456). It accepts
// international numbers (+…, 00…) with spaces, dots, dashes and brackets, and
// national numbers of the shipping country when that country is known.
func NormalizePhone(raw, country string) (string, error) {
	var digits strings.Builder
	s := strings.TrimSpace(raw)
	plus := false
	switch {
	case strings.HasPrefix(s, "+"):
		plus, s = true, s[1:]
	case strings.HasPrefix(s, "00"):
		plus, s = true, s[2:]
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", errors.New("customer.phone may hold only digits, spaces, dashes, dots and brackets after an optional +")
		}
	}
	d := digits.String()
	if !plus {
		switch {
		case country == "US" || country == "CA":
			if len(d) == 11 && d[0] == '1' {
				d = d[1:]
			}
			if len(d) != 10 {
				return "", errors.New("customer.phone is not a 10-digit North American number")
			}
			d = "1" + d
		case trunkCountries[country] != "" && strings.HasPrefix(d, "0"):
			d = trunkCountries[country] + d[1:]
		default:
			return "", errors.New("customer.phone must be in international form, e.g. +213555123456")
		}
	}
	if len(d) < 8 || len(d) > 15 || d[0] == '0' {
		return "", errors.New("customer.phone is not a valid international number (8 to 15 digits after +)")
	}
	return "+" + d, nil
}
