package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/packline/packline/metrics"
	"github.com/packline/packline/ops"
	"github.com/packline/packline/ops/opstest"
)

// fleetQueues are the queues the workers serve.
var fleetQueues = []string{"critical", "default", "low"}

func newServer(t *testing.T, cfg ops.Config) *httptest.Server {
	t.Helper()
	h := ops.New(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if err := h.Close(); err != nil {
			t.Errorf("close ops handler: %v", err)
		}
	})
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, url string, mutate ...func(*http.Request)) response {
	t.Helper()
	return do(t, http.MethodGet, url, mutate...)
}

func do(t *testing.T, method, url string, mutate ...func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

func auth(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// errorBody decodes the {"error": {"code", "message"}} shape every error has.
func errorBody(t *testing.T, r response) (code, message string) {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error.Code == "" {
		t.Fatalf("error body is not {\"error\": {\"code\", \"message\"}}: %v: %s", err, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	return b.Error.Code, b.Error.Message
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	srv := newServer(t, ops.Config{})
	r := get(t, srv.URL+"/healthz")
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Errorf("healthz = %d %s, want 200 {\"status\":\"ok\"}", r.status, r.body)
	}
	r = get(t, srv.URL+"/nope")
	if r.status != http.StatusNotFound {
		t.Errorf("unknown path = %d, want 404", r.status)
	}
	errorBody(t, r)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	// A failing check whose error carries internals that must not leak.
	dbDown := func(context.Context) error {
		return errors.New(`dial postgres://packline:s3cr3t@db.internal:5432/packline: connection refused`)
	}
	// A check that ignores its context and never answers.
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	hangs := func(context.Context) error { <-never; return nil }

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, ops.Config{Checks: []ops.Check{{"database", ok}, {"migrations", ok}}})
		r := get(t, srv.URL+"/readyz")
		var b struct {
			Status string
			Checks map[string]string
		}
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || b.Status != "ready" || b.Checks["database"] != "ok" || b.Checks["migrations"] != "ok" {
			t.Errorf("readyz = %d %s, want 200 with both checks ok", r.status, r.body)
		}
	})

	t.Run("database down", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, ops.Config{
			Checks: []ops.Check{{"database", dbDown}, {"migrations", ok}},
			Logger: discard(),
		})
		r := get(t, srv.URL+"/readyz")
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("readyz = %d, want 503", r.status)
		}
		code, msg := errorBody(t, r)
		if code != "not_ready" || !strings.Contains(msg, "database") || strings.Contains(msg, "migrations") {
			t.Errorf("error = %s %q, want not_ready naming database only", code, msg)
		}
		for _, leak := range []string{"s3cr3t", "postgres://", "db.internal", "connection refused"} {
			if bytes.Contains(r.body, []byte(leak)) {
				t.Errorf("readyz body leaks %q: %s", leak, r.body)
			}
		}
	})

	t.Run("check never answers", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, ops.Config{Checks: []ops.Check{{"migrations", hangs}}, Logger: discard()})
		start := time.Now()
		r := get(t, srv.URL+"/readyz")
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("readyz = %d, want 503", r.status)
		}
		if _, msg := errorBody(t, r); !strings.Contains(msg, "migrations") {
			t.Errorf("message %q does not name migrations", msg)
		}
		if d := time.Since(start); d > ops.CheckTimeout+5*time.Second {
			t.Errorf("readyz took %v with a hanging check; it must be bounded by CheckTimeout", d)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		t.Parallel()
		// Nothing listens on this socket.
		opt := asynq.RedisClientOpt{Network: "unix", Addr: filepath.Join(t.TempDir(), "none.sock")}
		srv := newServer(t, ops.Config{Redis: opt, Checks: []ops.Check{{"database", ok}}, Logger: discard()})
		r := get(t, srv.URL+"/readyz")
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("readyz = %d, want 503", r.status)
		}
		if _, msg := errorBody(t, r); !strings.Contains(msg, "redis") || strings.Contains(msg, "database") {
			t.Errorf("message %q, want one naming redis only", msg)
		}
	})

	t.Run("redis up", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, ops.Config{Redis: opstest.Redis(t)})
		r := get(t, srv.URL+"/readyz")
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"redis":"ok"`)) {
			t.Errorf("readyz = %d %s, want 200 with redis ok", r.status, r.body)
		}
	})
}

func TestDashboardAuth(t *testing.T) {
	t.Parallel()
	redis := opstest.Redis(t)
	opstest.Enqueue(t, redis, "notify:email", 1, fleetQueues...)
	srv := newServer(t, ops.Config{Redis: redis, User: "ops", Password: "correct horse"})

	for _, tt := range []struct {
		name   string
		mutate []func(*http.Request)
	}{
		{"no credentials", nil},
		{"wrong password", []func(*http.Request){auth("ops", "wrong horse")}},
		{"wrong user", []func(*http.Request){auth("admin", "correct horse")}},
		{"password prefix", []func(*http.Request){auth("ops", "correct")}},
	} {
		for _, path := range []string{"/ops/asynq/", "/ops/asynq/api/queues", "/ops/asynq/queues/critical"} {
			r := get(t, srv.URL+path, tt.mutate...)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s %s = %d, want 401", tt.name, path, r.status)
				continue
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: 401 without a Basic challenge", tt.name)
			}
			if code, _ := errorBody(t, r); code != "unauthorized" {
				t.Errorf("%s: code %q, want unauthorized", tt.name, code)
			}
		}
	}

	ok := auth("ops", "correct horse")
	r := get(t, srv.URL+"/ops/asynq/", ok)
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("<title>Asynq - Monitoring</title>")) {
		t.Errorf("dashboard with credentials = %d, want 200 with the asynqmon page", r.status)
	}
	// asynqmon's API, as its UI calls it, sees the fleet's queues.
	r = get(t, srv.URL+"/ops/asynq/api/queues", ok)
	var qs struct {
		Queues []struct {
			Queue   string `json:"queue"`
			Pending int    `json:"pending"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(r.body, &qs); err != nil {
		t.Fatalf("api/queues = %d %s: %v", r.status, r.body, err)
	}
	var names []string
	for _, q := range qs.Queues {
		names = append(names, q.Queue)
		if q.Pending != 1 {
			t.Errorf("queue %s shows %d pending, want 1", q.Queue, q.Pending)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(fleetQueues, ",") {
		t.Errorf("api/queues lists %v, want %v", names, fleetQueues)
	}

	// A browser's cross-site write is refused even with cached credentials;
	// the same write from the dashboard itself goes through.
	pause := srv.URL + "/ops/asynq/api/queues/low:pause"
	r = do(t, http.MethodPost, pause, ok, func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Origin", "https://evil.example")
	})
	if r.status != http.StatusForbidden {
		t.Errorf("cross-site POST = %d, want 403", r.status)
	}
	r = do(t, http.MethodPost, pause, ok, func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-origin") })
	if r.status >= 300 {
		t.Errorf("same-origin POST = %d %s, want 2xx", r.status, r.body)
	}
}

// TestSecurityHeadersOnEveryOpsPage: the dashboard (which has pause and
// delete buttons) and every other ops answer, errors included, may not be
// framed, sniffed or leak their URL in a Referer.
func TestSecurityHeadersOnEveryOpsPage(t *testing.T) {
	t.Parallel()
	srv := newServer(t, ops.Config{Redis: opstest.Redis(t), User: "ops", Password: "correct horse"})
	ok := auth("ops", "correct horse")
	for _, tc := range []struct {
		path   string
		mutate []func(*http.Request)
	}{
		{"/ops/asynq/", []func(*http.Request){ok}}, {"/ops/asynq/queues/critical", []func(*http.Request){ok}},
		{"/ops/asynq/api/queues", []func(*http.Request){ok}}, {"/ops/asynq/", nil},
		{"/debug/pprof/", []func(*http.Request){ok}}, {"/debug/pprof/", nil},
		{"/metrics", nil}, {"/healthz", nil}, {"/readyz", nil}, {"/nowhere", nil},
	} {
		r := get(t, srv.URL+tc.path, tc.mutate...)
		for k, want := range map[string]string{
			"Content-Security-Policy": "frame-ancestors 'none'",
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s (%d, authenticated %v): %s = %q, want %q", tc.path, r.status, tc.mutate != nil, k, got, want)
			}
		}
	}
}

