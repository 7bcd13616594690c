package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/packline/packline/api"
	"github.com/packline/packline/internal/secrets"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
)

// readPaymentsConfig reads PACKLINE_ENV, the secret keyring and
// PACKLINE_STRIPE_API_URL.
func readPaymentsConfig(getenv func(string) string, c *Config) error {
	switch env := getenv("PACKLINE_ENV"); env {
	case "", "development", "test":
	case "production":
		c.Production = true
	default:
		return fmt.Errorf("PACKLINE_ENV=%q: want production, development or test", env)
	}
	keys, err := secrets.FromGetenv(getenv)
	if err != nil {
		return err
	}
	c.Secrets = keys
	if c.Production && !keys.Ready() {
		return errors.New("PACKLINE_ENV=production needs " + secrets.EnvKey + " (32 random bytes, base64: openssl rand -base64 32): stores' Stripe keys are sealed with it")
	}
	if v := getenv("PACKLINE_STRIPE_API_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("PACKLINE_STRIPE_API_URL=%q: want an http(s) URL", v)
		}
		if c.Production && u.Scheme != "https" {
			return fmt.Errorf("PACKLINE_STRIPE_API_URL=%q: production talks to Stripe over https only", v)
		}
		c.StripeAPIURL = v
	}
	return nil
}

// paymentsWiring is the stores' payment accounts and Stripe's webhooks.
type paymentsWiring struct {
	accounts *payments.Accounts
	webhooks *payments.StripeWebhooks
}

func wirePayments(cfg Config, db *store.DB, log *slog.Logger) paymentsWiring {
	acc := &payments.Accounts{DB: db, Keys: cfg.Secrets, Production: cfg.Production, StripeURL: cfg.StripeAPIURL}
	return paymentsWiring{accounts: acc, webhooks: &payments.StripeWebhooks{Accounts: acc, DB: db, Logger: log}}
}

// apiConfig adds the payment routes' dependencies to c.
func (p paymentsWiring) apiConfig(c api.Config) api.Config {
	c.PaymentAccounts, c.PaymentWebhooks = p.accounts, p.webhooks
	return c
}
