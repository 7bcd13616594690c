package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/packline/packline"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
)

// PaymentAccounts manages the stores' own provider accounts:
// *payments.Accounts fits.
type PaymentAccounts interface {
	GetStripe(ctx context.Context, storeID string) (payments.StripeAccount, error)
	PutStripe(ctx context.Context, storeID, secretKey, webhookSecret string) (payments.StripeAccount, error)
}

// PaymentWebhooks takes a provider's verified webhook deliveries:
// *payments.StripeWebhooks fits.
type PaymentWebhooks interface {
	Handle(ctx context.Context, storeID string, payload []byte, signature string) (outcome string, err error)
}

// MaxPaymentWebhookBytes is the largest payment webhook body accepted.
const MaxPaymentWebhookBytes = 512 << 10

// putStripeAccount is PUT /v1/store/payments/stripe (merchant): the store's
// Stripe secret key and webhook signing secret. The answer, like GET's,
// shows the key's last four characters and the account id, never a secret;
// neither the body nor the secrets are logged.
func (s *Server) putStripeAccount(w http.ResponseWriter, r *http.Request, k store.Key) {
	if s.paymentAccounts == nil {
		s.writeError(w, r, packline.Errorf(packline.ENOTFOUND, "payment accounts are not enabled on this server"))
		return
	}
	var req struct {
		SecretKey     string `json:"secret_key"`
		WebhookSecret string `json:"webhook_secret"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.SecretKey == "" {
		s.writeError(w, r, packline.FieldError("secret_key", "secret_key is required"))
		return
	}
	if req.WebhookSecret == "" {
		s.writeError(w, r, packline.FieldError("webhook_secret", "webhook_secret is required"))
		return
	}
	acct, err := s.paymentAccounts.PutStripe(r.Context(), k.StoreID, req.SecretKey, req.WebhookSecret)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "stripe account set", "store_id", k.StoreID, "account_id", acct.AccountID, "livemode", acct.Livemode)
	writeJSON(w, http.StatusOK, acct)
}

// getStripeAccount is GET /v1/store/payments/stripe (merchant).
func (s *Server) getStripeAccount(w http.ResponseWriter, r *http.Request, k store.Key) {
	if s.paymentAccounts == nil {
		s.writeError(w, r, packline.Errorf(packline.ENOTFOUND, "payment accounts are not enabled on this server"))
		return
	}
	acct, err := s.paymentAccounts.GetStripe(r.Context(), k.StoreID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, acct)
}

// paymentWebhook is POST /v1/payments/{provider}/webhooks/{store_id}: a
// payment provider's event for the store's own account, verified by the
// provider's signature scheme (Stripe-Signature) with the store's signing
// secret before anything in it is believed.
func (s *Server) paymentWebhook(w http.ResponseWriter, r *http.Request, _ store.Key) {
	s.takePaymentWebhook(w, r, r.PathValue("store_id"), nil)
}

// paymentWebhookByMetadata is POST /v1/payments/{provider}/webhooks (the
// contract's path): the store is the one the event's object names in its
// packline metadata (every PaymentIntent and Refund packline makes carries
// it), and the signature must verify with that store's secret. Events
// about objects without it (disputes) need the store's own path.
func (s *Server) paymentWebhookByMetadata(w http.ResponseWriter, r *http.Request, _ store.Key) {
	s.takePaymentWebhook(w, r, "", func(body []byte) string {
		var ev struct {
			Data struct {
				Object struct {
					Metadata map[string]string `json:"metadata"`
				} `json:"object"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		return ev.Data.Object.Metadata[payments.MetaStoreID]
	})
}

func (s *Server) takePaymentWebhook(w http.ResponseWriter, r *http.Request, storeID string, storeOf func([]byte) string) {
	if r.PathValue("provider") != payments.ProviderStripe || s.paymentWebhooks == nil {
		s.writeError(w, r, packline.Errorf(packline.ENOTFOUND, "no payment provider of that name takes webhooks here"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPaymentWebhookBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, packline.Errorf(packline.ETOOLARGE, "the webhook body is over %d bytes", MaxPaymentWebhookBytes))
			return
		}
		s.writeError(w, r, packline.Errorf(packline.EMALFORMED, "could not read the webhook body"))
		return
	}
	if storeOf != nil {
		if storeID = storeOf(body); storeID == "" {
			s.writeError(w, r, packline.Errorf(packline.ENOTFOUND,
				"the event names no packline store; point the Stripe endpoint at /v1/payments/stripe/webhooks/{store_id}"))
			return
		}
	}
	outcome, err := s.paymentWebhooks.Handle(r.Context(), storeID, body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		if code := packline.ErrorCode(err); code == packline.EUNAUTHORIZED || code == packline.ENOTFOUND {
			s.log.WarnContext(r.Context(), "payment webhook refused", "provider", payments.ProviderStripe, "store_id", storeID,
				"code", code, "reason", packline.ErrorMessage(err))
		}
		if packline.ErrorCode(err) == packline.ENOTFOUND {
			err = packline.Errorf(packline.ENOTFOUND, "no store with a Stripe account at this path")
		}
		s.writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "payment webhook", "provider", payments.ProviderStripe, "store_id", storeID, "outcome", outcome)
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "outcome": outcome})
}
