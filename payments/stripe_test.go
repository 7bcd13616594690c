package payments_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/packline/packline/payments"
	"github.com/packline/packline/payments/stripetest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

func newStripe(t *testing.T, db *store.DB, url string) *payments.Stripe {
	return payments.NewStripe(payments.StripeConfig{SecretKey: stripetest.Key, StoreID: "st_1", DB: db, BaseURL: url, NetworkRetries: -1})
}

// The Stripe provider answers Stripe's test cards as the sandbox does, for
// every operation the flows use, through stripe-mock.
func TestStripeAgainstStripeMock(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		db := storetest.Open(t, dialect, store.Options{})
		fake := stripetest.Start(t)
		st := newStripe(t, db, fake.URL)
		ctx := t.Context()
		ops := map[string]func(context.Context, payments.Request) (payments.Result, error){
			"authorize": st.Authorize, "capture": st.Capture, "confirm": st.Confirm,
		}
		for method, byOp := range testCards {
			for op, code := range byOp {
				key := "eff_" + op + strings.TrimPrefix(method, "pm_card_")
				res, err := ops[op](ctx, payments.Request{IdempotencyKey: key, OrderID: "ord_1", StoreID: "st_1", PaymentMethod: method, Amount: 100, Currency: "USD"})
				if err != nil {
					t.Fatalf("%s %s: %v", method, op, err)
				}
				if res.ErrorCode != code || res.OK() != (code == "") {
					t.Errorf("%s %s: %+v, want code %q", method, op, res, code)
				}
				if strings.HasPrefix(method, "pm_card_chargeDeclined") || method == payments.MethodVisa {
					if !strings.HasPrefix(res.Reference, "pi_") {
						t.Errorf("%s %s: reference %q, want the intent", method, op, res.Reference)
					}
				}
			}
		}
		for _, pi := range fake.Intents() {
			md := pi["metadata"].(map[string]any)
			if md[payments.MetaOrderID] != "ord_1" || md[payments.MetaStoreID] != "st_1" || md[payments.MetaEffectID] == "" {
				t.Errorf("intent %v: metadata %v", pi["id"], md)
			}
			if want := map[bool]string{true: "manual", false: "automatic"}[md[payments.MetaKind] == "authorize"]; pi["capture_method"] != want {
				t.Errorf("%s intent: capture_method %v, want %s", md[payments.MetaKind], pi["capture_method"], want)
			}
		}

		// The same key again: Stripe's replay, one intent.
		n := len(fake.Intents())
		first, _ := st.Confirm(ctx, payments.Request{IdempotencyKey: "eff_confirmvisa", PaymentMethod: payments.MethodVisa, Amount: 100, Currency: "USD"})
		if len(fake.Intents()) != n || !first.OK() {
			t.Fatalf("a replay made another intent (%d → %d) or changed the answer: %+v", n, len(fake.Intents()), first)
		}

		// 002's card check: authorize 1.00, then void it (twice: a voided hold is voided).
		auth, err := st.Authorize(ctx, payments.Request{IdempotencyKey: "eff_check", OrderID: "ord_2", PaymentMethod: payments.MethodVisa, Amount: 100, Currency: "EUR", Purpose: "card_check"})
		if err != nil || !auth.OK() {
			t.Fatalf("authorize: %+v %v", auth, err)
		}
		for _, key := range []string{"eff_void", "eff_void2"} {
			v, err := st.Void(ctx, payments.Request{IdempotencyKey: key, OrderID: "ord_2", Reference: auth.Reference, Purpose: "card_check", Amount: 100})
			if err != nil || !v.OK() {
				t.Fatalf("void %s: %+v %v", key, v, err)
			}
		}
		if pi := fake.Intent(auth.Reference); pi["status"] != "canceled" || pi["cancellation_reason"] != "abandoned" ||
			pi["metadata"].(map[string]any)[payments.MetaVoidEffectID] != "eff_void" {
			t.Errorf("voided intent: %v", pi)
		}

		// A charge refunded in part, with a reason, then in full.
		charge, _ := st.Capture(ctx, payments.Request{IdempotencyKey: "eff_charge", OrderID: "ord_2", PaymentMethod: payments.MethodVisa, Amount: 5000, Currency: "EUR"})
		r1, err := st.Refund(ctx, payments.Request{IdempotencyKey: "eff_refund1", OrderID: "ord_2", Reference: charge.Reference, Amount: 1500, Reason: "duplicate"})
		if err != nil || !r1.OK() || !strings.HasPrefix(r1.Reference, "re_") {
			t.Fatalf("partial refund: %+v %v", r1, err)
		}
		r2, err := st.Refund(ctx, payments.Request{IdempotencyKey: "eff_refund2", OrderID: "ord_2", Reference: charge.Reference, Amount: 3500})
		if err != nil || !r2.OK() {
			t.Fatalf("refund of the rest: %+v %v", r2, err)
		}
		var reasons []string
		for _, rf := range fake.Refunds() {
			reasons = append(reasons, rf["reason"].(string))
		}
		if strings.Join(reasons, ",") != "duplicate,requested_by_customer" && strings.Join(reasons, ",") != "requested_by_customer,duplicate" {
			t.Errorf("refund reasons %v", reasons)
		}
		if _, err := st.Refund(ctx, payments.Request{IdempotencyKey: "eff_refund3", Reference: "pi_nope", Amount: 1}); !errors.Is(err, payments.ErrNoReference) {
			t.Errorf("refund of an unknown intent: %v, want ErrNoReference", err)
		}

		// Lookup tells what was done under each key, and nothing for others.
		for key, want := range map[string]payments.Operation{
			"eff_check":                 {Kind: "authorize", Amount: 100, Currency: "EUR", Result: payments.Result{Status: payments.Succeeded, Reference: auth.Reference}},
			"eff_void":                  {Kind: "void", Amount: 100, Currency: "EUR", Result: payments.Result{Status: payments.Succeeded, Reference: auth.Reference}},
			"eff_charge":                {Kind: "capture", Amount: 5000, Currency: "EUR", Result: payments.Result{Status: payments.Succeeded, Reference: charge.Reference}},
			"eff_refund1":               {Kind: "refund", Amount: 1500, Currency: "EUR", Result: payments.Result{Status: payments.Succeeded, Reference: r1.Reference}},
			"eff_confirmchargeDeclined": {Kind: "confirm", Amount: 100, Currency: "USD", Result: payments.Result{Status: payments.Declined, ErrorCode: "card_declined"}},
		} {
			op, found, err := st.Lookup(ctx, key)
			if err != nil || !found {
				t.Fatalf("lookup %s: %v %v", key, found, err)
			}
			op.PaymentMethod = ""
			if want.Reference == "" {
				op.Reference = ""
			}
			if op != want {
				t.Errorf("lookup %s = %+v, want %+v", key, op, want)
			}
		}
		if _, found, err := st.Lookup(ctx, "eff_never"); found || err != nil {
			t.Errorf("lookup of a key never sent: %v %v", found, err)
		}
		// A call that died before its answer was journalled: found by listing.
		if _, err := db.SQL().ExecContext(ctx, `UPDATE provider_requests SET object_id = '' WHERE idempotency_key IN ('eff_charge', 'eff_refund2')`); err != nil {
			t.Fatal(err)
		}
		for key, ref := range map[string]string{"eff_charge": charge.Reference, "eff_refund2": r2.Reference} {
			if op, found, err := st.Lookup(ctx, key); err != nil || !found || op.Reference != ref {
				t.Errorf("lookup %s without its object: %+v %v %v", key, op, found, err)
			}
		}
		// Stripe down: Lookup says it cannot tell, never "not found".
		fake.FailNext(503)
		if _, found, err := st.Lookup(ctx, "eff_charge"); err == nil || found {
			t.Errorf("lookup with Stripe down: %v %v, want an error", found, err)
		}
	})
}

