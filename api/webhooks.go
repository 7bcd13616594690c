package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
	"github.com/packline/packline/webhooks"
)

// Limits on webhook endpoints.
const (
	maxWebhookURL     = 2048
	maxWebhookFilters = 50
	maxWebhookFilter  = 100
)

// webhookEndpointView is a webhook endpoint as the API shows it. Secret is
// set only in the answer to its creation: it is shown once.
type webhookEndpointView struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Status is enabled or disabled (410 Gone, or failing for 5 days).
	Status         string     `json:"status"`
	Secret         string     `json:"secret,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
}

func endpointView(e store.WebhookEndpoint) webhookEndpointView {
	v := webhookEndpointView{ID: e.ID, URL: e.URL, Events: e.Events, Status: "enabled", CreatedAt: e.CreatedAt,
		DisabledAt: e.DisabledAt, DisabledReason: e.DisabledReason, FailingSince: e.FailingSince}
	if e.DisabledAt != nil {
		v.Status = "disabled"
	}
	return v
}

// createWebhookEndpoint is POST /v1/webhook-endpoints: the URL must be an
// http(s) URL on public addresses (any address with
// PACKLINE_WEBHOOK_ALLOW_PRIVATE), the events valid filters. The answer
// holds the endpoint's secret, shown this once.
func (s *Server) createWebhookEndpoint(w http.ResponseWriter, r *http.Request, k store.Key) {
	var req struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := text("url", req.URL, maxWebhookURL, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := checkFilters(req.Events)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := webhooks.CheckURL(ctx, req.URL, s.allowPrivate); err != nil {
		// The details (addresses, the resolver's words) go to the log only:
		// told to the merchant, they would let any key map internal names.
		msg := "url must resolve to public addresses"
		if !errors.Is(err, webhooks.ErrForbiddenAddress) {
			msg = "url must be an absolute http or https URL"
		}
		s.log.InfoContext(r.Context(), "webhook endpoint refused", "store", k.StoreID, "err", err)
		s.writeError(w, r, packline.FieldError("url", "%s", msg))
		return
	}
	ep, err := s.db.CreateWebhookEndpoint(r.Context(), k.StoreID, req.URL, webhooks.NewSecret(), events)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := endpointView(ep)
	v.Secret = ep.Secret
	w.Header().Set("Location", "/v1/webhook-endpoints/"+ep.ID)
	writeJSON(w, http.StatusCreated, v)
}

// checkFilters validates an endpoint's event filters and drops repeats.
func checkFilters(fs []string) ([]string, error) {
	if len(fs) == 0 {
		return nil, packline.FieldError("events", `events is required: the event types to receive, e.g. ["order.*"]`)
	}
	if len(fs) > maxWebhookFilters {
		return nil, packline.FieldError("events", "events may hold at most %d filters", maxWebhookFilters)
	}
	out := make([]string, 0, len(fs))
	seen := map[string]bool{}
	for i, f := range fs {
		field := "events[" + strconv.Itoa(i) + "]"
		if err := text(field, f, maxWebhookFilter, true); err != nil {
			return nil, err
		}
		if err := webhooks.ValidFilter(f); err != nil {
			return nil, packline.FieldError(field, "%v", err)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// listWebhookEndpoints is GET /v1/webhook-endpoints: the store's endpoints,
// without their secrets.
func (s *Server) listWebhookEndpoints(w http.ResponseWriter, r *http.Request, k store.Key) {
	eps, err := s.db.WebhookEndpoints(r.Context(), k.StoreID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Endpoints []webhookEndpointView `json:"webhook_endpoints"`
	}{Endpoints: make([]webhookEndpointView, 0, len(eps))}
	for _, ep := range eps {
		out.Endpoints = append(out.Endpoints, endpointView(ep))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getWebhookEndpoint(w http.ResponseWriter, r *http.Request, k store.Key) {
	ep, err := s.db.WebhookEndpoint(r.Context(), k.StoreID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, endpointView(ep))
}

// deleteWebhookEndpoint is DELETE /v1/webhook-endpoints/{id}: nothing more
// is sent to it, its pending deliveries included.
func (s *Server) deleteWebhookEndpoint(w http.ResponseWriter, r *http.Request, k store.Key) {
	if err := s.db.DeleteWebhookEndpoint(r.Context(), k.StoreID, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// deliveryView is an entry of an endpoint's delivery log.
type deliveryView struct {
	ID string `json:"id"`
	// WebhookID is the webhook-id header of every attempt.
	WebhookID      string          `json:"webhook_id"`
	EventType      string          `json:"event_type"`
	OrderID        string          `json:"order_id"`
	Status         string          `json:"status"`
	AttemptCount   int             `json:"attempt_count"`
	NextAttemptAt  *time.Time      `json:"next_attempt_at"`
	LastStatusCode int             `json:"last_status_code,omitempty"`
	LastError      string          `json:"last_error,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	DeliveredAt    *time.Time      `json:"delivered_at"`
	Attempts       []attemptView   `json:"attempts"`
	Payload        json.RawMessage `json:"payload"`
}

