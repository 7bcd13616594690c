// Package api is packline's intake HTTP API (API.md): storefronts create
// orders, merchants and customers send events, couriers and payment
// providers call back. It speaks to the database through store and never
// imports worker code.
package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/logging"
	"github.com/packline/packline/store"
	"golang.org/x/time/rate"
)

// Config configures the API.
type Config struct {
	DB     *store.DB
	Logger *slog.Logger
	// RateLimit is the sustained requests per second allowed per API key
	// (0: DefaultRateLimit); RateBurst the requests a key may send at once
	// (0: DefaultRateBurst). A store's own limit, when set, overrides them
	// (store.RateLimit).
	RateLimit float64
	RateBurst int
	// Middleware wraps the router (metrics instrumentation); it sees
	// r.Pattern after routing.
	Middleware func(http.Handler) http.Handler

	// Couriers are the couriers whose callbacks the API takes
	// (POST /v1/couriers/{courier}/callbacks); nil takes none.
	Couriers CourierRegistry
	// PublicURL is the API's public base URL (PACKLINE_PUBLIC_URL), for
	// the absolute URLs of responses (label_url); when empty, the scheme
	// and Host each request came in on.
	PublicURL string
	// WebhookAllowPrivate admits webhook endpoint URLs on private,
	// loopback and link-local addresses (PACKLINE_WEBHOOK_ALLOW_PRIVATE).
	WebhookAllowPrivate bool

	// PaymentAccounts are the stores' own Stripe accounts
	// (PUT/GET /v1/store/payments/stripe); PaymentWebhooks takes Stripe's
	// events (POST /v1/payments/stripe/webhooks…). Nil: 404.
	PaymentAccounts PaymentAccounts
	PaymentWebhooks PaymentWebhooks
}

// Server is the intake API.
type Server struct {
	db      *store.DB
	log     *slog.Logger
	mux     *http.ServeMux
	limit   rate.Limit // default per-key limit (ratelimit.go)
	burst   int
	mu      sync.Mutex
	buckets map[string]*rate.Limiter // per API key id
	badKeys map[string]*rate.Limiter // per client address
	// goodKeys are hashes of keys that authenticated (a revoked key stays
	// here only until the next reset; the database still decides).
	goodKeys map[[32]byte]bool

	// Courier callbacks and absolute URLs (couriers.go, shipments.go).
	couriers  CourierRegistry
	publicURL string

	// Webhook endpoints (webhooks.go).
	allowPrivate bool

	// Payment accounts and webhooks (payments.go).
	paymentAccounts PaymentAccounts
	paymentWebhooks PaymentWebhooks
}

// access says who may call a route.
type access int

const (
	public     access = iota // no API key: signed callbacks
	storefront               // a storefront or merchant key
	merchant                 // a merchant key only
)

type route struct {
	method, pattern string
	access          access
	handle          func(s *Server, w http.ResponseWriter, r *http.Request, k store.Key)
}

