package webhooks_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/packline/packline/webhooks"
)

func TestSignFollowsStandardWebhooks(t *testing.T) {
	t.Parallel()
	// The example of the Standard Webhooks specification.
	got := webhooks.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}

	secret := webhooks.NewSecret()
	m := webhooks.Message{ID: webhooks.MessageID("eff_1"), Type: "order.shipped",
		Timestamp: time.Now(), Data: json.RawMessage(`{"id":"ord_1","status":"shipped"}`)}
	body, err := m.Body()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := http.Header{}
	h.Set(webhooks.HeaderID, m.ID)
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(webhooks.HeaderSignature, webhooks.Sign(secret, m.ID, now, body))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("standard-webhooks refuses our signature: %v", err)
	}
	if err := wh.Verify(append(body, ' '), h); err == nil {
		t.Fatal("standard-webhooks accepts a changed body")
	}
	other, _ := standardwebhooks.NewWebhook(webhooks.NewSecret())
	if err := other.Verify(body, h); err == nil {
		t.Fatal("another endpoint's secret verifies the signature")
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	a, b := webhooks.NewSecret(), webhooks.NewSecret()
	if a == b || !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secrets %q %q", a, b)
	}
	key, err := webhooks.ParseSecret(a)
	if err != nil || len(key) != 32 {
		t.Fatalf("ParseSecret(NewSecret()) = %d bytes, %v", len(key), err)
	}
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := webhooks.ParseSecret(bad); !errors.Is(err, webhooks.ErrInvalidSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrInvalidSecret", bad, err)
		}
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	id := webhooks.MessageID("eff_abc")
	if id != webhooks.MessageID("eff_abc") || id == webhooks.MessageID("eff_abd") || !strings.HasPrefix(id, "msg_") || len(id) != 30 {
		t.Fatalf("MessageID = %q: want msg_ and 26 characters, stable per effect", id)
	}
	at := time.Date(2026, 5, 4, 10, 0, 0, 500, time.FixedZone("x", 3600))
	body, err := webhooks.Message{ID: id, Type: "order.paid", Timestamp: at, Data: json.RawMessage(`{"id":"ord_1"}`)}.Body()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"order.paid","timestamp":"2026-05-04T09:00:00.0000005Z","data":{"id":"ord_1"}}`; string(body) != want {
		t.Fatalf("body %s, want %s", body, want)
	}
	if _, err := (webhooks.Message{Data: json.RawMessage(`{broken`)}).Body(); err == nil {
		t.Fatal("Body accepted invalid data")
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filters []string
		event   string
		want    bool
	}{
		{[]string{"*"}, "order.shipped", true},
		{[]string{"order.*"}, "order.shipped", true},
		{[]string{"order.*"}, "order.at_risk", true},
		{[]string{"order.*"}, "orders.shipped", false},
		{[]string{"order.*"}, "order", false},
		{[]string{"order.shipped"}, "order.shipped", true},
		{[]string{"order.shipped"}, "order.delivered", false},
		{[]string{"order.shipped", "order.delivered"}, "order.delivered", true},
		{nil, "order.shipped", false},
	}
	for _, tt := range tests {
		if got := webhooks.Match(tt.filters, tt.event); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filters, tt.event, got, tt.want)
		}
		if got := (webhooks.Endpoint{Events: tt.filters}).Wants(tt.event); got != tt.want {
			t.Errorf("Wants(%q) = %v", tt.event, got)
		}
	}
	for _, ok := range []string{"*", "order.*", "order.shipped", "order.at_risk", "order"} {
		if err := webhooks.ValidFilter(ok); err != nil {
			t.Errorf("ValidFilter(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*.shipped", "order.", "Order.Shipped", "order.**", "order..x", "order.ship ped", ".*"} {
		if err := webhooks.ValidFilter(bad); err == nil {
			t.Errorf("ValidFilter(%q) accepted", bad)
		}
	}
}

func TestNextRetry(t *testing.T) {
	t.Parallel()
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	for i, w := range want {
		got, ok := webhooks.NextRetry(i+1, 1, 0)
		if !ok || got != w {
			t.Errorf("NextRetry(%d) = %s, %v; want %s", i+1, got, ok, w)
		}
	}
	if webhooks.MaxAttempts != 8 {
		t.Errorf("MaxAttempts = %d, want 8", webhooks.MaxAttempts)
	}
	if _, ok := webhooks.NextRetry(8, 1, 0); ok {
		t.Error("a ninth attempt was scheduled")
	}
	if _, ok := webhooks.NextRetry(0, 1, 0); ok {
		t.Error("attempt 0 was scheduled")
	}
	// Timer scale: 0.001 turns 5 min into 300 ms; 0 means 1.
	if got, _ := webhooks.NextRetry(2, 0.001, 0); got != 300*time.Millisecond {
		t.Errorf("scaled = %s", got)
	}
	if got, _ := webhooks.NextRetry(2, 0, 0); got != 5*time.Minute {
		t.Errorf("scale 0 = %s", got)
	}
	// Retry-After: honoured when longer, ignored when shorter, capped.
	if got, _ := webhooks.NextRetry(1, 1, 2*time.Minute); got != 2*time.Minute {
		t.Errorf("longer Retry-After = %s", got)
	}
	if got, _ := webhooks.NextRetry(2, 1, 2*time.Minute); got != 5*time.Minute {
		t.Errorf("shorter Retry-After = %s", got)
	}
	if got, _ := webhooks.NextRetry(1, 1, 100*time.Hour); got != webhooks.MaxRetryAfter {
		t.Errorf("huge Retry-After = %s", got)
	}
	if got, _ := webhooks.NextRetry(1, 0.001, time.Minute); got != time.Minute {
		t.Errorf("Retry-After is not scaled: %s", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		" 7 ":                           7 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"99999999999":                   webhooks.MaxRetryAfter,
		"Mon, 04 May 2026 10:10:00 GMT": 10 * time.Minute,
		"Mon, 04 May 2026 09:00:00 GMT": 0,
	}
	for h, want := range tests {
		if got := webhooks.ParseRetryAfter(h, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}

func TestShouldDisable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC)
	if webhooks.ShouldDisable(time.Time{}, now, 1) {
		t.Error("an endpoint that never failed was disabled")
	}
	if webhooks.ShouldDisable(now.Add(-4*24*time.Hour), now, 1) {
		t.Error("disabled after 4 days")
	}
	if !webhooks.ShouldDisable(now.Add(-5*24*time.Hour), now, 1) {
		t.Error("not disabled after 5 days")
	}
	if !webhooks.ShouldDisable(now.Add(-5*time.Second), now, 0.00001) {
		t.Error("timer scale not applied")
	}
}

// TestForbidden: every special-purpose range is refused, the public
// internet allowed (the table is in ranges_test.go). IPv4-mapped, NAT64
// and 6to4 forms of public IPv4 addresses are refused too: a webhook goes
// to the address a name resolves to, never to a translation of it.
func TestForbidden(t *testing.T) {
	t.Parallel()
	for _, c := range webhooks.Refused {
		if !webhooks.Forbidden(netip.MustParseAddr(c.Addr)) {
			t.Errorf("%s (%s) is allowed, want forbidden", c.Addr, c.Range)
		}
	}
	for _, s := range webhooks.Allowed {
		if webhooks.Forbidden(netip.MustParseAddr(s)) {
			t.Errorf("%s is forbidden, want allowed", s)
		}
	}
	if !webhooks.Forbidden(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for raw, want := range map[string]error{
		"https://93.184.215.14/hooks":      nil,
		"http://[2606:4700:4700::1111]/x":  nil,
		"https://127.0.0.1/hooks":          webhooks.ErrForbiddenAddress,
		"https://169.254.169.254/latest":   webhooks.ErrForbiddenAddress,
		"http://[::1]:8080/":               webhooks.ErrForbiddenAddress,
		"http://localhost:8080/":           webhooks.ErrForbiddenAddress,
		"ftp://93.184.215.14/":             webhooks.ErrInvalidURL,
		"/relative":                        webhooks.ErrInvalidURL,
		"https:///nohost":                  webhooks.ErrInvalidURL,
		"http://%zz":                       webhooks.ErrInvalidURL,
		"javascript:alert(1)":              webhooks.ErrInvalidURL,
		"https://10.0.0.5:8443/merchant/1": webhooks.ErrForbiddenAddress,
		// The IPv6 literals the deny-list let through.
		"http://[::127.0.0.1]/":           webhooks.ErrForbiddenAddress,
		"http://[::7f00:1]/":              webhooks.ErrForbiddenAddress,
		"http://[::a00:1]/":               webhooks.ErrForbiddenAddress,
		"http://[::a9fe:a9fe]/":           webhooks.ErrForbiddenAddress,
		"http://[::ffff:0:7f00:1]/":       webhooks.ErrForbiddenAddress,
		"http://[::2]/":                   webhooks.ErrForbiddenAddress,
		"http://[4000::1]/":               webhooks.ErrForbiddenAddress,
		"http://[5f00::1]/":               webhooks.ErrForbiddenAddress,
		"http://[2001::1]/":               webhooks.ErrForbiddenAddress,
		"http://[2001:10::1]/":            webhooks.ErrForbiddenAddress,
		"http://[fe80::1%25eth0]/":        webhooks.ErrForbiddenAddress,
		"http://[::ffff:8.8.8.8]/":        webhooks.ErrForbiddenAddress,
		"http://[2001:4860::8888]/":       nil,
		"https://[2001:4860::8888]:8443/": nil,
		// Numeric hosts that are not canonical dotted quads, refused
		// before any resolver reads them.
		"http://2130706433/":       webhooks.ErrForbiddenAddress,
		"http://0x7f.0.0.1/":       webhooks.ErrForbiddenAddress,
		"http://0x7f000001/":       webhooks.ErrForbiddenAddress,
		"http://0177.0.0.1/":       webhooks.ErrForbiddenAddress,
		"http://017700000001/":     webhooks.ErrForbiddenAddress,
		"http://127.1/":            webhooks.ErrForbiddenAddress,
		"http://127.0.0.1./":       webhooks.ErrForbiddenAddress,
		"http://134744072/":        webhooks.ErrForbiddenAddress, // 8.8.8.8, written as a number
		"http://8.8.8.010/":        webhooks.ErrForbiddenAddress,
		"http://0X08.8.8.8:8080/x": webhooks.ErrForbiddenAddress,
	} {
		err := webhooks.CheckURL(ctx, raw, false)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("CheckURL(%q) = %v, want %v", raw, err, want)
		}
	}
	for _, c := range webhooks.Refused {
		ip := netip.MustParseAddr(c.Addr)
		host := ip.String()
		if ip.Is6() {
			host = "[" + host + "]"
		}
		if err := webhooks.CheckURL(ctx, "https://"+host+"/hooks", false); !errors.Is(err, webhooks.ErrForbiddenAddress) {
			t.Errorf("CheckURL(%s, %s) = %v, want refused", host, c.Range, err)
		}
	}
	for _, s := range webhooks.Allowed {
		ip := netip.MustParseAddr(s)
		host := ip.String()
		if ip.Is6() {
			host = "[" + host + "]"
		}
		if err := webhooks.CheckURL(ctx, "https://"+host+"/hooks", false); err != nil {
			t.Errorf("CheckURL(%s) = %v, want allowed", host, err)
		}
	}
	if err := webhooks.CheckURL(ctx, "http://127.0.0.1:8080/", true); err != nil {
		t.Errorf("AllowPrivate: %v", err)
	}
}
