package api

import (
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
)

// messageView is a notification as GET /v1/orders/{id}/messages shows it.
type messageView struct {
	Channel string `json:"channel"`
	// To is the address or number it went to ("" when skipped for want of
	// one); Recipient says whose it is: customer or merchant.
	To        string `json:"to"`
	Recipient string `json:"recipient"`
	Template  string `json:"template"`
	Subject   string `json:"subject,omitempty"`
	// Body is an email's text part, or the SMS.
	Body string `json:"body"`
	// Status is sending, sent, skipped (nobody to send it to) or failed.
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	Provider  string     `json:"provider,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

// orderMessages is GET /v1/orders/{id}/messages (merchant): the
// notifications the order's transitions owed, and what became of each.
func (s *Server) orderMessages(w http.ResponseWriter, r *http.Request, k store.Key) {
	ms, err := s.db.OrderMessages(r.Context(), k.StoreID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Messages []messageView `json:"messages"`
	}{Messages: make([]messageView, 0, len(ms))}
	for _, m := range ms {
		v := messageView{Channel: m.Channel, To: m.Recipient, Recipient: m.RecipientType, Template: m.Template,
			Subject: m.Subject, Body: m.Body, Status: string(m.Status), Error: m.Error, Provider: m.Provider, CreatedAt: m.CreatedAt}
		if m.SentAt.Valid {
			t := m.SentAt.Time
			v.SentAt = &t
		}
		out.Messages = append(out.Messages, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// getStore is GET /v1/store (merchant): the store of the key, with where
// its merchant notifications go.
func (s *Server) getStore(w http.ResponseWriter, r *http.Request, k store.Key) {
	c, err := s.db.StoreContact(r.Context(), k.StoreID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// updateStore is PATCH /v1/store (merchant): sets (or, with "", clears) the
// email and phone merchant notifications go to. Fields left out stay.
func (s *Server) updateStore(w http.ResponseWriter, r *http.Request, k store.Key) {
	var req struct {
		Email *string `json:"email"`
		Phone *string `json:"phone"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Email != nil {
		e := strings.TrimSpace(*req.Email)
		if e != "" {
			a, err := mail.ParseAddress(e)
			if err != nil || a.Address != e || len(e) > 254 || !strings.Contains(e[strings.LastIndex(e, "@")+1:], ".") {
				s.writeError(w, r, packline.FieldError("email", "email is not an email address"))
				return
			}
		}
		req.Email = &e
	}
	if req.Phone != nil {
		p := ""
		if strings.TrimSpace(*req.Phone) != "" {
			var err error
			if p, err = NormalizePhone(*req.Phone, ""); err != nil {
				s.writeError(w, r, packline.FieldError("phone", "phone must be an international number, e.g. +213555123456"))
				return
			}
		}
		req.Phone = &p
	}
	c, err := s.db.UpdateStoreContact(r.Context(), k.StoreID, store.ContactUpdate{Email: req.Email, Phone: req.Phone})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}