// A Stripe outage (5xx) is an error, retried under the same key: one intent.
func TestStripeOutageRetries(t *testing.T) {
	db := storetest.Open(t, "sqlite", store.Options{})
	fake := stripetest.Start(t)
	st := newStripe(t, db, fake.URL)
	fake.FailNext(500)
	req := payments.Request{IdempotencyKey: "eff_1", OrderID: "ord_1", PaymentMethod: payments.MethodVisa, Amount: 2500, Currency: "USD"}
	if res, err := st.Confirm(t.Context(), req); err == nil {
		t.Fatalf("confirm during an outage answered %+v", res)
	}
	res, err := st.Confirm(t.Context(), req)
	if err != nil || !res.OK() {
		t.Fatalf("retried confirm: %+v %v", res, err)
	}
	if n := len(fake.Intents()); n != 1 {
		t.Fatalf("%d intents, want 1", n)
	}
}

// Shapes stripe-mock cannot produce (it declines nothing and never
// processes), answered as Stripe documents them.
func TestStripeErrorShapes(t *testing.T) {
	db := storetest.Open(t, "sqlite", store.Options{})
	cases := []struct {
		name   string
		status int
		body   string
		code   string // decline code wanted; "" with wantErr
		err    bool
	}{
		{"expired card", 402, `{"error":{"type":"card_error","code":"expired_card","message":"Your card has expired.","payment_intent":{"id":"pi_x","object":"payment_intent","status":"requires_payment_method"}}}`, "expired_card", false},
		{"lost card", 402, `{"error":{"type":"card_error","code":"card_declined","decline_code":"lost_card","message":"Your card was declined."}}`, "lost_card", false},
		{"declined after confirm", 200, `{"id":"pi_y","object":"payment_intent","status":"requires_payment_method","last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"do_not_honor"}}`, "do_not_honor", false},
		{"processing", 200, `{"id":"pi_z","object":"payment_intent","status":"processing"}`, "", true},
		{"rate limited", 429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}`, "", true},
		{"bad key", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****4242"}}`, "", true},
		{"outage", 502, `<html>bad gateway</html>`, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			st := newStripe(t, db, srv.URL)
			res, err := st.Confirm(t.Context(), payments.Request{IdempotencyKey: "eff_" + c.name, PaymentMethod: payments.MethodVisa, Amount: 100, Currency: "USD"})
			if c.err {
				if err == nil {
					t.Fatalf("answered %+v, want an error (a retry)", res)
				}
				if c.name == "processing" && !errors.Is(err, payments.ErrPending) {
					t.Errorf("processing: %v, want ErrPending", err)
				}
				if strings.Contains(err.Error(), stripetest.Key) {
					t.Errorf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil || res.OK() || res.ErrorCode != c.code {
				t.Fatalf("%+v %v, want declined %s", res, err, c.code)
			}
		})
	}
}

// A charge still processing retries; the retry's replayed answer still says
// processing, so the intent is read as it is now.
func TestStripeProcessingThenSettled(t *testing.T) {
	db := storetest.Open(t, "sqlite", store.Options{})
	var settled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		status := "processing"
		if r.Method == http.MethodGet && settled.Load() {
			status = "succeeded"
		}
		_, _ = w.Write([]byte(`{"id":"pi_p","object":"payment_intent","status":"` + status + `"}`))
	}))
	defer srv.Close()
	st := newStripe(t, db, srv.URL)
	req := payments.Request{IdempotencyKey: "eff_p", PaymentMethod: payments.MethodVisa, Amount: 100, Currency: "USD"}
	if _, err := st.Confirm(t.Context(), req); !errors.Is(err, payments.ErrPending) {
		t.Fatalf("processing: %v, want ErrPending", err)
	}
	settled.Store(true)
	if res, err := st.Confirm(t.Context(), req); err != nil || !res.OK() || res.Reference != "pi_p" {
		t.Fatalf("retry once settled: %+v %v", res, err)
	}
}
