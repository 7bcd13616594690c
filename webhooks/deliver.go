package webhooks

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// Options configure a Client.
type Options struct {
	// Timeout bounds one attempt, redirects and reading the answer
	// included (default 15 s).
	Timeout time.Duration
	// AllowPrivate lets deliveries reach loopback and private addresses
	// (PACKLINE_WEBHOOK_ALLOW_PRIVATE=true; dev sets it).
	AllowPrivate bool
	// MaxRedirects is how many redirects one attempt follows (default 3;
	// negative: none). Only 301, 302, 307 and 308 are followed, re-sending
	// the same POST; every hop is dialed through the address guard.
	MaxRedirects int
	// UserAgent is sent with every request (default "packline-webhooks/1").
	UserAgent string
	// Now is the clock for webhook-timestamp and latencies (time.Now).
	Now func() time.Time
}

// Client delivers webhooks. It is safe for concurrent use and keeps
// connections alive between deliveries.
type Client struct {
	http  *http.Client
	opts  Options
	guard *guard
}

// NewClient returns a client.
func NewClient(opts Options) *Client {
	return newClient(opts, nil)
}

func newClient(opts Options, allow func(netip.AddrPort) bool) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.MaxRedirects == 0 {
		opts.MaxRedirects = 3
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "packline-webhooks/1"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &guard{allowPrivate: opts.AllowPrivate, allow: allow}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	transport := &http.Transport{
		// No proxy: a proxy would dial the endpoint on our behalf, past
		// the guard.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Client{
		http: &http.Client{
			Transport: transport,
			// Redirects are followed by hand, to keep the POST and its body.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		opts:  opts,
		guard: g,
	}
}

// Outcome is what the caller does after an attempt.
type Outcome int

// Outcomes.
const (
	// Retry: the attempt failed (an HTTP answer other than 2xx and 410, a
	// timeout, a refused or failed connection); try again per NextRetry.
	Retry Outcome = iota
	// Delivered: the receiver answered 2xx.
	Delivered
	// Disable: the receiver answered 410 Gone; disable the endpoint and
	// stop sending to it.
	Disable
	// GiveUp: the message can never be sent to this endpoint as it is
	// (its URL is not an http(s) URL, or the body cannot be encoded).
	GiveUp
)

func (o Outcome) String() string {
	switch o {
	case Retry:
		return "retry"
	case Delivered:
		return "delivered"
	case Disable:
		return "disable"
	case GiveUp:
		return "give_up"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// ErrTimeout: the attempt did not finish within Options.Timeout.
var ErrTimeout = errors.New("webhook attempt timed out")

// ErrTooManyRedirects: more redirects than Options.MaxRedirects.
var ErrTooManyRedirects = errors.New("too many webhook redirects")

// maxLoggedBody is how much of an answer Result keeps for the delivery log.
const maxLoggedBody = 4 << 10

// Result is one attempt, as the delivery log records it.
type Result struct {
	Outcome Outcome
	// StatusCode is the final HTTP status (0 when there was no answer).
	StatusCode int
	// Err says why there was no answer: wraps ErrTimeout,
	// ErrForbiddenAddress, ErrTooManyRedirects, ErrInvalidURL, or is a
	// connection error. nil when the receiver answered.
	Err error
	// RetryAfter is the receiver's Retry-After (0: none), for NextRetry.
	RetryAfter time.Duration
	// AttemptedAt is when the attempt started (its webhook-timestamp).
	AttemptedAt time.Time
	Latency     time.Duration
	// URL is the URL that gave the final answer (after redirects).
	URL string
	// ResponseBody is the first 4 KiB of the answer.
	ResponseBody string
}

// Deliver makes one attempt to deliver m to ep, signed for this attempt.
// It never retries; the caller records the Result and schedules the next
// attempt with NextRetry.
func (c *Client) Deliver(ctx context.Context, ep Endpoint, m Message) (res Result) {
	start := c.opts.Now()
	res = Result{AttemptedAt: start, URL: ep.URL}
	defer func() { res.Latency = c.opts.Now().Sub(start) }()

	target, err := parseEndpointURL(ep.URL)
	if err != nil {
		res.Outcome, res.Err = GiveUp, err
		return res
	}
	body, err := m.Body()
	if err != nil {
		res.Outcome, res.Err = GiveUp, err
		return res
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set("User-Agent", c.opts.UserAgent)
	header.Set(HeaderID, m.ID)
	header.Set(HeaderTimestamp, strconv.FormatInt(start.Unix(), 10))
	header.Set(HeaderSignature, Sign(ep.Secret, m.ID, start, body))

	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	resp, final, err := c.post(actx, target, header, body)
	res.URL = final.String()
	if err != nil {
		res.Outcome, res.Err = Retry, c.attemptError(ctx, actx, err)
		if errors.Is(err, ErrInvalidURL) {
			res.Outcome = GiveUp
		}
		return res
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	logged, err := io.ReadAll(io.LimitReader(resp.Body, maxLoggedBody))
	res.ResponseBody = string(logged)
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.opts.Now())
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// The receiver said yes; a body cut short afterwards changes nothing.
		res.Outcome = Delivered
	case resp.StatusCode == http.StatusGone:
		res.Outcome = Disable
	default:
		res.Outcome = Retry
		if err != nil {
			res.Err = c.attemptError(ctx, actx, err)
		}
	}
	return res
}

// post sends the POST, following up to MaxRedirects redirects that keep the
// method (301, 302, 307, 308). It returns the last URL tried.
func (c *Client) post(ctx context.Context, target *url.URL, header http.Header, body []byte) (*http.Response, *url.URL, error) {
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
		if err != nil {
			return nil, target, fmt.Errorf("%w: %v", ErrInvalidURL, err)
		}
		req.Header = header.Clone()
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, target, err
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, target, nil
		}
		loc, err := resp.Location()
		if err != nil || c.opts.MaxRedirects < 0 {
			return resp, target, nil // not followed: the redirect is the answer
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if hop >= c.opts.MaxRedirects {
			return nil, target, fmt.Errorf("%w: more than %d", ErrTooManyRedirects, c.opts.MaxRedirects)
		}
		next, err := parseEndpointURL(loc.String())
		if err != nil {
			return nil, target, fmt.Errorf("redirect to %s: %w", loc.Redacted(), err)
		}
		target = next
	}
}

// attemptError names a timeout as ErrTimeout (but not a cancelled parent
// context, which is the worker stopping).
func (c *Client) attemptError(parent, attempt context.Context, err error) error {
	if parent.Err() == nil && errors.Is(attempt.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s: %v", ErrTimeout, c.opts.Timeout, err)
	}
	return err
}

// parseOutcome is the inverse of Outcome.String.
func parseOutcome(s string) (Outcome, error) {
	for _, o := range [...]Outcome{Retry, Delivered, Disable, GiveUp} {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("unknown webhook attempt outcome %q", s)
}

// MarshalText writes the outcome as its name ("retry", "delivered",
// "disable", "give_up"): the delivery log's word for it.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an outcome's name.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := parseOutcome(string(b))
	if err == nil {
		*o = v
	}
	return err
}

// Value stores the outcome as its name.
func (o Outcome) Value() (driver.Value, error) { return o.String(), nil }

// Scan reads an outcome stored by Value.
func (o *Outcome) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return o.UnmarshalText([]byte(v))
	case []byte:
		return o.UnmarshalText(v)
	}
	return fmt.Errorf("webhook attempt outcome: cannot scan %T", src)
}
