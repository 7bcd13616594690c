package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
)

// playStep is one step of the journey dev plays: the status the sandbox
// courier reports, and how long after the previous one (at timer scale 1).
type playStep struct {
	status couriers.Status
	after  time.Duration
}

// playJourney is sandbox.Delivered with its pace: picked up an hour after
// the label, out for delivery four hours later, delivered twelve hours
// after that — all multiplied by PACKLINE_TIMER_SCALE.
var playJourney = map[couriers.Status]playStep{
	couriers.StatusPreTransit:     {couriers.StatusInTransit, time.Hour},
	couriers.StatusInTransit:      {couriers.StatusOutForDelivery, 4 * time.Hour},
	couriers.StatusOutForDelivery: {couriers.StatusDelivered, 12 * time.Hour},
}

// playable lists the statuses the player moves a shipment on from.
var playable = []couriers.Status{couriers.StatusPreTransit, couriers.StatusInTransit, couriers.StatusOutForDelivery}

const (
	// playPoll is how often the player looks at the shipments when nothing
	// wakes it (a label made by another process, a restart with -data).
	playPoll = 2 * time.Second
	// playRetry is the wait before a callback the API could not take is
	// posted again.
	playRetry = time.Second
	// playUnreadyFor is how long a label may wait for its label_created to
	// commit before the player leaves the shipment alone (its order
	// refused the label: it was cancelled meanwhile).
	playUnreadyFor = time.Minute
)

// courierPlayer is packline dev's sandbox courier at work: it plays every
// sandbox shipment forward (in transit, out for delivery, delivered) by
// posting signed callbacks to the API's real callback endpoint, so an order
// goes from shipped to delivered with no hand on the database. It is dev
// wiring only: no production role makes one.
//
// The database is its schedule: each pass reads the shipments still on the
// way and posts the next status of those whose time has come (the
// shipment's status_at plus the scaled delay), so a restart on the same
// data carries on where it stopped. One goroutine posts, and posts a status
// at most once per shipment; the first callback waits until the order has
// taken the label (label_created on its timeline).
type courierPlayer struct {
	db     *store.DB
	secret string
	scale  float64
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}

	// Touched by run's goroutine only.
	posted  map[string]couriers.Status // tracking number → the last status posted
	retryAt map[string]time.Time       // tracking number → no post before
	unready map[string]time.Time       // tracking number → first found without label_created
}

func newCourierPlayer(db *store.DB, secret string, scale float64, log *slog.Logger) *courierPlayer {
	return &courierPlayer{db: db, secret: secret, scale: scale, log: log.With("component", "sandbox-courier"),
		client: &http.Client{Timeout: 10 * time.Second}, wake: make(chan struct{}, 1),
		posted: map[string]couriers.Status{}, retryAt: map[string]time.Time{}, unready: map[string]time.Time{}}
}

// Wake makes the player look at the shipments now. It never blocks.
func (p *courierPlayer) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run plays shipments forward through the API listening on apiAddr until
// ctx is done (Ctrl-C).
func (p *courierPlayer) run(ctx context.Context, apiAddr string) error {
	url := "http://" + dialable(apiAddr) + "/v1/couriers/" + sandbox.Name + "/callbacks"
	p.log.Info("the sandbox courier plays shipments forward; PACKLINE_DEV_COURIER_PLAY=false stops it",
		"in_transit_after", flows.Scale(time.Hour, p.scale), "delivered_after", flows.Scale(17*time.Hour, p.scale))
	for {
		next := p.pass(ctx, url)
		wait := playPoll
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-p.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pass posts every callback that is due and returns when the next one will
// be (zero: none known).
func (p *courierPlayer) pass(ctx context.Context, url string) (next time.Time) {
	shs, err := p.db.ShipmentsInStatus(ctx, sandbox.Name, playable, 500)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("list shipments to play", "err", err)
		}
		return time.Now().Add(playRetry)
	}
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, sh := range shs {
		if ctx.Err() != nil {
			return next
		}
		step, ok := playJourney[sh.Status]
		if !ok || p.posted[sh.TrackingNumber] == step.status {
			continue
		}
		now := time.Now()
		due := sh.StatusAt.Add(flows.Scale(step.after, p.scale))
		if at := p.retryAt[sh.TrackingNumber]; at.After(due) {
			due = at
		}
		if due.After(now) {
			soonest(due)
			continue
		}
		if sh.Status == couriers.StatusPreTransit {
			ready, err := p.labelTaken(ctx, sh)
			if err != nil || !ready {
				soonest(now.Add(100 * time.Millisecond))
				continue
			}
		}
		if p.post(ctx, url, sh, step.status) {
			// Look again at once: the next step's time counts from now.
			soonest(now)
		} else if at, ok := p.retryAt[sh.TrackingNumber]; ok {
			soonest(at)
		}
	}
	return next
}

