package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// Authenticate returns the key's store and scope, or EUNAUTHORIZED.
func (db *DB) Authenticate(ctx context.Context, key string) (Key, error) {
	var k Key
	err := db.db.GetContext(ctx, &k, db.rebind(`SELECT id, store_id, scope FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`), hashKey(key))
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
