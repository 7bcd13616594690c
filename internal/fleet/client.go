package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
)

// Client calls packline's API and counts every answer by route and status.
// A 429, a 5xx or no answer at all is tried again as Retry says.
type Client struct {
	Base  string
	HTTP  *http.Client
	Retry Retry

	mu       sync.Mutex
	statuses map[string]int
}

// Retry is how a Client tries a request again: up to Attempts times in all
// (0: no limit) and, when Within is set, only while less than Within has
// passed since the first attempt; attempt n waits n × Step, at most
// MaxPause (0: no cap), or what the answer's Retry-After asks.
type Retry struct {
	Attempts int
	Within   time.Duration
	Step     time.Duration
	MaxPause time.Duration
}

// DefaultRetry is a few quick tries: for a fleet that is up.
var DefaultRetry = Retry{Attempts: 5, Step: 50 * time.Millisecond}

// NewClient is a Client of the API at base with DefaultRetry.
func NewClient(base string) *Client {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	return &Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}, Retry: DefaultRetry, statuses: map[string]int{}}
}

// APIError is an answer other than the one the caller wanted.
type APIError struct {
	Route  string
	Status int
	Body   string
	// Unsure is set when an earlier attempt of the same request got no
	// answer or a 5xx: the request may have taken effect then.
	Unsure bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Route, e.Status, Tail(e.Body, 300))
}

// StatusOf is the HTTP status of an APIError, 0 for any other error.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Request is one API call: body is sent as JSON with the key as bearer
// token (and Header's headers); a Want answer is decoded into Out (when not
// nil). Route names the call in the counts ("POST /v1/orders").
type Request struct {
	Route, Method, Path, Key string
	Header                   map[string]string
	Body, Out                any
	Want                     int
}

// Call sends a request, retried as c.Retry says.
func (c *Client) Call(ctx context.Context, route, method, path, key string, body, out any, want int) error {
	return c.Send(ctx, Request{Route: route, Method: method, Path: path, Key: key, Body: body, Out: out, Want: want})
}

// Send sends r, retried as c.Retry says.
func (c *Client) Send(ctx context.Context, r Request) error {
	var b []byte
	if r.Body != nil {
		var err error
		if b, err = json.Marshal(r.Body); err != nil {
			return err
		}
	}
	return c.Do(ctx, r.Route, r.Want, r.Out, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, r.Method, c.Base+r.Path, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if r.Key != "" {
			req.Header.Set("Authorization", "Bearer "+r.Key)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range r.Header {
			req.Header.Set(k, v)
		}
		return req, nil
	})
}

// Do sends the request build makes (a new one for every attempt), retried
// as c.Retry says, and decodes a want answer into out (when not nil).
func (c *Client) Do(ctx context.Context, route string, want int, out any, build func() (*http.Request, error)) error {
	start := time.Now()
	unsure := false
	for attempt := 1; ; attempt++ {
		req, err := build()
		if err != nil {
			return err
		}
		status, resp, retryAfter, err := c.RoundTrip(req)
		c.Count(route, status, err)
		if err == nil && status == want {
			if out != nil {
				return json.Unmarshal(resp, out)
			}
			return nil
		}
		retryable := status == 0 || status == http.StatusTooManyRequests || status >= 500
		if err == nil {
			err = &APIError{Route: route, Status: status, Body: string(resp), Unsure: unsure}
		} else if status == 0 && ctx.Err() == nil {
			err = fmt.Errorf("%s: no answer: %w", route, err)
		}
		if status == 0 || status >= 500 {
			unsure = true
		}
		pause := time.Duration(attempt) * c.Retry.Step
		if c.Retry.MaxPause > 0 {
			pause = min(pause, c.Retry.MaxPause)
		}
		if retryAfter > 0 {
			pause = retryAfter
		}
		if ctx.Err() != nil || !retryable || (c.Retry.Attempts > 0 && attempt >= c.Retry.Attempts) ||
			(c.Retry.Within > 0 && time.Since(start)+pause > c.Retry.Within) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// RoundTrip sends one request and reads its answer.
func (c *Client) RoundTrip(req *http.Request) (status int, resp []byte, retryAfter time.Duration, err error) {
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer res.Body.Close()
	resp, err = io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if s, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil && s >= 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	if err != nil {
		return 0, nil, 0, err // a cut answer is no answer
	}
	return res.StatusCode, resp, retryAfter, nil
}

// Count notes one answer (status 0: no answer).
func (c *Client) Count(route string, status int, err error) {
	k := fmt.Sprintf("%s %d", route, status)
	if status == 0 {
		k = route + " no answer"
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			k = route + " cancelled"
		}
	}
	c.mu.Lock()
	c.statuses[k]++
	c.mu.Unlock()
}

// Counts is a copy of the answers counted so far.
func (c *Client) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.statuses))
	for k, v := range c.statuses {
		out[k] = v
	}
	return out
}

// Failures is how many answers were errors (4xx, 5xx, none) so far.
func (c *Client) Failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.statuses {
		if failureRE.MatchString(k) {
			n += v
		}
	}
	return n
}

var failureRE = regexp.MustCompile(` (4\d\d|5\d\d|no answer)$`)

// CourierCallback posts one of the sandbox courier's signed callbacks for
// the shipment with the tracking number, saying it reached st at at, and
// returns the order's status after it.
func (c *Client) CourierCallback(ctx context.Context, secret, tracking string, st couriers.Status, at time.Time) (string, error) {
	url := c.Base + "/v1/couriers/" + sandbox.Name + "/callbacks"
	var res struct {
		OrderStatus string `json:"order_status"`
	}
	err := c.Do(ctx, "POST /v1/couriers/{courier}/callbacks", http.StatusOK, &res, func() (*http.Request, error) {
		return sandbox.NewCallbackRequest(ctx, url, secret, tracking, st, at, time.Now())
	})
	return res.OrderStatus, err
}

// CourierCallbacks posts the sandbox courier's callbacks for the order's
// shipment (its tracking number is derived from the order id), one per
// status, a second apart in courier time, and returns the order's status
// after the last.
func (c *Client) CourierCallbacks(ctx context.Context, secret, orderID string, statuses ...couriers.Status) (string, error) {
	tracking := sandbox.TrackingNumber(orderID)
	base := time.Now()
	var got string
	for i, st := range statuses {
		var err error
		if got, err = c.CourierCallback(ctx, secret, tracking, st, base.Add(time.Duration(i+1)*time.Second)); err != nil {
			return "", fmt.Errorf("order %s, courier %s: %w", orderID, st, err)
		}
	}
	return got, nil
}
