package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/packline/packline/store"
	"github.com/stripe/stripe-go/v85"
)

// Metadata keys packline sets on every PaymentIntent and Refund it makes.
const (
	MetaEffectID     = "packline_effect_id"
	MetaOrderID      = "packline_order_id"
	MetaStoreID      = "packline_store_id"
	MetaKind         = "packline_kind"
	MetaPurpose      = "packline_purpose"
	MetaVoidEffectID = "packline_void_effect_id"
)

// ProviderStripe is the Stripe provider's name in payments[] and in the
// webhook route.
const ProviderStripe = "stripe"

// ErrPending is returned while Stripe has not decided a payment (a
// PaymentIntent processing): the task retries, and the payment webhook
// (payment_intent.succeeded or payment_failed) may answer first.
var ErrPending = errors.New("stripe: the payment is still processing")

// StripeConfig configures a Stripe provider for one store's account.
type StripeConfig struct {
	// SecretKey is the store's secret (or restricted) key: sk_test_… or sk_live_….
	SecretKey string
	// StoreID is the store the account belongs to.
	StoreID string
	// DB keeps the journal of requests Lookup reads (provider_requests).
	DB *store.DB
	// BaseURL is Stripe's API (empty: https://api.stripe.com); tests point it at stripe-mock.
	BaseURL string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// NetworkRetries is how often the SDK retries a call that failed on the
	// network (or that Stripe says to retry: a 409, Stripe-Should-Retry),
	// under the same idempotency key, before the task's own retry (0: 1;
	// negative: none). Stripe's own 5xx answers are the task's to retry.
	NetworkRetries int
}

// Stripe is the payment provider on a store's own Stripe account, through
// Stripe's Go SDK. Every operation is a PaymentIntent or a Refund made with
// the effect id as Stripe's Idempotency-Key and the effect, order and store
// ids in its metadata:
//
//   - Confirm and Capture create and confirm a PaymentIntent with automatic
//     capture (the checkout payment of 000 and 004; 002's charge on accept
//     and on retry, made off session);
//   - Authorize creates and confirms one with manual capture (002's card
//     check), and Void cancels that intent;
//   - Refund refunds the intent named by Reference, in full or in part.
//
// A card error (HTTP 402, type card_error) is an answer: a Result with
// Status Declined and Stripe's decline code as ErrorCode (generic_decline
// reads card_declined). A network error, a 5xx, a rate limit, a bad key or
// a request Stripe refuses is an error: the task retries under the same key,
// so Stripe replays its first answer and charges once.
type Stripe struct {
	sc      *stripe.Client
	db      *store.DB
	storeID string
}

// NewStripe returns the provider for cfg's account.
func NewStripe(cfg StripeConfig) *Stripe {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	retries := int64(cfg.NetworkRetries)
	switch {
	case retries == 0:
		retries = 1
	case retries < 0:
		retries = 0
	}
	bc := &stripe.BackendConfig{
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(retries),
		// The SDK logs nothing: the fleet logs the outcome, and a request
		// is never logged whole.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.BaseURL != "" {
		bc.URL = stripe.String(strings.TrimRight(cfg.BaseURL, "/"))
	}
	b := stripe.GetBackendWithConfig(stripe.APIBackend, bc)
	sc := stripe.NewClient(cfg.SecretKey, stripe.WithBackends(&stripe.Backends{API: b, Connect: b, Uploads: b, MeterEvents: b}))
	return &Stripe{sc: sc, db: cfg.DB, storeID: cfg.StoreID}
}

// Name implements Provider.
func (s *Stripe) Name() string { return ProviderStripe }

// Authorize implements Provider: a manual-capture PaymentIntent, confirmed.
func (s *Stripe) Authorize(ctx context.Context, r Request) (Result, error) {
	return s.charge(ctx, opAuthorize, r)
}

// Capture implements Provider: an automatic-capture PaymentIntent on the
// payment method, confirmed off session (the customer is not there: 002's
// merchant accepts later).
func (s *Stripe) Capture(ctx context.Context, r Request) (Result, error) {
	return s.charge(ctx, opCapture, r)
}

// Confirm implements Provider: an automatic-capture PaymentIntent, confirmed.
func (s *Stripe) Confirm(ctx context.Context, r Request) (Result, error) {
	return s.charge(ctx, opConfirm, r)
}

