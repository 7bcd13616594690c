package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/packline/packline"
	"github.com/packline/packline/api/view"
	"github.com/packline/packline/store"
)

// writeOrder answers with o as the caller sees it (allowed_events are those
// its actor may send), timeline included.
func (s *Server) writeOrder(w http.ResponseWriter, r *http.Request, k store.Key, o *packline.Order, status int) {
	v, err := view.Read(r.Context(), s.db, o, k.Actor().Type, baseURLFrom(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, v)
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
	if o.Flow == "" {
		o.Flow = k.StoreFlow
	}
	created, isNew, err := s.db.CreateOrder(r.Context(), k.StoreID, o, k.Actor(), idem)
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
	if !isNew {
		s.writeOrder(w, r, k, created, status)
		return
	}
	v, err := view.ReadNew(r.Context(), s.db, created, k.Actor().Type, baseURLFrom(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request, k store.Key) {
	o, err := s.db.GetOrder(r.Context(), k.StoreID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeOrder(w, r, k, o, http.StatusOK)
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
	if f.Status != "" && !s.knownStatus(f.Status) {
		s.writeError(w, r, packline.FieldError("status", "status %q is not a state of any flow", f.Status))
		return
	}
	orders, next, err := s.db.ListOrders(r.Context(), k.StoreID, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	views, err := view.ReadPage(r.Context(), s.db, orders, k.Actor().Type, baseURLFrom(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Orders     []view.Order `json:"orders"`
		NextCursor *string      `json:"next_cursor"`
	}{Orders: views}
	if next != "" {
		out.NextCursor = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// knownStatus reports whether some flow has a state named status: a filter
// on any other names nothing, which is a mistake, not an empty list.
func (s *Server) knownStatus(status string) bool {
	fs := s.db.Flows()
	for _, name := range fs.Names() {
		if fs.Get(name).State(status) != nil {
			return true
		}
	}
	return false
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
	s.writeOrder(w, r, k, o, http.StatusOK)
}

// checkData bounds an event's free-form data: size, and no control
// characters in strings (they end up on the timeline). What fields it may
// have is the flow's to say (flows: an event's declared data).
func checkData(d map[string]any) error {
	if d == nil {
		return nil
	}
	b, _ := json.Marshal(d)
	if len(b) > maxBlob {
		return packline.FieldError("data", "data must be at most %d bytes of JSON", maxBlob)
	}
	return checkStrings("data", d)
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
	s.writeOrder(w, r, k, o, http.StatusCreated)
}

func (s *Server) putStock(w http.ResponseWriter, r *http.Request, k store.Key) {
	sku := r.PathValue("sku")
	if err := checkSKU("sku", sku); err != nil {
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
