package notify_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/notify"
)

func sampleOrder(flow string) packline.Order {
	return packline.Order{
		ID:         "ord_01jabcdefghjkmnpqrstvwxyz0",
		ExternalID: "1042",
		Flow:       flow,
		Status:     "shipped",
		Currency:   "USD",
		Customer:   packline.Customer{Name: "Amélie Poulain", Email: "amelie@example.com", Phone: "+33612345678"},
		ShippingAddress: &packline.Address{Line1: "15 rue Lepic", Line2: "3e étage", City: "Paris",
			PostalCode: "75018", Country: "FR"},
		Lines: []packline.Line{
			{SKU: "MUG-01", Name: "Engraved mug", Quantity: 2, UnitPrice: 1250, Customizable: true,
				Customization: json.RawMessage(`{"text":"To the best dad"}`)},
			{SKU: "PRINT-A4", Name: "A4 print", Quantity: 1, UnitPrice: 123450},
		},
		ShipDate:   "2026-06-01",
		Subtotal:   125950,
		Total:      125950,
		AmountPaid: 5000,
		Notes:      "Gift wrap, please",
		CreatedAt:  time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC),
	}
}

func sampleRequest(flow string, ch notify.Channel, template, to string) notify.Request {
	return notify.Request{
		Channel:  ch,
		Template: template,
		To:       to,
		Order:    sampleOrder(flow),
		Store:    notify.Store{Name: "Atelier Papier", Email: "shop@example.com", Phone: "+33100000000", URL: "https://atelier.example.com"},
		Shipment: &notify.Shipment{Courier: "sandbox", TrackingNumber: "SB559274429349920213",
			TrackingURL: "https://track.example.com/sandbox/SB559274429349920213"},
		Links: notify.Links{Order: "https://shop.example.com/o/abc", Pay: "https://shop.example.com/pay/abc",
			Proof: "https://shop.example.com/proof/abc", Feedback: "https://shop.example.com/feedback/abc",
			Admin: "https://admin.example.com/orders/abc"},
		Event:    "some_event",
		Data:     json.RawMessage(`{"reason":"card_declined","comment":"Bigger letters","short":[{"sku":"MUG-01","needed":2,"available":1}]}`),
		Deadline: time.Date(2026, 5, 11, 10, 0, 0, 0, time.UTC),
	}
}

// notifyEffect is one notify:* effect a built-in flow names.
type notifyEffect struct {
	flow, where string
	spec        flows.EffectSpec
}

func builtinNotifyEffects(t *testing.T) []notifyEffect {
	t.Helper()
	reg, err := flows.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var out []notifyEffect
	add := func(flow, where string, specs []flows.EffectSpec) {
		for _, s := range specs {
			if strings.HasPrefix(s.Type, "notify:") {
				out = append(out, notifyEffect{flow, where, s})
			}
		}
	}
	for _, name := range reg.Names() {
		f := reg.Get(name)
		add(name, "on_create", f.OnCreate)
		for _, e := range f.Events {
			for _, tr := range e.Transitions {
				add(name, e.Name, tr.Effects)
			}
		}
		for _, tr := range f.Automatic {
			add(name, "automatic", tr.Effects)
		}
	}
	return out
}

// TestEveryFlowTemplateRenders renders the message of every notify:* effect
// of every built-in flow, for its channel and recipient, so a flow can never
// name a missing or broken template.
func TestEveryFlowTemplateRenders(t *testing.T) {
	t.Parallel()
	effects := builtinNotifyEffects(t)
	if len(effects) < 24 {
		t.Fatalf("found only %d notify effects in the built-in flows", len(effects))
	}
	seen := map[string]bool{}
	for _, e := range effects {
		ch, ok := notify.ChannelOf(e.spec.Type)
		if !ok {
			t.Fatalf("%s %s: unknown notify effect type %s", e.flow, e.where, e.spec.Type)
		}
		seen[e.spec.Template] = true
		t.Run(e.flow+"/"+e.where+"/"+e.spec.Template, func(t *testing.T) {
			req := sampleRequest(e.flow, ch, e.spec.Template, e.spec.To)
			m, err := notify.Render(req)
			if err != nil {
				t.Fatal(err)
			}
			checkMessage(t, req, m)
		})
	}
	// The names FLOWS.md's transitions owe, so a template renamed in a flow
	// file is noticed here too.
	for _, name := range []string{"receipt", "payment_problem", "customization_submitted", "proof_request",
		"proof_rejected", "production_notice", "shipping_notice", "order_confirmation", "invoice",
		"ship_date_at_risk", "request_received", "card_check_failed", "request_accepted", "request_declined",
		"request_canceled", "payment_retry", "status_update", "request_expired", "request_completed",
		"new_order", "stock_short", "shipped_tracking", "shipping_confirmation", "feedback_request"} {
		if !seen[name] {
			t.Errorf("no built-in flow names template %s any more", name)
		}
	}
	reg, _ := flows.Builtin()
	if err := notify.Check(reg); err != nil {
		t.Fatalf("Check(builtin flows): %v", err)
	}
}

