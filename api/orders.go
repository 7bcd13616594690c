package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
)

// orderView is an order as the API shows it (API.md).
type orderView struct {
	ID              string                   `json:"id"`
	Store           string                   `json:"store"`
	Flow            string                   `json:"flow"`
	Status          string                   `json:"status"`
	Version         int64                    `json:"version"`
	ExternalID      string                   `json:"external_id,omitempty"`
	Currency        string                   `json:"currency"`
	Customer        packline.Customer        `json:"customer"`
	ShippingAddress *packline.Address        `json:"shipping_address,omitempty"`
	Lines           []lineView               `json:"lines"`
	Totals          packline.Totals          `json:"totals"`
	ShipDate        string                   `json:"ship_date,omitempty"`
	Payment         *paymentInput            `json:"payment,omitempty"`
	Notes           string                   `json:"notes,omitempty"`
	Metadata        json.RawMessage          `json:"metadata,omitempty"`
	Payments        []store.Payment          `json:"payments"`
	Shipments       []shipmentView           `json:"shipments"`
	AllowedEvents   []string                 `json:"allowed_events"`
	Timeline        []packline.TimelineEntry `json:"timeline,omitempty"`
	CreatedAt       time.Time                `json:"created_at"`
	UpdatedAt       time.Time                `json:"updated_at"`
}

type lineView struct {
	packline.Line
	Total int64 `json:"total"`
}

