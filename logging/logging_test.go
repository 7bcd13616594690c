package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/slogtest"
)

// The personal data and secrets a run of packline sees, as a seed would.
var seeded = []string{
	"ada.lovelace@example.com",
	"Ada Lovelace",
	"+14155550123",
	"+44 20 7946 0958",
	"12 Analytical Engine Way",
	"EC1A 1BB",
	"sk_test_51HxSecretStripeKey",
	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	"pl_sf_7d3c2b1a0f9e8d7c6b5a", // an API key, only ever seen in a header
	"hunter2-db-password",
	"tok_abcdef123456",
}

type address struct {
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type customer struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
}

type order struct {
	ID              string   `json:"id"`
	Customer        customer `json:"customer"`
	ShippingAddress address  `json:"shipping_address"`
	Notes           string   `json:"notes"`
	Lines           []line   `json:"lines"`
}

type line struct {
	SKU           string `json:"sku"`
	Customization string `json:"customization"`
}

// valuer logs personal data through LogValue.
type valuer struct{}

func (valuer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("email", "ada.lovelace@example.com"),
		slog.String("contact", "call +14155550123"),
	)
}

// stringer logs personal data through String.
type stringer struct{}

func (stringer) String() string { return "customer ada.lovelace@example.com" }

func logEverything(t *testing.T, logger *slog.Logger) {
	t.Helper()
	o := order{
		ID:              "ord_kept_1",
		Customer:        customer{Name: "Ada Lovelace", Email: "ada.lovelace@example.com", Phone: "+14155550123"},
		ShippingAddress: address{Line1: "12 Analytical Engine Way", City: "London", PostalCode: "EC1A 1BB", Country: "GB"},
		Notes:           "ring +44 20 7946 0958 or mail ada.lovelace@example.com",
		Lines:           []line{{SKU: "sku_kept", Customization: "for ada.lovelace@example.com"}},
	}
	ctx := WithAttrs(t.Context(), slog.String("request_id", "req_kept_1"))
	ctx = WithAttrs(ctx, slog.String("task_id", "task_kept_1"), slog.String("customer_email", "ada.lovelace@example.com"))

	// The message itself.
	logger.InfoContext(ctx, "order from ada.lovelace@example.com, phone +14155550123, Authorization: Bearer pl_sf_7d3c2b1a0f9e8d7c6b5a")
	// Sensitive keys, whatever the value.
	logger.InfoContext(ctx, "keys",
		"email", "ada.lovelace@example.com",
		"phone", "+14155550123",
		"name", "Ada Lovelace",
		"address", "12 Analytical Engine Way",
		"key", "pl_sf_7d3c2b1a0f9e8d7c6b5a",
		"api_key", "pl_sf_7d3c2b1a0f9e8d7c6b5a",
		"secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"token", "tok_abcdef123456",
		"password", "hunter2-db-password",
		"Authorization", "Bearer pl_sf_7d3c2b1a0f9e8d7c6b5a",
		"customerName", "Ada Lovelace",
	)
	// Innocent keys with personal values.
	logger.WarnContext(ctx, "values",
		"note", "reach me at ada.lovelace@example.com or +44 20 7946 0958",
		"header", "Bearer pl_sf_7d3c2b1a0f9e8d7c6b5a",
		"stripe", "sk_test_51HxSecretStripeKey",
		"endpoint_secret_hint", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"dsn_in_text", "postgres://packline:hunter2-db-password@db.internal:5432/packline",
		"to", "+14155550123",
		"to_state", "shipped",
	)
	// Structs, maps, slices, errors, byte slices, LogValuers, Stringers.
	logger.ErrorContext(ctx, "structured",
		"order", o,
		"order_ptr", &o,
		"meta", map[string]any{"contact_email": "ada.lovelace@example.com", "gift_note": "to Ada, +14155550123"},
		"list", []string{"ada.lovelace@example.com", "+14155550123"},
		"err", fmt.Errorf("send receipt to ada.lovelace@example.com: %w", errors.New("mailbox full")),
		"raw", []byte(`{"email":"ada.lovelace@example.com"}`),
		"valuer", valuer{},
		"stringer", stringer{},
	)
	// Groups, With and WithGroup.
	logger.With("customer", "Ada Lovelace", slog.String("contact", "ada.lovelace@example.com")).
		WithGroup("shipping_address").
		InfoContext(ctx, "grouped", "line1", "12 Analytical Engine Way", "postal_code", "EC1A 1BB")
	logger.InfoContext(ctx, "group attr",
		slog.Group("customer", slog.String("name", "Ada Lovelace"), slog.String("email", "ada.lovelace@example.com")),
		slog.Group("request", slog.String("authorization", "Bearer pl_sf_7d3c2b1a0f9e8d7c6b5a"), slog.String("path", "/v1/orders")),
	)
	logger.WithGroup("payment").InfoContext(ctx, "payment", "client_secret", "sk_test_51HxSecretStripeKey", "provider", "stripe")
}

