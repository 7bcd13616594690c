package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
)

// Keys that are always redacted, compared after normalize.
var sensitiveExact = map[string]bool{
	"name": true, "customer": true, "customer_name": true, "first_name": true,
	"last_name": true, "full_name": true, "firstname": true, "lastname": true,
	"fullname": true, "customername": true, "line1": true, "line2": true,
	"street": true, "postal_code": true, "postalcode": true, "zip": true,
	"key": true, "apikey": true, "auth": true, "dsn": true,
	"database_url": true, "redis_url": true, "databaseurl": true, "redisurl": true,
}

// Words that make any key containing them sensitive (customer_email,
// billingAddress, client_secret, X-Api-Token, ...).
var sensitiveWords = []string{
	"email", "phone", "address", "password", "passwd", "secret", "token",
	"authorization", "cookie", "signature", "credential",
}

// normalize lower-cases a key and turns the separators people use into "_".
func normalize(key string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', ' ':
			return '_'
		}
		return r
	}, strings.ToLower(key))
}

// sensitiveKey reports whether an attribute named key holds personal data or
// a secret whatever its value.
func sensitiveKey(key string) bool {
	k := normalize(key)
	if sensitiveExact[k] || strings.HasSuffix(k, "_key") {
		return true
	}
	for _, w := range sensitiveWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

var scrubbers = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Credentials in URLs: postgres://user:pw@host, redis://:pw@host.
	{regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]*@`), "${1}" + Redacted + "@"},
	// Authorization header values.
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*`), "${1} " + Redacted},
	// Provider keys and webhook secrets (Stripe, Standard Webhooks).
	{regexp.MustCompile(`\b(?:whsec|sk_live|sk_test|rk_live|rk_test|pk_live|pk_test)_[A-Za-z0-9+/=_\-]+`), Redacted},
	// E-mail addresses.
	{regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`), Redacted},
	// E.164 phone numbers, also as people write them: +1 (415) 555-0100.
	{regexp.MustCompile(`\+[1-9](?:[ \-.()]{0,2}[0-9]){6,14}`), Redacted},
}

// Scrub returns s with e-mail addresses, E.164 phone numbers, bearer and
// basic credentials, provider keys and URL credentials replaced by Redacted.
func Scrub(s string) string {
	for _, sc := range scrubbers {
		s = sc.re.ReplaceAllString(s, sc.repl)
	}
	return s
}

// redactAttr is the handlers' ReplaceAttr: slog calls it for every
// attribute of every record (the message included), after resolving
// LogValuers, and for the members of every group with the group names in
// groups.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch v := a.Value.Any().(type) {
		case slog.Level, *slog.Source:
			return a // the built-in level and source
		case string:
			if a.Key == slog.MessageKey {
				return slog.String(a.Key, Scrub(v))
			}
		}
	}
	for _, g := range groups {
		if sensitiveKey(g) {
			return slog.String(a.Key, Redacted)
		}
	}
	if sensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	a.Value = redactValue(a.Value)
	return a
}

func redactValue(v slog.Value) slog.Value {
	switch v.Kind() {
	case slog.KindString:
		return slog.StringValue(Scrub(v.String()))
	case slog.KindGroup:
		// Only reached for values built below; slog walks real groups itself.
		attrs := v.Group()
		out := make([]slog.Attr, len(attrs))
		for i, a := range attrs {
			out[i] = redactAttr(nil, a)
		}
		return slog.GroupValue(out...)
	case slog.KindAny:
		return redactAny(v.Any())
	default:
		return v // numbers, bools, times, durations
	}
}

// redactAny redacts a value logged with slog.Any: an error by its message,
// anything else through its JSON form, so struct fields and map keys are
// judged by name just like attributes.
func redactAny(x any) slog.Value {
	switch v := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(Scrub(v.Error()))
	case []byte:
		return slog.StringValue(Scrub(string(v)))
	case fmt.Stringer:
		if _, ok := x.(json.Marshaler); !ok {
			return slog.StringValue(Scrub(v.String()))
		}
	}
	raw, err := json.Marshal(x)
	if err != nil {
		return slog.StringValue(Scrub(fmt.Sprintf("%+v", x)))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return slog.StringValue(Scrub(string(raw)))
	}
	return fromJSON(generic)
}

// fromJSON turns decoded JSON into a slog value: objects become groups (so
// the text handler prints a.b=c and the JSON handler an object), with
// sensitive members redacted.
func fromJSON(x any) slog.Value {
	switch v := x.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]slog.Attr, 0, len(keys))
		for _, k := range keys {
			if sensitiveKey(k) {
				attrs = append(attrs, slog.String(k, Redacted))
				continue
			}
			attrs = append(attrs, slog.Attr{Key: k, Value: fromJSON(v[k])})
		}
		return slog.GroupValue(attrs...)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plain(fromJSON(e))
		}
		return slog.AnyValue(out)
	case string:
		return slog.StringValue(Scrub(v))
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return slog.Int64Value(i)
		}
		if f, err := v.Float64(); err == nil {
			return slog.Float64Value(f)
		}
		return slog.StringValue(v.String())
	case bool:
		return slog.BoolValue(v)
	default:
		return slog.AnyValue(v)
	}
}

// plain turns a redacted slog value back into a Go value for use inside a
// slice, which slog prints with fmt or encoding/json.
func plain(v slog.Value) any {
	if v.Kind() != slog.KindGroup {
		return v.Any()
	}
	m := map[string]any{}
	for _, a := range v.Group() {
		m[a.Key] = plain(a.Value)
	}
	return m
}
