package main

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
)

// apiClient calls packline's API and counts every answer by route and
// status. A 429 or 5xx is retried after a short pause, a few times.
type apiClient struct {
	base string
	http *http.Client

	mu       sync.Mutex
	statuses map[string]int
}

func newAPIClient(base string) *apiClient {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	return &apiClient{base: base, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, statuses: map[string]int{}}
}

// apiError is an answer other than the one the caller wanted.
type apiError struct {
	Route  string
	Status int
	Body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Route, e.Status, tail(e.Body, 300))
}

// statusOf is the HTTP status of an apiError, 0 for any other error.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

const maxAttempts = 5

// call sends body (JSON) with key and decodes a want-status answer into out
// (when not nil). route names the call in the counts ("POST /v1/orders").
func (c *apiClient) call(ctx context.Context, route, method, path, key string, body, out any, want int) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		status, resp, retryAfter, err := c.send(ctx, method, path, key, b)
		c.count(route, status, err)
		if err == nil && status == want {
			if out != nil {
				return json.Unmarshal(resp, out)
			}
			return nil
		}
		if err == nil {
			err = &apiError{Route: route, Status: status, Body: string(resp)}
		}
		if ctx.Err() != nil || attempt == maxAttempts || !(status == 0 || status == http.StatusTooManyRequests || status >= 500) {
			return err
		}
		pause := time.Duration(attempt) * 50 * time.Millisecond
		if retryAfter > 0 {
			pause = retryAfter
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

func (c *apiClient) send(ctx context.Context, method, path, key string, body []byte) (status int, resp []byte, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

func (c *apiClient) do(req *http.Request) (status int, resp []byte, retryAfter time.Duration, err error) {
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer res.Body.Close()
	resp, err = io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if s, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil && s >= 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return res.StatusCode, resp, retryAfter, err
}

// count notes one answer (status 0: no answer).
func (c *apiClient) count(route string, status int, err error) {
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

// counts is a copy of the answers counted so far.
func (c *apiClient) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.statuses))
	for k, v := range c.statuses {
		out[k] = v
	}
	return out
}

// failures is how many answers were errors (4xx other than the expected,
// 5xx, none) so far.
func (c *apiClient) failures() int {
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
