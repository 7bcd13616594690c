package main

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/packline/packline/webhooks"
)

// The receiver is what judges the webhook guarantees, so it is tested on
// its own: it refuses a bad signature, fails a webhook-id at most maxFails
// times in a row, and the checks see an event sent under two webhook-ids.
func TestReceiver(t *testing.T) {
	r, err := startReceiver(1, 2, 1) // fail everything it may
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	secret := webhooks.NewSecret()
	if err := r.setSecret("st_1", secret); err != nil {
		t.Fatal(err)
	}
	send := func(id, body, sig string) int {
		t.Helper()
		ts := time.Now()
		req, _ := http.NewRequest("POST", r.endpoint("st_1"), bytes.NewReader([]byte(body)))
		req.Header.Set(webhooks.HeaderID, id)
		req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		if sig == "" {
			sig = webhooks.Sign(secret, id, ts, []byte(body))
		}
		req.Header.Set(webhooks.HeaderSignature, sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	body := `{"type":"order.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"ord_1"}}`
	for i, want := range []int{500, 500, 200, 500} {
		if got := send("msg_a", body, ""); got != want {
			t.Fatalf("attempt %d: %d, want %d", i+1, got, want)
		}
	}
	if !r.acked("st_1", "msg_a") || r.acked("st_1", "msg_b") {
		t.Fatal("acked: want msg_a only")
	}
	if got := send("msg_c", body, "v1,AAAA"); got != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d, want 401", got)
	}
	send("msg_b", body, "") // the same event, another webhook-id
	c := &checker{hooks: r}
	ch, _ := c.webhookIDs(context.Background(), nil, nil)
	if ch.Violations != 2 { // the event under two ids, the bad signature
		t.Fatalf("violations %d, want 2: %v", ch.Violations, ch.Examples)
	}
}
