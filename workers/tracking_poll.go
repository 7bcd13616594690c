package workers

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/metrics"
	"github.com/packline/packline/store"
)

// openStatuses are the tracking statuses a shipment can still move on from.
var openStatuses = []couriers.Status{
	couriers.StatusUnknown, couriers.StatusPreTransit, couriers.StatusInTransit, couriers.StatusOutForDelivery,
	couriers.StatusAvailableForPickup, couriers.StatusFailure, couriers.StatusReturnToSender,
}

// PollOptions configure a TrackingPoller.
type PollOptions struct {
	// Interval is the time between passes (default 15 minutes).
	Interval time.Duration
	// Batch is how many open shipments of one courier a pass asks about,
	// the longest unchanged first (default 500).
	Batch  int
	Logger *slog.Logger
}

// TrackingPoller asks couriers that have no callbacks where their open
// shipments are (Courier.Track) and records each answer as a callback would
// be (store.RecordTracking: a duplicate changes nothing, an older status
// never moves an order back). A courier whose Track answers
// couriers.ErrUnsupported calls back instead and is not asked. The scheduler
// role runs it.
type TrackingPoller struct {
	db   *store.DB
	reg  *couriers.Registry
	opts PollOptions
}

// NewTrackingPoller returns a poller of the registry's couriers.
func NewTrackingPoller(db *store.DB, reg *couriers.Registry, opts PollOptions) *TrackingPoller {
	if opts.Interval <= 0 {
		opts.Interval = 15 * time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &TrackingPoller{db: db, reg: reg, opts: opts}
}

// Run polls every Interval until ctx is done; it returns nil then.
func (p *TrackingPoller) Run(ctx context.Context) error {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.opts.Logger.WarnContext(ctx, "tracking poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll runs one pass and returns how many shipments moved.
func (p *TrackingPoller) Poll(ctx context.Context) (moved int, err error) {
	for _, name := range p.reg.Names() {
		c, err := p.reg.Get(name)
		if err != nil {
			return moved, err
		}
		shs, err := p.db.ShipmentsInStatus(ctx, name, openStatuses, p.opts.Batch)
		if err != nil {
			return moved, err
		}
		for _, sh := range shs {
			u, err := c.Track(ctx, sh.TrackingNumber)
			if errors.Is(err, couriers.ErrUnsupported) {
				break // this courier calls back
			}
			metrics.CourierCall(name, metrics.Outcome(err))
			if err != nil {
				p.opts.Logger.WarnContext(ctx, "track shipment", "courier", name, "tracking_number", sh.TrackingNumber, "err", err)
				continue
			}
			if u.Courier == "" {
				u.Courier = name
			}
			if u.TrackingNumber == "" {
				u.TrackingNumber = sh.TrackingNumber
			}
			res, err := p.db.RecordTracking(ctx, u)
			if err != nil {
				p.opts.Logger.WarnContext(ctx, "record polled tracking", "courier", name, "tracking_number", sh.TrackingNumber, "err", err)
				continue
			}
			if res.Newer {
				moved++
			}
		}
	}
	return moved, nil
}
