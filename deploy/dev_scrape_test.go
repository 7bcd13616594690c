package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/ops/opstest"
)

// A real Prometheus scrapes a running `packline dev` (the binary, built
// here) after orders went through it: the target is up, promtool finds the
// scrape clean, and the dashboard's queries about queues, orders, effects,
// transitions and HTTP return series from the real fleet.
func TestPrometheusScrapesRunningDev(t *testing.T) {
	bin := opstest.Tool(t, "prometheus")
	promtoolBin := opstest.Tool(t, "promtool")
	dir := t.TempDir()
	packline := filepath.Join(dir, "packline")
	build := exec.Command("go", "build", "-o", packline, "../cmd/packline")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	const sf, mk = "pl_sf_scrape_test_storefront_000000", "pl_mk_scrape_test_merchant_00000000"
	apiAddr, opsAddr := freeAddr(t), freeAddr(t)
	dev := exec.Command(packline, "dev", "-http", apiAddr, "-ops", opsAddr, "-data", filepath.Join(dir, "data"))
	dev.Env = append(os.Environ(), "PACKLINE_DEV_STOREFRONT_KEY="+sf, "PACKLINE_DEV_MERCHANT_KEY="+mk,
		"DATABASE_URL=", "REDIS_URL=", "LOG_LEVEL=warn")
	var logs bytes.Buffer
	dev.Stdout, dev.Stderr = io.Discard, &logs
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	t.Cleanup(func() {
		dev.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			dev.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("dev logs:\n%s", logs.String())
		}
	})
	waitFor(t, time.Minute, "packline dev to answer /readyz", func() (bool, string) {
		resp, err := http.Get("http://" + opsAddr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})

	// Orders through the API, so orders, transitions, effects and HTTP
	// requests have series.
	call := func(method, path, key, body string) map[string]any {
		req, _ := http.NewRequest(method, "http://"+apiAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	call("PUT", "/v1/stock/TEE", mk, `{"on_hand": 10}`)
	for i := 0; i < 3; i++ {
		o := call("POST", "/v1/orders", sf, `{"currency":"DZD","customer":{"name":"A","phone":"+213555123456"},"lines":[{"sku":"TEE","name":"T","quantity":1,"unit_price":100}]}`)
		// Confirming runs stock:decrement in the worker.
		call("POST", "/v1/orders/"+o["id"].(string)+"/events", mk, `{"event":"confirm"}`)
	}

	scrapeBody := scrape(t, "http://"+opsAddr+"/metrics")
	check := exec.Command(promtoolBin, "check", "metrics")
	check.Stdin = strings.NewReader(scrapeBody)
	out, _ := check.CombinedOutput()
	// asynq's two gauges named *_total are the only findings allowed (see
	// ops tests); anything else is a problem in packline's own metrics.
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.Contains(line, "asynq_tasks_enqueued_total") || strings.Contains(line, "asynq_queue_paused_total") {
			continue
		}
		t.Errorf("promtool check metrics: %s", line)
	}

	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: packline
    static_configs:
      - targets: [%q]
`, opsAddr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	api := startPrometheus(t, bin, cfgPath, dir)
	for _, q := range []string{
		`up{job="packline"} == 1`,
		`max by (queue) (asynq_queue_size)`,
		`max by (flow, status) (packline_orders)`,
		`sum by (flow) (packline_orders_created_total)`,
		`sum by (type, outcome) (packline_effects_total)`,
		`sum by (flow, event, to) (packline_order_transitions_total)`,
		`sum by (route, code) (packline_http_requests_total)`,
		`max(packline_outbox_backlog)`,
		`max(packline_workers_live) >= 1`,
	} {
		waitFor(t, 2*time.Minute, "series for "+q, func() (bool, string) {
			n, err := querySeries(api, q)
			if err != nil {
				return false, err.Error()
			}
			return n > 0, fmt.Sprintf("%d series", n)
		})
	}
	// And every dashboard query that is not about rates over traffic this
	// run did not make parses and runs against the real fleet's data.
	exprs, titles := dashboardExprs(t)
	for i, e := range exprs {
		if _, err := querySeries(api, expand(e, "30s")); err != nil {
			t.Errorf("panel %q: %v", titles[i], err)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
