package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/internal/secrets"
	"github.com/packline/packline/store"
	"github.com/stripe/stripe-go/v85"
)

// Resolver picks the payment provider of a store.
type Resolver interface {
	For(ctx context.Context, storeID string) (Provider, error)
}

// Single is a Resolver giving every store the same provider.
func Single(p Provider) Resolver { return single{p} }

type single struct{ p Provider }

func (s single) For(context.Context, string) (Provider, error) { return s.p, nil }

// ErrSandboxRefused is returned in production for a store that has no
// provider account of its own and is not marked a test store: its orders
// are never "paid" by the sandbox.
var ErrSandboxRefused = errors.New("payments: the store has no Stripe account, and production takes the sandbox only for a store marked test (packline stores test-mode NAME on)")

// Accounts are the stores' own provider accounts (payment_accounts, the
// secrets sealed with the keyring): the Resolver the fleet runs on. A store
// with a Stripe account pays through it; one without pays on the sandbox,
// except in production, where only a store marked test may.
type Accounts struct {
	DB   *store.DB
	Keys *secrets.Keyring
	// Production refuses the sandbox to stores not marked test
	// (PACKLINE_ENV=production).
	Production bool
	// StripeURL is Stripe's API base URL (empty: Stripe's own); tests point
	// it at stripe-mock.
	StripeURL  string
	HTTPClient *http.Client
}

// owner binds a sealed secret to its store and purpose.
func owner(storeID, what string) string { return storeID + "|stripe|" + what }

// For implements Resolver.
func (a *Accounts) For(ctx context.Context, storeID string) (Provider, error) {
	acct, err := a.DB.GetPaymentAccount(ctx, storeID, ProviderStripe)
	if packline.ErrorCode(err) == packline.ENOTFOUND {
		if a.Production {
			test, err := a.DB.StoreTestMode(ctx, storeID)
			if err != nil {
				return nil, err
			}
			if !test {
				return nil, fmt.Errorf("store %s: %w", storeID, ErrSandboxRefused)
			}
		}
		return NewSandbox(a.DB), nil
	}
	if err != nil {
		return nil, err
	}
	key, err := a.Keys.Open(owner(storeID, "secret_key"), acct.SecretKeySealed)
	if err != nil {
		return nil, fmt.Errorf("store %s: open its Stripe key: %w", storeID, err)
	}
	return NewStripe(StripeConfig{SecretKey: key, StoreID: storeID, DB: a.DB, BaseURL: a.StripeURL, HTTPClient: a.HTTPClient}), nil
}

// WebhookSecret returns the store's Stripe webhook signing secret; ENOTFOUND
// when the store has no Stripe account.
func (a *Accounts) WebhookSecret(ctx context.Context, storeID string) (string, error) {
	acct, err := a.DB.GetPaymentAccount(ctx, storeID, ProviderStripe)
	if err != nil {
		return "", err
	}
	return a.Keys.Open(owner(storeID, "webhook_secret"), acct.WebhookSecretSealed)
}

