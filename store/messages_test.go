package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// A message key is recorded once, leased to one sender at a time, and once
// sent is never claimed again.
func TestMessageRecordedOnceAndLeasedToOneSender(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o := placed(t, db, s.ID, newOrder(""))
		eff := effectOf(t, db, o.ID, "notify:email")
		row := store.Message{Key: eff + ":new_order", OrderID: o.ID, StoreID: s.ID, EffectID: eff, Channel: "email",
			Template: "new_order", RecipientType: "merchant", Recipient: "shop@example.com", Subject: "New order",
			Body: "first rendering", Status: store.MessageSending}
		first, err := db.RecordMessage(ctx, row)
		if err != nil {
			t.Fatal(err)
		}
		row.Body = "second rendering"
		again, err := db.RecordMessage(ctx, row)
		if err != nil {
			t.Fatal(err)
		}
		if again.Body != "first rendering" || again.CreatedAt != first.CreatedAt || again.Status != store.MessageSending {
			t.Fatalf("a second record replaced the first: %+v", again)
		}

		// Two senders race for the message: one gets it.
		var wg sync.WaitGroup
		var mu sync.Mutex
		claims := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := db.ClaimMessage(ctx, row.Key, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					claims++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if claims != 1 {
			t.Fatalf("%d senders claimed the message", claims)
		}
		// A failed send releases the lease for the next retry.
		if err := db.MarkMessageFailed(ctx, row.Key, "smtp", "connection refused", false); err != nil {
			t.Fatal(err)
		}
		m, ok, err := db.ClaimMessage(ctx, row.Key, time.Minute)
		if err != nil || !ok || m.Attempts != 2 || m.Error != "connection refused" {
			t.Fatalf("claim after a failure: %v %v %+v", ok, err, m)
		}
		if err := db.MarkMessageSent(ctx, row.Key, "smtp", "<id@x>"); err != nil {
			t.Fatal(err)
		}
		if m, ok, err := db.ClaimMessage(ctx, row.Key, 0); err != nil || ok || m.Status != store.MessageSent || !m.SentAt.Valid || m.Error != "" {
			t.Fatalf("a sent message was claimed again: %v %v %+v", ok, err, m)
		}

		ms, err := db.OrderMessages(ctx, s.ID, o.ID)
		if err != nil || len(ms) != 1 || ms[0].ProviderID != "<id@x>" || ms[0].OrderID != o.ID {
			t.Fatalf("order messages %+v %v", ms, err)
		}
		other := newStore(t, db, "other")
		if _, err := db.OrderMessages(ctx, other.ID, o.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("another store read the messages: %v", err)
		}
	})
}

func TestStoreContact(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		c, err := db.StoreContact(ctx, s.ID)
		if err != nil || c.Email != "" || c.Phone != "" || c.Name != "shop" {
			t.Fatalf("new store contact %+v %v", c, err)
		}
		email, phone := "shop@example.com", "+213555123456"
		if c, err = db.UpdateStoreContact(ctx, s.ID, store.ContactUpdate{Email: &email, Phone: &phone}); err != nil || c.Email != email || c.Phone != phone {
			t.Fatalf("update %+v %v", c, err)
		}
		none := ""
		if c, err = db.UpdateStoreContact(ctx, s.ID, store.ContactUpdate{Phone: &none}); err != nil || c.Email != email || c.Phone != "" {
			t.Fatalf("clearing the phone: %+v %v", c, err)
		}
		if _, err := db.StoreContact(ctx, "store_nope"); code(err) != packline.ENOTFOUND {
			t.Fatalf("unknown store: %v", err)
		}
	})
}

// StartMessage records a message and leases it in one statement: of the
// runs that race to make it, one gets it to send; a lease that ran out is
// taken over; a message never to be sent is recorded and claimed by none.
func TestStartMessageRecordsAndLeasesOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o := placed(t, db, s.ID, newOrder(""))
		eff := effectOf(t, db, o.ID, "notify:email")
		row := store.Message{Key: eff + ":new_order", OrderID: o.ID, StoreID: s.ID, EffectID: eff, Channel: "email",
			Template: "new_order", RecipientType: "merchant", Recipient: "shop@example.com", Subject: "New order",
			Body: "hello", Status: store.MessageSending}
		var wg sync.WaitGroup
		var mu sync.Mutex
		claims := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, ok, err := db.StartMessage(ctx, row, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if m.Key != row.Key || m.Body != "hello" {
					t.Errorf("stored %+v", m)
				}
				if ok {
					mu.Lock()
					claims++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if claims != 1 {
			t.Fatalf("%d runs claimed the message", claims)
		}
		if m, err := db.MessageByKey(ctx, row.Key); err != nil || m.Attempts != 1 {
			t.Fatalf("attempts %+v %v", m, err)
		}
		// A lease of zero has run out at once: the next start takes it over.
		other := row
		other.Key = eff + ":other"
		if _, ok, err := db.StartMessage(ctx, other, time.Nanosecond); err != nil || !ok {
			t.Fatalf("first start: %v %v", ok, err)
		}
		time.Sleep(time.Millisecond) // past a one-nanosecond lease
		if _, ok, err := db.StartMessage(ctx, other, time.Minute); err != nil || !ok {
			t.Fatalf("a run-out lease was not taken over: %v %v", ok, err)
		}
		skipped := row
		skipped.Key, skipped.Status, skipped.Error = eff+":skipped", store.MessageSkipped, "no address"
		if m, ok, err := db.StartMessage(ctx, skipped, time.Minute); err != nil || ok || m.Status != store.MessageSkipped {
			t.Fatalf("skipped: %+v %v %v", m, ok, err)
		}
	})
}
