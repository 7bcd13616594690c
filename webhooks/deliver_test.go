package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/packline/packline/webhooks"
)

// received is one request a receiver got, with its signature checked by the
// standard-webhooks library as a merchant would.
type received struct {
	method    string
	id        string
	body      []byte
	verifyErr error
}

// receiver is a merchant's endpoint whose answers a test scripts, one
// handler per attempt (the last one repeats).
type receiver struct {
	*httptest.Server
	secret string

	mu       sync.Mutex
	got      []received
	handlers []http.HandlerFunc
}

func newReceiver(t *testing.T, handlers ...http.HandlerFunc) *receiver {
	t.Helper()
	return newReceiverWithSecret(t, webhooks.NewSecret(), handlers...)
}

func newReceiverWithSecret(t *testing.T, secret string, handlers ...http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{secret: secret, handlers: handlers}
	wh, err := standardwebhooks.NewWebhook(r.secret)
	if err != nil {
		t.Fatal(err)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, received{req.Method, req.Header.Get(webhooks.HeaderID), body, wh.Verify(body, req.Header)})
		h := r.handlers[min(n, len(r.handlers)-1)]
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.Server.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) endpoint() webhooks.Endpoint {
	return webhooks.Endpoint{ID: "ep_1", URL: r.URL + "/hooks", Secret: r.secret, Events: []string{"order.*"}}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func message() webhooks.Message {
	return webhooks.Message{ID: webhooks.MessageID("eff_42"), Type: "order.shipped",
		Timestamp: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC),
		Data:      json.RawMessage(`{"id":"ord_1","status":"shipped","shipments":[{"tracking_number":"SB1"}]}`)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// TestDeliverFailsTimesOutThenSucceeds: a receiver that answers 500, then
// hangs past the timeout, then answers 204. The client reports each attempt
// as it was, every attempt carries the same webhook-id and a valid
// signature, and exactly one is delivered.
func TestDeliverFailsTimesOutThenSucceeds(t *testing.T) {
	t.Parallel()
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() } // until the client gives up
	rcv := newReceiver(t,
		func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "database down")
		},
		hang,
		status(http.StatusNoContent))
	c := webhooks.NewClient(webhooks.Options{AllowPrivate: true, Timeout: 2 * time.Second})
	ep, m := rcv.endpoint(), message()

	first := c.Deliver(ctx(t), ep, m)
	if first.Outcome != webhooks.Retry || first.StatusCode != 500 || first.Err != nil || first.ResponseBody != "database down" {
		t.Fatalf("attempt 1 = %+v, want retry after HTTP 500", first)
	}
	second := c.Deliver(ctx(t), ep, m)
	if second.Outcome != webhooks.Retry || second.StatusCode != 0 || !errors.Is(second.Err, webhooks.ErrTimeout) {
		t.Fatalf("attempt 2 = %+v, want retry after a timeout", second)
	}
	if second.Latency < 2*time.Second {
		t.Fatalf("attempt 2 gave up after %s, before its 2 s timeout", second.Latency)
	}
	third := c.Deliver(ctx(t), ep, m)
	if third.Outcome != webhooks.Delivered || third.StatusCode != 204 || third.Err != nil {
		t.Fatalf("attempt 3 = %+v, want delivered", third)
	}
	if !strings.HasSuffix(third.URL, "/hooks") || third.AttemptedAt.IsZero() {
		t.Fatalf("attempt 3 log fields: %+v", third)
	}

	got := rcv.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	want, _ := m.Body()
	for i, r := range got {
		if r.verifyErr != nil {
			t.Errorf("attempt %d: signature refused by standard-webhooks: %v", i+1, r.verifyErr)
		}
		if r.method != http.MethodPost || r.id != m.ID || string(r.body) != string(want) {
			t.Errorf("attempt %d: %s id=%s body=%s", i+1, r.method, r.id, r.body)
		}
	}
}

func TestDeliverHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(30 * time.Minute).UTC().Format(http.TimeFormat)
	rcv := newReceiver(t,
		func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", date)
			w.WriteHeader(http.StatusServiceUnavailable)
		})
	c := webhooks.NewClient(webhooks.Options{AllowPrivate: true})

	res := c.Deliver(ctx(t), rcv.endpoint(), message())
	if res.Outcome != webhooks.Retry || res.StatusCode != 429 || res.RetryAfter != 2*time.Minute {
		t.Fatalf("429 = %+v, want retry with Retry-After 2m", res)
	}
	if wait, ok := webhooks.NextRetry(1, 1, res.RetryAfter); !ok || wait != 2*time.Minute {
		t.Fatalf("after attempt 1 wait %s, want the receiver's 2m over the schedule's 5s", wait)
	}
	res = c.Deliver(ctx(t), rcv.endpoint(), message())
	if res.StatusCode != 503 || res.RetryAfter < 29*time.Minute || res.RetryAfter > 30*time.Minute {
		t.Fatalf("503 with an HTTP date = %+v, want Retry-After of about 30m", res)
	}
	if wait, _ := webhooks.NextRetry(2, 1, res.RetryAfter); wait != res.RetryAfter {
		t.Fatalf("after attempt 2 wait %s, want %s", wait, res.RetryAfter)
	}
	if wait, _ := webhooks.NextRetry(3, 1, res.RetryAfter); wait != 30*time.Minute {
		t.Fatalf("after attempt 3 wait %s, want the schedule's 30m", wait)
	}
}

func TestDeliverGoneDisables(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusGone))
	res := webhooks.NewClient(webhooks.Options{AllowPrivate: true}).Deliver(ctx(t), rcv.endpoint(), message())
	if res.Outcome != webhooks.Disable || res.StatusCode != 410 {
		t.Fatalf("410 = %+v, want disable", res)
	}
	// Any other refusal is retried.
	for _, code := range []int{400, 401, 404, 422, 502} {
		rcv := newReceiver(t, status(code))
		if res := webhooks.NewClient(webhooks.Options{AllowPrivate: true}).Deliver(ctx(t), rcv.endpoint(), message()); res.Outcome != webhooks.Retry {
			t.Errorf("HTTP %d = %v, want retry", code, res.Outcome)
		}
	}
}

func TestDeliverRefusesPrivateAddresses(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, status(http.StatusNoContent))
	c := webhooks.NewClient(webhooks.Options{}) // AllowPrivate false
	ep := rcv.endpoint()

	res := c.Deliver(ctx(t), ep, message())
	if !errors.Is(res.Err, webhooks.ErrForbiddenAddress) || res.Outcome != webhooks.Retry || res.StatusCode != 0 {
		t.Fatalf("127.0.0.1 = %+v, want refused", res)
	}
	// A name is checked by the address it resolves to.
	u, _ := url.Parse(ep.URL)
	ep.URL = "http://localhost:" + u.Port() + "/hooks"
	if res := c.Deliver(ctx(t), ep, message()); !errors.Is(res.Err, webhooks.ErrForbiddenAddress) {
		t.Fatalf("localhost = %+v, want refused", res)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("the private receiver got %d requests", n)
	}
}

// TestDeliverRefusesRedirectToPrivateAddress: a public endpoint (here a
// loopback server the guard is told to admit) redirects to 127.0.0.1; the
// redirect is refused at dial time and the private server never hears of it.
func TestDeliverRefusesRedirectToPrivateAddress(t *testing.T) {
	t.Parallel()
	private := newReceiver(t, status(http.StatusNoContent))
	public := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, private.URL+"/internal", http.StatusTemporaryRedirect)
	})
	publicAddr := netip.MustParseAddrPort(strings.TrimPrefix(public.URL, "http://"))
	c := webhooks.NewClientAllowing(webhooks.Options{}, func(ap netip.AddrPort) bool { return ap == publicAddr })

	res := c.Deliver(ctx(t), public.endpoint(), message())
	if !errors.Is(res.Err, webhooks.ErrForbiddenAddress) || res.Outcome != webhooks.Retry {
		t.Fatalf("redirect to 127.0.0.1 = %+v, want refused", res)
	}
	if !strings.HasPrefix(res.URL, private.URL) {
		t.Fatalf("result URL %q, want the refused redirect target", res.URL)
	}
	if len(public.requests()) != 1 || len(private.requests()) != 0 {
		t.Fatalf("public got %d, private got %d requests; want 1 and 0", len(public.requests()), len(private.requests()))
	}
}