func TestNoPersonalDataInAnyPath(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logger, err := New(&buf, "debug", format)
			if err != nil {
				t.Fatal(err)
			}
			logEverything(t, logger)
			out := buf.String()
			for _, s := range seeded {
				if strings.Contains(out, s) {
					t.Errorf("%q appears in the %s log", s, format)
				}
			}
			// Redaction must not blind the logs: ids, states and plain
			// values stay.
			for _, s := range []string{"req_kept_1", "task_kept_1", "ord_kept_1", "sku_kept", "shipped", "stripe", "/v1/orders", "mailbox full", Redacted} {
				if !strings.Contains(out, s) {
					t.Errorf("%q is missing from the %s log", s, format)
				}
			}
			if n := strings.Count(out, "\n"); n != 7 {
				t.Errorf("%d lines, want 7:\n%s", n, out)
			}
			if t.Failed() {
				t.Logf("log:\n%s", out)
			}
		})
	}
}

func TestJSONLinesStayValid(t *testing.T) {
	var buf bytes.Buffer
	logger, err := New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	logEverything(t, logger)
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, l)
		}
		if m["request_id"] != "req_kept_1" || m["task_id"] != "task_kept_1" {
			t.Errorf("context ids missing from %s", l)
		}
	}
}

func TestContextAttrsTravel(t *testing.T) {
	var buf bytes.Buffer
	logger, err := New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithAttrs(t.Context(), slog.String("request_id", "req_1"))
	child := WithAttrs(ctx, slog.String("task_id", "t_1"))
	logger.InfoContext(child, "child")
	logger.InfoContext(ctx, "parent")
	logger.Info("none")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	decode := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := decode(lines[0]); m["request_id"] != "req_1" || m["task_id"] != "t_1" {
		t.Errorf("child record lacks its context ids: %s", lines[0])
	}
	if m := decode(lines[1]); m["request_id"] != "req_1" || m["task_id"] != nil {
		t.Errorf("parent record has the wrong ids (WithAttrs must not mutate its parent): %s", lines[1])
	}
	if m := decode(lines[2]); m["request_id"] != nil {
		t.Errorf("record without context has ids: %s", lines[2])
	}
	if got := Attrs(t.Context()); got != nil {
		t.Errorf("Attrs of an empty context = %v", got)
	}
}

func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	logger, err := New(&buf, "WARN", "text")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("quiet")
	logger.Warn("loud")
	if out := buf.String(); strings.Contains(out, "quiet") || !strings.Contains(out, "loud") || !strings.Contains(out, "level=WARN") {
		t.Errorf("warn level let through the wrong records: %s", out)
	}
}

func TestBadConfigNamesTheVariable(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "verbose", "json"); err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Errorf("bad level: err = %v, want one naming LOG_LEVEL", err)
	}
	if _, err := New(&bytes.Buffer{}, "info", "yaml"); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Errorf("bad format: err = %v, want one naming LOG_FORMAT", err)
	}
	if _, err := New(&bytes.Buffer{}, "", ""); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mail bob@shop.example.co.uk now", "mail [redacted] now"},
		{"call +1 (415) 555-0100.", "call [redacted]."},
		{"order 12345678 at 2024-05-01", "order 12345678 at 2024-05-01"},
		{"Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"},
		{"redis://:s3cret@127.0.0.1:6379/0", "redis://[redacted]@127.0.0.1:6379/0"},
		{"status shipped", "status shipped"},
	}
	for _, tt := range tests {
		if got := Scrub(tt.in); got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSensitiveKey(t *testing.T) {
	for _, k := range []string{"email", "Customer-Email", "phone", "shipping_address", "name", "api_key", "Authorization", "client_secret", "webhook.secret", "token", "password", "idempotency_key", "billingAddress"} {
		if !sensitiveKey(k) {
			t.Errorf("%q is not treated as sensitive", k)
		}
	}
	for _, k := range []string{"request_id", "task_id", "flow", "status", "to", "event", "queue", "sku", "route", "code", "addr"} {
		if sensitiveKey(k) {
			t.Errorf("%q is treated as sensitive", k)
		}
	}
}

// The context handler must still be a correct slog.Handler.
func TestContextHandlerConforms(t *testing.T) {
	var buf bytes.Buffer
	h := NewContextHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: redactAttr}))
	results := func() []map[string]any {
		var ms []map[string]any
		for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		return ms
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Error(err)
	}
}
