package notify_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/packline/packline"
	"github.com/packline/packline/notify"
)

// The notify:sms handler renders the effect's template for the order, then
// sends it once per key (the messages row is the once).
func ExampleRender() {
	req := notify.Request{
		Channel:  notify.SMS,
		Template: "shipped_tracking",
		To:       notify.ToCustomer,
		Order: packline.Order{ID: "ord_01jabc", ExternalID: "1042", Currency: "DZD", Total: 250000,
			Customer: packline.Customer{Name: "Amina B.", Phone: "+213555123456"}},
		Store:    notify.Store{Name: "Bijoux Alger"},
		Shipment: &notify.Shipment{Courier: "sandbox", TrackingNumber: "SB827772319488533016"},
	}
	m, err := notify.Render(req)
	if errors.Is(err, notify.ErrNoRecipient) {
		return // record the message as skipped; no retry
	}
	var sms notify.SMSSender = &notify.Sandbox{}
	if _, err := sms.SendSMS(context.Background(), notify.Key("eff_0123", req.Template), m); err != nil {
		return // errors.Is(err, notify.ErrPermanent): give up; else retry
	}
	fmt.Println(m.To)
	fmt.Println(m.Text)
	// Output:
	// +213555123456
	// Bijoux Alger: your order 1042 has shipped (sandbox, tracking SB827772319488533016). Please have DZD 2,500.00 ready on delivery.
}
