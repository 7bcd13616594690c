package payments_test

import (
	"context"
	"errors"
	"testing"

	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// testCards are the answers to Stripe's test payment methods, by method and
// operation (the decline code; "" succeeds): the sandbox's, and the Stripe
// provider's through stripe-mock.
var testCards = map[string]map[string]string{
	payments.MethodVisa:                {"authorize": "", "capture": "", "confirm": ""},
	payments.MethodChargeDeclined:      {"authorize": "card_declined", "capture": "card_declined", "confirm": "card_declined"},
	payments.MethodChargeDeclinedFunds: {"authorize": "insufficient_funds", "capture": "insufficient_funds", "confirm": "insufficient_funds"},
	payments.MethodChargeCustomerFail:  {"authorize": "", "capture": "card_declined", "confirm": "card_declined"},
	"pm_card_unknown":                  {"authorize": "invalid_payment_method"},
	"":                                 {"confirm": "payment_method_missing"},
}

func TestSandboxHonoursStripeTestMethods(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		sb := payments.NewSandbox(storetest.Open(t, dialect, store.Options{}))
		ctx := t.Context()
		ops := map[string]func(context.Context, payments.Request) (payments.Result, error){
			"authorize": sb.Authorize, "capture": sb.Capture, "confirm": sb.Confirm,
		}
		for method, byOp := range testCards {
			for op, code := range byOp {
				res, err := ops[op](ctx, payments.Request{IdempotencyKey: method + op, PaymentMethod: method, Amount: 100, Currency: "USD"})
				if err != nil {
					t.Fatal(err)
				}
				if res.ErrorCode != code || res.OK() != (code == "") || res.Reference == "" {
					t.Errorf("%s %s: %+v, want code %q", method, op, res, code)
				}
			}
		}
	})
}

func TestSandboxIsIdempotentAndChecksReferences(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		sb := payments.NewSandbox(storetest.Open(t, dialect, store.Options{}))
		ctx := t.Context()
		req := payments.Request{IdempotencyKey: "eff_1", PaymentMethod: payments.MethodVisa, Amount: 100, Currency: "USD"}
		a, err := sb.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// Same key, other method: the first answer stands.
		req.PaymentMethod = payments.MethodChargeDeclined
		b, err := sb.Authorize(ctx, req)
		if err != nil || b != a {
			t.Fatalf("repeat: %+v %v, first %+v", b, err, a)
		}
		if _, err := sb.Capture(ctx, req); err == nil {
			t.Fatal("a key reused for another operation was accepted")
		}
		v1, err := sb.Void(ctx, payments.Request{IdempotencyKey: "eff_2", Reference: a.Reference})
		if err != nil || !v1.OK() {
			t.Fatalf("void: %+v %v", v1, err)
		}
		// Voiding a voided authorization again succeeds.
		if v2, err := sb.Void(ctx, payments.Request{IdempotencyKey: "eff_3", Reference: a.Reference}); err != nil || !v2.OK() {
			t.Fatalf("second void: %+v %v", v2, err)
		}
		if _, err := sb.Refund(ctx, payments.Request{IdempotencyKey: "eff_4", Reference: a.Reference}); !errors.Is(err, payments.ErrNoReference) {
			t.Fatalf("refund of an authorization: %v", err)
		}
		if _, err := sb.Void(ctx, payments.Request{IdempotencyKey: "eff_5", Reference: "sbx_nothing"}); !errors.Is(err, payments.ErrNoReference) {
			t.Fatalf("void of nothing: %v", err)
		}
	})
}
