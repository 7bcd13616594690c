package notify_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/packline/packline/notify"
)

const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testAuthToken  = "test-auth-token"
)

func smsMessage(t *testing.T) notify.Message {
	t.Helper()
	req := sampleRequest("cash-on-delivery", notify.SMS, "shipped_tracking", notify.ToCustomer)
	m, err := notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// twilioSender is a sender on the test account, sending from from (a number
// or a messaging service) to the API at baseURL.
func twilioSender(t *testing.T, from, baseURL string) *notify.TwilioSender {
	t.Helper()
	s, err := notify.NewTwilioSender(notify.TwilioConfig{AccountSID: testAccountSID, AuthToken: testAuthToken,
		From: from, BaseURL: baseURL})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTwilioSenderAgainstPrism sends through prism serving the API contract
// in testdata/twilio.yaml, which validates each request.
func TestTwilioSenderAgainstPrism(t *testing.T) {
	t.Parallel()
	spec, err := filepath.Abs(filepath.Join("testdata", "twilio.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := startPrism(t, spec)
	s := twilioSender(t, "+15005550006", base)
	m := smsMessage(t)
	rcpt, err := s.SendSMS(shortCtx(t), "eff_1:shipped_tracking", m)
	if err != nil {
		t.Fatal(err)
	}
	if rcpt.ProviderID != "SM1f0e2d3c4b5a69788796a5b4c3d2e1f0" {
		t.Fatalf("receipt %q, want the mock's message sid", rcpt.ProviderID)
	}

	// With a messaging service instead of a number.
	svc := twilioSender(t, "MG0123456789abcdef0123456789abcdef", base)
	if _, err := svc.SendSMS(shortCtx(t), "eff_2:shipped_tracking", m); err != nil {
		t.Fatal(err)
	}

	// The mock holds the contract: a number that is not E.164 is refused,
	// and the sender calls that permanent.
	m.To = "0612345678"
	_, err = s.SendSMS(shortCtx(t), "eff_3:shipped_tracking", m)
	if !errors.Is(err, notify.ErrPermanent) {
		t.Fatalf("non-E.164 number: %v, want ErrPermanent", err)
	}
	if strings.Contains(err.Error(), "0612345678") {
		t.Fatal("the error shows the phone number")
	}
	// And it refuses a request without credentials (the sender always
	// sends them; this shows the mock checks).
	resp, err := http.PostForm(base+"/2010-04-01/Accounts/"+testAccountSID+"/Messages.json",
		url.Values{"To": {"+33612345678"}, "From": {"+15005550006"}, "Body": {"hi"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: HTTP %d, want 401", resp.StatusCode)
	}
}

// TestTwilioSenderRequest checks the exact request and the reading of each
// kind of answer.
func TestTwilioSenderRequest(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, contentType, accept, idem, user, pass string
		form                                                url.Values
	}
	requests := make(chan seen, 10)
	status, answer := http.StatusCreated, `{"sid":"SM00000000000000000000000000000001","status":"queued"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		user, pass, _ := r.BasicAuth()
		requests <- seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Accept"),
			r.Header.Get("Idempotency-Key"), user, pass, form}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)

	s := twilioSender(t, "+15005550006", srv.URL+"/")
	m := smsMessage(t)
	rcpt, e := s.SendSMS(shortCtx(t), "eff_9:shipped_tracking", m)
	if e != nil {
		t.Fatal(e)
	}
	if rcpt.ProviderID != "SM00000000000000000000000000000001" {
		t.Fatalf("receipt %+v", rcpt)
	}
	r := <-requests
	if r.method != http.MethodPost || r.path != "/2010-04-01/Accounts/"+testAccountSID+"/Messages.json" {
		t.Errorf("request %s %s", r.method, r.path)
	}
	if r.contentType != "application/x-www-form-urlencoded" || r.accept != "application/json" {
		t.Errorf("content type %q, accept %q", r.contentType, r.accept)
	}
	if r.user != testAccountSID || r.pass != testAuthToken {
		t.Errorf("basic auth %q:%q", r.user, r.pass)
	}
	if r.idem != "eff_9:shipped_tracking" {
		t.Errorf("Idempotency-Key %q", r.idem)
	}
	var keys []string
	for k := range r.form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "Body,From,To" || r.form.Get("To") != "+33612345678" ||
		r.form.Get("From") != "+15005550006" || r.form.Get("Body") != m.Text {
		t.Errorf("form %v", r.form)
	}

	for _, tt := range []struct {
		status    int
		answer    string
		permanent bool
	}{
		{http.StatusBadRequest, `{"code":21211,"message":"The 'To' number +33612345678 is not a valid phone number.","status":400}`, true},
		{http.StatusNotFound, `{"code":20404,"message":"not found","status":404}`, true},
		{http.StatusUnauthorized, `{"code":20003,"message":"Authenticate","status":401}`, false},
		{http.StatusTooManyRequests, `{"code":20429,"message":"Too Many Requests","status":429}`, false},
		{http.StatusInternalServerError, `oops`, false},
		{http.StatusCreated, `{"status":"queued"}`, false}, // no sid: not a success
	} {
		status, answer = tt.status, tt.answer
		_, e := s.SendSMS(shortCtx(t), "eff_9:shipped_tracking", m)
		<-requests
		if e == nil || errors.Is(e, notify.ErrPermanent) != tt.permanent {
			t.Errorf("HTTP %d: %v, want permanent=%v", tt.status, e, tt.permanent)
		}
		if e != nil && (strings.Contains(e.Error(), "+33612345678") || strings.Contains(e.Error(), m.Text)) {
			t.Errorf("HTTP %d: the error shows the number or the text: %v", tt.status, e)
		}
	}
}

func TestTwilioSenderRefusesIncompleteMessages(t *testing.T) {
	t.Parallel()
	if _, e := notify.NewTwilioSender(notify.TwilioConfig{AuthToken: "x", From: "+1"}); e == nil {
		t.Fatal("no account SID accepted")
	}
	s, e := notify.NewTwilioSender(notify.TwilioConfig{AccountSID: testAccountSID, AuthToken: "x", From: "+15005550006",
		BaseURL: "http://127.0.0.1:1"})
	if e != nil {
		t.Fatal(e)
	}
	for _, m := range []notify.Message{{Channel: notify.SMS, Text: "hi"}, {Channel: notify.SMS, To: "+33612345678"},
		{Channel: notify.Email, To: "+33612345678", Text: "hi"}} {
		if _, e := s.SendSMS(shortCtx(t), "k", m); !errors.Is(e, notify.ErrPermanent) {
			t.Errorf("SendSMS(%+v) = %v, want ErrPermanent", m, e)
		}
	}
}

func TestSandboxRecordsEveryMessage(t *testing.T) {
	t.Parallel()
	var sb notify.Sandbox
	var es notify.EmailSender = &sb
	var ss notify.SMSSender = &sb
	m := smsMessage(t)
	r1, e := ss.SendSMS(shortCtx(t), "k1", m)
	if e != nil {
		t.Fatal(e)
	}
	r2, _ := es.SendEmail(shortCtx(t), "k1", notify.Message{Channel: notify.Email})
	if r1 != r2 || !strings.HasPrefix(r1.ProviderID, "sandbox_") {
		t.Fatalf("receipts %v %v: one key, one id", r1, r2)
	}
	if got := sb.Sent(); len(got) != 2 || got[0].Key != "k1" || got[0].Message.Text != m.Text {
		t.Fatalf("Sent = %+v", got)
	}
}
