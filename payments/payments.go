// Package payments is the fleet's view of a payment provider: one small
// interface, the operations the five flows need (authorize, capture,
// confirm, void, refund), each carrying an idempotency key, and the sandbox
// provider that packline runs on by default.
//
// A provider answers a declined card with a Result (Status declined and an
// error code): that is an answer the order is told about. A returned error
// means the provider could not answer (network, outage): the task retries,
// with the same idempotency key, so the customer is charged at most once.
package payments

import (
	"context"
	"errors"
)

// Status of an operation.
const (
	Succeeded = "succeeded"
	Declined  = "declined"
)

// Decline codes (Stripe's).
const (
	CodeCardDeclined      = "card_declined"
	CodeInsufficientFunds = "insufficient_funds"
	CodeMissingMethod     = "payment_method_missing"
	CodeUnknownMethod     = "invalid_payment_method"
)

// Request is one operation on a provider.
type Request struct {
	// IdempotencyKey makes a repeated call return the first call's answer;
	// the fleet uses the effect id.
	IdempotencyKey string
	OrderID        string
	// StoreID is the order's store, for the provider's records (Stripe's
	// metadata).
	StoreID string
	// PaymentMethod is the customer's payment method (a Stripe test token
	// such as pm_card_visa on the sandbox); empty for void and refund.
	PaymentMethod string
	Amount        int64 // minor units
	Currency      string
	// Reference is the provider's id of the operation acted on: the
	// authorization to void, the charge to refund.
	Reference string
	// Purpose is why (card_check), for the provider's records.
	Purpose string
	// Reason is why a refund is made, as Stripe names it
	// (requested_by_customer, duplicate, fraudulent); empty is
	// requested_by_customer.
	Reason string
}

// Result is a provider's answer.
type Result struct {
	Status    string // Succeeded or Declined
	ErrorCode string // set when declined
	// Reference is the provider's id of this operation.
	Reference string
}

// OK reports whether the operation succeeded.
func (r Result) OK() bool { return r.Status == Succeeded }

// Provider is a payment provider. Every method is idempotent by
// Request.IdempotencyKey.
type Provider interface {
	// Name names the provider in payments[] (sandbox, stripe).
	Name() string
	// Authorize holds Amount on the payment method.
	Authorize(ctx context.Context, r Request) (Result, error)
	// Capture charges Amount on the payment method.
	Capture(ctx context.Context, r Request) (Result, error)
	// Confirm confirms the checkout payment of Amount.
	Confirm(ctx context.Context, r Request) (Result, error)
	// Void releases the authorization named by Reference; voiding one that
	// is voided already succeeds.
	Void(ctx context.Context, r Request) (Result, error)
	// Refund gives back Amount of the charge named by Reference.
	Refund(ctx context.Context, r Request) (Result, error)
	// Lookup returns what the provider did under an idempotency key,
	// without doing anything; found is false when it never saw the key.
	// The fleet asks it where its own records may have missed an answer
	// (a worker that died between the provider's answer and the commit).
	Lookup(ctx context.Context, idempotencyKey string) (op Operation, found bool, err error)
}

// Operation is what a provider did under one idempotency key.
type Operation struct {
	// Kind is the operation: authorize, capture, confirm, void or refund.
	Kind          string
	Amount        int64
	Currency      string
	PaymentMethod string
	Result
}

// ErrNoReference is returned by Void and Refund for a Reference the provider
// does not know.
var ErrNoReference = errors.New("payments: unknown reference")
