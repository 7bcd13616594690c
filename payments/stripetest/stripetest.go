// Package stripetest runs the Stripe provider's tests against stripe-mock,
// Stripe's own implementation of its API's surface. Only tests import it.
//
// stripe-mock checks every request against Stripe's OpenAPI spec (a
// parameter Stripe does not take, a value outside its enumeration, a
// missing required one is refused as Stripe would) and answers with the
// canned object of the endpoint. It keeps no state and simulates no card:
// every PaymentIntent it returns is requires_payment_method, metadata is not
// echoed, and nothing is declined. So Start puts a thin proxy in front of
// it: each request goes to stripe-mock first (and its refusal, if any, is
// the answer), then the proxy gives the canned object the state a real
// Stripe would have — the status per capture method and test card, the
// metadata sent, intents and refunds kept by id, idempotent replays by
// Idempotency-Key — and answers Stripe's documented test cards
// (pm_card_chargeDeclined, …) with Stripe's documented card_error body.
//
// stripe-mock is found as $PACKLINE_STRIPE_MOCK, on PATH, in
// $(go env GOPATH)/bin, or installed by scripts/test-tools.sh; when none
// works the test fails, naming the install command (it never skips). One
// stripe-mock serves a test binary; its TestMain calls Main to stop it.
package stripetest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/packline/packline/internal/secrets"
	"github.com/packline/packline/internal/testio"
)

// Keyring returns a keyring on a fresh random key, to seal stores' keys with.
func Keyring(t testing.TB) *secrets.Keyring {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	k, err := secrets.New(base64.StdEncoding.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Install is how stripe-mock is installed.
const Install = "go install github.com/stripe/stripe-mock@v0.203.0"

var binOnce = sync.OnceValues(findBinary)

func findBinary() (string, error) {
	if p := os.Getenv("PACKLINE_STRIPE_MOCK"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	if p := filepath.Join(gopath, "bin", "stripe-mock"); isExec(p) {
		return p, nil
	}
	root, err := testio.RepoRoot()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join("scripts", "test-tools.sh"), "stripe-mock")
	cmd.Dir, cmd.Stderr = root, &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/test-tools.sh stripe-mock: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// The stripe-mock of this test binary: it is stateless (the proxies keep the
// state, one per test), so one serves every test, and loading Stripe's spec
// is paid once (it takes seconds of CPU, more on a loaded machine).
var mock struct {
	once sync.Once
	url  string
	err  error
	cmd  *exec.Cmd
}

// StartMock returns the base URL of the test binary's stripe-mock, started
// on a free 127.0.0.1 port on first use. Main stops it by its pid when the
// tests end (and it dies with the test binary in any case).
func StartMock(t testing.TB) string {
	t.Helper()
	mock.once.Do(func() { mock.url, mock.err = startMock() })
	if mock.err != nil {
		t.Fatal(mock.err)
	}
	return mock.url
}

// Main runs the tests and stops stripe-mock; a package whose tests use
// stripetest calls it from TestMain: os.Exit(stripetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if mock.cmd != nil {
		_ = syscall.Kill(mock.cmd.Process.Pid, syscall.SIGTERM)
		_ = mock.cmd.Wait()
	}
	return code
}

func startMock() (string, error) {
	bin, err := binOnce()
	if err != nil {
		return "", fmt.Errorf("stripe-mock is not installed (%s, or bash scripts/test-tools.sh stripe-mock; or set PACKLINE_STRIPE_MOCK): %v", Install, err)
	}
	// Both listeners on ports the system picks: parallel runs never collide.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start stripe-mock (%s): %v", Install, err)
	}
	mock.cmd = cmd
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a, nil
	case <-time.After(2 * time.Minute):
		return "", fmt.Errorf("stripe-mock (pid %d) did not say where it listens within 2 minutes", cmd.Process.Pid)
	}
}

// Server is the stateful proxy in front of stripe-mock.
type Server struct {
	URL  string
	mock string

	mu       sync.Mutex
	intents  map[string]map[string]any
	refunds  map[string]map[string]any
	order    []string // intent ids, oldest first
	replays  map[string]reply
	fail     []int // statuses to answer the next requests with
	requests []string
}

type reply struct {
	status int
	body   []byte
}

// Start starts the test's proxy in front of the test binary's stripe-mock;
// the secret key to use is Key.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{mock: StartMock(t), intents: map[string]map[string]any{}, refunds: map[string]map[string]any{},
		replays: map[string]reply{}}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Key is a test secret key stripe-mock takes.
const Key = "sk_test_packline0000000000004242"

