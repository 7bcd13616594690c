package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/packline/packline/store"
)

// shipmentView is an entry of an order's shipments[] (API.md).
type shipmentView struct {
	ID             string          `json:"id"`
	Courier        string          `json:"courier"`
	TrackingNumber string          `json:"tracking_number"`
	TrackingURL    string          `json:"tracking_url,omitempty"`
	LabelURL       string          `json:"label_url"`
	Status         string          `json:"status"`
	StatusAt       time.Time       `json:"status_at"`
	Events         []trackingEvent `json:"events"`
}

// trackingEvent is one tracking update of a shipment.
type trackingEvent struct {
	Status        string    `json:"status"`
	CourierStatus string    `json:"courier_status,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// labelPath is the API path of a shipment's label (the worker reports the
// same path in label_created's data).
func labelPath(shipmentID string) string { return "/v1/shipments/" + shipmentID + "/label.pdf" }

// shipmentViews lists an order's shipments, with label URLs made absolute
// on the request's base URL.
func (s *Server) shipmentViews(ctx context.Context, orderID string) ([]shipmentView, error) {
	shs, err := s.db.Shipments(ctx, orderID)
	if err != nil {
		return nil, err
	}
	base := baseURLFrom(ctx)
	out := make([]shipmentView, 0, len(shs))
	for _, sh := range shs {
		v := shipmentView{ID: sh.ID, Courier: sh.Courier, TrackingNumber: sh.TrackingNumber, TrackingURL: sh.TrackingURL,
			LabelURL: base + labelPath(sh.ID), Status: string(sh.Status), StatusAt: sh.StatusAt,
			Events: make([]trackingEvent, 0, len(sh.Events))}
		for _, e := range sh.Events {
			v.Events = append(v.Events, trackingEvent{Status: string(e.Status), CourierStatus: e.CourierStatus, OccurredAt: e.OccurredAt})
		}
		out = append(out, v)
	}
	return out, nil
}

// shipmentLabel is GET /v1/shipments/{id}/label.pdf: the printable label,
// for a key of the shipment's store.
func (s *Server) shipmentLabel(w http.ResponseWriter, r *http.Request, k store.Key) {
	sh, pdf, err := s.db.ShipmentLabel(r.Context(), k.StoreID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Length", strconv.Itoa(len(pdf)))
	w.Header().Set("Content-Disposition", `inline; filename="label-`+sh.TrackingNumber+`.pdf"`)
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(pdf)
	}
}

// baseURLKey is the context key of the request's base URL.
type baseURLKey struct{}

// withBaseURL puts the API's base URL in the request's context, for the
// absolute URLs of responses (label_url): Config.PublicURL, else the
// scheme and Host the request came in on.
func (s *Server) withBaseURL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := s.publicURL
		if base == "" {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			base = scheme + "://" + r.Host
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), baseURLKey{}, strings.TrimRight(base, "/"))))
	})
}

func baseURLFrom(ctx context.Context) string {
	b, _ := ctx.Value(baseURLKey{}).(string)
	return b
}