// routes is every route the API serves; api/openapi.yaml must describe
// exactly these (TestOpenAPIMatchesRoutes).
var routes = []route{
	{"POST", "/v1/orders", storefront, (*Server).createOrder},
	{"GET", "/v1/orders", storefront, (*Server).listOrders},
	{"GET", "/v1/orders/{id}", storefront, (*Server).getOrder},
	{"POST", "/v1/orders/{id}/events", storefront, (*Server).sendEvent},
	{"POST", "/v1/orders/{id}/notes", merchant, (*Server).addNote},
	{"PUT", "/v1/stock/{sku}", merchant, (*Server).putStock},
	{"GET", "/v1/stock/{sku}", merchant, (*Server).getStock},
	{"POST", "/v1/couriers/{courier}/callbacks", public, (*Server).courierCallback},
	{"GET", "/v1/shipments/{id}/label.pdf", storefront, (*Server).shipmentLabel},
	{"GET", "/v1/orders/{id}/messages", merchant, (*Server).orderMessages},
	{"GET", "/v1/store", merchant, (*Server).getStore},
	{"PATCH", "/v1/store", merchant, (*Server).updateStore},
	{"POST", "/v1/webhook-endpoints", merchant, (*Server).createWebhookEndpoint},
	{"GET", "/v1/webhook-endpoints", merchant, (*Server).listWebhookEndpoints},
	{"GET", "/v1/webhook-endpoints/{id}", merchant, (*Server).getWebhookEndpoint},
	{"DELETE", "/v1/webhook-endpoints/{id}", merchant, (*Server).deleteWebhookEndpoint},
	{"GET", "/v1/webhook-endpoints/{id}/deliveries", merchant, (*Server).listWebhookDeliveries},
	{"POST", "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay", merchant, (*Server).replayWebhookDelivery},
	{"PUT", "/v1/store/payments/stripe", merchant, (*Server).putStripeAccount},
	{"GET", "/v1/store/payments/stripe", merchant, (*Server).getStripeAccount},
	{"POST", "/v1/payments/{provider}/webhooks", public, (*Server).paymentWebhookByMetadata},
	{"POST", "/v1/payments/{provider}/webhooks/{store_id}", public, (*Server).paymentWebhook},
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	s := &Server{db: cfg.DB, log: cfg.Logger, mux: http.NewServeMux(), limit: rate.Limit(cfg.RateLimit), burst: cfg.RateBurst,
		buckets: map[string]*rate.Limiter{}, badKeys: map[string]*rate.Limiter{}, goodKeys: map[[32]byte]bool{}}
	s.couriers, s.publicURL = cfg.Couriers, strings.TrimRight(cfg.PublicURL, "/")
	s.allowPrivate = cfg.WebhookAllowPrivate
	s.paymentAccounts, s.paymentWebhooks = cfg.PaymentAccounts, cfg.PaymentWebhooks
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.limit <= 0 {
		s.limit = DefaultRateLimit
	}
	if s.burst <= 0 {
		s.burst = DefaultRateBurst
	}
	for _, rt := range routes {
		rt := rt
		wildcards := wildcardRE.FindAllStringSubmatch(rt.pattern, -1)
		s.mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			// An id or SKU that is not sane text names nothing: 404 before
			// any query (PostgreSQL refuses invalid UTF-8 and NUL).
			for _, wc := range wildcards {
				if v := r.PathValue(wc[1]); text(wc[1], v, 128, true) != nil {
					s.writeError(w, r, packline.Errorf(packline.ENOTFOUND, "no %s %q", wc[1], strings.ToValidUTF8(v, "?")))
					return
				}
			}
			var k store.Key
			if rt.access != public {
				var err error
				if k, err = s.authenticate(w, r, rt.access); err != nil {
					s.writeError(w, r, err)
					return
				}
			}
			rt.handle(s, w, r, k)
		})
	}
	paths := allowedMethods()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			allow := paths.methods[pattern]
			w.Header().Set("Allow", allow)
			s.writeError(w, r, packline.Errorf(packline.EMETHOD, "%s %s is not served; this path takes %s", r.Method, r.URL.Path, allow))
			return
		}
		s.writeError(w, r, packline.Errorf(packline.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	})
	var h http.Handler = s.mux
	if cfg.Middleware != nil {
		h = cfg.Middleware(h)
	}
	return s.recoverer(withRequestID(s.withBaseURL(s.accessLog(h))))
}

// pathMethods matches a request's path against the routes' patterns, any
// method, to answer a known path with a wrong method 405 and its Allow.
type pathMethods struct {
	*http.ServeMux
	methods map[string]string // pattern → "GET, HEAD, POST"
}

func allowedMethods() pathMethods {
	p := pathMethods{ServeMux: http.NewServeMux(), methods: map[string]string{}}
	byPath := map[string][]string{}
	var order []string
	for _, rt := range routes {
		if byPath[rt.pattern] == nil {
			order = append(order, rt.pattern)
		}
		byPath[rt.pattern] = append(byPath[rt.pattern], rt.method)
		if rt.method == http.MethodGet {
			byPath[rt.pattern] = append(byPath[rt.pattern], http.MethodHead) // ServeMux serves HEAD with GET
		}
	}
	for _, pattern := range order {
		p.Handle(pattern, http.NotFoundHandler())
		p.methods[pattern] = strings.Join(byPath[pattern], ", ")
	}
	return p
}

