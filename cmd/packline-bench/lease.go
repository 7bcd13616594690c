package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/packline/packline/internal/fleet"
)

// The repository's tests (redistest) lease Redis databases 1–15 of
// TEST_REDIS_URL by SET NX of a key in database 0, and flush what they
// lease. The benchmark takes the same lease on the databases it uses, so a
// test run on the same server neither flushes them mid-run nor is flushed.
const (
	leaseTTL    = time.Minute
	leasePrefix = "packline:test:redis-lease:"
)

// redisLease holds the leases of some databases until release.
type redisLease struct {
	admin *redis.Client
	token string
	keys  []string
	stop  chan struct{}
	once  sync.Once
}

// leaseRedis takes the lease of each database of opts, or fails naming
// the one a test holds.
func leaseRedis(ctx context.Context, opts ...asynq.RedisClientOpt) (*redisLease, error) {
	l := &redisLease{admin: redis.NewClient(&redis.Options{Addr: opts[0].Addr, Password: opts[0].Password, DB: 0}),
		token: "packline-bench-" + fleet.RandomHex(8), stop: make(chan struct{})}
	for _, o := range opts {
		if o.DB == 0 {
			continue
		}
		key := leasePrefix + strconv.Itoa(o.DB)
		ok, err := l.admin.SetNX(ctx, key, l.token, leaseTTL).Result()
		if err != nil {
			l.release()
			return nil, fmt.Errorf("cannot reach Redis at %s: %w; bench-fleet needs REDIS_URL naming a Redis 6.2+ server", o.Addr, err)
		}
		if !ok {
			l.release()
			return nil, fmt.Errorf("Redis database %d is leased by a test run (key %s in database 0): wait for it, or pick other databases (REDIS_URL, -reference-redis-db)", o.DB, key)
		}
		l.keys = append(l.keys, key)
	}
	go l.renew()
	return l, nil
}

func (l *redisLease) renew() {
	t := time.NewTicker(leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			for _, k := range l.keys {
				l.admin.Expire(context.Background(), k, leaseTTL)
			}
		}
	}
}

// release gives back the leases still ours. It may be called more than
// once.
func (l *redisLease) release() {
	l.once.Do(l.releaseOnce)
}

func (l *redisLease) releaseOnce() {
	close(l.stop)
	ctx := context.Background()
	for _, k := range l.keys {
		if v, _ := l.admin.Get(ctx, k).Result(); v == l.token {
			l.admin.Del(ctx, k)
		}
	}
	l.admin.Close()
}
