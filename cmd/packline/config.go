package main

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/packline/packline/api"
	"github.com/packline/packline/internal/secrets"
	"github.com/packline/packline/notify"
)

// Config is everything packline reads from its environment, read once here.
type Config struct {
	DatabaseURL  string  // DATABASE_URL: postgres://… or sqlite:PATH
	RedisURL     string  // REDIS_URL: redis://…
	HTTPAddr     string  // PACKLINE_HTTP_ADDR
	OpsAddr      string  // PACKLINE_OPS_ADDR
	OpsUser      string  // PACKLINE_OPS_USER
	OpsPassword  string  // PACKLINE_OPS_PASSWORD
	TimerScale   float64 // PACKLINE_TIMER_SCALE
	FlowsDir     string  // PACKLINE_FLOWS_DIR
	LogLevel     string  // LOG_LEVEL
	LogFormat    string  // LOG_FORMAT
	AllowPrivate bool    // PACKLINE_WEBHOOK_ALLOW_PRIVATE
	Concurrency  int     // PACKLINE_WORKER_CONCURRENCY

	// The API's default per-key rate limit; a store may override it
	// (packline stores set-rate-limit).
	RateLimit float64 // PACKLINE_RATE_LIMIT: requests per second per API key
	RateBurst int     // PACKLINE_RATE_BURST: requests per API key at once

	// packline dev only.
	DevStorefrontKey string // PACKLINE_DEV_STOREFRONT_KEY
	DevMerchantKey   string // PACKLINE_DEV_MERCHANT_KEY
	DevCourierSecret string // PACKLINE_DEV_COURIER_SECRET
	DevCourierPlay   bool   // PACKLINE_DEV_COURIER_PLAY (default true)

	// Couriers and absolute URLs.
	SandboxCourierSecret string // PACKLINE_SANDBOX_COURIER_SECRET: the sandbox courier outside dev
	PublicURL            string // PACKLINE_PUBLIC_URL: the API's public base URL (label_url)

	// Notification senders; nil is the sandbox notifier (messages are
	// stored, sent nowhere).
	SMTP *notify.SMTPConfig   // PACKLINE_SMTP_URL
	SMS  *notify.TwilioConfig // PACKLINE_SMS_ACCOUNT_SID, PACKLINE_SMS_AUTH_TOKEN, PACKLINE_SMS_FROM, PACKLINE_SMS_BASE_URL

	// Which settings the environment gave, so packline dev uses its own
	// defaults only for the others.
	httpAddrSet, opsAddrSet, allowPrivateSet bool

	// Payments (payments.go).
	Production   bool             // PACKLINE_ENV=production: the sandbox only for stores marked test
	Secrets      *secrets.Keyring // PACKLINE_SECRET_KEY, PACKLINE_SECRET_KEYS_OLD: seals stores' provider keys
	StripeAPIURL string           // PACKLINE_STRIPE_API_URL: Stripe's API base URL (stripe-mock in tests)
}

// readConfig reads the environment through getenv. A bad value is an error
// that names the variable.
func readConfig(getenv func(string) string) (Config, error) {
	c := Config{
		DatabaseURL:      getenv("DATABASE_URL"),
		RedisURL:         getenv("REDIS_URL"),
		HTTPAddr:         or(getenv("PACKLINE_HTTP_ADDR"), ":8080"),
		OpsAddr:          or(getenv("PACKLINE_OPS_ADDR"), ":9090"),
		OpsUser:          or(getenv("PACKLINE_OPS_USER"), "ops"),
		OpsPassword:      getenv("PACKLINE_OPS_PASSWORD"),
		FlowsDir:         getenv("PACKLINE_FLOWS_DIR"),
		LogLevel:         or(getenv("LOG_LEVEL"), "info"),
		LogFormat:        or(getenv("LOG_FORMAT"), "json"),
		DevStorefrontKey: getenv("PACKLINE_DEV_STOREFRONT_KEY"),
		DevMerchantKey:   getenv("PACKLINE_DEV_MERCHANT_KEY"),
		DevCourierSecret: getenv("PACKLINE_DEV_COURIER_SECRET"),
		TimerScale:       1,
		Concurrency:      10,
		RateLimit:        api.DefaultRateLimit,
		RateBurst:        api.DefaultRateBurst,
	}
	c.httpAddrSet, c.opsAddrSet = getenv("PACKLINE_HTTP_ADDR") != "", getenv("PACKLINE_OPS_ADDR") != ""
	if v := getenv("PACKLINE_TIMER_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1000 {
			return c, fmt.Errorf("PACKLINE_TIMER_SCALE=%q: want a number above 0 (1 is real time, 0.00001 makes 7 days last about 6 s)", v)
		}
		c.TimerScale = f
	}
	if v := getenv("PACKLINE_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("PACKLINE_WEBHOOK_ALLOW_PRIVATE=%q: want true or false", v)
		}
		c.AllowPrivate, c.allowPrivateSet = b, true
	}
	if v := getenv("PACKLINE_WORKER_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return c, fmt.Errorf("PACKLINE_WORKER_CONCURRENCY=%q: want a whole number from 1 to 1000", v)
		}
		c.Concurrency = n
	}
	if err := readRateLimitConfig(getenv, &c); err != nil {
		return c, err
	}
	if err := readCourierConfig(getenv, &c); err != nil {
		return c, err
	}
	if err := readNotifyConfig(getenv, &c); err != nil {
		return c, err
	}
	if err := readPaymentsConfig(getenv, &c); err != nil {
		return c, err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return c, fmt.Errorf("LOG_FORMAT=%q: want json or text", c.LogFormat)
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite:") {
		return c, fmt.Errorf("DATABASE_URL must start with postgres:// or sqlite:")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		return c, fmt.Errorf("REDIS_URL must start with redis:// or rediss://")
	}
	return c, nil
}

