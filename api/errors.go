package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/packline/packline"
	"github.com/packline/packline/store"
)

// statusOf maps an error code to its HTTP status. It is the only place that
// does.
func statusOf(code string) int {
	switch code {
	case packline.EMALFORMED:
		return http.StatusBadRequest
	case packline.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case packline.EFORBIDDEN:
		return http.StatusForbidden
	case packline.ENOTFOUND:
		return http.StatusNotFound
	case packline.EMETHOD:
		return http.StatusMethodNotAllowed
	case packline.ECONFLICT:
		return http.StatusConflict
	case packline.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case packline.EINVALID, packline.EIDEMPOTENCY:
		return http.StatusUnprocessableEntity
	case packline.ERATELIMIT:
		return http.StatusTooManyRequests
	case packline.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code          string   `json:"code"`
	Message       string   `json:"message"`
	Field         string   `json:"field,omitempty"`
	AllowedEvents []string `json:"allowed_events,omitempty"`
	RequestID     string   `json:"request_id,omitempty"`
}

// writeError answers with the JSON error of API.md. An error that is not a
// *packline.Error is internal: it is logged with the request id and the client
// sees only a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if packline.ErrorCode(err) == packline.EINTERNAL && store.Unreachable(err) {
		s.log.WarnContext(r.Context(), "database unreachable", "method", r.Method, "route", r.Pattern, "err", err)
		err = packline.Errorf(packline.EUNAVAILABLE, "the service cannot reach its database; retry in a moment")
		w.Header().Set("Retry-After", "1")
	}
	code := packline.ErrorCode(err)
	d := errorDetail{Code: code, Message: packline.ErrorMessage(err), RequestID: requestID(r.Context())}
	var pe *packline.Error
	if errors.As(err, &pe) {
		d.Field = pe.Field
		d.AllowedEvents = pe.AllowedEvents
		if d.AllowedEvents == nil && code == packline.ECONFLICT {
			d.AllowedEvents = []string{}
		}
	}
	status := statusOf(code)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="packline"`)
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}