// TestEveryTemplateRenders renders each template file, for both recipients,
// including those no built-in flow names yet.
func TestEveryTemplateRenders(t *testing.T) {
	t.Parallel()
	for _, ch := range []notify.Channel{notify.Email, notify.SMS} {
		names := notify.Templates(ch)
		if len(names) == 0 {
			t.Fatalf("no %s templates", ch)
		}
		for _, name := range names {
			for _, to := range []string{notify.ToCustomer, notify.ToMerchant} {
				req := sampleRequest("prepaid-simple", ch, name, to)
				m, err := notify.Render(req)
				if err != nil {
					t.Fatalf("%s %s to %s: %v", ch, name, to, err)
				}
				checkMessage(t, req, m)
				// Sparse data: no shipment, no links, no event data.
				req.Shipment, req.Links, req.Data, req.Deadline = nil, notify.Links{}, nil, time.Time{}
				req.Order.ShippingAddress, req.Order.AmountPaid, req.Order.ExternalID = nil, 0, ""
				if m, err = notify.Render(req); err != nil {
					t.Fatalf("%s %s to %s, sparse: %v", ch, name, to, err)
				}
				checkMessage(t, req, m)
			}
		}
	}
}

func checkMessage(t *testing.T, req notify.Request, m notify.Message) {
	t.Helper()
	ref := req.Order.ExternalID
	if ref == "" {
		ref = req.Order.ID
	}
	for part, s := range map[string]string{"subject": m.Subject, "text": m.Text, "html": m.HTML} {
		if strings.Contains(s, "<no value>") || strings.Contains(s, "ZgotmplZ") {
			t.Errorf("%s %s: %s has an unfilled value:\n%s", req.Template, req.To, part, s)
		}
	}
	if m.Template != req.Template || m.Channel != req.Channel {
		t.Errorf("message names %s/%s, want %s/%s", m.Channel, m.Template, req.Channel, req.Template)
	}
	if !strings.Contains(m.Text, ref) {
		t.Errorf("%s: text lacks the order reference %s:\n%s", req.Template, ref, m.Text)
	}
	switch m.Channel {
	case notify.Email:
		if m.Subject == "" || strings.Contains(m.Subject, "\n") {
			t.Errorf("%s: subject %q", req.Template, m.Subject)
		}
		if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") || !strings.Contains(m.HTML, ref) ||
			!strings.Contains(m.HTML, req.Store.Name) || !strings.HasSuffix(strings.TrimSpace(m.HTML), "</html>") {
			t.Errorf("%s: HTML is not a whole page with the reference and store:\n%s", req.Template, m.HTML)
		}
		if strings.Contains(m.Text, "\n\n\n") || strings.HasPrefix(m.Text, "\n") {
			t.Errorf("%s: untidy text:\n%q", req.Template, m.Text)
		}
	case notify.SMS:
		if m.Subject != "" || m.HTML != "" || strings.Contains(m.Text, "\n") {
			t.Errorf("%s: SMS with subject, HTML or newlines: %+v", req.Template, m)
		}
		if n := len([]rune(m.Text)); n > 320 {
			t.Errorf("%s: SMS of %d characters (over two segments): %s", req.Template, n, m.Text)
		}
	}
}

func TestRenderContent(t *testing.T) {
	t.Parallel()
	req := sampleRequest("made-to-order", notify.Email, "receipt", notify.ToCustomer)
	m, err := notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "amelie@example.com" || m.ToName != "Amélie Poulain" || m.FromName != "Atelier Papier" || m.ReplyTo != "shop@example.com" {
		t.Fatalf("addressing: %+v", m)
	}
	for _, want := range []string{"Engraved mug", "MUG-01", "2 x Engraved mug", "USD 12.50", "USD 25.00",
		"USD 1,234.50", "Total:    USD 1,259.50", "Paid:     USD 50.00", "Due:      USD 1,209.50",
		"15 rue Lepic", "75018 Paris", "4 May 2026", "https://shop.example.com/o/abc"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("receipt text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{"Engraved mug", "USD 1,259.50", `href="https://shop.example.com/o/abc"`, "Amélie Poulain"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("receipt HTML lacks %q", want)
		}
	}

	// Shipping: the tracking number and link.
	req = sampleRequest("made-to-order", notify.Email, "shipping_notice", notify.ToCustomer)
	m, err = notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{m.Text, m.HTML} {
		if !strings.Contains(s, "SB559274429349920213") || !strings.Contains(s, "https://track.example.com/sandbox/SB559274429349920213") {
			t.Errorf("shipping notice lacks tracking number or link:\n%s", s)
		}
	}

	// SMS: to the phone, with the tracking number, the amount due on delivery.
	req = sampleRequest("cash-on-delivery", notify.SMS, "shipped_tracking", notify.ToCustomer)
	req.Order.Currency, req.Order.AmountPaid, req.Order.Total = "DZD", 0, 250000
	m, err = notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "+33612345678" || !strings.Contains(m.Text, "SB559274429349920213") || !strings.Contains(m.Text, "DZD 2,500.00") {
		t.Fatalf("SMS = %+v", m)
	}

	// Merchant messages go to the store, with the event's data.
	req = sampleRequest("cash-on-delivery", notify.Email, "stock_short", notify.ToMerchant)
	m, err = notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "shop@example.com" || !strings.Contains(m.Text, "MUG-01: needed 2, available 1") ||
		!strings.Contains(m.Text, "https://admin.example.com/orders/abc") {
		t.Fatalf("stock_short = %+v", m)
	}
	req.Data = json.RawMessage(`{"skus":["A-1","B-2"]}`)
	if m, err = notify.Render(req); err != nil || !strings.Contains(m.Text, "  A-1\n  B-2") {
		t.Fatalf("stock_short with a list of SKUs: %v\n%s", err, m.Text)
	}
	// A payment failure shows the provider's reason.
	req = sampleRequest("made-to-order", notify.Email, "payment_problem", notify.ToCustomer)
	req.Data = json.RawMessage(`{"payment_id":"pay_1","error_code":"insufficient_funds"}`)
	if m, err = notify.Render(req); err != nil || !strings.Contains(m.Text, "(the bank said: insufficient funds)") {
		t.Fatalf("payment_problem: %v\n%s", err, m.Text)
	}
}