// accessLog logs one line per request: method, route pattern, status and
// latency, never bodies or query strings.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.InfoContext(r.Context(), "request", "method", r.Method, "route", r.Pattern, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wildcardRE finds the {name} wildcards of a route pattern.
var wildcardRE = regexp.MustCompile(`\{([a-z_]+)\}`)

type ctxKey int

const requestIDKey ctxKey = iota

// withRequestID takes the client's X-Request-Id (when sane) or makes one,
// and echoes it back.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r < '!' || r > '~' }) {
			var b [8]byte
			rand.Read(b[:])
			id = "req_" + hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		// Every log line of the request carries its id (logging's context
		// handler adds it).
		ctx := logging.WithAttrs(context.WithValue(r.Context(), requestIDKey, id), slog.String("request_id", id))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// recoverer turns a panic into a logged 500 that shows no internals.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic", "value", v, "stack", string(debug.Stack()))
				s.writeError(w, r, errPanic)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type panicError struct{}

func (panicError) Error() string { return "panic in handler" }

var errPanic error = panicError{}

// authenticate checks the bearer key, its rate and its scope. Every answer to
// a valid key carries its RateLimit headers (ratelimit.go).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, need access) (store.Key, error) {
	// The scheme is case-insensitive (RFC 9110, 11.1): Bearer, bearer, BEARER.
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return store.Key{}, packline.Errorf(packline.EUNAUTHORIZED, "send your API key as Authorization: Bearer <key>")
	}
	// A client that keeps sending bad keys is slowed before its guesses
	// reach the database.
	ip, known := clientIP(r), s.knownKey(key)
	if !known && !s.mayTryKey(ip) {
		return store.Key{}, packline.Errorf(packline.ERATELIMIT, "too many requests with invalid API keys; slow down")
	}
	k, err := s.db.Authenticate(r.Context(), strings.TrimSpace(key))
	if err != nil {
		if packline.ErrorCode(err) == packline.EUNAUTHORIZED {
			s.keyFailed(ip)
		}
		return store.Key{}, err
	}
	if !known {
		s.rememberKey(key)
	}
	if err := s.spend(w, k); err != nil {
		return store.Key{}, err
	}
	if need == merchant && k.Scope != store.ScopeMerchant {
		return store.Key{}, packline.Errorf(packline.EFORBIDDEN, "this needs a merchant key; a %s key may not", k.Scope)
	}
	return k, nil
}

// Bad-key limits per client address: a burst of 20, then one a second.
const (
	badKeyRate        = 1
	badKeyBurst       = 20
	maxTrackedClients = 10000
)

// mayTryKey reports whether the client has bad-key attempts left.
func (s *Server) mayTryKey(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.badKeys[ip]
	return b == nil || b.Tokens() >= 1
}

// keyFailed spends one of the client's bad-key attempts.
func (s *Server) keyFailed(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.badKeys) >= maxTrackedClients {
		// Forget everyone rather than grow without bound.
		s.badKeys = map[string]*rate.Limiter{}
	}
	b := s.badKeys[ip]
	if b == nil {
		b = rate.NewLimiter(badKeyRate, badKeyBurst)
		s.badKeys[ip] = b
	}
	b.Allow()
}

// knownKey reports whether key authenticated recently: such a key skips the
// bad-key limit, so a guesser behind the same address slows only itself.
func (s *Server) knownKey(key string) bool {
	h := sha256.Sum256([]byte(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goodKeys[h]
}

func (s *Server) rememberKey(key string) {
	h := sha256.Sum256([]byte(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.goodKeys) >= maxTrackedClients {
		s.goodKeys = map[[32]byte]bool{}
	}
	s.goodKeys[h] = true
}

// clientIP is the address the request came from (the connection's peer; a
// proxy in front counts as one client).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
