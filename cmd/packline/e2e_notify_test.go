package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// webhookSink is a merchant's webhook endpoint on 127.0.0.1 (dev allows
// private addresses) that answers 200 and keeps what it got, each request
// verified with the standard-webhooks library and the endpoint's secret.
type webhookSink struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	got    []sinkRequest
}

type sinkRequest struct {
	id        string
	typ       string
	orderID   string
	data      obj
	verifyErr error
}

func newWebhookSink(t *testing.T) *webhookSink {
	t.Helper()
	s := &webhookSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(s.secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		var msg struct {
			Type string `json:"type"`
			Data obj    `json:"data"`
		}
		if jerr := json.Unmarshal(body, &msg); jerr != nil && err == nil {
			err = jerr
		}
		id, _ := msg.Data["id"].(string)
		s.got = append(s.got, sinkRequest{id: r.Header.Get("webhook-id"), typ: msg.Type, orderID: id, data: msg.Data, verifyErr: err})
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.Server.Close)
	return s
}

func (s *webhookSink) setSecret(secret string) {
	s.mu.Lock()
	s.secret = secret
	s.mu.Unlock()
}

// forOrder returns what the sink got about an order.
func (s *webhookSink) forOrder(orderID string) []sinkRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sinkRequest
	for _, r := range s.got {
		if r.orderID == orderID {
			out = append(out, r)
		}
	}
	return out
}

func sinkTypes(rs []sinkRequest) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.typ)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// messagesOf returns the order's messages (GET /v1/orders/{id}/messages).
func (f *fleet) messagesOf(id string) []obj {
	f.t.Helper()
	status, body := f.call("GET", "/v1/orders/"+id+"/messages", f.mk, nil)
	if status != 200 {
		f.t.Fatalf("messages of %s: %d %v", id, status, body)
	}
	var out []obj
	for _, m := range body["messages"].([]any) {
		out = append(out, m.(obj))
	}
	return out
}

