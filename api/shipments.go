package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/packline/packline/store"
)

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
