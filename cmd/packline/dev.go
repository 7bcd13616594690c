package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alicebob/miniredis/v2"
	"github.com/packline/packline/store"
)

// devMerchantEmail is the demo store's merchant address (a reserved domain).
const devMerchantEmail = "merchant@demo.example.com"

// dev runs every role in one process on embedded defaults: SQLite in a data
// folder and an in-process Redis, with the demo store.
func dev(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "folder for the SQLite database (default: a new temporary folder)")
	httpAddr := fs.String("http", "", "API address (default PACKLINE_HTTP_ADDR or "+devHTTPAddr+")")
	opsAddr := fs.String("ops", "", "ops address (default PACKLINE_OPS_ADDR or "+devOpsAddr+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg = devDefaults(cfg, *httpAddr, *opsAddr)
	if cfg.DatabaseURL == "" {
		dir := *dataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "packline-dev-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("-data %s: %w", dir, err)
		}
		cfg.DatabaseURL = "sqlite:" + filepath.Join(dir, "packline.db")
	}
	if cfg.RedisURL == "" {
		// miniredis with its clock kept in step with the wall clock, so the
		// TTLs of Asynq's unique locks and leases expire.
		mr := miniredis.NewMiniRedis()
		mr.ClockTTL(true)
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start in-process Redis: %w", err)
		}
		defer mr.Close()
		cfg.RedisURL = "redis://" + mr.Addr() + "/0"
	}
	if cfg.DevStorefrontKey == "" {
		cfg.DevStorefrontKey = store.NewKey(store.ScopeStorefront)
	}
	if cfg.DevMerchantKey == "" {
		cfg.DevMerchantKey = store.NewKey(store.ScopeMerchant)
	}
	if cfg.DevCourierSecret == "" {
		cfg.DevCourierSecret = randomHex(24)
	}
	if cfg.OpsPassword == "" {
		cfg.OpsPassword = randomHex(12)
	}
	if cfg.LogFormat == "json" && os.Getenv("LOG_FORMAT") == "" {
		cfg.LogFormat = "text"
	}

	db, err := openDB(ctx, cfg, nil)
	if err != nil {
		return err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return err
	}
	s, err := db.CreateStoreWithKeys(ctx, "demo", "cash-on-delivery", cfg.DevStorefrontKey, cfg.DevMerchantKey)
	if err == nil {
		// The demo merchant gets an address so its messages (new order,
		// stock short…) are rendered, not skipped; PATCH /v1/store changes it.
		var c store.StoreContact
		if c, err = db.StoreContact(ctx, s.ID); err == nil && c.Email == "" {
			email := devMerchantEmail
			_, err = db.UpdateStoreContact(ctx, s.ID, store.ContactUpdate{Email: &email})
		}
	}
	db.Close()
	if err != nil {
		return fmt.Errorf("create the demo store: %w", err)
	}
	return runRoles(ctx, cfg, allRoles, stderr, func(api, ops string) {
		fmt.Fprintf(stdout, `packline dev is running (Ctrl-C stops it)

  API        http://%s
  metrics    http://%s/metrics
  dashboard  http://%s/ops/asynq/   (user %s, password %s)
  database   %s
  redis      %s (in-process)

  demo store %s (default flow %s, merchant email %s)
  storefront key  %s
  merchant key    %s
  courier secret  %s

Try:
  curl -s -X POST http://%s/v1/orders -H "Authorization: Bearer %s" \
    -H 'Content-Type: application/json' \
    -d '{"currency":"DZD","customer":{"name":"Amina","phone":"+213555123456"},"lines":[{"sku":"TEE-M","name":"T-shirt","quantity":1,"unit_price":150000}]}'

`, api, ops, ops, cfg.OpsUser, cfg.OpsPassword, cfg.DatabaseURL, cfg.RedisURL, s.ID, s.Flow, devMerchantEmail,
			cfg.DevStorefrontKey, cfg.DevMerchantKey, cfg.DevCourierSecret, api, cfg.DevStorefrontKey)
	})
}

// dev listens on the loopback interface unless told otherwise: its keys
// and ops password are printed, and its webhooks may reach private
// addresses.
const (
	devHTTPAddr = "127.0.0.1:8080"
	devOpsAddr  = "127.0.0.1:9090"
)

// devDefaults applies dev's defaults to what the environment and the -http
// and -ops flags left unset: the loopback addresses, and webhooks to
// private addresses allowed (an explicit PACKLINE_WEBHOOK_ALLOW_PRIVATE,
// false included, is kept).
func devDefaults(cfg Config, httpFlag, opsFlag string) Config {
	switch {
	case httpFlag != "":
		cfg.HTTPAddr = httpFlag
	case !cfg.httpAddrSet:
		cfg.HTTPAddr = devHTTPAddr
	}
	switch {
	case opsFlag != "":
		cfg.OpsAddr = opsFlag
	case !cfg.opsAddrSet:
		cfg.OpsAddr = devOpsAddr
	}
	if !cfg.allowPrivateSet {
		cfg.AllowPrivate = true
	}
	return cfg
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
