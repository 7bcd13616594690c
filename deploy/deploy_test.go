package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/packline/packline/metrics"
	"github.com/packline/packline/ops"
	"github.com/packline/packline/ops/opstest"
)

const (
	alertsFile     = "prometheus/alerts.yml"
	alertTestsFile = "prometheus/alerts_test.yml"
	configFile     = "prometheus/prometheus.yml"
	dashboardFile  = "grafana/packline.json"
	runbookFile    = "../docs/operations.md"
)

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin := opstest.Tool(t, "promtool")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRulesCheck(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "rules", alertsFile)
}

func TestAlertRulesUnitTests(t *testing.T) {
	t.Parallel()
	promtool(t, "test", "rules", alertTestsFile)
}

func TestPrometheusConfigCheck(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "config", configFile)
}

// alertRules is the shape of alerts.yml.
type alertRules struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert       string
			Record      string
			Expr        string
			For         string
			Labels      map[string]string
			Annotations map[string]string
		}
	}
}

func readAlerts(t *testing.T) alertRules {
	t.Helper()
	var r alertRules
	readYAML(t, alertsFile, &r)
	if len(r.Groups) == 0 {
		t.Fatalf("%s has no rule groups", alertsFile)
	}
	return r
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The alerts the issue asks for, each with a test that fires it and one that
// does not, a severity and a runbook section that exists.
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	t.Parallel()
	rules := readAlerts(t)
	var tests struct {
		Tests []struct {
			Name           string
			AlertRuleTests []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	readYAML(t, alertTestsFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	anchors := runbookAnchors(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !fires[r.Alert] {
				t.Errorf("%s has no unit test in which it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s has no unit test in which it stays quiet", r.Alert)
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", r.Alert)
			}
			rb := r.Annotations["runbook"]
			anchor, ok := strings.CutPrefix(rb, "docs/operations.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook %q is not a section of docs/operations.md", r.Alert, rb)
			}
		}
	}
	for _, want := range []string{
		"PacklineQueueLatencyHigh", "PacklineArchivedTasksGrowing", "PacklineOutboxAgeHigh",
		"PacklineWebhookFailuresHigh", "PacklineOrdersStuck", "PacklineNoLiveWorkers",
		"PacklineHTTPErrorRatioHigh",
	} {
		if !alerts[want] {
			t.Errorf("alerts.yml lacks %s", want)
		}
	}
	for name := range fires {
		if !alerts[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
}

// runbookAnchors returns the GitHub anchors of the headings of
// docs/operations.md.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors := map[string]bool{}
	punct := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ToLower(punct.ReplaceAllString(h, ""))
		anchors[strings.ReplaceAll(a, " ", "-")] = true
	}
	return anchors
}

// dashboardExprs returns every targets[].expr of the dashboard, with the
// panel title for messages.
func dashboardExprs(t *testing.T) (exprs []string, titles []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []panel
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	ids := map[int]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
					continue
				}
				exprs = append(exprs, tg.Expr)
				titles = append(titles, p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(exprs) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return exprs, titles
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// grafanaVars stands in for the variables Grafana substitutes before it
// sends a query.
func expand(expr, rateInterval string) string {
	return strings.NewReplacer(
		"$__rate_interval", rateInterval,
		"${__rate_interval}", rateInterval,
		"$__interval", rateInterval,
		"${__interval}", rateInterval,
		"$__range", "1h",
	).Replace(expr)
}

// The dashboard covers what the issue asks for.
func TestDashboardCoversTheFleet(t *testing.T) {
	t.Parallel()
	exprs, _ := dashboardExprs(t)
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"asynq_queue_size", "asynq_queue_latency_seconds", "asynq_tasks_processed_total",
		"asynq_tasks_failed_total", `asynq_tasks_enqueued_total{state="archived"}`,
		"packline_effect_duration_seconds_bucket", "packline_outbox_oldest_age_seconds",
		"packline_webhook_deliveries_total", "packline_orders", "packline_orders_stuck",
		"packline_http_request_duration_seconds_bucket", `packline_http_requests_total{code=~"5.."}`,
		"packline_workers_live",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no dashboard query uses %s", want)
		}
	}
	if strings.Contains(all, "$") && strings.Contains(strings.ReplaceAll(all, "$__rate_interval", ""), "$") {
		t.Errorf("a dashboard query uses a variable other than $__rate_interval")
	}
}

