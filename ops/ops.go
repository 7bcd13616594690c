// Package ops serves the ops listener every role runs (PACKLINE_OPS_ADDR):
// Prometheus metrics, liveness and readiness, and the Asynq dashboard.
//
//	GET /metrics      metrics.Registry, Asynq's queue collector, packline_workers_live
//	                  and the order gauges (when configured)
//	GET /healthz      200 {"status":"ok"} while the process serves HTTP
//	GET /readyz       200 when every readiness check passes, else 503 naming the failing ones
//	/ops/asynq/       asynqmon, behind HTTP basic auth (PACKLINE_OPS_USER / PACKLINE_OPS_PASSWORD)
package ops

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/packline/packline/metrics"
)

// DashboardPath is where the Asynq dashboard is mounted.
const DashboardPath = "/ops/asynq"

// DefaultUser is the dashboard's user name when Config.User is empty.
const DefaultUser = "ops"

// CheckTimeout bounds each readiness check.
const CheckTimeout = 2 * time.Second

// Config is what the ops listener serves. The zero value serves metrics and
// health only.
type Config struct {
	// Redis is Asynq's Redis. nil means the role has no Redis: no queue
	// metrics, no Redis readiness check, no dashboard.
	Redis asynq.RedisConnOpt

	// User and Password guard the Asynq dashboard with HTTP basic auth
	// (PACKLINE_OPS_USER, PACKLINE_OPS_PASSWORD). With no password the
	// dashboard is not served at all. User defaults to DefaultUser.
	User, Password string

	// Checks run on every /readyz, concurrently, each bounded by
	// CheckTimeout: typically {"database", db.Ping} and {"migrations",
	// db.Migrated}. A "redis" check (PING) is added when Redis is set.
	Checks []Check

	// Orders, when set, backs the packline_orders, packline_orders_stuck and
	// packline_outbox_* gauges (see metrics.NewOrderCollector).
	Orders metrics.OrderSource

	// Logger receives the reasons readiness checks fail (which never reach
	// the client). Defaults to slog.Default().
	Logger *slog.Logger
}

// Check is one readiness check. Name is shown to clients; the error is only
// logged.
type Check struct {
	Name string
	Func func(context.Context) error
}

// Server is the ops listener's handler. It holds Redis connections when
// Config.Redis is set; Close releases them.
type Server struct {
	mux     *http.ServeMux
	checks  []Check
	log     *slog.Logger
	closers []func() error
}

// New returns the ops listener's handler for cfg.
func New(cfg Config) *Server {
	s := &Server{mux: http.NewServeMux(), log: cfg.Logger, checks: append([]Check(nil), cfg.Checks...)}
	if s.log == nil {
		s.log = slog.Default()
	}

	own := prometheus.NewRegistry() // this listener's collectors beside metrics.Registry
	if cfg.Orders != nil {
		own.MustRegister(metrics.NewOrderCollector(cfg.Orders))
	}

	off := "the Asynq dashboard is off: set PACKLINE_OPS_PASSWORD (and PACKLINE_OPS_USER) to serve it"
	if cfg.Password != "" && cfg.Redis == nil {
		off = "the Asynq dashboard is off: this role has no Redis (set REDIS_URL)"
	}
	dashboard := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "dashboard_disabled", off)
	}))

	if cfg.Redis != nil {
		rc, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			panic(fmt.Sprintf("ops: unsupported asynq.RedisConnOpt %T", cfg.Redis))
		}
		inspector := asynq.NewInspectorFromRedisClient(rc)
		// The inspector shares rc, so closing rc closes it.
		s.closers = append(s.closers, rc.Close)
		s.checks = append(s.checks, Check{Name: "redis", Func: func(ctx context.Context) error { return rc.Ping(ctx).Err() }})
		own.MustRegister(
			// Asynq's collector cannot take a context; Bound keeps a slow
			// Redis from hanging the scrape.
			metrics.Bound(metrics.SourceAsynq, metrics.ScrapeTimeout, asynqmetrics.NewQueueMetricsCollector(inspector)),
			metrics.NewWorkerCollector(func(context.Context) (int, error) {
				servers, err := inspector.Servers()
				return len(servers), err
			}),
		)
		if cfg.Password != "" {
			mon := asynqmon.New(asynqmon.Options{RootPath: DashboardPath, RedisConnOpt: cfg.Redis})
			s.closers = append(s.closers, mon.Close)
			user := cfg.user()
			// Basic auth credentials are sent by the browser on every
			// request, so refuse cross-site writes (CSRF) to the dashboard.
			dashboard = basicAuth(user, cfg.Password, http.NewCrossOriginProtection().Handler(mon))
		}
	}

	s.mux.Handle("GET /metrics", promhttp.HandlerFor(
		prometheus.Gatherers{metrics.Registry, own},
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: promLogger{s.log}},
	))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle(DashboardPath+"/", dashboard)
	s.mux.Handle(ProfilePath+"/", profiles(cfg))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such ops endpoint: try /metrics, /healthz, /readyz, "+DashboardPath+"/ or "+ProfilePath+"/")
	})
	return s
}