func (s *Stripe) metadata(op string, r Request) map[string]string {
	m := map[string]string{MetaEffectID: r.IdempotencyKey, MetaOrderID: r.OrderID, MetaStoreID: s.storeOf(r), MetaKind: op}
	if r.Purpose != "" {
		m[MetaPurpose] = r.Purpose
	}
	return m
}

func (s *Stripe) storeOf(r Request) string {
	if r.StoreID != "" {
		return r.StoreID
	}
	return s.storeID
}

// begin journals the request before it is sent, so that Lookup knows every
// key that may have reached Stripe.
func (s *Stripe) begin(ctx context.Context, op string, r Request) error {
	if r.IdempotencyKey == "" {
		return fmt.Errorf("stripe: %s needs an idempotency key", op)
	}
	_, err := s.db.BeginProviderRequest(ctx, store.ProviderRequest{IdempotencyKey: r.IdempotencyKey, Provider: ProviderStripe,
		StoreID: s.storeOf(r), Kind: op, TargetRef: r.Reference})
	return err
}

func (s *Stripe) charge(ctx context.Context, op string, r Request) (Result, error) {
	if r.PaymentMethod == "" {
		// Nothing to send: Stripe would refuse the request, not decline a card.
		return Result{Status: Declined, ErrorCode: CodeMissingMethod}, nil
	}
	if err := s.begin(ctx, op, r); err != nil {
		return Result{}, err
	}
	p := &stripe.PaymentIntentCreateParams{
		Amount:             stripe.Int64(r.Amount),
		Currency:           stripe.String(strings.ToLower(r.Currency)),
		PaymentMethod:      stripe.String(r.PaymentMethod),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		Confirm:            stripe.Bool(true),
		CaptureMethod:      stripe.String(string(stripe.PaymentIntentCaptureMethodAutomatic)),
		Metadata:           s.metadata(op, r),
		Description:        stripe.String(describe(op, r)),
	}
	switch op {
	case opAuthorize:
		p.CaptureMethod = stripe.String(string(stripe.PaymentIntentCaptureMethodManual))
	case opCapture:
		p.OffSession = stripe.Bool(true)
	}
	if op != opCapture {
		// No customer is there to authenticate: a card asking for it is
		// declined (authentication_required), never left hanging.
		p.ErrorOnRequiresAction = stripe.Bool(true)
	}
	p.SetIdempotencyKey(r.IdempotencyKey)
	pi, err := s.sc.V1PaymentIntents.Create(ctx, p)
	if err != nil {
		res, err := s.answer(ctx, op, r.IdempotencyKey, err)
		return res, err
	}
	s.journal(ctx, r.IdempotencyKey, pi.ID)
	if pi.Status == stripe.PaymentIntentStatusProcessing {
		// A retried call gets Stripe's first answer replayed: while that
		// says processing, the intent as it is now says more.
		if now, err := s.sc.V1PaymentIntents.Retrieve(ctx, pi.ID, nil); err == nil {
			pi = now
		}
	}
	return intentResult(op, pi)
}

func describe(op string, r Request) string {
	d := "packline " + op + " of order " + r.OrderID
	if r.Purpose != "" {
		d += " (" + r.Purpose + ")"
	}
	return d
}

// journal records the object a request made; a failure only costs Lookup a
// list call later.
func (s *Stripe) journal(ctx context.Context, key, objectID string) {
	if objectID != "" {
		_ = s.db.SetProviderRequestObject(ctx, key, objectID)
	}
}

// answer turns an SDK error into a decline (a card error: an answer) or an
// error (everything else: the task retries).
func (s *Stripe) answer(ctx context.Context, op, key string, err error) (Result, error) {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return Result{}, failure(op, err)
	}
	if se.Type == stripe.ErrorTypeCard {
		res := Result{Status: Declined, ErrorCode: DeclineCode(se)}
		if se.PaymentIntent != nil {
			res.Reference = se.PaymentIntent.ID
			s.journal(ctx, key, se.PaymentIntent.ID)
		}
		return res, nil
	}
	if se.Type == stripe.ErrorTypeInvalidRequest && se.Code == stripe.ErrorCodeResourceMissing && se.Param == "payment_method" {
		// The customer's payment method does not exist: their answer to
		// give, not the fleet's to retry.
		return Result{Status: Declined, ErrorCode: CodeUnknownMethod}, nil
	}
	return Result{}, failure(op, err)
}

