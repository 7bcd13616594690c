package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
)

// Settings are what the roles are run with.
type Settings struct {
	DatabaseURL, RedisURL string
	// TimerScale is PACKLINE_TIMER_SCALE.
	TimerScale string
	// Concurrency is PACKLINE_WORKER_CONCURRENCY.
	Concurrency int
	// CourierSecret enables the sandbox courier, whose callbacks it signs.
	CourierSecret string
}

// RoleEnv is the roles' environment: base without any packline setting
// (Env), plus the databases, the timer scale, the worker concurrency, the
// sandbox courier (payments are the sandbox by default), loopback webhooks,
// a per-key rate limit no client here reaches, and production's logging
// (info, JSON).
func RoleEnv(base []string, s Settings) []string {
	return Env(base,
		"DATABASE_URL="+s.DatabaseURL,
		"REDIS_URL="+s.RedisURL,
		"PACKLINE_TIMER_SCALE="+s.TimerScale,
		"PACKLINE_WORKER_CONCURRENCY="+fmt.Sprint(s.Concurrency),
		"PACKLINE_SANDBOX_COURIER_SECRET="+s.CourierSecret,
		"PACKLINE_WEBHOOK_ALLOW_PRIVATE=true",
		"PACKLINE_OPS_PASSWORD="+RandomHex(12),
		"PACKLINE_RATE_LIMIT=1000000",
		"PACKLINE_RATE_BURST=1000000",
		"LOG_LEVEL=info",
		"LOG_FORMAT=json",
	)
}

// RandomHex is n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// GitCommit is the tree's short commit, when run in a git checkout.
func GitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// QuietRedis is a go-redis logger that drops its lines (dial retries): a
// Redis that cannot be reached is reported once, as an error.
type QuietRedis struct{}

// Printf implements go-redis's logger.
func (QuietRedis) Printf(context.Context, string, ...any) {}
