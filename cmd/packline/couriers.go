package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/store"
	"github.com/packline/packline/workers"
)

// minCourierSecret is the shortest courier callback secret accepted
// outside dev.
const minCourierSecret = 16

// readCourierConfig reads the couriers' settings into c: the sandbox
// courier's secret (PACKLINE_SANDBOX_COURIER_SECRET), dev's playback
// switch (PACKLINE_DEV_COURIER_PLAY) and the API's public base URL
// (PACKLINE_PUBLIC_URL).
func readCourierConfig(getenv func(string) string, c *Config) error {
	c.SandboxCourierSecret = getenv("PACKLINE_SANDBOX_COURIER_SECRET")
	if n := len(c.SandboxCourierSecret); n > 0 && n < minCourierSecret {
		// The value is a secret: never repeat it.
		return fmt.Errorf("PACKLINE_SANDBOX_COURIER_SECRET: want at least %d characters, got %d", minCourierSecret, n)
	}
	c.DevCourierPlay = true
	if v := getenv("PACKLINE_DEV_COURIER_PLAY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("PACKLINE_DEV_COURIER_PLAY=%q: want true or false", v)
		}
		c.DevCourierPlay = b
	}
	if v := getenv("PACKLINE_PUBLIC_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("PACKLINE_PUBLIC_URL=%q: want the API's public base URL, e.g. https://api.example.com", v)
		}
		c.PublicURL = strings.TrimRight(v, "/")
	}
	return nil
}

// isDev reports whether roles are packline dev's: every role in one
// process, which nothing else runs.
func isDev(roles []string) bool {
	has := map[string]bool{}
	for _, r := range roles {
		has[r] = true
	}
	for _, r := range allRoles {
		if !has[r] {
			return false
		}
	}
	return true
}

// courierWiring is what a process's roles get of the couriers.
type courierWiring struct {
	// registry is the configured couriers, for the API's callbacks and the
	// scheduler's tracking poll.
	registry *couriers.Registry
	// handler is the worker's courier:label handler (workers.Deps.Courier);
	// nil when no courier is configured, so the rows stay pending.
	handler workers.EffectHandler
	// player plays sandbox shipments forward in dev; nil elsewhere.
	player *courierPlayer
}

// wireCouriers configures the couriers: the sandbox courier, on
// PACKLINE_SANDBOX_COURIER_SECRET, or in dev on PACKLINE_DEV_COURIER_SECRET
// (which dev makes up when unset). Outside dev, without a secret, there is
// no courier: courier:label rows stay pending, visible in the outbox, and
// callbacks are 404. In dev it also gives the demo store a ship-from
// address, and (unless PACKLINE_DEV_COURIER_PLAY=false) a player that plays
// each sandbox shipment forward through the real callback endpoint.
func wireCouriers(ctx context.Context, cfg Config, roles []string, db *store.DB, log *slog.Logger) (courierWiring, error) {
	dev := isDev(roles)
	secret := cfg.SandboxCourierSecret
	if dev && cfg.DevCourierSecret != "" {
		secret = cfg.DevCourierSecret
	}
	var w courierWiring
	if secret == "" {
		w.registry = couriers.NewRegistry()
		log.Info("no courier configured: set PACKLINE_SANDBOX_COURIER_SECRET for the sandbox courier")
		return w, nil
	}
	sb, err := sandbox.New(sandbox.Options{Secret: secret})
	if err != nil {
		return w, err
	}
	w.registry = couriers.NewRegistry(sb)
	labels := workers.NewCourierLabels(db, w.registry, workers.CourierOptions{Default: sandbox.Name, Logger: log})
	w.handler = labels
	if !dev {
		return w, nil
	}
	if err := demoShipFrom(ctx, db, cfg.DevMerchantKey); err != nil {
		return w, err
	}
	if cfg.DevCourierPlay {
		player := newCourierPlayer(db, secret, cfg.TimerScale, log)
		w.player = player
		// A new label wakes the player (it also polls, so a wake lost, or
		// the label's report not yet committed, only delays it).
		w.handler = workers.EffectHandlerFunc(func(ctx context.Context, e workers.Effect) (*workers.Report, error) {
			rep, err := labels.HandleEffect(ctx, e)
			if err == nil && rep != nil {
				player.Wake()
			}
			return rep, err
		})
	}
	return w, nil
}

// demoFrom is the demo store's ship-from address: made up, and marked so.
var demoFrom = store.ShipFrom{Name: "packline demo store", Address: packline.Address{
	Line1: "1 rue de l'Exemple (demo address)", City: "Alger", PostalCode: "16000", Country: "DZ"}}

// demoShipFrom gives dev's demo store (the store of the dev merchant key) a
// ship-from address for its labels, unless it has one.
func demoShipFrom(ctx context.Context, db *store.DB, merchantKey string) error {
	if merchantKey == "" {
		return nil
	}
	k, err := db.Authenticate(ctx, merchantKey)
	if err != nil {
		return fmt.Errorf("find the demo store: %w", err)
	}
	s, err := db.StoreShipping(ctx, k.StoreID)
	if err != nil || s.From != nil {
		return err
	}
	return db.SetStoreShipping(ctx, k.StoreID, s.Courier, &demoFrom)
}