// ServeHTTP serves the ops endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	s.mux.ServeHTTP(w, r)
}

// securityHeaders go on every ops answer: the dashboard has pause and
// delete buttons, so no other site may frame it (clickjacking), sniff its
// answers into another type, or learn its URLs from a Referer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "frame-ancestors 'none'",
	"X-Frame-Options":         "DENY",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
}

// Close releases the Redis connections of the metrics, checks and dashboard.
func (s *Server) Close() error {
	var errs []error
	for _, c := range s.closers {
		if err := c(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// ready runs every check and answers 200 or 503 with each check's state.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.checks))
	for _, c := range s.checks {
		go func() {
			done := make(chan error, 1)
			go func() {
				defer func() {
					if p := recover(); p != nil {
						done <- fmt.Errorf("check panicked: %v", p)
					}
				}()
				done <- c.Func(ctx)
			}()
			select {
			case err := <-done:
				results <- result{c.Name, err}
			case <-ctx.Done():
				// A check that ignores its context is not waited for.
				results <- result{c.Name, fmt.Errorf("no answer within %v: %w", CheckTimeout, ctx.Err())}
			}
		}()
	}
	states := make(map[string]string, len(s.checks))
	var failing []string
	for range s.checks {
		res := <-results
		if res.err != nil {
			states[res.name] = "failing"
			failing = append(failing, res.name)
			s.log.WarnContext(r.Context(), "readiness check failed", "check", res.name, "err", res.err)
			continue
		}
		states[res.name] = "ok"
	}
	if len(failing) > 0 {
		sort.Strings(failing)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error": apiError{
				Code:    "not_ready",
				Message: "not ready: failing checks: " + strings.Join(failing, ", "),
			},
			"checks": states,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": states})
}

// basicAuth lets a request through to next only with user and password.
// Both are compared in constant time over fixed-size digests, so neither
// their content nor their length leaks through timing.
// ProfilePath is where Go's profiles (net/http/pprof) are served, behind
// the ops credentials, so a slow role can be profiled where it runs:
// go tool pprof -seconds 30 http://ops:PASSWORD@host:9090/debug/pprof/profile
const ProfilePath = "/debug/pprof"

// profiles serves net/http/pprof behind the ops credentials, or says how to
// turn it on.
func profiles(cfg Config) http.Handler {
	if cfg.Password == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "profiles_disabled", "profiles are off: set PACKLINE_OPS_PASSWORD (and PACKLINE_OPS_USER) to serve them")
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc(ProfilePath+"/", pprof.Index)
	mux.HandleFunc(ProfilePath+"/cmdline", pprof.Cmdline)
	mux.HandleFunc(ProfilePath+"/profile", pprof.Profile)
	mux.HandleFunc(ProfilePath+"/symbol", pprof.Symbol)
	mux.HandleFunc(ProfilePath+"/trace", pprof.Trace)
	return basicAuth(cfg.user(), cfg.Password, mux)
}

// user is the ops user name, DefaultUser when unset.
func (cfg Config) user() string {
	if cfg.User == "" {
		return DefaultUser
	}
	return cfg.User
}

func basicAuth(user, password string, next http.Handler) http.Handler {
	wantUser := sha256.Sum256([]byte(user))
	wantPass := sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(u))
		gotPass := sha256.Sum256([]byte(p))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="packline ops", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "ops credentials required (PACKLINE_OPS_USER / PACKLINE_OPS_PASSWORD)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// promLogger sends promhttp's errors (a collector that failed) to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics scrape", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