// failure is an SDK error that is no answer: ErrNoReference for an object
// Stripe does not know (a void's or a refund's intent), else the error said
// briefly.
func failure(op string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) && se.Type == stripe.ErrorTypeInvalidRequest && se.Code == stripe.ErrorCodeResourceMissing {
		return fmt.Errorf("%w: stripe %s: %s", ErrNoReference, op, se.Msg)
	}
	return stripeErrorOf(op, err)
}

// stripeErrorOf says an SDK error briefly.
func stripeErrorOf(op string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		return stripeError(op, se)
	}
	return fmt.Errorf("stripe %s: %w", op, err)
}

// stripeError is an SDK error, said briefly: type, code, status, message and
// request id (never the request).
func stripeError(op string, se *stripe.Error) error {
	return fmt.Errorf("stripe %s: %s %s (HTTP %d, request %s): %s", op, se.Type, se.Code, se.HTTPStatusCode, se.RequestID, se.Msg)
}

// DeclineCode is the payment_failed error_code of a Stripe card error:
// its decline code (insufficient_funds, lost_card, …), generic_decline
// reading card_declined, else its error code (expired_card,
// authentication_required, …).
func DeclineCode(se *stripe.Error) string {
	switch {
	case se.DeclineCode == "generic_decline":
		return CodeCardDeclined
	case se.DeclineCode != "":
		return string(se.DeclineCode)
	case se.Code != "":
		return string(se.Code)
	}
	return CodeCardDeclined
}

// intentResult is the answer a PaymentIntent gives for op.
func intentResult(op string, pi *stripe.PaymentIntent) (Result, error) {
	res := Result{Reference: pi.ID}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		res.Status = Succeeded
	case stripe.PaymentIntentStatusRequiresCapture:
		if op != opAuthorize {
			return Result{}, fmt.Errorf("stripe %s: intent %s waits for a capture it was not made for", op, pi.ID)
		}
		res.Status = Succeeded
	case stripe.PaymentIntentStatusProcessing:
		return Result{}, fmt.Errorf("%w (intent %s)", ErrPending, pi.ID)
	case stripe.PaymentIntentStatusRequiresPaymentMethod, stripe.PaymentIntentStatusCanceled:
		res.Status, res.ErrorCode = Declined, CodeCardDeclined
		if pi.LastPaymentError != nil {
			res.ErrorCode = DeclineCode(pi.LastPaymentError)
		}
	case stripe.PaymentIntentStatusRequiresAction:
		res.Status, res.ErrorCode = Declined, "authentication_required"
	default:
		return Result{}, fmt.Errorf("stripe %s: intent %s is %s", op, pi.ID, pi.Status)
	}
	return res, nil
}

// Void implements Provider: it cancels the intent of the authorization
// named by Reference, noting the void's effect id in its metadata first.
// An intent cancelled already is voided: that succeeds.
func (s *Stripe) Void(ctx context.Context, r Request) (Result, error) {
	if r.Reference == "" {
		return Result{}, fmt.Errorf("%w: void names no intent", ErrNoReference)
	}
	if err := s.begin(ctx, opVoid, r); err != nil {
		return Result{}, err
	}
	up := &stripe.PaymentIntentUpdateParams{Metadata: map[string]string{MetaVoidEffectID: r.IdempotencyKey}}
	up.SetIdempotencyKey(r.IdempotencyKey + ":note")
	if _, err := s.sc.V1PaymentIntents.Update(ctx, r.Reference, up); err != nil {
		if res, ok := s.voided(ctx, r.Reference, err); ok {
			return res, nil
		}
		return Result{}, failure(opVoid, err)
	}
	p := &stripe.PaymentIntentCancelParams{CancellationReason: stripe.String(string(stripe.PaymentIntentCancellationReasonRequestedByCustomer))}
	if r.Purpose == "card_check" {
		p.CancellationReason = stripe.String(string(stripe.PaymentIntentCancellationReasonAbandoned))
	}
	p.SetIdempotencyKey(r.IdempotencyKey)
	pi, err := s.sc.V1PaymentIntents.Cancel(ctx, r.Reference, p)
	if err != nil {
		if res, ok := s.voided(ctx, r.Reference, err); ok {
			return res, nil
		}
		return Result{}, failure(opVoid, err)
	}
	if pi.Status != stripe.PaymentIntentStatusCanceled {
		return Result{}, fmt.Errorf("stripe void: intent %s is %s after its cancellation", pi.ID, pi.Status)
	}
	return Result{Status: Succeeded, Reference: pi.ID}, nil
}

