package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/packline/packline/internal/fleet"
	"golang.org/x/sync/errgroup"
)

// benchSKU is the one product every benchmark order buys; each store holds
// more of it than any run can sell.
const benchSKU = "BENCH-TEE"

// benchStore is a store the benchmark made, with its two keys.
type benchStore struct {
	*fleet.Store
	WebhookPath string
}

// createStores makes n stores with `packline stores create`, each with
// stock of benchSKU and one webhook endpoint (every order event) at the
// receiver.
func createStores(ctx context.Context, bin string, env []string, api *fleet.Client, hooks *receiver, run string, n int) ([]*benchStore, error) {
	stores := make([]*benchStore, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range stores {
		g.Go(func() error {
			fs, err := fleet.CreateStore(ctx, bin, env, fmt.Sprintf("bench-%s-%03d", run, i), "cash-on-delivery")
			if err != nil {
				return err
			}
			s := &benchStore{Store: fs}
			if err := api.Call(ctx, "PUT /v1/stock/{sku}", "PUT", "/v1/stock/"+benchSKU, s.Merchant,
				map[string]any{"on_hand": 1_000_000_000}, nil, http.StatusOK); err != nil {
				return fmt.Errorf("stock for store %s: %w", s.Name, err)
			}
			s.WebhookPath = "/hooks/" + s.ID
			if err := api.Call(ctx, "POST /v1/webhook-endpoints", "POST", "/v1/webhook-endpoints", s.Merchant,
				map[string]any{"url": hooks.url + s.WebhookPath, "events": []string{"order.*"}}, nil, http.StatusCreated); err != nil {
				return fmt.Errorf("webhook endpoint for store %s (is PACKLINE_WEBHOOK_ALLOW_PRIVATE honoured?): %w", s.Name, err)
			}
			stores[i] = s
			return nil
		})
	}
	return stores, g.Wait()
}

// receiver is the webhook endpoint of every store: it verifies nothing,
// counts deliveries and answers 200 at once.
type receiver struct {
	url        string
	srv        *http.Server
	deliveries atomic.Int64
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &receiver{url: "http://" + ln.Addr().String()}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.deliveries.Add(1)
		w.WriteHeader(http.StatusOK)
	})}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) close() { r.srv.Close() }
