package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

func newOrder(flow string, lines ...packline.Line) packline.Order {
	if len(lines) == 0 {
		lines = []packline.Line{{SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: 1250}}
	}
	return packline.Order{Flow: flow, Currency: "USD", Customer: packline.Customer{Name: "Ada", Email: "ada@example.com"}, Lines: lines}
}

func setup(t *testing.T, dialect string) (*store.DB, store.Store) {
	t.Helper()
	db := storetest.Open(t, dialect, store.Options{})
	return db, newStore(t, db, "shop")
}

// newStore creates a cash-on-delivery store named name.
func newStore(t *testing.T, db *store.DB, name string) store.Store {
	t.Helper()
	s, _, _, err := db.CreateStore(t.Context(), name, "cash-on-delivery")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// placed is the order o as the customer placed it in the store.
func placed(t *testing.T, db *store.DB, storeID string, o packline.Order) *packline.Order {
	t.Helper()
	got, _, err := db.CreateOrder(t.Context(), storeID, o, packline.Actor{Type: packline.ActorCustomer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func code(err error) string { return packline.ErrorCode(err) }

func TestCreateOrderCommitsTimelineAndOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		o, created, err := db.CreateOrder(ctx, s.ID, newOrder(""), packline.Actor{Type: packline.ActorCustomer}, nil)
		if err != nil || !created {
			t.Fatalf("create: %v %v", created, err)
		}
		if o.Flow != "cash-on-delivery" || o.Status != "pending" || o.Version != 1 || o.Total != 2500 {
			t.Fatalf("order = %+v", o)
		}
		got, err := db.GetOrder(ctx, s.ID, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "pending" || len(got.Lines) != 1 || got.Lines[0].Quantity != 2 || got.Customer.Email != "ada@example.com" {
			t.Fatalf("read back %+v", got)
		}
		tl, err := db.Timeline(ctx, o.ID)
		if err != nil || len(tl) != 1 || tl[0].Event != "created" || tl[0].To != "pending" {
			t.Fatalf("timeline %+v %v", tl, err)
		}
		ob, err := db.Outbox(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		types := []string{}
		for _, r := range ob {
			types = append(types, r.Type)
			if r.Status != "pending" {
				t.Errorf("outbox %s status %s", r.Type, r.Status)
			}
		}
		want := []string{"notify:email", "webhook:deliver", "order:timer"}
		if len(types) != len(want) {
			t.Fatalf("outbox types %v, want %v", types, want)
		}
		for i := range want {
			if types[i] != want[i] {
				t.Fatalf("outbox types %v, want %v", types, want)
			}
		}
		if _, err := db.GetOrder(ctx, "store_other", o.ID); code(err) != packline.ENOTFOUND {
			t.Fatalf("another store's order: %v", err)
		}
	})
}

func TestApplyEventTransitionsAndOwesEffects(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		merchant := packline.Actor{Type: packline.ActorMerchant, ID: "key_1"}
		o, _, err := db.CreateOrder(ctx, s.ID, newOrder(""), merchant, nil)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "confirm", Actor: merchant})
		if err != nil {
			t.Fatal(err)
		}
		if o2.Status != "confirmed" || o2.Version != 2 {
			t.Fatalf("after confirm %s v%d", o2.Status, o2.Version)
		}
		ob, _ := db.Outbox(ctx, o.ID)
		var v2 []string
		for _, r := range ob {
			if r.Version == 2 {
				v2 = append(v2, r.Type)
			}
		}
		if len(v2) != 2 || v2[0] != "stock:decrement" || v2[1] != "webhook:deliver" {
			t.Fatalf("owed at v2: %v", v2)
		}
		_, err = db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "deliver", Actor: merchant})
		var pe *packline.Error
		if !errors.As(err, &pe) || pe.Code != packline.ECONFLICT || len(pe.AllowedEvents) == 0 {
			t.Fatalf("illegal event: %v", err)
		}
		if _, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "cancel", Actor: merchant, ExpectedVersion: 1}); code(err) != packline.ECONFLICT {
			t.Fatalf("stale expected version: %v", err)
		}
		after, _ := db.GetOrder(ctx, s.ID, o.ID)
		if after.Version != 2 {
			t.Fatalf("a refused event changed the order: v%d", after.Version)
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		a := packline.Actor{Type: packline.ActorCustomer}
		first, created, err := db.CreateOrder(ctx, s.ID, newOrder(""), a, &store.Idempotency{Key: "k1", RequestHash: "h1"})
		if err != nil || !created {
			t.Fatal(err)
		}
		again, created, err := db.CreateOrder(ctx, s.ID, newOrder(""), a, &store.Idempotency{Key: "k1", RequestHash: "h1"})
		if err != nil || created || again.ID != first.ID {
			t.Fatalf("replay: %v %v %v", again, created, err)
		}
		if _, _, err := db.CreateOrder(ctx, s.ID, newOrder(""), a, &store.Idempotency{Key: "k1", RequestHash: "h2"}); code(err) != packline.EIDEMPOTENCY {
			t.Fatalf("other body: %v", err)
		}
		// Concurrent first uses of one key make one order.
		var wg sync.WaitGroup
		ids := make([]string, 10)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, _, err := db.CreateOrder(ctx, s.ID, newOrder(""), a, &store.Idempotency{Key: "race", RequestHash: "h"})
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = o.ID
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("one key made several orders: %v", ids)
			}
		}
	})
}

// Fifty events sent at once to one order: each commits at its own version,
// none is lost; with an expected version, one wins and the rest see a conflict.
func TestConcurrentEventsSerialize(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		ctx := t.Context()
		db, s := setup(t, dialect)
		m := packline.Actor{Type: packline.ActorMerchant}
		o, _, err := db.CreateOrder(ctx, s.ID, newOrder(""), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "log_call", Actor: m, Data: map[string]any{"outcome": "busy"}})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, _ := db.GetOrder(ctx, s.ID, o.ID)
		if got.Version != 1+n {
			t.Fatalf("version %d after %d events, want %d", got.Version, n, 1+n)
		}
		tl, _ := db.Timeline(ctx, o.ID)
		seen := map[int64]bool{}
		for _, e := range tl {
			if e.Event == "log_call" {
				if seen[e.Version] {
					t.Fatalf("two events committed at version %d", e.Version)
				}
				seen[e.Version] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("%d log_call entries, want %d", len(seen), n)
		}
		// Compare-and-set: all send at the same expected version.
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.ApplyEvent(ctx, s.ID, o.ID, store.EventInput{Event: "log_call", Actor: m, Data: map[string]any{"outcome": "busy"}, ExpectedVersion: got.Version})
				mu.Lock()
				defer mu.Unlock()
				switch code(err) {
				case "":
					wins++
				case packline.ECONFLICT:
					conflicts++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("wins %d conflicts %d", wins, conflicts)
		}
	})
}
