package workers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/packline/packline"
	"github.com/packline/packline/notify"
	"github.com/packline/packline/notify/notifytest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
	"github.com/packline/packline/workers"
	"github.com/packline/packline/workers/fleettest"
)

// scriptedSender is an email and SMS sender whose answers a test scripts:
// fail, when set, is asked before every send.
type scriptedSender struct {
	calls atomic.Int32
	fail  func(call int32) error
	sb    notify.Sandbox
}

func (s *scriptedSender) send(ctx context.Context, key string, m notify.Message) (notify.Receipt, error) {
	n := s.calls.Add(1)
	if s.fail != nil {
		if err := s.fail(n); err != nil {
			return notify.Receipt{}, err
		}
	}
	return s.sb.SendEmail(ctx, key, m)
}

func (s *scriptedSender) SendEmail(ctx context.Context, key string, m notify.Message) (notify.Receipt, error) {
	return s.send(ctx, key, m)
}

func (s *scriptedSender) SendSMS(ctx context.Context, key string, m notify.Message) (notify.Receipt, error) {
	return s.send(ctx, key, m)
}

// notifyFixture is a database with a cash-on-delivery store and one order,
// whose creation owes the merchant's new_order email.
type notifyFixture struct {
	db    *store.DB
	store store.Store
	order *packline.Order
}

func newNotifyFixture(t *testing.T, dialect, merchantEmail string) notifyFixture {
	t.Helper()
	ctx := t.Context()
	db := storetest.Open(t, dialect, store.Options{})
	s, _, _, err := db.CreateStore(ctx, "Chez Amina", "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	if merchantEmail != "" {
		if _, err := db.UpdateStoreContact(ctx, s.ID, store.ContactUpdate{Email: &merchantEmail}); err != nil {
			t.Fatal(err)
		}
	}
	o, _, err := db.CreateOrder(ctx, s.ID, packline.Order{Currency: "DZD", ExternalID: "A-1001",
		Customer: packline.Customer{Name: "Amina", Phone: "+213555123456"}, Lines: []packline.Line{line("TEE-M", 2)}},
		customer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return notifyFixture{db: db, store: s, order: o}
}

// effect returns the order's newest effect of typ as a handler gets it.
func (f notifyFixture) effect(t *testing.T, typ string) workers.Effect {
	t.Helper()
	return effectFor(t, f.db, f.order.ID, typ)
}

func effectFor(t *testing.T, db *store.DB, orderID, typ string) workers.Effect {
	t.Helper()
	ctx := t.Context()
	rows, err := db.Outbox(ctx, orderID)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Type != typ {
			continue
		}
		row, err := db.Effect(ctx, rows[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		eff, err := row.Effect()
		if err != nil {
			t.Fatal(err)
		}
		o, err := db.OrderByID(ctx, orderID)
		if err != nil {
			t.Fatal(err)
		}
		return workers.Effect{ID: row.ID, Type: row.Type, OrderID: row.OrderID, StoreID: row.StoreID, Version: row.Version,
			Effect: eff, Order: o, CreatedAt: row.CreatedAt}
	}
	t.Fatalf("order %s owes no %s", orderID, typ)
	return workers.Effect{}
}

func (f notifyFixture) messages(t *testing.T) []store.Message {
	t.Helper()
	ms, err := f.db.OrderMessages(t.Context(), f.store.ID, f.order.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// The notify handler run twice, and twice at once, sends one message: the
// messages row, keyed by (effect, template), is claimed by one run and
// sent once.
func TestNotifyHandlerRunTwiceSendsOneMessage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		f := newNotifyFixture(t, dialect, "orders@chez-amina.example")
		sender := &scriptedSender{}
		n := workers.NewNotifier(f.db, workers.NotifierConfig{Email: sender, SMS: sender, EmailProvider: "scripted", Logger: fleettest.Logger()})
		e := f.effect(t, "notify:email")
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A run that finds another holding the message is told to
				// retry; the message is sent once either way.
				if _, err := n.HandleEffect(ctx, e); err != nil && !strings.Contains(err.Error(), "another worker") {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if _, err := n.HandleEffect(ctx, e); err != nil {
			t.Fatal(err)
		}
		if got := sender.sb.Sent(); len(got) != 1 || got[0].Key != notify.Key(e.ID, "new_order") {
			t.Fatalf("sent %+v, want the new_order email once", got)
		}
		ms := f.messages(t)
		if len(ms) != 1 {
			t.Fatalf("%d messages", len(ms))
		}
		m := ms[0]
		if m.Status != store.MessageSent || m.Channel != "email" || m.Template != "new_order" || m.RecipientType != "merchant" ||
			m.Recipient != "orders@chez-amina.example" || !strings.Contains(m.Subject, "A-1001") || !strings.Contains(m.Body, "TEE-M") ||
			!strings.Contains(m.HTML, "<html") || !m.SentAt.Valid || m.Provider != "scripted" || !strings.HasPrefix(m.ProviderID, "sandbox_") {
			t.Fatalf("message %+v", m)
		}
	})
}

// With no sender configured (the embedded default) the stored message is
// the record: sent by the sandbox, to nowhere.
func TestNotifySandboxStoresTheMessage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		f := newNotifyFixture(t, dialect, "orders@chez-amina.example")
		n := workers.NewNotifier(f.db, workers.NotifierConfig{Logger: fleettest.Logger()})
		if _, err := n.HandleEffect(t.Context(), f.effect(t, "notify:email")); err != nil {
			t.Fatal(err)
		}
		ms := f.messages(t)
		if len(ms) != 1 || ms[0].Status != store.MessageSent || ms[0].Provider != "sandbox" || !strings.HasPrefix(ms[0].ProviderID, "sandbox_") {
			t.Fatalf("messages %+v", ms)
		}
	})
}

