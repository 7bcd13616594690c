package metrics

import (
	"net/http"
	"time"
)

// RouteUnmatched is the route label of a request no mux pattern matched (404,
// 405, a path-cleaning redirect without a pattern): one series for all of
// them, so a scan of random paths cannot grow the label set.
const RouteUnmatched = "unmatched"

// Instrument records packline_http_requests_total{route, code} and
// packline_http_request_duration_seconds{route} for every request served by
// next.
//
// The route is the Go 1.22 mux pattern that matched (r.Pattern, e.g.
// "GET /v1/orders/{id}"), never the raw path: an http.ServeMux sets it on the
// request it is handed, and Instrument reads it after next returns. So wrap
// the mux itself, or a chain that passes the same *http.Request down to the
// mux (a middleware that calls r.WithContext before the mux hides the pattern
// and its requests count as RouteUnmatched).
func Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				// net/http turns a panic into a dropped connection; count it
				// as the 500 the client effectively got, then let it go on.
				observeHTTP(route(r), http.StatusInternalServerError, time.Since(start))
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
		observeHTTP(route(r), rec.status(), time.Since(start))
	})
}

func route(r *http.Request) string {
	// A CONNECT request that the mux redirects carries the raw path as its
	// "pattern"; never let a raw path into a label.
	if r.Pattern == "" || r.Method == http.MethodConnect {
		return RouteUnmatched
	}
	return r.Pattern
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	// 1xx responses are informational; the final status comes later.
	if s.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush keeps streaming handlers that type-assert http.Flusher working.
func (s *statusRecorder) Flush() {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
