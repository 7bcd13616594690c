package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/packline/packline/metrics"
	"github.com/packline/packline/payments"
	"github.com/packline/packline/store"
	"github.com/packline/packline/tasks"
)

// ReconcileOptions configure a Reconciler. Zero values take the defaults.
type ReconcileOptions struct {
	// Interval is the time between passes (default 1 minute).
	Interval time.Duration
	// Idle is how long an order must be unchanged before it is looked at
	// (default 5 minutes): long enough for every effect of its last
	// transition to have run.
	Idle time.Duration
	// Batch is how many orders one pass looks at, at most (default 200).
	Batch  int
	Logger *slog.Logger
}

// Reconciler is the scheduler's reconciliation sweep: for every order that
// touched money and has been idle for a while, with no payment effect
// still to run, it compares what the provider did under each of the
// order's payment effects (Provider.Lookup) with the payments table, and
// what the flow asked for with where the money is.
//
//   - A payment the provider made and the records lack is recorded.
//   - A full refund the flow owed (a refund without an amount, or the
//     reversal of a charge the order refused) that left money with the
//     merchant owes another refund; a void that left a hold owes another void.
//     Each is owed once per order version, with a timeline note.
//   - More refunded than charged cannot be mended by the fleet.
//
// An order found wanting stays unreconciled, and is looked at again, until
// it matches; packline_payments_unreconciled counts them (an alert fires
// when it stays above zero; runbook in docs/operations.md).
type Reconciler struct {
	db   *store.DB
	pays payments.Resolver
	opts ReconcileOptions

	mu       sync.Mutex
	unmended map[string]bool
}

// NewReconciler returns the reconciliation of db's payments against each
// store's provider as pays picks it (nil: the sandbox on db).
func NewReconciler(db *store.DB, pays payments.Resolver, opts ReconcileOptions) *Reconciler {
	if pays == nil {
		pays = payments.Single(payments.NewSandbox(db))
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.Idle <= 0 {
		opts.Idle = 5 * time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 200
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Reconciler{db: db, pays: pays, opts: opts, unmended: map[string]bool{}}
}

// Run reconciles every Interval until ctx is done; it returns nil then.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		if _, err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.opts.Logger.WarnContext(ctx, "payments reconciliation", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ReconcileResult counts what a pass found.
type ReconcileResult struct {
	// Checked orders; Matched of them matched and are marked reconciled.
	Checked, Matched int
	// Recorded payments were found at the provider only.
	Recorded int
	// Owed reversals (refunds, voids) were missing and are owed now.
	Owed int
	// Unreconciled is how many orders are known not to match now.
	Unreconciled int
}

// Reconcile runs one pass.
func (r *Reconciler) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	orders, err := r.db.OrdersToReconcile(ctx, r.db.Now().Add(-r.opts.Idle), r.opts.Batch)
	if err != nil {
		return res, err
	}
	// One store's provider that cannot answer (Stripe down, a revoked key)
	// leaves its orders for the next pass; the other stores' go on.
	var unasked []error
	for _, o := range orders {
		found, err := r.check(ctx, o)
		if err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			unasked = append(unasked, fmt.Errorf("order %s of store %s: %w", o.ID, o.StoreID, err))
			continue
		}
		res.Checked++
		res.Recorded += found.recorded
		res.Owed += len(found.owed)
		r.mu.Lock()
		if found.problem == "" {
			delete(r.unmended, o.ID)
			res.Matched++
		} else {
			r.unmended[o.ID] = true
		}
		r.mu.Unlock()
		switch {
		case found.problem == "":
			metrics.PaymentsReconciled(metrics.OutcomeOK)
			if err := r.db.MarkReconciled(ctx, o); err != nil {
				return res, err
			}
		default:
			metrics.PaymentsReconciled("unreconciled")
			r.opts.Logger.WarnContext(ctx, "payments do not match", "order_id", o.ID, "problem", found.problem)
		}
	}
	r.mu.Lock()
	res.Unreconciled = len(r.unmended)
	r.mu.Unlock()
	metrics.SetPaymentsUnreconciled(res.Unreconciled)
	return res, errors.Join(unasked...)
}

// reconciliation is what check found of one order.
type reconciliation struct {
	recorded int
	owed     []string
	problem  string // empty when the order matches
}