type attemptView struct {
	Attempt      int       `json:"attempt"`
	AttemptedAt  time.Time `json:"attempted_at"`
	Outcome      string    `json:"outcome"`
	StatusCode   int       `json:"status_code"`
	Error        string    `json:"error,omitempty"`
	LatencyMS    int64     `json:"latency_ms"`
	ResponseBody string    `json:"response_body,omitempty"`
}

func deliveryViewOf(d store.WebhookDelivery) deliveryView {
	v := deliveryView{ID: d.ID, WebhookID: d.MessageID, EventType: d.EventType, OrderID: d.OrderID, Status: string(d.Status),
		AttemptCount: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError, CreatedAt: d.CreatedAt,
		Attempts: make([]attemptView, 0, len(d.Log)), Payload: json.RawMessage(d.Payload)}
	if d.NextAttemptAt.Valid && d.Status == webhooks.DeliveryPending {
		t := d.NextAttemptAt.Time
		v.NextAttemptAt = &t
	}
	if d.DeliveredAt.Valid {
		t := d.DeliveredAt.Time
		v.DeliveredAt = &t
	}
	for _, a := range d.Log {
		v.Attempts = append(v.Attempts, attemptView{Attempt: a.Attempt, AttemptedAt: a.AttemptedAt, Outcome: a.Outcome.String(),
			StatusCode: a.StatusCode, Error: a.Error, LatencyMS: a.LatencyMS, ResponseBody: a.ResponseBody})
	}
	if !json.Valid(v.Payload) {
		v.Payload = json.RawMessage("null")
	}
	return v
}

// listWebhookDeliveries is GET /v1/webhook-endpoints/{id}/deliveries: the
// endpoint's delivery log, newest first, each delivery with its attempts.
func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, k store.Key) {
	q := r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			s.writeError(w, r, packline.FieldError("limit", "limit must be an integer from 1 to 100"))
			return
		}
		limit = n
	}
	cursor := q.Get("cursor")
	if err := text("cursor", cursor, 64, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	ds, next, err := s.db.WebhookDeliveries(r.Context(), k.StoreID, r.PathValue("id"), limit, cursor)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Deliveries []deliveryView `json:"deliveries"`
		NextCursor *string        `json:"next_cursor"`
	}{Deliveries: make([]deliveryView, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryViewOf(d))
	}
	if next != "" {
		out.NextCursor = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// replayWebhookDelivery is POST
// /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay: one more
// attempt, now, with the same webhook-id and body. 202: the attempt is
// queued; its result joins the delivery log.
func (s *Server) replayWebhookDelivery(w http.ResponseWriter, r *http.Request, k store.Key) {
	d, err := s.db.ReplayWebhookDelivery(r.Context(), k.StoreID, r.PathValue("id"), r.PathValue("delivery_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, deliveryViewOf(d))
}
