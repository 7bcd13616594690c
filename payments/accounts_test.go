package payments_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/packline/packline"
	"github.com/packline/packline/internal/secrets"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/payments/stripetest"
	"github.com/packline/packline/store"
	"github.com/packline/packline/store/storetest"
)

// A store pays through its own Stripe account once it has one, on the
// sandbox before; production refuses the sandbox to a store not marked
// test; the keys are sealed at rest and never shown.
func TestAccountsPickTheStoresProvider(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dialect string) {
		db := storetest.Open(t, dialect, store.Options{})
		ctx := t.Context()
		fake := stripetest.Start(t)
		s, _, _, err := db.CreateStore(ctx, "anvil", "made-to-order")
		if err != nil {
			t.Fatal(err)
		}
		acc := &payments.Accounts{DB: db, Keys: stripetest.Keyring(t), StripeURL: fake.URL}
		if p, err := acc.For(ctx, s.ID); err != nil || p.Name() != "sandbox" {
			t.Fatalf("a store without an account: %v %v, want the sandbox", p, err)
		}
		acc.Production = true
		if _, err := acc.For(ctx, s.ID); !errors.Is(err, payments.ErrSandboxRefused) {
			t.Fatalf("production gave a store the sandbox: %v", err)
		}
		if _, err := db.SetStoreTestMode(ctx, "anvil", true); err != nil {
			t.Fatal(err)
		}
		if p, err := acc.For(ctx, s.ID); err != nil || p.Name() != "sandbox" {
			t.Fatalf("a test store in production: %v %v, want the sandbox", p, err)
		}

		for field, in := range map[string][2]string{
			"secret_key":     {"pk_test_123456789012345", "whsec_1234567890abcdef"},
			"webhook_secret": {stripetest.Key, "secret"},
		} {
			if _, err := acc.PutStripe(ctx, s.ID, in[0], in[1]); packline.ErrorCode(err) != packline.EINVALID || !strings.Contains(err.Error(), field) {
				t.Errorf("bad %s: %v, want EINVALID naming it", field, err)
			}
		}
		// Production takes a test key only for a test store.
		if _, err := db.SetStoreTestMode(ctx, "anvil", false); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.PutStripe(ctx, s.ID, stripetest.Key, "whsec_test_secret_0123456789"); packline.ErrorCode(err) != packline.EINVALID {
			t.Fatalf("a test key for a real store in production: %v", err)
		}
		if _, err := db.SetStoreTestMode(ctx, "anvil", true); err != nil {
			t.Fatal(err)
		}
		view, err := acc.PutStripe(ctx, s.ID, stripetest.Key, "whsec_test_secret_0123456789")
		if err != nil {
			t.Fatal(err)
		}
		if view.SecretKeyLast4 != "4242" || !strings.HasPrefix(view.AccountID, "acct_") || view.Livemode || view.WebhookPath != "/v1/payments/stripe/webhooks/"+s.ID {
			t.Errorf("view %+v", view)
		}
		var sealed string
		if err := db.SQL().GetContext(ctx, &sealed, db.SQL().Rebind(`SELECT secret_key_sealed || webhook_secret_sealed FROM payment_accounts WHERE store_id = ?`), s.ID); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, "sk_test") || strings.Contains(sealed, "whsec_") {
			t.Fatalf("a secret is stored in clear: %s", sealed)
		}
		p, err := acc.For(ctx, s.ID)
		if err != nil || p.Name() != "stripe" {
			t.Fatalf("a store with an account: %v %v, want stripe", p, err)
		}
		res, err := p.Confirm(ctx, payments.Request{IdempotencyKey: "eff_a", OrderID: "ord_a", StoreID: s.ID, PaymentMethod: payments.MethodVisa, Amount: 900, Currency: "USD"})
		if err != nil || !res.OK() {
			t.Fatalf("confirm through the store's account: %+v %v", res, err)
		}
		if wh, err := acc.WebhookSecret(ctx, s.ID); err != nil || wh != "whsec_test_secret_0123456789" {
			t.Fatalf("webhook secret: %q %v", wh, err)
		}
		// Another server's key cannot open them.
		other := &payments.Accounts{DB: db, Keys: stripetest.Keyring(t)}
		if _, err := other.For(ctx, s.ID); !errors.Is(err, secrets.ErrOpen) {
			t.Fatalf("opened with another key: %v", err)
		}
	})
}