// TestDeliverRefusesRedirectsAroundTheAllowList: a redirect to a special
// address written another way (IPv4-mapped, IPv4-compatible, a decimal
// host) is refused too, at the dial or before it, and never reached.
func TestDeliverRefusesRedirectsAroundTheAllowList(t *testing.T) {
	t.Parallel()
	private := newReceiver(t, status(http.StatusNoContent))
	port := private.URL[strings.LastIndex(private.URL, ":")+1:]
	for _, target := range []string{
		"http://[::ffff:127.0.0.1]:" + port + "/x",
		"http://[::127.0.0.1]:" + port + "/x",
		"http://2130706433:" + port + "/x",
		"http://0x7f.0.0.1:" + port + "/x",
	} {
		public := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		})
		publicAddr := netip.MustParseAddrPort(strings.TrimPrefix(public.URL, "http://"))
		c := webhooks.NewClientAllowing(webhooks.Options{}, func(ap netip.AddrPort) bool { return ap == publicAddr })
		if res := c.Deliver(ctx(t), public.endpoint(), message()); !errors.Is(res.Err, webhooks.ErrForbiddenAddress) || res.Outcome != webhooks.Retry {
			t.Errorf("redirect to %s = %+v, want refused", target, res)
		}
	}
	if n := len(private.requests()); n != 0 {
		t.Fatalf("the private receiver got %d requests", n)
	}
}

func TestDeliverFollowsRedirectsKeepingThePOST(t *testing.T) {
	t.Parallel()
	secret := webhooks.NewSecret() // the endpoint's, checked where the request lands
	final := newReceiverWithSecret(t, secret, status(http.StatusOK))
	first := newReceiverWithSecret(t, secret, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/moved", http.StatusMovedPermanently)
	})
	c := webhooks.NewClient(webhooks.Options{AllowPrivate: true})
	res := c.Deliver(ctx(t), first.endpoint(), message())
	if res.Outcome != webhooks.Delivered || res.URL != final.URL+"/moved" {
		t.Fatalf("redirected delivery = %+v", res)
	}
	got := final.requests()
	want, _ := message().Body()
	if len(got) != 1 || got[0].method != http.MethodPost || string(got[0].body) != string(want) || got[0].verifyErr != nil {
		t.Fatalf("redirect target got %+v, want the same signed POST", got)
	}

	// 303 See Other asks for a GET: not a webhook delivery, so not followed.
	other := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/see-other", http.StatusSeeOther)
	})
	if res := c.Deliver(ctx(t), other.endpoint(), message()); res.Outcome != webhooks.Retry || res.StatusCode != 303 {
		t.Fatalf("303 = %+v, want a retry on the 303 itself", res)
	}
	if len(final.requests()) != 1 {
		t.Fatal("a 303 was followed")
	}
}

func TestDeliverStopsAfterMaxRedirects(t *testing.T) {
	t.Parallel()
	var loop *receiver
	loop = newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+"/again", http.StatusFound)
	})
	c := webhooks.NewClient(webhooks.Options{AllowPrivate: true, MaxRedirects: 2})
	res := c.Deliver(ctx(t), loop.endpoint(), message())
	if !errors.Is(res.Err, webhooks.ErrTooManyRedirects) || res.Outcome != webhooks.Retry {
		t.Fatalf("redirect loop = %+v", res)
	}
	if n := len(loop.requests()); n != 3 {
		t.Fatalf("%d requests, want 3 (the first and 2 redirects)", n)
	}
	// Redirects off: the 302 is the answer.
	none := webhooks.NewClient(webhooks.Options{AllowPrivate: true, MaxRedirects: -1})
	if res := none.Deliver(ctx(t), loop.endpoint(), message()); res.StatusCode != 302 || res.Outcome != webhooks.Retry {
		t.Fatalf("redirects off = %+v", res)
	}
}

func TestDeliverGivesUpOnAnImpossibleEndpoint(t *testing.T) {
	t.Parallel()
	c := webhooks.NewClient(webhooks.Options{AllowPrivate: true})
	for _, u := range []string{"ftp://example.com/x", "not a url", ""} {
		res := c.Deliver(ctx(t), webhooks.Endpoint{URL: u, Secret: webhooks.NewSecret()}, message())
		if res.Outcome != webhooks.GiveUp || !errors.Is(res.Err, webhooks.ErrInvalidURL) {
			t.Errorf("URL %q = %+v, want give up", u, res)
		}
	}
}

func TestDeliverStoppedByCallerIsNotATimeout(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	c := webhooks.NewClient(webhooks.Options{AllowPrivate: true})
	parent, cancel := context.WithCancel(t.Context())
	done := make(chan webhooks.Result)
	go func() { done <- c.Deliver(parent, rcv.endpoint(), message()) }()
	<-started
	cancel()
	res := <-done
	if res.Outcome != webhooks.Retry || errors.Is(res.Err, webhooks.ErrTimeout) || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("cancelled = %+v, want a retry caused by context.Canceled", res)
	}
}