// voided reports whether a void's error is Stripe saying the intent is
// cancelled already (payment_intent_unexpected_state on a canceled intent).
func (s *Stripe) voided(ctx context.Context, id string, err error) (Result, bool) {
	var se *stripe.Error
	if !errors.As(err, &se) || se.Code != stripe.ErrorCodePaymentIntentUnexpectedState {
		return Result{}, false
	}
	pi, gerr := s.sc.V1PaymentIntents.Retrieve(ctx, id, nil)
	if gerr != nil || pi.Status != stripe.PaymentIntentStatusCanceled {
		return Result{}, false
	}
	return Result{Status: Succeeded, Reference: pi.ID}, true
}

// Refund implements Provider: a Refund of Amount of the intent named by
// Reference, with Reason (default requested_by_customer).
func (s *Stripe) Refund(ctx context.Context, r Request) (Result, error) {
	if r.Reference == "" {
		return Result{}, fmt.Errorf("%w: refund names no intent", ErrNoReference)
	}
	if err := s.begin(ctx, opRefund, r); err != nil {
		return Result{}, err
	}
	reason := r.Reason
	switch reason {
	case "duplicate", "fraudulent", "requested_by_customer":
	default:
		reason = "requested_by_customer"
	}
	p := &stripe.RefundCreateParams{
		PaymentIntent: stripe.String(r.Reference),
		Reason:        stripe.String(reason),
		Metadata:      s.metadata(opRefund, r),
	}
	if r.Amount > 0 {
		p.Amount = stripe.Int64(r.Amount)
	}
	p.SetIdempotencyKey(r.IdempotencyKey)
	rf, err := s.sc.V1Refunds.Create(ctx, p)
	if err != nil {
		return s.answer(ctx, opRefund, r.IdempotencyKey, err)
	}
	s.journal(ctx, r.IdempotencyKey, rf.ID)
	return refundResult(rf), nil
}

// refundResult is a Refund's answer: pending counts as made (a card refund
// is final once Stripe takes it); failed or canceled is declined with the
// failure reason.
func refundResult(rf *stripe.Refund) Result {
	switch rf.Status {
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		code := string(rf.FailureReason)
		if code == "" {
			code = "refund_" + string(rf.Status)
		}
		return Result{Status: Declined, ErrorCode: code, Reference: rf.ID}
	}
	return Result{Status: Succeeded, Reference: rf.ID}
}

// Lookup implements Provider. It is authoritative: a key the journal never
// saw was never sent (the journal row commits before the call); for a key
// it saw, Stripe is asked (the object the journal names, else a list of
// the store's intents made since, or the refunds of the intent acted on,
// matched by metadata: lists, unlike search, are never stale). When Stripe
// cannot be asked, or an intent is still processing, it returns an error,
// never a false "not found".
func (s *Stripe) Lookup(ctx context.Context, key string) (Operation, bool, error) {
	jr, ok, err := s.db.GetProviderRequest(ctx, key)
	if err != nil || !ok {
		return Operation{}, false, err
	}
	switch jr.Kind {
	case opAuthorize, opCapture, opConfirm:
		pi, err := s.intentFor(ctx, jr)
		if err != nil || pi == nil {
			return Operation{}, false, err
		}
		res, err := intentOutcome(jr.Kind, pi)
		if err != nil {
			return Operation{}, false, err
		}
		op := Operation{Kind: jr.Kind, Amount: pi.Amount, Currency: strings.ToUpper(string(pi.Currency)), Result: res}
		if pi.PaymentMethod != nil {
			op.PaymentMethod = pi.PaymentMethod.ID
		}
		return op, true, nil
	case opVoid:
		pi, err := s.sc.V1PaymentIntents.Retrieve(ctx, jr.TargetRef, nil)
		if err != nil {
			return Operation{}, false, lookupError(key, err)
		}
		if pi.Status != stripe.PaymentIntentStatusCanceled {
			return Operation{}, false, nil // never cancelled: no void was made
		}
		return Operation{Kind: opVoid, Amount: pi.Amount, Currency: strings.ToUpper(string(pi.Currency)),
			Result: Result{Status: Succeeded, Reference: pi.ID}}, true, nil
	case opRefund:
		rf, err := s.refundFor(ctx, jr)
		if err != nil || rf == nil {
			return Operation{}, false, err
		}
		return Operation{Kind: opRefund, Amount: rf.Amount, Currency: strings.ToUpper(string(rf.Currency)), Result: refundResult(rf)}, true, nil
	}
	return Operation{}, false, fmt.Errorf("stripe: look up %s: unknown kind %q", key, jr.Kind)
}