// FailNext makes the next len(statuses) requests answer with those HTTP
// statuses (Stripe's api_error body) without reaching stripe-mock: a
// Stripe outage.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, statuses...)
}

// Requests returns "METHOD /path" of every request the proxy took.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Intent returns the proxy's state of an intent (nil if unknown).
func (s *Server) Intent(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.intents[id]
}

// Intents returns the intents made, oldest first.
func (s *Server) Intents() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.intents[id])
	}
	return out
}

// Refunds returns the refunds made.
func (s *Server) Refunds() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.refunds))
	for _, r := range s.refunds {
		out = append(out, r)
	}
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	if len(s.fail) > 0 {
		st := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		writeJSON(w, st, map[string]any{"error": map[string]any{"type": "api_error", "message": "An unknown error occurred"}})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if r.Method == http.MethodPost && key != "" {
		if rep, ok := s.replays[key]; ok {
			s.mu.Unlock()
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rep.status)
			_, _ = w.Write(rep.body)
			return
		}
	}
	s.mu.Unlock()

	// stripe-mock first: it validates the request against Stripe's spec.
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, s.mock+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	mockBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(mockBody)
		return
	}
	var canned map[string]any
	if err := json.Unmarshal(mockBody, &canned); err != nil {
		http.Error(w, "stripe-mock answered no JSON object", http.StatusBadGateway)
		return
	}
	form, _ := url.ParseQuery(string(body))
	if r.Method == http.MethodGet {
		form = r.URL.Query()
	}
	s.mu.Lock()
	status, out := s.shape(r.Method, r.URL.Path, form, canned)
	b, _ := json.Marshal(out)
	if r.Method == http.MethodPost && key != "" {
		s.replays[key] = reply{status, b}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var (
	intentPath = regexp.MustCompile(`^/v1/payment_intents/([^/]+)$`)
	cancelPath = regexp.MustCompile(`^/v1/payment_intents/([^/]+)/cancel$`)
	refundPath = regexp.MustCompile(`^/v1/refunds/([^/]+)$`)
)

func metadataOf(form url.Values) map[string]any {
	m := map[string]any{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			m[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return m
}

func missing(param, msg string) (int, any) {
	return http.StatusNotFound, map[string]any{"error": map[string]any{"type": "invalid_request_error",
		"code": "resource_missing", "param": param, "message": msg}}
}

func unexpectedState(pi map[string]any) (int, any) {
	return http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error",
		"code": "payment_intent_unexpected_state", "payment_intent": pi,
		"message": fmt.Sprintf("This PaymentIntent's status is %v.", pi["status"])}}
}

// decline is what Stripe's documented test payment methods do; ok is false
// for one that is declined, with the decline code.
func decline(method, captureMethod string) (code, declineCode string, known bool) {
	switch method {
	case "pm_card_visa", "pm_card_mastercard":
		return "", "", true
	case "pm_card_chargeDeclined":
		return "card_declined", "generic_decline", true
	case "pm_card_chargeDeclinedInsufficientFunds":
		return "card_declined", "insufficient_funds", true
	case "pm_card_chargeDeclinedExpiredCard":
		return "expired_card", "", true
	case "pm_card_authenticationRequired":
		return "authentication_required", "authentication_required", true
	case "pm_card_chargeCustomerFail":
		// As the sandbox: the card check (a manual-capture hold) passes,
		// the charge fails.
		if captureMethod == "manual" {
			return "", "", true
		}
		return "card_declined", "generic_decline", true
	}
	return "", "", false
}

func (s *Server) shape(method, path string, form url.Values, canned map[string]any) (int, any) {
	switch {
	case method == http.MethodPost && path == "/v1/payment_intents":
		return s.createIntent(form, canned)
	case method == http.MethodGet && path == "/v1/payment_intents":
		data := make([]any, 0, len(s.order))
		for i := len(s.order) - 1; i >= 0; i-- { // newest first, as Stripe lists
			data = append(data, s.intents[s.order[i]])
		}
		return http.StatusOK, map[string]any{"object": "list", "url": path, "has_more": false, "data": data}
	case cancelPath.MatchString(path):
		id := cancelPath.FindStringSubmatch(path)[1]
		pi := s.intents[id]
		if pi == nil {
			return missing("intent", "No such payment_intent: '"+id+"'")
		}
		if pi["status"] == "succeeded" || pi["status"] == "canceled" {
			return unexpectedState(pi)
		}
		pi["status"], pi["cancellation_reason"] = "canceled", form.Get("cancellation_reason")
		pi["amount_capturable"] = 0
		return http.StatusOK, pi
	case intentPath.MatchString(path):
		id := intentPath.FindStringSubmatch(path)[1]
		pi := s.intents[id]
		if pi == nil {
			return missing("intent", "No such payment_intent: '"+id+"'")
		}
		if method == http.MethodPost {
			if pi["status"] == "canceled" {
				return unexpectedState(pi)
			}
			md, _ := pi["metadata"].(map[string]any)
			for k, v := range metadataOf(form) {
				md[k] = v
			}
		}
		return http.StatusOK, pi
	case method == http.MethodPost && path == "/v1/refunds":
		return s.createRefund(form, canned)
	case method == http.MethodGet && path == "/v1/refunds":
		var data []any
		for _, rf := range s.refunds {
			if pi := form.Get("payment_intent"); pi == "" || rf["payment_intent"] == pi {
				data = append(data, rf)
			}
		}
		return http.StatusOK, map[string]any{"object": "list", "url": path, "has_more": false, "data": data}
	case refundPath.MatchString(path):
		id := refundPath.FindStringSubmatch(path)[1]
		if rf := s.refunds[id]; rf != nil {
			return http.StatusOK, rf
		}
		return missing("id", "No such refund: '"+id+"'")
	}
	return http.StatusOK, canned
}

func (s *Server) createIntent(form url.Values, pi map[string]any) (int, any) {
	id := "pi_" + strconv.Itoa(len(s.order)+1) + "_" + strings.TrimPrefix(fmt.Sprint(pi["id"]), "pi_")
	pi["id"] = id
	pi["metadata"] = metadataOf(form)
	pi["payment_method"] = form.Get("payment_method")
	pi["capture_method"] = form.Get("capture_method")
	pi["created"] = time.Now().Unix()
	pi["last_payment_error"] = nil
	pi["next_action"] = nil
	pi["canceled_at"] = nil
	amount, _ := strconv.ParseInt(form.Get("amount"), 10, 64)
	code, dcode, known := decline(form.Get("payment_method"), form.Get("capture_method"))
	if !known {
		return missing("payment_method", "No such PaymentMethod: '"+form.Get("payment_method")+"'")
	}
	charge := map[string]any{"id": "ch_" + strings.TrimPrefix(id, "pi_"), "object": "charge", "payment_intent": id, "amount": amount}
	pi["latest_charge"] = charge
	s.intents[id] = pi
	s.order = append(s.order, id)
	if code != "" {
		charge["status"] = "failed"
		pe := map[string]any{"type": "card_error", "code": code, "message": "Your card was declined."}
		if dcode != "" {
			pe["decline_code"] = dcode
		}
		pi["status"], pi["last_payment_error"] = "requires_payment_method", pe
		e := map[string]any{"payment_intent": pi, "charge": charge["id"]}
		for k, v := range pe {
			e[k] = v
		}
		return http.StatusPaymentRequired, map[string]any{"error": e}
	}
	charge["status"] = "succeeded"
	if form.Get("capture_method") == "manual" {
		pi["status"], pi["amount_capturable"], pi["amount_received"] = "requires_capture", amount, 0
	} else {
		pi["status"], pi["amount_capturable"], pi["amount_received"] = "succeeded", 0, amount
	}
	return http.StatusOK, pi
}

func (s *Server) createRefund(form url.Values, rf map[string]any) (int, any) {
	piID := form.Get("payment_intent")
	pi := s.intents[piID]
	if pi == nil {
		return missing("payment_intent", "No such payment_intent: '"+piID+"'")
	}
	if pi["status"] != "succeeded" {
		return http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error",
			"code": "charge_not_refundable", "message": "This PaymentIntent has no successful charge to refund."}}
	}
	received, _ := pi["amount_received"].(int64)
	var refunded int64
	for _, r := range s.refunds {
		if r["payment_intent"] == piID {
			refunded += r["amount"].(int64)
		}
	}
	amount := received - refunded
	if a := form.Get("amount"); a != "" {
		amount, _ = strconv.ParseInt(a, 10, 64)
	}
	if amount <= 0 || amount > received-refunded {
		return http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error",
			"code": "amount_too_large", "param": "amount", "message": "Refund amount is greater than unrefunded amount on charge."}}
	}
	rf["id"] = "re_" + strconv.Itoa(len(s.refunds)+1) + "_" + strings.TrimPrefix(fmt.Sprint(rf["id"]), "re_")
	rf["amount"], rf["payment_intent"], rf["status"] = amount, piID, "succeeded"
	rf["currency"], rf["reason"], rf["metadata"] = pi["currency"], form.Get("reason"), metadataOf(form)
	rf["charge"] = "ch_" + strings.TrimPrefix(piID, "pi_")
	s.refunds[rf["id"].(string)] = rf
	return http.StatusOK, rf
}
