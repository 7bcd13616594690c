package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// FleetKey is the Redis key naming the fleet whose tasks the Redis database
// holds.
const FleetKey = "packline:fleet"

// Fleet names a fleet: its database's fleet id (store.DB.FleetID) and
// where that database is (store.DB.Where), for the message a second fleet
// gets.
type Fleet struct {
	ID       string `json:"id"`
	Database string `json:"database"`
}

// ErrForeignFleet is Stamp's answer when the Redis database is another
// fleet's: two fleets on one Redis database run each other's tasks, and
// each archives the other's as "effect not found".
var ErrForeignFleet = errors.New("the Redis database belongs to another packline fleet")

// Stamp claims the Redis database behind rdb for fleet f, or returns
// ErrForeignFleet naming both fleets. Every role stamps at start, and the
// sweep stamps again after a flush removed the key.
func Stamp(ctx context.Context, rdb redis.UniversalClient, f Fleet) error {
	_, err := stamp(ctx, rdb, f)
	return err
}

// stamp is Stamp; fresh reports that the stamp was missing (a new Redis, or
// one that lost its data: a flush, a restart without persistence).
func stamp(ctx context.Context, rdb redis.UniversalClient, f Fleet) (fresh bool, err error) {
	val, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	ok, err := rdb.SetNX(ctx, FleetKey, val, 0).Result()
	if err != nil {
		return false, fmt.Errorf("stamp the fleet id in Redis: %w", err)
	}
	if ok {
		return true, nil
	}
	raw, err := rdb.Get(ctx, FleetKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return stamp(ctx, rdb, f) // removed in between (a flush)
	}
	if err != nil {
		return false, fmt.Errorf("read the fleet id in Redis: %w", err)
	}
	var other Fleet
	if json.Unmarshal(raw, &other) != nil {
		other = Fleet{ID: string(raw), Database: "unknown"}
	}
	if other.ID == f.ID {
		return false, nil
	}
	return false, fmt.Errorf("%w: it holds the tasks of fleet %s (database %s); this is fleet %s (database %s): give each fleet a Redis database of its own (REDIS_URL redis://host:6379/<n>)",
		ErrForeignFleet, other.ID, other.Database, f.ID, f.Database)
}