// Every dashboard query parses as PromQL: promtool checks a rules file with
// each query as a recording rule.
func TestDashboardExpressionsParse(t *testing.T) {
	t.Parallel()
	exprs, titles := dashboardExprs(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: expand(e, "5m")})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := opstest.Tool(t, "promtool")
	out, err := exec.Command(bin, "check", "rules", path).CombinedOutput()
	if err != nil {
		// Name the panel of each query promtool rejects.
		for i := range exprs {
			if bytes.Contains(out, []byte(fmt.Sprintf("dashboard:query_%d", i))) || bytes.Contains(out, []byte(fmt.Sprintf("%d:", i))) {
				t.Logf("panel %q: %s", titles[i], exprs[i])
			}
		}
		t.Fatalf("a dashboard query is not valid PromQL: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(exprs)); !bytes.Contains(out, []byte(want)) {
		t.Fatalf("promtool checked the wrong number of queries: want %q in\n%s", want, out)
	}
}

var (
	stringLit = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchers  = regexp.MustCompile(`\{[^}]*\}`)
	grouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ranges    = regexp.MustCompile(`\[[^\]]*\]`)
	offsets   = regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`)
	ident     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	keywords  = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true,
		"offset": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: what is
// left once strings, label matchers, grouping clauses, ranges, function
// calls and keywords are taken out.
func metricNames(expr string) []string {
	s := stringLit.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = offsets.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range ident.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 {
			if c := s[loc[0]-1]; c >= '0' && c <= '9' || c == '.' {
				continue // the exponent of a number such as 1e3
			}
		}
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || keywords[name] {
			continue // a function or aggregation, or a keyword
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.95, sum by (type, le) (rate(packline_effect_duration_seconds_bucket{type=~"a|b"}[5m]))) / on (x) group_left(y) foo:bar offset 5m > 1e3 or absent(up) and vector(0)`)
	want := []string{"packline_effect_duration_seconds_bucket", "foo:bar", "up"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// exportedSeriesNames returns the series names a scrape exposes: each
// family's name, and for histograms and summaries their _bucket, _sum and
// _count series.
func exportedSeriesNames(t *testing.T, scrape string) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, line := range strings.Split(scrape, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		name, typ := f[2], f[3]
		switch typ {
		case "histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = typ
			}
		case "summary":
			names[name] = typ
			names[name+"_sum"] = typ
			names[name+"_count"] = typ
		default:
			names[name] = typ
		}
	}
	return names
}

// fakeOrders stands in for the store's OrderSource (tested in store).
type fakeOrders struct{}

func (fakeOrders) OrderCounts(context.Context) ([]metrics.OrderCount, error) {
	return []metrics.OrderCount{{Flow: "prepaid-simple", Status: "paid", Count: 4}, {Flow: "prepaid-simple", Status: "pending", Count: 1}}, nil
}

func (fakeOrders) StuckOrders(context.Context) ([]metrics.OrderCount, error) {
	return []metrics.OrderCount{{Flow: "prepaid-simple", Status: "pending", Count: 1}}, nil
}

func (fakeOrders) OutboxStats(context.Context) (int64, time.Duration, error) {
	return 3, 42 * time.Second, nil
}