// view builds the order's representation for the caller (allowed_events are
// those the caller's actor may send).
func (s *Server) view(o *packline.Order, k store.Key) orderView {
	v := orderView{ID: o.ID, Store: o.StoreID, Flow: o.Flow, Status: o.Status, Version: o.Version,
		ExternalID: o.ExternalID, Currency: o.Currency, Customer: o.Customer, ShippingAddress: o.ShippingAddress,
		Totals:   packline.Totals{Subtotal: o.Subtotal, Total: o.Total, Paid: o.AmountPaid, Currency: o.Currency},
		ShipDate: o.ShipDate, Notes: o.Notes, Metadata: o.Metadata, Payments: []store.Payment{}, Shipments: []shipmentView{},
		AllowedEvents: []string{}, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
	if o.PaymentMethod != "" {
		v.Payment = &paymentInput{Method: o.PaymentMethod}
	}
	v.Lines = make([]lineView, len(o.Lines))
	for i, l := range o.Lines {
		v.Lines[i] = lineView{Line: l, Total: l.Total()}
	}
	if f := s.db.Flows().Get(o.Flow); f != nil {
		v.AllowedEvents = f.AllowedEvents(o, k.Actor().Type)
	}
	return v
}

// fullView adds the timeline and the payment attempts.
func (s *Server) fullView(ctx context.Context, o *packline.Order, k store.Key) (orderView, error) {
	v := s.view(o, k)
	tl, err := s.db.Timeline(ctx, o.ID)
	if err != nil {
		return v, err
	}
	v.Timeline = tl
	if v.Payments, err = s.db.Payments(ctx, o.ID); err != nil {
		return v, err
	}
	if v.Shipments, err = s.shipmentViews(ctx, o.ID); err != nil {
		return v, err
	}
	return v, nil
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request, k store.Key) {
	var req createOrderRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	o, err := req.toOrder()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var idem *store.Idempotency
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if err := text("Idempotency-Key", key, maxIdemKey, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		// The hash is of the decoded request, so spacing and key order do
		// not make "another body".
		canon, _ := json.Marshal(req)
		h := sha256.Sum256(canon)
		idem = &store.Idempotency{Key: key, RequestHash: hex.EncodeToString(h[:])}
	}
	created, isNew, err := s.db.CreateOrder(r.Context(), k.StoreID, o, k.Actor(), idem)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.fullView(r.Context(), created, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if !isNew {
		status = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/orders/"+created.ID)
	writeJSON(w, status, v)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request, k store.Key) {
	o, err := s.db.GetOrder(r.Context(), k.StoreID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.fullView(r.Context(), o, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request, k store.Key) {
	q := r.URL.Query()
	f := store.ListFilter{Status: q.Get("status"), Cursor: q.Get("cursor"), Limit: 50}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			s.writeError(w, r, packline.FieldError("limit", "limit must be an integer from 1 to 100"))
			return
		}
		f.Limit = n
	}
	for _, p := range []struct{ name, v string }{{"status", f.Status}, {"cursor", f.Cursor}} {
		if err := text(p.name, p.v, 64, false); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	orders, next, err := s.db.ListOrders(r.Context(), k.StoreID, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Orders     []orderView `json:"orders"`
		NextCursor *string     `json:"next_cursor"`
	}{Orders: make([]orderView, 0, len(orders))}
	for _, o := range orders {
		out.Orders = append(out.Orders, s.view(o, k))
	}
	if next != "" {
		out.NextCursor = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// eventRequest is the body of POST /v1/orders/{id}/events.
type eventRequest struct {
	Event string         `json:"event"`
	Note  string         `json:"note"`
	Data  map[string]any `json:"data"`
	// ExpectedVersion makes the event a compare-and-set (409 when the order
	// moved on).
	ExpectedVersion int64 `json:"expected_version"`
}

func (s *Server) sendEvent(w http.ResponseWriter, r *http.Request, k store.Key) {
	var req eventRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := text("event", req.Event, 64, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := multiline("note", req.Note, maxNotes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ExpectedVersion < 0 {
		s.writeError(w, r, packline.FieldError("expected_version", "expected_version must be positive"))
		return
	}
	if err := checkData(req.Data); err != nil {
		s.writeError(w, r, err)
		return
	}
	o, err := s.db.ApplyEvent(r.Context(), k.StoreID, r.PathValue("id"), store.EventInput{
		Event: req.Event, Actor: k.Actor(), Data: req.Data, Note: req.Note, ExpectedVersion: req.ExpectedVersion})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.fullView(r.Context(), o, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// checkData bounds an event's free-form data: size, and no control
// characters in strings (they end up on the timeline).
func checkData(d map[string]any) error {
	if d == nil {
		return nil
	}
	b, _ := json.Marshal(d)
	if len(b) > maxBlob {
		return packline.FieldError("data", "data must be at most %d bytes of JSON", maxBlob)
	}
	var walk func(path string, v any) error
	walk = func(path string, v any) error {
		switch x := v.(type) {
		case string:
			return multiline(path, x, maxBlob)
		case map[string]any:
			for k, e := range x {
				if err := walk(path+"."+k, e); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range x {
				if err := walk(path+"["+strconv.Itoa(i)+"]", e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("data", d)
}

func (s *Server) addNote(w http.ResponseWriter, r *http.Request, k store.Key) {
	var req struct {
		Text string `json:"text"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Text == "" {
		s.writeError(w, r, packline.FieldError("text", "text is required"))
		return
	}
	if err := multiline("text", req.Text, maxNotes); err != nil {
		s.writeError(w, r, err)
		return
	}
	o, err := s.db.AddNote(r.Context(), k.StoreID, r.PathValue("id"), k.Actor(), req.Text)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.fullView(r.Context(), o, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) putStock(w http.ResponseWriter, r *http.Request, k store.Key) {
	sku := r.PathValue("sku")
	if err := text("sku", sku, maxSKU, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		OnHand *int64 `json:"on_hand"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.OnHand == nil {
		s.writeError(w, r, packline.FieldError("on_hand", "on_hand is required"))
		return
	}
	lvl, err := s.db.SetStock(r.Context(), k.StoreID, sku, *req.OnHand)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lvl)
}

func (s *Server) getStock(w http.ResponseWriter, r *http.Request, k store.Key) {
	lvl, err := s.db.GetStock(r.Context(), k.StoreID, r.PathValue("sku"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lvl)
}