func TestDashboardOffWithoutPassword(t *testing.T) {
	t.Parallel()
	srv := newServer(t, ops.Config{Redis: opstest.Redis(t), User: "ops"})
	r := get(t, srv.URL+"/ops/asynq/", auth("ops", ""))
	if r.status != http.StatusNotFound {
		t.Fatalf("dashboard without a password = %d, want 404", r.status)
	}
	if _, msg := errorBody(t, r); !strings.Contains(msg, "PACKLINE_OPS_PASSWORD") {
		t.Errorf("message %q does not say to set PACKLINE_OPS_PASSWORD", msg)
	}
}

// fakeOrders is an OrderSource; the database side is tested in store.
type fakeOrders struct{}

func (fakeOrders) OrderCounts(context.Context) ([]metrics.OrderCount, error) {
	return []metrics.OrderCount{{Flow: "prepaid-simple", Status: "paid", Count: 4}}, nil
}

func (fakeOrders) StuckOrders(context.Context) ([]metrics.OrderCount, error) {
	return []metrics.OrderCount{{Flow: "prepaid-simple", Status: "paid", Count: 1}}, nil
}

func (fakeOrders) OutboxStats(context.Context) (int64, time.Duration, error) {
	return 2, 3 * time.Second, nil
}

// startWorker runs a real Asynq server (on a queue of its own, so the
// fleet's tasks stay pending) until the test ends.
func startWorker(t *testing.T, redis asynq.RedisConnOpt) {
	t.Helper()
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency: 1,
		Queues:      map[string]int{"ops-test-worker": 1},
		Logger:      quietAsynq{},
	})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatalf("start asynq server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	redis := opstest.Redis(t)
	opstest.Enqueue(t, redis, "notify:email", 2, fleetQueues...)
	startWorker(t, redis)
	metrics.OrderCreated("prepaid-simple")
	srv := newServer(t, ops.Config{Redis: redis, Orders: fakeOrders{}})

	// The worker's heartbeat reaches Redis on its own schedule: wait for it.
	var body string
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := get(t, srv.URL+"/metrics")
		if r.status != http.StatusOK {
			t.Fatalf("metrics = %d", r.status)
		}
		body = string(r.body)
		if strings.Contains(body, "\npackline_workers_live 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("packline_workers_live never reached 1:\n%s", grep(body, "packline_workers_live"))
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not a guess at readiness
	}
	for _, want := range []string{
		`packline_orders_created_total{flow="prepaid-simple"}`,
		`packline_orders{flow="prepaid-simple",status="paid"} 4`,
		`packline_orders_stuck{flow="prepaid-simple",status="paid"} 1`,
		"packline_outbox_backlog 2",
		"packline_outbox_oldest_age_seconds 3",
		`packline_scrape_errors_total{source="asynq"}`,
		`asynq_queue_size{queue="critical"} 2`,
		`asynq_queue_size{queue="default"} 2`,
		`asynq_queue_size{queue="low"} 2`,
		`asynq_tasks_enqueued_total{queue="low",state="pending"} 2`,
		`asynq_queue_latency_seconds{queue="critical"}`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		promtool := opstest.Tool(t, "promtool")
		problems := promtoolCheckMetrics(t, promtool, body)
		// Asynq's collector exports two gauges with a _total suffix. They
		// keep their upstream names because asynqmon and asynq's own
		// dashboards query them by those names; nothing else may complain.
		allowed := map[string]bool{
			`asynq_queue_paused_total non-counter metrics should not have "_total" suffix`:   true,
			`asynq_tasks_enqueued_total non-counter metrics should not have "_total" suffix`: true,
		}
		for _, p := range problems {
			if !allowed[p] {
				t.Errorf("promtool check metrics: %s", p)
			}
			delete(allowed, p)
		}
		// Seeing the known findings proves promtool read the whole scrape.
		for p := range allowed {
			t.Errorf("promtool did not report %q: did it lint the scrape at all?", p)
		}
	})
}