// touchEveryMetric records one value on every vec of package metrics, so
// each family is exported.
func touchEveryMetric(t *testing.T) {
	t.Helper()
	metrics.OrderCreated("prepaid-simple")
	metrics.Transition("prepaid-simple", "pay", "paid")
	metrics.ObserveEffect("notify:email", metrics.OutcomeOK, 30*time.Millisecond)
	metrics.WebhookDelivery(metrics.OutcomeOK)
	metrics.CourierCall("sandbox", metrics.OutcomeOK)
	metrics.PaymentCall("stripe", "capture", metrics.OutcomeOK)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	metrics.Instrument(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/orders/ord_1", nil))
}

// liveOps starts an ops listener on a real Redis with the fleet's queues
// holding tasks, the way a running role serves it.
func liveOps(t *testing.T) *httptest.Server {
	t.Helper()
	redis := opstest.Redis(t)
	opstest.Enqueue(t, redis, "notify:email", 2, "critical", "default", "low")
	h := ops.New(ops.Config{Redis: redis, Orders: fakeOrders{}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// Every metric the dashboard and the alerts name is one packline exports:
// package metrics' registry, and a live scrape of the ops listener with
// Asynq's collector reading a real Redis.
func TestQueriesUseOnlyExportedMetrics(t *testing.T) {
	touchEveryMetric(t)
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]string{}
	for _, mf := range mfs {
		for _, s := range []string{"", "_bucket", "_sum", "_count"} {
			if s == "" || mf.GetType().String() == "HISTOGRAM" || mf.GetType().String() == "SUMMARY" {
				exported[mf.GetName()+s] = mf.GetType().String()
			}
		}
	}
	srv := liveOps(t)
	for name, typ := range exportedSeriesNames(t, scrape(t, srv.URL+"/metrics")) {
		exported[name] = typ
	}
	for _, want := range []string{"asynq_queue_size", "packline_workers_live", "packline_orders", "packline_http_requests_total"} {
		if exported[want] == "" {
			t.Fatalf("the live scrape lacks %s; the name check would prove nothing", want)
		}
	}

	check := func(where, expr string) {
		for _, name := range metricNames(expr) {
			if exported[name] == "" {
				t.Errorf("%s uses %s, which packline does not export", where, name)
			}
		}
	}
	exprs, titles := dashboardExprs(t)
	for i, e := range exprs {
		check(fmt.Sprintf("dashboard panel %q", titles[i]), e)
	}
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
		}
	}
	// Counters are only ever used through rate/increase, and gauges that
	// end in _total (asynq's) never are, which would give nonsense.
	all := append(append([]string{}, exprs...), alertExprs(t)...)
	for _, e := range all {
		for _, name := range metricNames(e) {
			if exported[name] == "counter" && !regexp.MustCompile(`(rate|increase)\(`+regexp.QuoteMeta(name)).MatchString(e) {
				t.Errorf("counter %s is used without rate() or increase() in %s", name, e)
			}
			if exported[name] == "gauge" && regexp.MustCompile(`(rate|increase)\(`+regexp.QuoteMeta(name)).MatchString(e) {
				t.Errorf("gauge %s is used with rate() or increase() in %s", name, e)
			}
		}
	}
}

func alertExprs(t *testing.T) []string {
	var out []string
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// A real Prometheus scrapes a live ops listener, loads the alert rules, and
// every dashboard query returns series.
func TestPrometheusScrapesAndDashboardQueriesReturnSeries(t *testing.T) {
	bin := opstest.Tool(t, "prometheus")
	touchEveryMetric(t)
	srv := liveOps(t)
	target := strings.TrimPrefix(srv.URL, "http://")
	alerts, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: packline
    static_configs:
      - targets: [%q]
`, alerts, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	api := startPrometheus(t, bin, cfgPath, dir)

	// Wait for the rules to load and be evaluated.
	waitFor(t, 2*time.Minute, "alert rules loaded and evaluated", func() (bool, string) {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
					}
				}
			}
		}
		if err := getJSON(api+"/api/v1/rules", &r); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Health != "ok" {
					return false, fmt.Sprintf("%s: %s %s", rule.Name, rule.Health, rule.LastError)
				}
				n++
			}
		}
		want := len(alertExprs(t))
		return n == want, fmt.Sprintf("%d of %d rules evaluated", n, want)
	})

	exprs, titles := dashboardExprs(t)
	for i, e := range exprs {
		q := expand(e, "30s")
		waitFor(t, 2*time.Minute, fmt.Sprintf("panel %q returns series for %s", titles[i], q), func() (bool, string) {
			n, err := querySeries(api, q)
			if err != nil {
				return false, err.Error()
			}
			return n > 0, fmt.Sprintf("%d series", n)
		})
	}
}

// startPrometheus runs prometheus on a free loopback port until the test
// ends and returns its base URL once it is ready.
func startPrometheus(t *testing.T, bin, cfgPath, dir string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		base, portTaken := tryStartPrometheus(t, bin, cfgPath, dir, attempt)
		if !portTaken {
			return base
		}
		if attempt == 5 {
			t.Fatal("prometheus found its port taken five times")
		}
	}
}

// tryStartPrometheus starts prometheus once; portTaken reports that another
// process took the port between our probe and prometheus's bind.
func tryStartPrometheus(t *testing.T, bin, cfgPath, dir string, attempt int) (base string, portTaken bool) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logPath := filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
		logFile.Close()
	}
	base = "http://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return base, false
			}
		}
		select {
		case err := <-exited:
			logFile.Close()
			log, _ := os.ReadFile(logPath)
			if bytes.Contains(log, []byte("address already in use")) {
				return "", true
			}
			t.Fatalf("prometheus exited (%v):\n%s", err, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus was not ready within 2 minutes:\n%s", log)
		}
	}
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// querySeries runs an instant query and returns how many series it gave.
func querySeries(api, q string) (int, error) {
	var r struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []json.RawMessage
		}
	}
	if err := getJSON(api+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", r.Error)
	}
	return len(r.Data.Result), nil
}

// waitFor polls cond until it holds, failing the test with cond's last
// words after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", limit, what, last)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}
