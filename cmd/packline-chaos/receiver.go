package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// receiver is every store's webhook endpoint (/hooks/<store id>): it
// verifies each request's Standard Webhooks signature with the endpoint's
// secret, answers a share of the well-signed ones with 500 (never more than
// maxFails times in a row for one webhook-id, so no event waits for the
// retry schedule's hours-long steps), and records every webhook-id under
// the event it carries.
type receiver struct {
	url      string
	srv      *http.Server
	failRate float64
	maxFails int

	mu       sync.Mutex
	rng      *rand.Rand
	secrets  map[string]*standardwebhooks.Webhook // store id → verifier
	messages map[msgKey]*msgRecord
	events   map[eventKey]map[string]bool // event → webhook-ids seen for it
	requests int
	failed   int // answered 500 on purpose
	badSig   []string
	badBody  []string
}

// msgKey is one webhook-id at one endpoint.
type msgKey struct{ store, id string }

// eventKey is what makes an event itself, whatever its webhook-id: the
// endpoint, the order, the type and the transition's commit time.
type eventKey struct{ store, order, typ, at string }

type msgRecord struct {
	event    eventKey
	attempts int
	failsRow int // 500s in a row
	acked    int
}

func startReceiver(failRate float64, maxFails int, seed uint64) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &receiver{url: "http://" + ln.Addr().String(), failRate: failRate, maxFails: maxFails,
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), secrets: map[string]*standardwebhooks.Webhook{},
		messages: map[msgKey]*msgRecord{}, events: map[eventKey]map[string]bool{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve)}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) close() { r.srv.Close() }

// endpoint registers a store's endpoint secret and returns its URL.
func (r *receiver) endpoint(storeID string) string { return r.url + "/hooks/" + storeID }

func (r *receiver) setSecret(storeID, secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("endpoint secret of store %s: %w", storeID, err)
	}
	r.mu.Lock()
	r.secrets[storeID] = wh
	r.mu.Unlock()
	return nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	storeID, ok := strings.CutPrefix(req.URL.Path, "/hooks/")
	body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20))
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	wh := r.secrets[storeID]
	if !ok || err != nil || wh == nil {
		r.badBody = append(r.badBody, fmt.Sprintf("%s %s: unknown endpoint or unreadable body", req.URL.Path, id))
		http.Error(w, "unknown endpoint", http.StatusNotFound)
		return
	}
	if err := wh.Verify(body, req.Header); err != nil {
		r.badSig = append(r.badSig, fmt.Sprintf("store %s webhook-id %s: %v", storeID, id, err))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var msg struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Type == "" || msg.Data.ID == "" {
		r.badBody = append(r.badBody, fmt.Sprintf("store %s webhook-id %s: body without type or data.id: %v", storeID, id, err))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	ev := eventKey{store: storeID, order: msg.Data.ID, typ: msg.Type, at: msg.Timestamp}
	mk := msgKey{storeID, id}
	rec := r.messages[mk]
	if rec == nil {
		rec = &msgRecord{event: ev}
		r.messages[mk] = rec
	}
	if rec.event != ev {
		r.badBody = append(r.badBody, fmt.Sprintf("store %s webhook-id %s: carried %v, earlier %v", storeID, id, ev, rec.event))
	}
	if r.events[ev] == nil {
		r.events[ev] = map[string]bool{}
	}
	r.events[ev][id] = true
	rec.attempts++
	if rec.failsRow < r.maxFails && r.rng.Float64() < r.failRate {
		rec.failsRow++
		r.failed++
		http.Error(w, "chaos: failing this one on purpose", http.StatusInternalServerError)
		return
	}
	rec.failsRow = 0
	rec.acked++
	w.WriteHeader(http.StatusOK)
}

// acked reports whether the endpoint of store answered 2xx to webhook-id.
func (r *receiver) acked(storeID, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.messages[msgKey{storeID, id}]
	return rec != nil && rec.acked > 0
}
