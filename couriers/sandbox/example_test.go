package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
)

// The courier:label handler creates the label with the order id as its key;
// the API's callback route parses what the courier posts back and sends the
// flow event the status implies, when it is news.
func Example() {
	c, _ := sandbox.New(sandbox.Options{Secret: "dev-secret"})
	label, _ := c.CreateLabel(context.Background(), couriers.LabelRequest{
		Key:       "ord_01jabc",
		Reference: "1042",
		From:      couriers.Party{Name: "Atelier Papier", Address: packline.Address{Line1: "12 rue des Lilas", City: "Lyon", Country: "FR"}},
		To:        couriers.Party{Name: "Amina B.", Address: packline.Address{Line1: "5 rue Didouche Mourad", City: "Alger", Country: "DZ"}},
	})
	fmt.Println(label.TrackingNumber, len(label.PDF) > 0)

	// dev plays the shipment forward through the real endpoint.
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	current, currentAt := couriers.StatusPreTransit, now.Add(-time.Hour)
	for i, st := range sandbox.Delivered {
		req, _ := sandbox.NewCallbackRequest(context.Background(), "http://127.0.0.1:8080/v1/couriers/sandbox/callbacks",
			"dev-secret", label.TrackingNumber, st, now.Add(time.Duration(i)*time.Minute), now)
		body, _ := io.ReadAll(req.Body)

		// The callback route:
		u, err := c.ParseCallback(req.Header, body, now)
		if err != nil {
			fmt.Println(err) // 401 or 400
			continue
		}
		if couriers.Supersedes(current, currentAt, u.Status, u.OccurredAt) {
			current, currentAt = u.Status, u.OccurredAt
			fmt.Printf("%s → event %q\n", u.Status, couriers.FlowEvent(u.Status))
		}
	}
	// Output:
	// SB827772319488533016 true
	// in_transit → event "ship"
	// out_for_delivery → event "ship"
	// delivered → event "deliver"
}