func lookupError(key string, err error) error {
	return fmt.Errorf("stripe: look up %s: %w", key, stripeErrorOf("lookup", err))
}

// intentFor returns the intent the journalled request made, or nil when
// Stripe made none.
func (s *Stripe) intentFor(ctx context.Context, jr store.ProviderRequest) (*stripe.PaymentIntent, error) {
	if jr.ObjectID != "" {
		p := &stripe.PaymentIntentRetrieveParams{}
		p.AddExpand("latest_charge")
		pi, err := s.sc.V1PaymentIntents.Retrieve(ctx, jr.ObjectID, p)
		if err != nil {
			return nil, lookupError(jr.IdempotencyKey, err)
		}
		return pi, nil
	}
	// The call died before its answer was journalled: the intent, if any,
	// was made between the first call and now.
	p := &stripe.PaymentIntentListParams{CreatedRange: &stripe.RangeQueryParams{
		GreaterThanOrEqual: jr.StartedAt.Add(-5 * time.Minute).Unix(),
		LesserThanOrEqual:  time.Now().Add(5 * time.Minute).Unix(),
	}}
	p.AddExpand("data.latest_charge")
	for pi, err := range s.sc.V1PaymentIntents.List(ctx, p).All(ctx) {
		if err != nil {
			return nil, lookupError(jr.IdempotencyKey, err)
		}
		if pi.Metadata[MetaEffectID] == jr.IdempotencyKey {
			s.journal(ctx, jr.IdempotencyKey, pi.ID)
			return pi, nil
		}
	}
	return nil, nil
}

// refundFor returns the refund the journalled request made, or nil.
func (s *Stripe) refundFor(ctx context.Context, jr store.ProviderRequest) (*stripe.Refund, error) {
	if jr.ObjectID != "" {
		rf, err := s.sc.V1Refunds.Retrieve(ctx, jr.ObjectID, nil)
		if err != nil {
			return nil, lookupError(jr.IdempotencyKey, err)
		}
		return rf, nil
	}
	p := &stripe.RefundListParams{PaymentIntent: stripe.String(jr.TargetRef)}
	for rf, err := range s.sc.V1Refunds.List(ctx, p).All(ctx) {
		if err != nil {
			return nil, lookupError(jr.IdempotencyKey, err)
		}
		if rf.Metadata[MetaEffectID] == jr.IdempotencyKey {
			s.journal(ctx, jr.IdempotencyKey, rf.ID)
			return rf, nil
		}
	}
	return nil, nil
}

// intentOutcome is what a charge or an authorization did, as its intent
// shows it now: a cancelled authorization had succeeded when its charge
// was authorized (it was voided later).
func intentOutcome(op string, pi *stripe.PaymentIntent) (Result, error) {
	if pi.Status == stripe.PaymentIntentStatusCanceled && pi.LatestCharge != nil && pi.LatestCharge.Status == stripe.ChargeStatusSucceeded {
		return Result{Status: Succeeded, Reference: pi.ID}, nil
	}
	if op == opAuthorize && pi.Status == stripe.PaymentIntentStatusSucceeded {
		return Result{Status: Succeeded, Reference: pi.ID}, nil // authorized, captured since
	}
	return intentResult(op, pi)
}

var _ Provider = (*Stripe)(nil)