// promtoolCheckMetrics pipes a scrape through `promtool check metrics` and
// returns its findings, one per line.
func promtoolCheckMetrics(t *testing.T, promtool, scrape string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			problems = append(problems, l)
		}
	}
	if err != nil && len(problems) == 0 {
		t.Fatalf("promtool check metrics: %v", err)
	}
	return problems
}

func TestDashboardRendersQueuesInChromium(t *testing.T) {
	t.Parallel()
	chromium := opstest.Tool(t, "chromium")
	redis := opstest.Redis(t)
	opstest.Enqueue(t, redis, "notify:email", 3, fleetQueues...)
	srv := newServer(t, ops.Config{Redis: redis, User: "ops", Password: "s3cret-dashboard"})

	url := strings.Replace(srv.URL, "http://", "http://ops:s3cret-dashboard@", 1) + "/ops/asynq/"
	dom := renderDOM(t, chromium, url)
	// The queues table links each queue to its page: /ops/asynq/queues/NAME.
	for _, q := range fleetQueues {
		link := regexp.MustCompile(`href="/ops/asynq/queues/` + q + `"[^>]*>` + q + `<`)
		if !link.MatchString(dom) {
			t.Errorf("the rendered dashboard does not list queue %q", q)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	// A queue's own page, reached directly (the SPA's deep link), lists its
	// pending tasks.
	dom = renderDOM(t, chromium, strings.TrimSuffix(url, "/")+"/queues/critical?status=pending")
	if n := strings.Count(dom, "notify:email"); n != 3 {
		t.Errorf("the critical queue's page shows %d notify:email tasks, want 3\nDOM:\n%s", n, dom)
	}
}

// renderDOM loads url in headless Chromium, lets its scripts run, and
// returns the DOM they built. Chromium's virtual time only advances while no
// fetch is pending, so the dump waits for the SPA's API calls; every host but
// the test server fails to resolve, so nothing leaves the machine.
func renderDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update",
		"--disable-default-apps", "--disable-extensions", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--mute-audio",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir="+profile,
		"--virtual-time-budget=15000",
		"--dump-dom", url,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+profile)
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// quietAsynq keeps the test worker's start-up chatter out of the test log.
type quietAsynq struct{}

func (quietAsynq) Debug(...any) {}
func (quietAsynq) Info(...any)  {}
func (quietAsynq) Warn(...any)  {}
func (quietAsynq) Error(...any) {}
func (quietAsynq) Fatal(...any) {}

// Go's profiles are served behind the ops credentials, and not at all
// without a password.
func TestProfilesBehindOpsCredentials(t *testing.T) {
	off := newServer(t, ops.Config{})
	if r := do(t, "GET", off.URL+"/debug/pprof/"); r.status != http.StatusNotFound {
		t.Fatalf("without a password: %d, want 404", r.status)
	} else if code, _ := errorBody(t, r); code != "profiles_disabled" {
		t.Fatalf("without a password: code %q", code)
	}
	on := newServer(t, ops.Config{User: "ops", Password: "s3cret-profiles"})
	if r := do(t, "GET", on.URL+"/debug/pprof/"); r.status != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d, want 401", r.status)
	}
	if r := do(t, "GET", on.URL+"/debug/pprof/", auth("ops", "wrong")); r.status != http.StatusUnauthorized {
		t.Fatalf("with a wrong password: %d, want 401", r.status)
	}
	r := do(t, "GET", on.URL+"/debug/pprof/goroutine?debug=1", auth("ops", "s3cret-profiles"))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "goroutine profile") {
		t.Fatalf("with credentials: %d %.200s", r.status, r.body)
	}
}
