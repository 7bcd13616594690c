package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/store"
)

// CourierRegistry is what the API needs of the configured couriers:
// *couriers.Registry fits.
type CourierRegistry interface {
	Get(name string) (couriers.Courier, error)
}

// MaxCallbackBytes is the largest courier callback body accepted (413
// beyond): tracking updates are small.
const MaxCallbackBytes = 64 << 10

// maxCallbackAhead is how far ahead of its receipt a tracking update's
// occurred_at may be (the clock skew a callback's signature tolerates);
// later than that, it is clamped to the time of receipt.
const maxCallbackAhead = couriers.SignatureTolerance

// callbackResponse answers a courier callback. It names no order and no
// person: the caller is a courier.
type callbackResponse struct {
	TrackingNumber string `json:"tracking_number"`
	ShipmentStatus string `json:"shipment_status"`
	OrderStatus    string `json:"order_status"`
	// Result is "updated" (the shipment moved to the status), "older" (kept
	// in the history; the shipment is at a later status already) or
	// "duplicate" (seen before; nothing changed).
	Result string `json:"result"`
	// Event is the order event the update applied, when it applied one.
	Event string `json:"event,omitempty"`
}

// courierCallback is POST /v1/couriers/{courier}/callbacks: a courier's
// signed tracking update (API.md). The signature is checked over the raw
// body before anything is parsed or looked up. A duplicate, or an older
// status arriving after a newer one, is a 200 that changes nothing (the
// courier must not retry it). Only the courier, tracking number and status
// are logged, never the body.
func (s *Server) courierCallback(w http.ResponseWriter, r *http.Request, _ store.Key) {
	name := r.PathValue("courier")
	var (
		c   couriers.Courier
		err error = couriers.ErrUnknownCourier
	)
	if s.couriers != nil {
		c, err = s.couriers.Get(name)
	}
	if err != nil {
		if len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < '!' || r > '~' }) {
			name = "of that name"
		}
		s.writeError(w, r, packline.Errorf(packline.ENOTFOUND, "no courier %s is configured", name))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCallbackBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, packline.Errorf(packline.ETOOLARGE, "the callback body is over %d bytes", MaxCallbackBytes))
			return
		}
		s.writeError(w, r, packline.Errorf(packline.EMALFORMED, "could not read the callback body"))
		return
	}
	u, err := c.ParseCallback(r.Header, body, time.Now())
	if err != nil {
		err = callbackError(c.Name(), err)
		if packline.ErrorCode(err) != packline.EINTERNAL {
			s.log.WarnContext(r.Context(), "courier callback refused", "courier", c.Name(),
				"code", packline.ErrorCode(err), "reason", packline.ErrorMessage(err))
		}
		s.writeError(w, r, err)
		return
	}
	// The signature covers the body, not its bytes' sanity: a string the
	// courier's decoder turned into U+FFFD would be stored as that.
	if err := checkEncoding(body); err != nil {
		s.writeError(w, r, packline.Errorf(packline.EMALFORMED, "malformed callback: %s", packline.ErrorMessage(err)))
		return
	}
	u.Courier = c.Name()
	// A time ahead of receipt would order this update after every later
	// one of its rank (couriers.Supersedes), pinning the shipment: beyond
	// the clock skew a signature tolerates, it is taken as received now.
	if received := time.Now(); u.OccurredAt.After(received.Add(maxCallbackAhead)) {
		s.log.WarnContext(r.Context(), "courier callback from the future; taken as received now", "courier", u.Courier,
			"tracking_number", u.TrackingNumber, "occurred_at", u.OccurredAt, "received_at", received)
		u.OccurredAt = received
	}
	res, err := s.db.RecordTracking(r.Context(), u)
	if err != nil {
		if packline.ErrorCode(err) == packline.ENOTFOUND {
			s.log.WarnContext(r.Context(), "courier callback for an unknown tracking number", "courier", u.Courier,
				"tracking_number", u.TrackingNumber, "status", string(u.Status))
		}
		s.writeError(w, r, err)
		return
	}
	out := callbackResponse{TrackingNumber: u.TrackingNumber, ShipmentStatus: string(res.Shipment.Status),
		OrderStatus: res.Order.Status, Result: "updated", Event: res.Event}
	switch {
	case res.Duplicate:
		out.Result = "duplicate"
	case !res.Newer:
		out.Result = "older"
	}
	s.log.InfoContext(r.Context(), "courier callback", "courier", u.Courier, "tracking_number", u.TrackingNumber,
		"status", string(u.Status), "result", out.Result, "event", res.Event)
	writeJSON(w, http.StatusOK, out)
}

// callbackError maps a couriers.Courier ParseCallback error to the client
// error it deserves: 401 for a bad or stale signature, 400 for a body or
// header that cannot be parsed, 404 for a courier that sends no callbacks.
// The messages are the package's own, which name fields, never values of
// the body. Anything else is internal.
func callbackError(courier string, err error) error {
	detail := func(sentinel error) string {
		msg := err.Error()
		if i := strings.Index(msg, sentinel.Error()); i >= 0 {
			msg = strings.TrimPrefix(msg[i+len(sentinel.Error()):], ": ")
		}
		return msg
	}
	switch {
	case errors.Is(err, couriers.ErrStaleSignature):
		return packline.Errorf(packline.EUNAUTHORIZED, "stale callback: the %s timestamp is more than %s from now (%s)",
			couriers.SignatureHeader, couriers.SignatureTolerance, detail(couriers.ErrStaleSignature))
	case errors.Is(err, couriers.ErrBadSignature):
		return packline.Errorf(packline.EUNAUTHORIZED, "bad callback signature: %s", detail(couriers.ErrBadSignature))
	case errors.Is(err, couriers.ErrMalformed):
		return packline.Errorf(packline.EMALFORMED, "malformed callback: %s", detail(couriers.ErrMalformed))
	case errors.Is(err, couriers.ErrUnsupported):
		return packline.Errorf(packline.ENOTFOUND, "this courier sends no callbacks")
	}
	return fmt.Errorf("parse %s callback: %w", courier, err)
}