func TestRenderEscapesHTMLOnly(t *testing.T) {
	t.Parallel()
	req := sampleRequest("made-to-order", notify.Email, "proof_request", notify.ToCustomer)
	req.Order.Customer.Name = `<script>alert("x")</script>`
	req.Links.Proof = "javascript:alert(1)"
	m, err := notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Fatalf("HTML does not escape the customer's name:\n%s", m.HTML)
	}
	if strings.Contains(m.HTML, `href="javascript:`) {
		t.Fatalf("HTML links a javascript: URL:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, `Hello <script>alert("x")</script>,`) {
		t.Fatalf("text should carry the name as it is:\n%s", m.Text)
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	req := sampleRequest("made-to-order", notify.Email, "no_such_message", notify.ToCustomer)
	if _, err := notify.Render(req); !errors.Is(err, notify.ErrUnknownTemplate) {
		t.Fatalf("unknown template: %v", err)
	}
	// receipt has no SMS part.
	req = sampleRequest("made-to-order", notify.SMS, "receipt", notify.ToCustomer)
	if _, err := notify.Render(req); !errors.Is(err, notify.ErrUnknownTemplate) {
		t.Fatalf("receipt as SMS: %v", err)
	}
	req = sampleRequest("made-to-order", notify.Email, "receipt", notify.ToCustomer)
	req.Order.Customer.Email = ""
	if _, err := notify.Render(req); !errors.Is(err, notify.ErrNoRecipient) {
		t.Fatalf("customer without email: %v", err)
	}
	req = sampleRequest("cash-on-delivery", notify.Email, "new_order", notify.ToMerchant)
	req.Store.Email = ""
	if _, err := notify.Render(req); !errors.Is(err, notify.ErrNoRecipient) {
		t.Fatalf("store without email: %v", err)
	}
}

func TestCheckFindsMissingTemplates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flow := `name: custom-check
title: Custom
initial: open
on_create:
  - {email: no_such_message}
  - {sms: receipt}
states:
  open: {}
  done: {terminal: true}
events:
  close:
    actors: [merchant]
    transitions:
      - {from: open, to: done, effects: [{email: shipping_notice}]}
`
	if err := os.WriteFile(filepath.Join(dir, "custom.yaml"), []byte(flow), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := flows.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = notify.Check(reg)
	if !errors.Is(err, notify.ErrUnknownTemplate) {
		t.Fatalf("Check = %v, want ErrUnknownTemplate", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "no_such_message has no email template") || !strings.Contains(msg, "receipt has no sms template") ||
		strings.Contains(msg, "shipping_notice") {
		t.Fatalf("Check named the wrong templates: %v", err)
	}
}

func TestFormatMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{0, "USD", "USD 0.00"},
		{5, "USD", "USD 0.05"},
		{123450, "USD", "USD 1,234.50"},
		{-2500, "EUR", "EUR -25.00"},
		{1500, "JPY", "JPY 1,500"},
		{12345, "KWD", "KWD 12.345"},
		{1, "KWD", "KWD 0.001"},
		{100000000, "DZD", "DZD 1,000,000.00"},
		{999, "XXX", "XXX 9.99"},
		{math.MinInt64, "JPY", "JPY -9,223,372,036,854,775,808"},
		{math.MaxInt64, "USD", "USD 92,233,720,368,547,758.07"},
	}
	for _, tt := range tests {
		if got := notify.FormatMoney(tt.minor, tt.currency); got != tt.want {
			t.Errorf("FormatMoney(%d, %s) = %q, want %q", tt.minor, tt.currency, got, tt.want)
		}
	}
}
