package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/packline/packline"
)

// Scope is what an API key may do.
type Scope string

// Key scopes (API.md).
const (
	ScopeStorefront Scope = "storefront" // create orders, read its own, send customer events
	ScopeMerchant   Scope = "merchant"   // everything for the store
)

// Key prefixes tell a storefront key from a merchant key at a glance.
const (
	storefrontKeyPrefix = "pl_sf_"
	merchantKeyPrefix   = "pl_mk_"
)

// Store is a shop that runs orders on one default flow.
type Store struct {
	ID        string    `db:"id" json:"id"`
	Name      string    `db:"name" json:"name"`
	Flow      string    `db:"flow" json:"flow"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
}

// Key is an authenticated API key.
type Key struct {
	ID      string `db:"id"`
	StoreID string `db:"store_id"`
	Scope   Scope  `db:"scope"`
	// StoreFlow is the store's flow: the one its orders run unless they
	// name another.
	StoreFlow string `db:"flow"`
	// RateLimit is the key's store's override of the API's per-key rate
	// limit, read with the key so that a change applies on its next request.
	RateLimit
}

// RateLimit is a store's override of the API's per-key rate limit. A nil
// field takes the server's default (PACKLINE_RATE_LIMIT, PACKLINE_RATE_BURST).
type RateLimit struct {
	PerSecond *float64 `db:"rate_limit"` // sustained requests per second per key
	Burst     *int     `db:"rate_burst"` // requests a key may send at once
}

// validate reports a limit that no token bucket can enforce.
func (l RateLimit) validate() error {
	if l.PerSecond != nil && (!(*l.PerSecond > 0) || math.IsInf(*l.PerSecond, 0)) {
		return packline.FieldError("rate_limit", "the rate limit must be a number of requests per second above 0")
	}
	if l.Burst != nil && *l.Burst < 1 {
		return packline.FieldError("rate_burst", "the burst must be at least 1 request")
	}
	return nil
}

// Actor is the actor a key speaks as.
func (k Key) Actor() packline.Actor {
	if k.Scope == ScopeMerchant {
		return packline.Actor{Type: packline.ActorMerchant, ID: k.ID}
	}
	return packline.Actor{Type: packline.ActorCustomer, ID: k.ID}
}

// NewKey returns a fresh random key of the scope.
func NewKey(scope Scope) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	p := storefrontKeyPrefix
	if scope == ScopeMerchant {
		p = merchantKeyPrefix
	}
	return p + hex.EncodeToString(b[:])
}

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// CreateStore creates a store and a storefront and a merchant key, returned
// once: only their hashes are kept.
func (db *DB) CreateStore(ctx context.Context, name, flow string) (s Store, storefrontKey, merchantKey string, err error) {
	storefrontKey, merchantKey = NewKey(ScopeStorefront), NewKey(ScopeMerchant)
	s, err = db.CreateStoreWithKeys(ctx, name, flow, storefrontKey, merchantKey)
	return s, storefrontKey, merchantKey, err
}

// CreateStoreWithKeys creates a store with the given keys (packline dev takes
// them from the environment). A store of that name that exists already is
// returned as it is, with the keys added if they are new.
func (db *DB) CreateStoreWithKeys(ctx context.Context, name, flow, storefrontKey, merchantKey string) (Store, error) {
	if name == "" {
		return Store{}, packline.FieldError("name", "a store needs a name")
	}
	if db.opts.Flows.Get(flow) == nil {
		return Store{}, packline.FieldError("flow", "unknown flow %q (one of %v)", flow, db.opts.Flows.Names())
	}
	var s Store
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &s, db.rebind(`SELECT id, name, flow, created_at FROM stores WHERE name = ?`), name)
		if isNoRows(err) {
			now := db.Now()
			s = Store{ID: NewID("store", now), Name: name, Flow: flow, CreatedAt: now}
			_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO stores (id, name, flow, created_at) VALUES (?, ?, ?, ?)`),
				s.ID, s.Name, s.Flow, s.CreatedAt)
		}
		if err != nil {
			return fmt.Errorf("create store %s: %w", name, err)
		}
		for _, k := range []struct {
			key   string
			scope Scope
		}{{storefrontKey, ScopeStorefront}, {merchantKey, ScopeMerchant}} {
			if err := db.addKey(ctx, tx, s.ID, k.key, k.scope); err != nil {
				return err
			}
		}
		return nil
	})
	return s, err
}

func (db *DB) addKey(ctx context.Context, tx *sqlx.Tx, storeID, key string, scope Scope) error {
	if len(key) < 20 {
		return packline.FieldError("key", "an API key must be at least 20 characters")
	}
	now := db.Now()
	var exists int
	h := hashKey(key)
	if err := tx.GetContext(ctx, &exists, db.rebind(`SELECT COUNT(*) FROM api_keys WHERE key_hash = ?`), h); err != nil {
		return fmt.Errorf("look up key: %w", err)
	}
	if exists > 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO api_keys (id, store_id, scope, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		NewID("key", now), storeID, string(scope), h, key[:10], now)
	if err != nil {
		return fmt.Errorf("add %s key: %w", scope, err)
	}
	return nil
}

// Authenticate returns the key's store, scope and the store's rate limit, or
// EUNAUTHORIZED. It is one query: the API calls it on every request.
func (db *DB) Authenticate(ctx context.Context, key string) (Key, error) {
	var k Key
	err := db.db.GetContext(ctx, &k, db.rebind(`SELECT k.id, k.store_id, k.scope, s.flow, s.rate_limit, s.rate_burst
		FROM api_keys k JOIN stores s ON s.id = k.store_id
		WHERE k.key_hash = ? AND k.revoked_at IS NULL`), hashKey(key))
	if isNoRows(err) {
		return Key{}, packline.Errorf(packline.EUNAUTHORIZED, "the API key is not valid")
	}
	if err != nil {
		return Key{}, fmt.Errorf("authenticate: %w", err)
	}
	return k, nil
}

// GetStore returns a store by id.
func (db *DB) GetStore(ctx context.Context, id string) (Store, error) {
	var s Store
	err := db.db.GetContext(ctx, &s, db.rebind(`SELECT id, name, flow, created_at FROM stores WHERE id = ?`), id)
	if isNoRows(err) {
		return Store{}, packline.Errorf(packline.ENOTFOUND, "store not found")
	}
	return s, err
}

// SetStoreRateLimit sets (or, with nil fields, clears) the rate limit of the
// store named name and returns the store. Every API process applies it on
// each of the store's keys' next request.
func (db *DB) SetStoreRateLimit(ctx context.Context, name string, l RateLimit) (Store, error) {
	if err := l.validate(); err != nil {
		return Store{}, err
	}
	var s Store
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &s, db.rebind(`SELECT id, name, flow, created_at FROM stores WHERE name = ?`), name)
		if isNoRows(err) {
			return packline.Errorf(packline.ENOTFOUND, "no store named %q", name)
		}
		if err != nil {
			return fmt.Errorf("read store %s: %w", name, err)
		}
		_, err = tx.ExecContext(ctx, db.rebind(`UPDATE stores SET rate_limit = ?, rate_burst = ? WHERE id = ?`), l.PerSecond, l.Burst, s.ID)
		if err != nil {
			return fmt.Errorf("set rate limit of store %s: %w", name, err)
		}
		return nil
	})
	return s, err
}