// StripeAccount is what the API shows of a store's Stripe account: never
// a secret, only the key's last four characters.
type StripeAccount struct {
	Provider       string    `json:"provider"`
	AccountID      string    `json:"account_id"`
	Livemode       bool      `json:"livemode"`
	SecretKeyLast4 string    `json:"secret_key_last4"`
	WebhookPath    string    `json:"webhook_path"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func viewOf(a store.PaymentAccount) StripeAccount {
	return StripeAccount{Provider: ProviderStripe, AccountID: a.AccountID, Livemode: a.Livemode, SecretKeyLast4: a.SecretKeyLast4,
		WebhookPath: WebhookPath(a.StoreID), UpdatedAt: a.UpdatedAt}
}

// WebhookPath is the path of the store's Stripe webhook endpoint (the URL
// to give Stripe's dashboard is the API's public URL and this path): one
// per store, since each Stripe account signs with its own secret.
func WebhookPath(storeID string) string { return "/v1/payments/stripe/webhooks/" + storeID }

// GetStripe returns what the API shows of the store's Stripe account, or
// ENOTFOUND.
func (a *Accounts) GetStripe(ctx context.Context, storeID string) (StripeAccount, error) {
	acct, err := a.DB.GetPaymentAccount(ctx, storeID, ProviderStripe)
	if err != nil {
		return StripeAccount{}, err
	}
	return viewOf(acct), nil
}

// PutStripe sets the store's Stripe account: it checks the key with Stripe
// (GET /v1/account, which also names the account), seals both secrets and
// stores them. In production a test key is taken only for a store marked
// test. Bad input is EINVALID naming the field; a key Stripe refuses
// is EINVALID on secret_key.
func (a *Accounts) PutStripe(ctx context.Context, storeID, secretKey, webhookSecret string) (StripeAccount, error) {
	if !a.Keys.Ready() {
		return StripeAccount{}, packline.Errorf(packline.ECONFLICT, "payment accounts are not enabled on this server (%s is not set)", secrets.EnvKey)
	}
	live := false
	switch {
	case hasAnyPrefix(secretKey, "sk_live_", "rk_live_"):
		live = true
	case hasAnyPrefix(secretKey, "sk_test_", "rk_test_"):
	default:
		return StripeAccount{}, packline.FieldError("secret_key", "a Stripe secret key starts sk_live_, sk_test_, rk_live_ or rk_test_")
	}
	if len(secretKey) < 16 || len(secretKey) > 255 || strings.ContainsAny(secretKey, " \t\r\n") {
		return StripeAccount{}, packline.FieldError("secret_key", "a Stripe secret key is 16 to 255 characters without spaces")
	}
	if a.Production && !live {
		// A test key moves no money: in production only a test store may
		// pay with one, as only a test store may pay on the sandbox.
		test, err := a.DB.StoreTestMode(ctx, storeID)
		if err != nil {
			return StripeAccount{}, err
		}
		if !test {
			return StripeAccount{}, packline.FieldError("secret_key", "this server is in production: a test key (sk_test_, rk_test_) is taken only for a store marked test; give a live key")
		}
	}
	if !strings.HasPrefix(webhookSecret, "whsec_") || len(webhookSecret) < 16 || len(webhookSecret) > 255 || strings.ContainsAny(webhookSecret, " \t\r\n") {
		return StripeAccount{}, packline.FieldError("webhook_secret", "a Stripe webhook signing secret starts whsec_ (Stripe's dashboard shows it on the endpoint)")
	}
	sc := NewStripe(StripeConfig{SecretKey: secretKey, StoreID: storeID, DB: a.DB, BaseURL: a.StripeURL, HTTPClient: a.HTTPClient}).sc
	acct, err := sc.V1Accounts.Retrieve(ctx, nil)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode > 0 && se.HTTPStatusCode < 500 && se.HTTPStatusCode != http.StatusTooManyRequests {
			return StripeAccount{}, packline.FieldError("secret_key", "Stripe refused the key: %s", se.Msg)
		}
		return StripeAccount{}, fmt.Errorf("check the store's Stripe key: %w", stripeErrorOf("account", err))
	}
	sk, err := a.Keys.Seal(owner(storeID, "secret_key"), secretKey)
	if err != nil {
		return StripeAccount{}, err
	}
	wh, err := a.Keys.Seal(owner(storeID, "webhook_secret"), webhookSecret)
	if err != nil {
		return StripeAccount{}, err
	}
	got, err := a.DB.PutPaymentAccount(ctx, store.PaymentAccount{StoreID: storeID, Provider: ProviderStripe, AccountID: acct.ID,
		Livemode: live, SecretKeySealed: sk, SecretKeyLast4: secretKey[len(secretKey)-4:], WebhookSecretSealed: wh})
	if err != nil {
		return StripeAccount{}, err
	}
	return viewOf(got), nil
}

func hasAnyPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