// need reports the first of the named settings that is empty.
func (c Config) need(names ...string) error {
	for _, n := range names {
		var v string
		switch n {
		case "DATABASE_URL":
			v = c.DatabaseURL
		case "REDIS_URL":
			v = c.RedisURL
		}
		if v == "" {
			return fmt.Errorf("%s is not set (see README: Configuration)", n)
		}
	}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// readRateLimitConfig reads the API's default per-key rate limit:
// PACKLINE_RATE_LIMIT requests per second (a decimal number above 0) and
// PACKLINE_RATE_BURST requests at once (a whole number, at least 1).
func readRateLimitConfig(getenv func(string) string, c *Config) error {
	if v := getenv("PACKLINE_RATE_LIMIT"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return fmt.Errorf("PACKLINE_RATE_LIMIT=%q: want requests per second per API key, a number above 0 (default %d)", v, api.DefaultRateLimit)
		}
		c.RateLimit = f
	}
	if v := getenv("PACKLINE_RATE_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("PACKLINE_RATE_BURST=%q: want the requests an API key may send at once, a whole number of at least 1 (default %d)", v, api.DefaultRateBurst)
		}
		c.RateBurst = n
	}
	return nil
}

// readNotifyConfig reads the notification senders: SMTP from
// PACKLINE_SMTP_URL (smtp://user:pass@host:587?from=no-reply@example.com,
// smtps://… for TLS from the start, ?security=none for a local relay), and
// an SMS provider with Twilio's API from PACKLINE_SMS_ACCOUNT_SID,
// PACKLINE_SMS_AUTH_TOKEN and PACKLINE_SMS_FROM (all three, or none), with
// PACKLINE_SMS_BASE_URL for a compatible provider or a mock.
func readNotifyConfig(getenv func(string) string, c *Config) error {
	if v := getenv("PACKLINE_SMTP_URL"); v != "" {
		sc, err := notify.ParseSMTPURL(v)
		if err != nil {
			// The URL may hold a password: never repeat it.
			return fmt.Errorf("PACKLINE_SMTP_URL: %v (want smtp://user:pass@host:587?from=no-reply@example.com)", redactSMTPError(err, v))
		}
		c.SMTP = &sc
	}
	sid, token, from, base := getenv("PACKLINE_SMS_ACCOUNT_SID"), getenv("PACKLINE_SMS_AUTH_TOKEN"), getenv("PACKLINE_SMS_FROM"), getenv("PACKLINE_SMS_BASE_URL")
	if sid == "" && token == "" && from == "" && base == "" {
		return nil
	}
	for _, v := range []struct{ name, val string }{
		{"PACKLINE_SMS_ACCOUNT_SID", sid}, {"PACKLINE_SMS_AUTH_TOKEN", token}, {"PACKLINE_SMS_FROM", from},
	} {
		if v.val == "" {
			return fmt.Errorf("%s is not set: an SMS provider needs PACKLINE_SMS_ACCOUNT_SID, PACKLINE_SMS_AUTH_TOKEN and PACKLINE_SMS_FROM", v.name)
		}
	}
	if base != "" {
		if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("PACKLINE_SMS_BASE_URL=%q: want the provider's API root, e.g. https://api.twilio.com", base)
		}
	}
	c.SMS = &notify.TwilioConfig{AccountSID: sid, AuthToken: token, From: from, BaseURL: base}
	return nil
}

// redactSMTPError keeps an SMTP URL's password out of an error text.
func redactSMTPError(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "…")
		}
	}
	return msg
}