// labelTaken reports whether the shipment's order took its label
// (label_created is on the timeline): the report commits just after the
// shipment is stored. A label its order never takes is given up on.
func (p *courierPlayer) labelTaken(ctx context.Context, sh store.Shipment) (bool, error) {
	tl, err := p.db.Timeline(ctx, sh.OrderID)
	if err != nil {
		return false, err
	}
	for _, e := range tl {
		if flows.EventName(e.Event) == flows.EventLabelCreated {
			delete(p.unready, sh.TrackingNumber)
			return true, nil
		}
	}
	first, seen := p.unready[sh.TrackingNumber]
	switch {
	case !seen:
		p.unready[sh.TrackingNumber] = time.Now()
	case time.Since(first) > playUnreadyFor:
		p.log.Info("not playing a shipment whose order did not take its label", "tracking_number", sh.TrackingNumber)
		p.posted[sh.TrackingNumber] = playJourney[sh.Status].status
		delete(p.unready, sh.TrackingNumber)
	}
	return false, nil
}

// post sends one signed callback. A status the API took, or refused for
// good, is never posted again for the shipment; one it could not take
// (down, 5xx) is retried after playRetry. It reports whether the API took
// it.
func (p *courierPlayer) post(ctx context.Context, url string, sh store.Shipment, status couriers.Status) (taken bool) {
	now := time.Now()
	// Callbacks carry whole seconds: at the scales demos use, a step may
	// come within the second of the one before; it is dated a second
	// after it, so the shipment's history reads in order.
	at := now
	if next := sh.StatusAt.Add(time.Second); at.Before(next) {
		at = next
	}
	req, err := sandbox.NewCallbackRequest(ctx, url, p.secret, sh.TrackingNumber, status, at, now)
	if err != nil {
		p.log.Error("build a sandbox callback", "err", err)
		p.posted[sh.TrackingNumber] = status
		return false
	}
	res, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("post a sandbox callback", "tracking_number", sh.TrackingNumber, "status", string(status), "err", err)
			p.retryAt[sh.TrackingNumber] = now.Add(playRetry)
		}
		return false
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	switch {
	case res.StatusCode == http.StatusOK:
		taken = true
		p.log.Info("sandbox courier: tracking update", "tracking_number", sh.TrackingNumber, "status", string(status))
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests:
		p.log.Warn("sandbox callback not taken; will retry", "tracking_number", sh.TrackingNumber, "status", string(status), "http_status", res.StatusCode)
		p.retryAt[sh.TrackingNumber] = now.Add(playRetry)
		return false
	default:
		p.log.Warn("sandbox callback refused", "tracking_number", sh.TrackingNumber, "status", string(status), "http_status", res.StatusCode)
	}
	p.posted[sh.TrackingNumber] = status
	delete(p.retryAt, sh.TrackingNumber)
	return taken
}

// dialable turns a listener address into one to dial: an unspecified host
// (":8080" binds every interface) becomes the loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