// check reconciles one order.
func (r *Reconciler) check(ctx context.Context, o store.OrderToReconcile) (reconciliation, error) {
	var out reconciliation
	rows, err := r.db.Outbox(ctx, o.ID)
	if err != nil {
		return out, err
	}
	ps, err := r.db.Payments(ctx, o.ID)
	if err != nil {
		return out, err
	}
	pay, err := r.pays.For(ctx, o.StoreID)
	if errors.Is(err, payments.ErrSandboxRefused) {
		// Production takes no payment on the sandbox for this store; what
		// the sandbox did for it before may still be asked.
		pay, err = payments.NewSandbox(r.db), nil
	}
	if err != nil {
		return out, err
	}
	missing, err := MissingPayments(ctx, r.db, pay, o.ID, o.StoreID, rows, ps, paymentTypes...)
	if err != nil {
		return out, err
	}
	out.recorded = len(missing)
	ps = append(ps, missing...)
	m := moneyOf(rows, ps)
	var problems []string
	if m.refunded > m.charged {
		problems = append(problems, fmt.Sprintf("refunded %d, more than the %d charged", m.refunded, m.charged))
	}
	if m.fullRefund && m.charged > m.refunded {
		problems = append(problems, fmt.Sprintf("the flow refunded the order in full, and %d of %d charged is kept", m.charged-m.refunded, m.charged))
		out.owed = append(out.owed, tasks.TypePaymentRefund)
	}
	if m.voided && m.holds > 0 {
		problems = append(problems, fmt.Sprintf("the flow voided the order's hold, and %d hold(s) are left", m.holds))
		out.owed = append(out.owed, tasks.TypePaymentVoid)
	}
	out.problem = strings.Join(problems, "; ")
	for _, typ := range out.owed {
		note := "reconciliation: " + out.problem + ": " + typ + " owed"
		if err := r.db.OweReconciliation(ctx, o, typ, pay.Name(), note); err != nil {
			return out, err
		}
	}
	return out, nil
}

// paymentTypes are the payment effect types, as task types.
var paymentTypes = []string{tasks.TypePaymentAuthorize, tasks.TypePaymentCapture, tasks.TypePaymentConfirm,
	tasks.TypePaymentVoid, tasks.TypePaymentRefund}

// money is where an order's money is, and what its flow asked for.
type money struct {
	charged, refunded int64
	// holds counts successful authorizations less successful voids.
	holds int
	// fullRefund is set when a refund meant to give everything back (no
	// amount of its own, or a reversal) was owed after the last charge;
	// voided when a void was owed after the last authorization.
	fullRefund, voided bool
}

func moneyOf(rows []store.OutboxRow, ps []store.Payment) money {
	var m money
	for _, p := range ps {
		if p.Status != store.PaymentSucceeded {
			continue
		}
		switch p.Kind {
		case store.PaymentCapture, store.PaymentConfirm:
			m.charged += p.Amount
		case store.PaymentRefund:
			m.refunded += p.Amount
		case store.PaymentAuthorize:
			m.holds++
		case store.PaymentVoid:
			m.holds--
		}
	}
	m.holds = max(m.holds, 0)
	var lastCharge, lastAuth time.Time
	for _, r := range rows {
		switch r.Type {
		case tasks.TypePaymentCapture, tasks.TypePaymentConfirm:
			lastCharge = later(lastCharge, r.CreatedAt)
		case tasks.TypePaymentAuthorize:
			lastAuth = later(lastAuth, r.CreatedAt)
		}
	}
	for _, r := range rows {
		switch r.Type {
		case tasks.TypePaymentRefund:
			e, err := r.Effect()
			if err == nil && (e.Amount == 0 || strings.Contains(string(e.Data), `"reverses"`)) && !r.CreatedAt.Before(lastCharge) {
				m.fullRefund = true
			}
		case tasks.TypePaymentVoid:
			if !lastAuth.IsZero() && !r.CreatedAt.Before(lastAuth) {
				m.voided = true
			}
		}
	}
	return m
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Unreconciled returns the orders the reconciliation knows do not match.
func (r *Reconciler) Unreconciled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.unmended))
	for id := range r.unmended {
		out = append(out, id)
	}
	return out
}
