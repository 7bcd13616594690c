// Package sandbox is the embedded default courier: it needs no account and no
// network. It issues a tracking number derived from the label request's key
// (so a retried label is the same label, in any process), draws a real
// printable 4×6 inch PDF label, and accepts callbacks signed with the
// packline scheme (couriers.SignatureHeader) whose body is
//
//	{"tracking_number": "...", "status": "<canonical status>", "occurred_at": "<RFC 3339>"}
//
// In dev, a shipment is played forward by posting such callbacks to the real
// callback endpoint: NewCallbackRequest builds one, signed.
package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/packline/packline/couriers"
)

// Name is the sandbox courier's name.
const Name = "sandbox"

// DefaultTrackingURL is the tracking page used when Options.TrackingURL is
// empty; {tracking_number} is replaced.
const DefaultTrackingURL = "https://track.example.com/sandbox/{tracking_number}"

// trackingPrefix starts every sandbox tracking number.
const trackingPrefix = "SB"

// Options configure the sandbox courier.
type Options struct {
	// Secret signs and verifies callbacks (PACKLINE_DEV_COURIER_SECRET in
	// dev). Required.
	Secret string
	// TrackingURL is the public tracking page, with {tracking_number} in it.
	TrackingURL string
}

// Courier is the sandbox courier. It keeps no state and is safe for
// concurrent use.
type Courier struct {
	secret      string
	trackingURL string
}

var _ couriers.Courier = (*Courier)(nil)

// New returns the sandbox courier.
func New(opts Options) (*Courier, error) {
	if opts.Secret == "" {
		return nil, errors.New("sandbox courier: a callback secret is required")
	}
	if opts.TrackingURL == "" {
		opts.TrackingURL = DefaultTrackingURL
	}
	return &Courier{secret: opts.Secret, trackingURL: opts.TrackingURL}, nil
}

// Name implements couriers.Courier.
func (c *Courier) Name() string { return Name }

// TrackingNumber is the tracking number the sandbox issues for a label key:
// "SB" and 18 digits taken from SHA-256 of the key. Digits keep the Code 128
// barcode short (two digits per symbol).
func TrackingNumber(key string) string {
	h := sha256.Sum256([]byte("packline-sandbox-label|" + key))
	n := binary.BigEndian.Uint64(h[:8]) % 1_000_000_000_000_000_000
	return fmt.Sprintf("%s%018d", trackingPrefix, n)
}

// CreateLabel implements couriers.Courier. The same request gives the same
// label, byte for byte.
func (c *Courier) CreateLabel(ctx context.Context, req couriers.LabelRequest) (couriers.Label, error) {
	if err := req.Validate(); err != nil {
		return couriers.Label{}, err
	}
	if err := ctx.Err(); err != nil {
		return couriers.Label{}, err
	}
	tn := TrackingNumber(req.Key)
	pdf, err := renderLabel(req, tn)
	if err != nil {
		return couriers.Label{}, fmt.Errorf("sandbox label for %s: %w", req.Key, err)
	}
	return couriers.Label{
		Courier:        Name,
		TrackingNumber: tn,
		TrackingURL:    strings.ReplaceAll(c.trackingURL, "{tracking_number}", tn),
		PDF:            pdf,
	}, nil
}

// callback is the sandbox's callback body.
type callback struct {
	TrackingNumber string `json:"tracking_number"`
	Status         string `json:"status"`
	OccurredAt     string `json:"occurred_at"`
}

// ParseCallback implements couriers.Courier.
func (c *Courier) ParseCallback(header http.Header, body []byte, now time.Time) (couriers.Update, error) {
	if err := couriers.VerifySignature(c.secret, header.Get(couriers.SignatureHeader), body, now); err != nil {
		return couriers.Update{}, err
	}
	// Field names match exactly: encoding/json alone would take
	// {"STATUS": ...} as status.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return couriers.Update{}, fmt.Errorf("%w: body is not the sandbox callback JSON", couriers.ErrMalformed)
	}
	for k := range fields {
		if k != "tracking_number" && k != "status" && k != "occurred_at" {
			return couriers.Update{}, fmt.Errorf("%w: unknown field %q (the fields are tracking_number, status and occurred_at)", couriers.ErrMalformed, k)
		}
	}
	var cb callback
	if err := json.Unmarshal(body, &cb); err != nil {
		return couriers.Update{}, fmt.Errorf("%w: body is not the sandbox callback JSON", couriers.ErrMalformed)
	}
	if cb.TrackingNumber == "" {
		return couriers.Update{}, fmt.Errorf("%w: tracking_number is required", couriers.ErrMalformed)
	}
	st, err := couriers.ParseStatus(cb.Status)
	if err != nil {
		return couriers.Update{}, fmt.Errorf("%w: status: %v", couriers.ErrMalformed, err)
	}
	at, err := time.Parse(time.RFC3339, cb.OccurredAt)
	if err != nil {
		return couriers.Update{}, fmt.Errorf("%w: occurred_at must be an RFC 3339 time", couriers.ErrMalformed)
	}
	return couriers.Update{
		Courier:        Name,
		TrackingNumber: cb.TrackingNumber,
		Status:         st,
		CourierStatus:  cb.Status,
		OccurredAt:     at.UTC(),
	}, nil
}

// Track implements couriers.Courier: the sandbox calls back, so it is never
// polled.
func (c *Courier) Track(ctx context.Context, trackingNumber string) (couriers.Update, error) {
	return couriers.Update{}, fmt.Errorf("sandbox track %s: %w", trackingNumber, couriers.ErrUnsupported)
}

// Journeys a dev shipment can be played through, one callback per status.
var (
	// Delivered: picked up, out for delivery, delivered.
	Delivered = []couriers.Status{couriers.StatusInTransit, couriers.StatusOutForDelivery, couriers.StatusDelivered}
	// Returned: refused at the door (cash on delivery) and sent back.
	Returned = []couriers.Status{couriers.StatusInTransit, couriers.StatusOutForDelivery,
		couriers.StatusReturnToSender, couriers.StatusReturned}
)

// CallbackBody is the JSON body of a sandbox callback.
func CallbackBody(trackingNumber string, status couriers.Status, occurredAt time.Time) []byte {
	b, _ := json.Marshal(callback{
		TrackingNumber: trackingNumber,
		Status:         string(status),
		OccurredAt:     occurredAt.UTC().Format(time.RFC3339),
	})
	return b
}

// Sign returns the couriers.SignatureHeader value for a callback body, so dev
// and tests can post signed callbacks.
func Sign(secret string, body []byte, t time.Time) string {
	return couriers.Sign(secret, body, t)
}

// NewCallbackRequest builds a signed POST of a sandbox callback to url (the
// API's /v1/couriers/sandbox/callbacks), signed at now. dev uses it to play
// a shipment forward through the real endpoint.
func NewCallbackRequest(ctx context.Context, url, secret, trackingNumber string, status couriers.Status, occurredAt, now time.Time) (*http.Request, error) {
	body := CallbackBody(trackingNumber, status, occurredAt)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(couriers.SignatureHeader, Sign(secret, body, now))
	return req, nil
}