// waitMessage waits for the order's message of a template to be sent.
func (f *fleet) waitMessage(id, template string) obj {
	f.t.Helper()
	var got obj
	f.waitFor(template+" of "+id+" to be sent", 60*time.Second, func() bool {
		for _, m := range f.messagesOf(id) {
			if m["template"] == template && m["status"] == "sent" {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// A cash-on-delivery order through `packline dev`, with no hand on the
// database: the merchant is emailed the new order, a signed webhook
// arrives for every state change at the endpoint subscribed to order.*
// (and only the shipped one at the endpoint subscribed to order.shipped),
// and the customer gets an SMS with the tracking number when it ships.
func TestNotificationsAndWebhooksEndToEnd(t *testing.T) {
	for _, backing := range backings() {
		t.Run(backing, func(t *testing.T) {
			t.Parallel()
			f := startDev(t, backing, map[string]string{
				// A day lasts 8.6 s: the sandbox courier's journey takes a
				// few seconds, and no timer fires meanwhile.
				"PACKLINE_TIMER_SCALE":        "0.0001",
				"PACKLINE_DEV_COURIER_SECRET": "e2e-notify-courier-secret-0123",
			})
			all, shipped := newWebhookSink(t), newWebhookSink(t)
			var secrets []string
			t.Cleanup(func() {
				logs := f.logs.String()
				for _, s := range append([]string{"ada@example.com", "+12025550100", "orders@demo-shop.example", testMerchantKey}, secrets...) {
					if strings.Contains(logs, s) {
						t.Errorf("the logs show %q", s)
					}
				}
			})

			status, st := f.call("PATCH", "/v1/store", f.mk, obj{"email": "orders@demo-shop.example"})
			if status != 200 || st["email"] != "orders@demo-shop.example" {
				t.Fatalf("PATCH /v1/store: %d %v", status, st)
			}
			for _, ep := range []struct {
				sink   *webhookSink
				events []string
			}{{all, []string{"order.*"}}, {shipped, []string{"order.shipped"}}} {
				status, body := f.call("POST", "/v1/webhook-endpoints", f.mk, obj{"url": ep.sink.URL + "/hooks", "events": ep.events})
				secret, _ := body["secret"].(string)
				if status != 201 || !strings.HasPrefix(secret, "whsec_") {
					t.Fatalf("create endpoint: %d %v", status, body)
				}
				ep.sink.setSecret(secret)
				secrets = append(secrets, secret)
			}

			f.call("PUT", "/v1/stock/MUG", f.mk, obj{"on_hand": 10})
			id := f.create(orderBody("cash-on-delivery", ""))

			// The merchant's new-order email, by the sandbox notifier.
			m := f.waitMessage(id, "new_order")
			if m["channel"] != "email" || m["to"] != "orders@demo-shop.example" || m["recipient"] != "merchant" ||
				!strings.Contains(m["subject"].(string), "New order") || !strings.Contains(m["body"].(string), "MUG") || m["sent_at"] == nil {
				t.Fatalf("new_order message %v", m)
			}

			f.send(id, "confirm", nil)
			f.waitAllowed(id, "process")
			f.send(id, "process", nil)
			f.send(id, "ship", obj{"courier": "sandbox"})
			o := f.waitStatus(id, "shipped")
			sh := o["shipments"].([]any)[0].(obj)
			tracking := sh["tracking_number"].(string)

			// The SMS with the tracking number.
			sms := f.waitMessage(id, "shipped_tracking")
			if sms["channel"] != "sms" || sms["to"] != "+12025550100" || !strings.Contains(sms["body"].(string), tracking) {
				t.Fatalf("shipped_tracking message %v, want the tracking number %s", sms, tracking)
			}
			// The courier plays the parcel forward to delivered.
			f.waitStatus(id, "delivered")

			want := "order.confirmed order.delivered order.pending order.processing order.shipped"
			var got []sinkRequest
			f.waitFor("a webhook for every state change", 60*time.Second, func() bool {
				got = all.forOrder(id)
				return sinkTypes(got) == want
			})
			ids := map[string]bool{}
			for _, r := range got {
				if r.verifyErr != nil {
					t.Fatalf("%s: signature: %v", r.typ, r.verifyErr)
				}
				if ids[r.id] || !strings.HasPrefix(r.id, "msg_") {
					t.Fatalf("webhook-id %q repeated or malformed", r.id)
				}
				ids[r.id] = true
				if r.typ == "order.shipped" {
					shs, _ := r.data["shipments"].([]any)
					if r.data["status"] != "shipped" || len(shs) != 1 || shs[0].(obj)["tracking_number"] != tracking {
						t.Fatalf("order.shipped data %v", r.data)
					}
				}
			}
			f.waitFor("the shipped webhook at the order.shipped endpoint", 60*time.Second, func() bool {
				return sinkTypes(shipped.forOrder(id)) == "order.shipped"
			})
			if rs := shipped.forOrder(id); rs[0].verifyErr != nil {
				t.Fatalf("signature at the second endpoint: %v", rs[0].verifyErr)
			}

			// The delivery log says the same (once the last attempt is
			// recorded, just after the receiver answered): one delivered
			// delivery per event, each in one attempt.
			// The order.* endpoint, found by its URL: two endpoints made in
			// the same millisecond list in either order.
			_, eps := f.call("GET", "/v1/webhook-endpoints", f.mk, nil)
			epID := ""
			for _, ep := range eps["webhook_endpoints"].([]any) {
				if ep := ep.(obj); ep["url"] == all.URL+"/hooks" {
					epID = ep["id"].(string)
				}
			}
			var mine []obj
			f.waitFor("the delivery log to show five deliveries", 60*time.Second, func() bool {
				_, log := f.call("GET", "/v1/webhook-endpoints/"+epID+"/deliveries", f.mk, nil)
				mine = mine[:0]
				delivered := 0
				for _, d := range log["deliveries"].([]any) {
					if d := d.(obj); d["order_id"] == id {
						mine = append(mine, d)
						if d["status"] == "delivered" {
							delivered++
						}
					}
				}
				return delivered == 5
			})
			for _, d := range mine {
				if len(d["attempts"].([]any)) != 1 || !ids[d["webhook_id"].(string)] {
					t.Fatalf("delivery %v", d)
				}
			}
			if len(mine) != 5 {
				t.Fatalf("%d deliveries of %s in the log, want 5", len(mine), id)
			}
		})
	}
}

// The senders' settings: a bad value stops the process with a message that
// names the variable and never repeats a password.
func TestNotifyConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	c, err := readConfig(env())
	if err != nil || c.SMTP != nil || c.SMS != nil {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = readConfig(env("PACKLINE_SMTP_URL", "smtp://mailer:s3cret-pw@mail.example:587?from=no-reply@shop.example",
		"PACKLINE_SMS_ACCOUNT_SID", "AC123", "PACKLINE_SMS_AUTH_TOKEN", "tok", "PACKLINE_SMS_FROM", "+15005550006"))
	if err != nil || c.SMTP == nil || c.SMTP.Host != "mail.example" || c.SMTP.Port != 587 || c.SMTP.Password != "s3cret-pw" ||
		c.SMS == nil || c.SMS.AccountSID != "AC123" || c.SMS.BaseURL != "" {
		t.Fatalf("senders: %+v %+v %v", c.SMTP, c.SMS, err)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PACKLINE_SMTP_URL", "http://mailer:s3cret-pw@mail.example"}, "PACKLINE_SMTP_URL"},
		{[]string{"PACKLINE_SMTP_URL", "smtp://mailer:s3cret-pw@mail.example:587"}, "PACKLINE_SMTP_URL"}, // no from
		{[]string{"PACKLINE_SMS_ACCOUNT_SID", "AC123"}, "PACKLINE_SMS_AUTH_TOKEN"},
		{[]string{"PACKLINE_SMS_ACCOUNT_SID", "AC123", "PACKLINE_SMS_AUTH_TOKEN", "tok"}, "PACKLINE_SMS_FROM"},
		{[]string{"PACKLINE_SMS_ACCOUNT_SID", "AC1", "PACKLINE_SMS_AUTH_TOKEN", "t", "PACKLINE_SMS_FROM", "+1", "PACKLINE_SMS_BASE_URL", "api.twilio.com"}, "PACKLINE_SMS_BASE_URL"},
	} {
		_, err := readConfig(env(tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("%v: %v, want an error naming %s without the password", tc.env, err, tc.want)
		}
	}
}

// packline stores create --email sets where the store's merchant
// notifications go.
func TestCreateStoreWithEmail(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "p.db")}
	if _, err := runCmd(t, env, "migrate"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, env, "stores", "create", "--name", "Bad", "--flow", "wholesale", "--email", "not-an-email"); err == nil || !strings.Contains(err.Error(), "--email") {
		t.Fatalf("a bad --email: %v", err)
	}
	out, err := runCmd(t, env, "stores", "create", "--name", "Copper Anvil", "--flow", "wholesale", "--email", "orders@copper.example")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	db := cliDB(t, env)
	mk := regexp.MustCompile(`merchant key:\s+(\S+)`).FindStringSubmatch(out)
	if mk == nil {
		t.Fatalf("no merchant key in:\n%s", out)
	}
	k, err := db.Authenticate(t.Context(), mk[1])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := db.StoreContact(t.Context(), k.StoreID); err != nil || c.Email != "orders@copper.example" {
		t.Fatalf("store contact %+v %v", c, err)
	}
}
