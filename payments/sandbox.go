package payments

import (
	"context"
	"fmt"

	"github.com/packline/packline/store"
)

// Stripe's test payment methods, honoured by the sandbox (FLOWS.md).
const (
	MethodVisa                = "pm_card_visa"
	MethodChargeDeclined      = "pm_card_chargeDeclined"
	MethodChargeDeclinedFunds = "pm_card_chargeDeclinedInsufficientFunds"
	MethodChargeCustomerFail  = "pm_card_chargeCustomerFail"
)

// Sandbox operations, as stored in sandbox_payments.operation.
const (
	opAuthorize = "authorize"
	opCapture   = "capture"
	opConfirm   = "confirm"
	opVoid      = "void"
	opRefund    = "refund"
)

// Sandbox is the embedded payment provider: no network, its state in the
// database (table sandbox_payments, one row per idempotency key), and the
// Stripe test payment methods:
//
//   - pm_card_visa: everything succeeds;
//   - pm_card_chargeDeclined: authorize, capture and confirm decline
//     (card_declined);
//   - pm_card_chargeDeclinedInsufficientFunds: they decline
//     (insufficient_funds);
//   - pm_card_chargeCustomerFail: authorize (the card check) succeeds,
//     capture and confirm decline (card_declined).
//
// Any other method declines (invalid_payment_method), an empty one too
// (payment_method_missing). A repeated idempotency key gets the first answer.
type Sandbox struct {
	db *store.DB
}

// NewSandbox returns the sandbox provider keeping its state in db.
func NewSandbox(db *store.DB) *Sandbox { return &Sandbox{db: db} }

// Name implements Provider.
func (s *Sandbox) Name() string { return "sandbox" }

// Authorize implements Provider.
func (s *Sandbox) Authorize(ctx context.Context, r Request) (Result, error) {
	return s.do(ctx, opAuthorize, r, decide(opAuthorize, r.PaymentMethod))
}

// Capture implements Provider.
func (s *Sandbox) Capture(ctx context.Context, r Request) (Result, error) {
	return s.do(ctx, opCapture, r, decide(opCapture, r.PaymentMethod))
}

// Confirm implements Provider.
func (s *Sandbox) Confirm(ctx context.Context, r Request) (Result, error) {
	return s.do(ctx, opConfirm, r, decide(opConfirm, r.PaymentMethod))
}

// Void implements Provider.
func (s *Sandbox) Void(ctx context.Context, r Request) (Result, error) {
	if err := s.known(ctx, r.Reference, opAuthorize); err != nil {
		return Result{}, err
	}
	return s.do(ctx, opVoid, r, "")
}

// Refund implements Provider.
func (s *Sandbox) Refund(ctx context.Context, r Request) (Result, error) {
	if err := s.known(ctx, r.Reference, opCapture, opConfirm); err != nil {
		return Result{}, err
	}
	return s.do(ctx, opRefund, r, "")
}

// decide returns the decline code for an operation with a test method, or ""
// when it succeeds.
func decide(op, method string) string {
	switch method {
	case MethodVisa:
		return ""
	case MethodChargeDeclined:
		return CodeCardDeclined
	case MethodChargeDeclinedFunds:
		return CodeInsufficientFunds
	case MethodChargeCustomerFail:
		if op == opAuthorize {
			return ""
		}
		return CodeCardDeclined
	case "":
		return CodeMissingMethod
	}
	return CodeUnknownMethod
}

// known checks that ref is a successful operation of one of ops.
func (s *Sandbox) known(ctx context.Context, ref string, ops ...string) error {
	var rows []struct {
		Op     string `db:"operation"`
		Status string `db:"status"`
	}
	sq := s.db.SQL()
	if err := sq.SelectContext(ctx, &rows, sq.Rebind(`SELECT operation, status FROM sandbox_payments WHERE ref = ?`), ref); err != nil {
		return fmt.Errorf("sandbox: read %s: %w", ref, err)
	}
	if len(rows) == 0 || rows[0].Status != Succeeded || !oneOf(rows[0].Op, ops) {
		return fmt.Errorf("%w: %q", ErrNoReference, ref)
	}
	return nil
}

// do records the answer for r.IdempotencyKey, unless one is recorded, and
// returns the recorded one.
func (s *Sandbox) do(ctx context.Context, op string, r Request, decline string) (Result, error) {
	if r.IdempotencyKey == "" {
		return Result{}, fmt.Errorf("sandbox: %s needs an idempotency key", op)
	}
	status := Succeeded
	if decline != "" {
		status = Declined
	}
	now := s.db.Now()
	ref := store.NewID("sbx_"+op, now)
	sq := s.db.SQL()
	_, err := sq.ExecContext(ctx, sq.Rebind(`INSERT INTO sandbox_payments (idempotency_key, ref, operation, payment_method, amount, currency, status, error_code, target_ref, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`),
		r.IdempotencyKey, ref, op, r.PaymentMethod, r.Amount, r.Currency, status, decline, r.Reference, now)
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: %s: %w", op, err)
	}
	var got struct {
		Ref       string `db:"ref"`
		Op        string `db:"operation"`
		Status    string `db:"status"`
		ErrorCode string `db:"error_code"`
	}
	if err := sq.GetContext(ctx, &got, sq.Rebind(`SELECT ref, operation, status, error_code FROM sandbox_payments WHERE idempotency_key = ?`), r.IdempotencyKey); err != nil {
		return Result{}, fmt.Errorf("sandbox: read %s: %w", op, err)
	}
	if got.Op != op {
		return Result{}, fmt.Errorf("sandbox: idempotency key %s was used for a %s, not a %s", r.IdempotencyKey, got.Op, op)
	}
	return Result{Status: got.Status, ErrorCode: got.ErrorCode, Reference: got.Ref}, nil
}

// Lookup returns the sandbox's record of the operation made under key.
func (s *Sandbox) Lookup(ctx context.Context, key string) (Operation, bool, error) {
	var rows []struct {
		Op        string `db:"operation"`
		Method    string `db:"payment_method"`
		Amount    int64  `db:"amount"`
		Currency  string `db:"currency"`
		Status    string `db:"status"`
		ErrorCode string `db:"error_code"`
		Ref       string `db:"ref"`
	}
	sq := s.db.SQL()
	if err := sq.SelectContext(ctx, &rows, sq.Rebind(`SELECT operation, payment_method, amount, currency, status, error_code, ref
		FROM sandbox_payments WHERE idempotency_key = ?`), key); err != nil {
		return Operation{}, false, fmt.Errorf("sandbox: look up %s: %w", key, err)
	}
	if len(rows) == 0 {
		return Operation{}, false, nil
	}
	r := rows[0]
	return Operation{Kind: r.Op, Amount: r.Amount, Currency: r.Currency, PaymentMethod: r.Method,
		Result: Result{Status: r.Status, ErrorCode: r.ErrorCode, Reference: r.Ref}}, true, nil
}

func oneOf(s string, ss []string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

var _ Provider = (*Sandbox)(nil)