// A message with nobody to send it to is skipped, not retried; a permanent
// refusal fails for good (SkipRetry) and is never sent again; a transient
// failure is retried, and sent once.
func TestNotifySkippedPermanentAndTransient(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()

		// The store has no email: new_order is skipped.
		f := newNotifyFixture(t, dialect, "")
		sender := &scriptedSender{}
		n := workers.NewNotifier(f.db, workers.NotifierConfig{Email: sender, Logger: fleettest.Logger()})
		for range 2 {
			if _, err := n.HandleEffect(ctx, f.effect(t, "notify:email")); err != nil {
				t.Fatalf("a message with no recipient: %v", err)
			}
		}
		if ms := f.messages(t); len(ms) != 1 || ms[0].Status != store.MessageSkipped || !strings.Contains(ms[0].Error, "no recipient") || sender.calls.Load() != 0 {
			t.Fatalf("skipped message %+v, %d sends", ms, sender.calls.Load())
		}

		// The provider refuses it for good.
		f = newNotifyFixture(t, dialect, "orders@chez-amina.example")
		refuse := &scriptedSender{fail: func(int32) error { return fmt.Errorf("%w: 550 mailbox unknown", notify.ErrPermanent) }}
		n = workers.NewNotifier(f.db, workers.NotifierConfig{Email: refuse, Logger: fleettest.Logger()})
		for range 2 {
			_, err := n.HandleEffect(ctx, f.effect(t, "notify:email"))
			if !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("permanent failure returned %v, want SkipRetry", err)
			}
		}
		if ms := f.messages(t); len(ms) != 1 || ms[0].Status != store.MessageFailed || refuse.calls.Load() != 1 {
			t.Fatalf("refused message %+v after %d sends", ms, refuse.calls.Load())
		}

		// The provider is down once.
		f = newNotifyFixture(t, dialect, "orders@chez-amina.example")
		flaky := &scriptedSender{fail: func(n int32) error {
			if n == 1 {
				return errors.New("connection refused")
			}
			return nil
		}}
		n = workers.NewNotifier(f.db, workers.NotifierConfig{Email: flaky, EmailProvider: "flaky", Logger: fleettest.Logger()})
		if _, err := n.HandleEffect(ctx, f.effect(t, "notify:email")); err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("transient failure returned %v, want a retry", err)
		}
		if ms := f.messages(t); len(ms) != 1 || ms[0].Status != store.MessageSending || ms[0].Error == "" {
			t.Fatalf("message after a transient failure %+v", ms)
		}
		if _, err := n.HandleEffect(ctx, f.effect(t, "notify:email")); err != nil {
			t.Fatal(err)
		}
		if ms := f.messages(t); len(ms) != 1 || ms[0].Status != store.MessageSent || ms[0].Attempts != 2 || ms[0].Provider != "flaky" || len(flaky.sb.Sent()) != 1 {
			t.Fatalf("message after the retry %+v", ms)
		}
	})
}

// Through the fleet: the worker renders the merchant's new-order email and
// sends it over SMTP to a real mailpit, read back through its API.
func TestNotifyEmailThroughSMTPToMailpit(t *testing.T) {
	mp := notifytest.Mailpit(t)
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		merchantEmail := "orders-" + dialect + "@chez-amina.example"
		sender, err := notify.NewSMTPSender(notify.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, Security: notify.SMTPPlain,
			From: "packline <no-reply@packline.example>"})
		if err != nil {
			t.Fatal(err)
		}
		e := setup(t, dialect, "cash-on-delivery", setupOpts{noStart: true})
		if _, err := e.db.UpdateStoreContact(ctx, e.store.ID, store.ContactUpdate{Email: &merchantEmail}); err != nil {
			t.Fatal(err)
		}
		n := workers.NewNotifier(e.db.DB, workers.NotifierConfig{Email: sender, Logger: fleettest.Logger()})
		e.start(fleettest.Options{Deps: workers.Deps{Email: n, SMS: n}})
		o := e.create("")
		var m store.Message
		fleettest.WaitFor(t, wait, "the new_order email to be sent", func() bool {
			ms, err := e.db.OrderMessages(ctx, e.store.ID, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 1 {
				m = ms[0]
			}
			return m.Status == store.MessageSent
		})
		if m.Provider != workers.ProviderSMTP || m.ProviderID != "<"+sender.MessageID(m.Key)+">" {
			t.Fatalf("message %+v", m)
		}
		var got notifytest.Message
		fleettest.WaitFor(t, wait, "mailpit to hold the email", func() bool {
			for _, x := range mp.Messages(t) {
				if x.MessageID == sender.MessageID(m.Key) {
					got = x
					return true
				}
			}
			return false
		})
		if got.Subject != m.Subject || len(got.To) != 1 || got.To[0].Address != merchantEmail || got.From.Name != "shop" {
			t.Fatalf("mailpit got %+v, want %q to %s from shop", got, m.Subject, merchantEmail)
		}
		if strings.TrimSpace(strings.ReplaceAll(got.Text, "\r\n", "\n")) != strings.TrimSpace(m.Body) || !strings.Contains(got.HTML, "MUG-1") {
			t.Fatalf("mailpit text %q, HTML %q; stored body %q", got.Text, got.HTML, m.Body)
		}
		// The effect row is done, and nothing else was sent for it.
		e.waitSettled(o.ID)
		if all := mp.Messages(t); countTo(all, merchantEmail) != 1 {
			t.Fatalf("%d emails to %s", countTo(all, merchantEmail), merchantEmail)
		}
	})
}

func countTo(ms []notifytest.Message, addr string) int {
	n := 0
	for _, m := range ms {
		for _, to := range m.To {
			if to.Address == addr {
				n++
			}
		}
	}
	return n
}
