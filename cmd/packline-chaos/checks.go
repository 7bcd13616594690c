package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/packline/packline/flows"
	"github.com/packline/packline/store"
	"github.com/packline/packline/webhooks"
)

// marker tags the suite's own statements.
const marker = "/* packline-chaos */ "

// Check is one row of the result table: what was checked, how many things,
// and the violations (with their ids).
type Check struct {
	Name       string   `json:"name"`
	Checked    string   `json:"checked"`
	Violations int      `json:"violations"`
	Examples   []string `json:"examples,omitempty"`
}

func (c *Check) fail(format string, args ...any) {
	c.Violations++
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

// maxExamples is how many violating ids a check prints.
const maxExamples = 25

// checker reads the database after quiescence and judges it.
type checker struct {
	db     *sqlx.DB
	orders []*orderRun
	stores []*chaosStore
	hooks  *receiver
}

type dbOrder struct {
	ID         string `db:"id"`
	StoreID    string `db:"store_id"`
	Flow       string `db:"flow"`
	Status     string `db:"status"`
	ExternalID string `db:"external_id"`
	Total      int64  `db:"total"`
}

func (c *checker) run(ctx context.Context) ([]Check, error) {
	var all []dbOrder
	if err := c.db.SelectContext(ctx, &all, marker+`SELECT id, store_id, flow, status, external_id, total FROM orders`); err != nil {
		return nil, err
	}
	byID := map[string]dbOrder{}
	for _, o := range all {
		byID[o.ID] = o
	}
	var out []Check
	for _, f := range []func(context.Context, []dbOrder, map[string]dbOrder) (Check, error){
		c.ordersOnce, c.expectedStates, c.outbox, c.stock, c.ledgerPerOrder, c.messages, c.webhooksAcked, c.webhookIDs,
	} {
		ch, err := f(ctx, all, byID)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	money, err := c.payments(ctx, byID)
	if err != nil {
		return nil, err
	}
	return append(out, money...), nil
}

// ordersOnce: every order answered 201 is in the database, once; no order
// is there that no storefront was answered for.
func (c *checker) ordersOnce(_ context.Context, all []dbOrder, byID map[string]dbOrder) (Check, error) {
	ch := Check{Name: "every 201 order present exactly once"}
	acked, replayed := 0, 0
	ours := map[string]bool{}
	for _, o := range c.orders {
		if !o.acked {
			continue
		}
		acked++
		if o.replayed {
			replayed++
		}
		ours[o.id] = true
		if _, ok := byID[o.id]; !ok {
			ch.fail("%s (%s) answered 201, not in the database", o.id, o.key)
		}
	}
	byKey := map[string][]string{}
	for _, o := range all {
		byKey[o.StoreID+"/"+o.ExternalID] = append(byKey[o.StoreID+"/"+o.ExternalID], o.ID)
		if !ours[o.ID] {
			ch.fail("%s (external id %s) in the database, its storefront never answered", o.ID, o.ExternalID)
		}
	}
	for k, ids := range byKey {
		if len(ids) > 1 {
			ch.fail("external id %s created %d times: %s", k, len(ids), strings.Join(ids, ", "))
		}
	}
	ch.Checked = fmt.Sprintf("%d orders answered (%d of them replays of a lost answer), %d in the database", acked, replayed, len(all))
	return ch, nil
}

// expectedStates: every script finished, and left its order in the state
// it expects.
func (c *checker) expectedStates(_ context.Context, _ []dbOrder, byID map[string]dbOrder) (Check, error) {
	ch := Check{Name: "every order's script finished, order in its expected state"}
	finished := 0
	for _, o := range c.orders {
		switch {
		case o.err != nil:
			ch.fail("%s %s (%s): script stopped: %v", o.script.name, o.id, o.key, o.err)
		case o.expect == "":
			ch.fail("%s %s: script set no expected state", o.script.name, o.id)
		default:
			finished++
			if got := byID[o.id].Status; got != o.expect {
				ch.fail("%s %s: %s, want %s", o.script.name, o.id, got, o.expect)
			}
		}
	}
	ch.Checked = fmt.Sprintf("%d scripts, %d finished", len(c.orders), finished)
	return ch, nil
}

// outbox: every row done, none dead; only timers not due yet may wait.
func (c *checker) outbox(ctx context.Context, _ []dbOrder, _ map[string]dbOrder) (Check, error) {
	ch := Check{Name: "no outbox row undone or dead"}
	var rows []struct {
		ID      string    `db:"id"`
		OrderID string    `db:"order_id"`
		Type    string    `db:"type"`
		Status  string    `db:"status"`
		Due     bool      `db:"due"`
		RunAt   time.Time `db:"run_at"`
		Error   string    `db:"last_error"`
	}
	if err := c.db.SelectContext(ctx, &rows, marker+`SELECT id, order_id, type, status, run_at <= now() AS due, run_at, last_error
		FROM outbox WHERE status <> 'done'`); err != nil {
		return ch, err
	}
	var total int
	if err := c.db.GetContext(ctx, &total, marker+`SELECT count(*) FROM outbox`); err != nil {
		return ch, err
	}
	future := 0
	for _, r := range rows {
		switch {
		case r.Status == string(store.EffectFailed):
			ch.fail("dead: %s %s of %s: %s", r.Type, r.ID, r.OrderID, r.Error)
		case !r.Due && r.Type == string(flows.EffectOrderTimer):
			future++
		default:
			ch.fail("%s: %s %s of %s (run_at %s) %s", r.Status, r.Type, r.ID, r.OrderID, r.RunAt.Format(time.TimeOnly), r.Error)
		}
	}
	ch.Checked = fmt.Sprintf("%d rows, %d done, %d timers not due yet", total, total-len(rows), future)
	return ch, nil
}

// stock: per SKU, on hand = initial − taken + restored, never negative;
// the ledger holds one row per (order, line, kind).
func (c *checker) stock(ctx context.Context, _ []dbOrder, _ map[string]dbOrder) (Check, error) {
	ch := Check{Name: "stock = initial − taken + restored, never negative; ledger unique per (order, line, kind)"}
	var onHand []struct {
		StoreID string `db:"store_id"`
		SKU     string `db:"sku"`
		OnHand  int64  `db:"on_hand"`
	}
	if err := c.db.SelectContext(ctx, &onHand, marker+`SELECT store_id, sku, on_hand FROM stock`); err != nil {
		return ch, err
	}
	var moved []struct {
		StoreID string `db:"store_id"`
		SKU     string `db:"sku"`
		Kind    string `db:"kind"`
		Qty     int64  `db:"qty"`
		N       int    `db:"n"`
	}
	if err := c.db.SelectContext(ctx, &moved, marker+`SELECT store_id, sku, kind, sum(quantity) AS qty, count(*) AS n FROM stock_ledger GROUP BY 1, 2, 3`); err != nil {
		return ch, err
	}
	type sk struct{ store, sku string }
	taken, restored := map[sk]int64{}, map[sk]int64{}
	ledgerRows := 0
	for _, m := range moved {
		ledgerRows += m.N
		if m.Kind == "decrement" {
			taken[sk{m.StoreID, m.SKU}] += m.Qty
		} else {
			restored[sk{m.StoreID, m.SKU}] += m.Qty
		}
	}
	now := map[sk]int64{}
	for _, s := range onHand {
		now[sk{s.StoreID, s.SKU}] = s.OnHand
		if s.OnHand < 0 {
			ch.fail("store %s %s: on hand %d", s.StoreID, s.SKU, s.OnHand)
		}
	}
	skus := 0
	for _, st := range c.stores {
		for sku, initial := range st.stock {
			skus++
			k := sk{st.ID, sku}
			if want := initial - taken[k] + restored[k]; now[k] != want {
				ch.fail("store %s %s: on hand %d, want %d = %d − %d taken + %d restored", st.Name, sku, now[k], want, initial, taken[k], restored[k])
			}
		}
	}
	var dups []struct {
		OrderID string `db:"order_id"`
		SKU     string `db:"sku"`
		Kind    string `db:"kind"`
		N       int    `db:"n"`
	}
	if err := c.db.SelectContext(ctx, &dups, marker+`SELECT order_id, sku, kind, count(*) AS n FROM stock_ledger GROUP BY 1, 2, 3 HAVING count(*) > 1`); err != nil {
		return ch, err
	}
	for _, d := range dups {
		ch.fail("%s %s: %d %s rows", d.OrderID, d.SKU, d.N, d.Kind)
	}
	ch.Checked = fmt.Sprintf("%d SKUs in %d stores, %d ledger rows", skus, len(c.stores), ledgerRows)
	return ch, nil
}

// ledgerPerOrder: each cash-on-delivery order's stock moved as its path
// says: taken once for every line if it got past confirmation, given back
// once if it was then cancelled or returned, never taken if refused.
func (c *checker) ledgerPerOrder(ctx context.Context, _ []dbOrder, byID map[string]dbOrder) (Check, error) {
	ch := Check{Name: "stock moved as each order's path says (taken once, restored once, refused untouched)"}
	var rows []struct {
		OrderID string `db:"order_id"`
		SKU     string `db:"sku"`
		Kind    string `db:"kind"`
		Qty     int64  `db:"quantity"`
	}
	if err := c.db.SelectContext(ctx, &rows, marker+`SELECT order_id, sku, kind, quantity FROM stock_ledger`); err != nil {
		return ch, err
	}
	type ok struct{ order, sku, kind string }
	ledger := map[ok]int64{}
	for _, r := range rows {
		ledger[ok{r.OrderID, r.SKU, r.Kind}] = r.Qty
	}
	n, refused := 0, 0
	for _, o := range c.orders {
		if o.script.flow != "cash-on-delivery" || !o.acked {
			continue
		}
		n++
		status := byID[o.id].Status
		var wantTaken, wantRestored bool
		switch {
		case o.branch == "refused":
			refused++
		case o.script.name == "cod-cancel-pending":
		case status == "delivered" || status == "shipped" || status == "processing":
			wantTaken = true
		case status == "returned" || status == "cancelled":
			wantTaken, wantRestored = true, true
		default:
			continue // the script failed; the state check reports it
		}
		for _, l := range o.lines {
			if got := ledger[ok{o.id, l.SKU, "decrement"}]; (got > 0) != wantTaken || (wantTaken && got != int64(l.Quantity)) {
				ch.fail("%s (%s, %s) %s: taken %d, want %v", o.id, o.script.name, status, l.SKU, got, wantTaken)
			}
			if got := ledger[ok{o.id, l.SKU, "restore"}]; (got > 0) != wantRestored || (wantRestored && got != int64(l.Quantity)) {
				ch.fail("%s (%s, %s) %s: restored %d, want %v", o.id, o.script.name, status, l.SKU, got, wantRestored)
			}
		}
	}
	ch.Checked = fmt.Sprintf("%d cash-on-delivery orders, %d refused for short stock", n, refused)
	return ch, nil
}

// messages: one message per (order, transition, template, recipient), each
// sent (or skipped), and one for every notification effect done.
func (c *checker) messages(ctx context.Context, _ []dbOrder, _ map[string]dbOrder) (Check, error) {
	ch := Check{Name: "one message per (order, transition, template)"}
	var dups []struct {
		OrderID  string `db:"order_id"`
		Version  int64  `db:"version"`
		Template string `db:"template"`
		N        int    `db:"n"`
	}
	if err := c.db.SelectContext(ctx, &dups, marker+`SELECT m.order_id, x.version, m.template, count(*) AS n
		FROM messages m JOIN outbox x ON x.id = m.effect_id WHERE m.order_id IS NOT NULL
		GROUP BY m.order_id, x.version, m.template, m.recipient_type HAVING count(*) > 1`); err != nil {
		return ch, err
	}
	for _, d := range dups {
		ch.fail("%s version %d: %d messages %s", d.OrderID, d.Version, d.N, d.Template)
	}
	var bad []struct {
		Key    string `db:"key"`
		Status string `db:"status"`
		Error  string `db:"error"`
	}
	if err := c.db.SelectContext(ctx, &bad, marker+`SELECT key, status, error FROM messages WHERE status NOT IN ('sent', 'skipped')`); err != nil {
		return ch, err
	}
	for _, b := range bad {
		ch.fail("message %s %s: %s", b.Key, b.Status, b.Error)
	}
	var missing []string
	if err := c.db.SelectContext(ctx, &missing, marker+`SELECT x.id FROM outbox x WHERE x.type IN ('notify:email', 'notify:sms') AND x.status = 'done'
		AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.effect_id = x.id)`); err != nil {
		return ch, err
	}
	for _, id := range missing {
		ch.fail("notification effect %s done with no message", id)
	}
	var n, sent int
	if err := c.db.GetContext(ctx, &n, marker+`SELECT count(*) FROM messages`); err != nil {
		return ch, err
	}
	if err := c.db.GetContext(ctx, &sent, marker+`SELECT count(*) FROM messages WHERE status = 'sent'`); err != nil {
		return ch, err
	}
	ch.Checked = fmt.Sprintf("%d messages, %d sent", n, sent)
	return ch, nil
}

// webhooksAcked: every event a transition owed was acknowledged (2xx) by
// the receiver at least once, and every delivery is recorded delivered.
func (c *checker) webhooksAcked(ctx context.Context, _ []dbOrder, _ map[string]dbOrder) (Check, error) {
	ch := Check{Name: "every webhook event acknowledged at least once"}
	var rows []struct {
		ID      string `db:"id"`
		OrderID string `db:"order_id"`
		StoreID string `db:"store_id"`
		Payload string `db:"payload"`
	}
	if err := c.db.SelectContext(ctx, &rows, marker+`SELECT id, order_id, store_id, payload FROM outbox WHERE type = $1`, string(flows.EffectWebhookDeliver)); err != nil {
		return ch, err
	}
	events := 0
	for _, r := range rows {
		var e flows.Effect
		if err := json.Unmarshal([]byte(r.Payload), &e); err != nil {
			ch.fail("outbox %s: payload: %v", r.ID, err)
			continue
		}
		if _, _, attempt := store.WebhookAttemptOf(e); attempt {
			continue
		}
		events++
		if id := webhooks.MessageID(r.ID); !c.hooks.acked(r.StoreID, id) {
			ch.fail("%s of %s (webhook-id %s) never acknowledged", e.Webhook, r.OrderID, id)
		}
	}
	var undelivered []struct {
		ID      string `db:"id"`
		OrderID string `db:"order_id"`
		Status  string `db:"status"`
		Type    string `db:"event_type"`
	}
	if err := c.db.SelectContext(ctx, &undelivered, marker+`SELECT id, order_id, status, event_type FROM webhook_deliveries WHERE status <> 'delivered'`); err != nil {
		return ch, err
	}
	for _, d := range undelivered {
		ch.fail("delivery %s (%s of %s) is %s", d.ID, d.Type, d.OrderID, d.Status)
	}
	c.hooks.mu.Lock()
	reqs, failed := c.hooks.requests, c.hooks.failed
	c.hooks.mu.Unlock()
	ch.Checked = fmt.Sprintf("%d events owed; %d requests received, %d failed on purpose", events, reqs, failed)
	return ch, nil
}

// webhookIDs: each event reached the receiver under one webhook-id only,
// well signed.
func (c *checker) webhookIDs(context.Context, []dbOrder, map[string]dbOrder) (Check, error) {
	ch := Check{Name: "every webhook event under one webhook-id, signature valid"}
	h := c.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	for ev, ids := range h.events {
		if len(ids) > 1 {
			var l []string
			for id := range ids {
				l = append(l, id)
			}
			sort.Strings(l)
			ch.fail("%s of %s at %s: %d webhook-ids %s", ev.typ, ev.order, ev.at, len(l), strings.Join(l, ", "))
		}
	}
	for _, s := range h.badSig {
		ch.fail("bad signature: %s", s)
	}
	for _, s := range h.badBody {
		ch.fail("%s", s)
	}
	ch.Checked = fmt.Sprintf("%d events, %d webhook-ids", len(h.events), len(h.messages))
	return ch, nil
}

// payments: from the provider's own records (the sandbox's table): no
// order charged twice; an order that ended without the sale (cancelled,
// declined, refunded) has had every charge refunded; a sold order kept its
// total; every card-check hold was voided; and every answer the provider
// gave is recorded in payments (money reconciled).
func (c *checker) payments(ctx context.Context, byID map[string]dbOrder) ([]Check, error) {
	double := Check{Name: "no double charge (provider records)"}
	refunded := Check{Name: "every order cancelled, declined or refunded after a charge refunded in full"}
	sold := Check{Name: "every sold order charged its total, once"}
	holds := Check{Name: "every card-check hold voided"}
	recon := Check{Name: "money reconciled: every provider answer recorded in payments"}
	all := func() []Check { return []Check{double, refunded, sold, holds, recon} }
	var sp []struct {
		Key     string         `db:"idempotency_key"`
		Ref     string         `db:"ref"`
		Op      string         `db:"operation"`
		Amount  int64          `db:"amount"`
		Status  string         `db:"status"`
		Target  string         `db:"target_ref"`
		OrderID sql.NullString `db:"order_id"`
	}
	if err := c.db.SelectContext(ctx, &sp, marker+`SELECT sp.idempotency_key, sp.ref, sp.operation, sp.amount, sp.status, sp.target_ref,
		COALESCE(x.order_id, p.order_id) AS order_id
		FROM sandbox_payments sp LEFT JOIN outbox x ON x.id = sp.idempotency_key LEFT JOIN payments p ON p.idempotency_key = sp.idempotency_key`); err != nil {
		return nil, err
	}
	var pay []struct {
		Key    string `db:"idempotency_key"`
		Status string `db:"status"`
		Ref    string `db:"provider_ref"`
	}
	if err := c.db.SelectContext(ctx, &pay, marker+`SELECT idempotency_key, status, provider_ref FROM payments`); err != nil {
		return nil, err
	}
	recorded := map[string]string{}
	for _, p := range pay {
		recorded[p.Key] = p.Status
	}
	type money struct {
		charges      []string
		charged      int64
		refunded     int64
		holds        map[string]bool
		voided       map[string]bool
		refundByChrg map[string]int64
		chargeAmt    map[string]int64
	}
	per := map[string]*money{}
	get := func(id string) *money {
		if per[id] == nil {
			per[id] = &money{holds: map[string]bool{}, voided: map[string]bool{}, refundByChrg: map[string]int64{}, chargeAmt: map[string]int64{}}
		}
		return per[id]
	}
	unrecorded := 0
	for _, r := range sp {
		if !r.OrderID.Valid {
			recon.fail("provider %s %s (key %s) belongs to no order", r.Op, r.Ref, r.Key)
			continue
		}
		want := "failed"
		if r.Status == "succeeded" {
			want = "succeeded"
		}
		if got, ok := recorded[r.Key]; !ok || got != want {
			unrecorded++
			recon.fail("%s: provider %s %s %s (key %s) recorded as %q in payments", r.OrderID.String, r.Op, r.Status, r.Ref, r.Key, got)
		}
		if r.Status != "succeeded" {
			continue
		}
		m := get(r.OrderID.String)
		switch r.Op {
		case "confirm", "capture":
			m.charges = append(m.charges, r.Ref)
			m.charged += r.Amount
			m.chargeAmt[r.Ref] = r.Amount
		case "refund":
			m.refunded += r.Amount
			m.refundByChrg[r.Target] += r.Amount
		case "authorize":
			m.holds[r.Ref] = true
		case "void":
			m.voided[r.Target] = true
		}
	}
	kept := map[string]string{"made-to-order": "delivered", "prepaid-simple": "shipped", "request-approval": "completed"}
	returned := map[string]bool{"cancelled": true, "canceled": true, "declined": true, "refunded": true, "expired": true}
	charged, refundedOrders, returnedOrders, soldOrders, nholds, ncharges := 0, 0, 0, 0, 0, 0
	for id, m := range per {
		o := byID[id]
		if len(m.charges) > 1 {
			double.fail("%s (%s, %s): charged %d times: %s", id, o.Flow, o.Status, len(m.charges), strings.Join(m.charges, ", "))
		}
		if m.charged > 0 {
			charged++
		}
		ncharges += len(m.charges)
		nholds += len(m.holds)
		for ref, amt := range m.refundByChrg {
			if amt > m.chargeAmt[ref] {
				double.fail("%s: refunded %d of charge %s of %d", id, amt, ref, m.chargeAmt[ref])
			}
		}
		for ref := range m.holds {
			if !m.voided[ref] {
				holds.fail("%s (%s, %s): card-check hold %s never voided", id, o.Flow, o.Status, ref)
			}
		}
		net := m.charged - m.refunded
		switch {
		case returned[o.Status]:
			returnedOrders++
			if m.refunded > 0 {
				refundedOrders++
			}
			if net != 0 {
				refunded.fail("%s (%s, %s): provider keeps %d (charged %d, refunded %d)", id, o.Flow, o.Status, net, m.charged, m.refunded)
			}
		case kept[o.Flow] == o.Status:
			soldOrders++
			if net != o.Total {
				sold.fail("%s (%s, %s): provider holds %d of its total %d", id, o.Flow, o.Status, net, o.Total)
			}
		}
	}
	// A sold order the provider has no charge for.
	for _, o := range c.orders {
		if d, ok := byID[o.id]; ok && kept[d.Flow] == d.Status && (per[d.ID] == nil || per[d.ID].charged == 0) {
			sold.fail("%s (%s, %s): no charge at the provider", d.ID, d.Flow, d.Status)
		}
	}
	double.Checked = fmt.Sprintf("%d charges of %d orders", ncharges, charged)
	refunded.Checked = fmt.Sprintf("%d such orders that touched money, %d refunded", returnedOrders, refundedOrders)
	sold.Checked = fmt.Sprintf("%d sold orders", soldOrders)
	holds.Checked = fmt.Sprintf("%d holds", nholds)
	recon.Checked = fmt.Sprintf("%d provider records, %d payments rows", len(sp), len(pay))
	return all(), nil
}

// writeTable prints the checks as a table.
func writeTable(w io.Writer, checks []Check) {
	fmt.Fprintln(w, "| check | checked | violations |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, c := range checks {
		fmt.Fprintf(w, "| %s | %s | %d |\n", c.Name, c.Checked, c.Violations)
	}
	for _, c := range checks {
		if c.Violations == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d violations", c.Name, c.Violations)
		if c.Violations > len(c.Examples) {
			fmt.Fprintf(w, " (the first %d)", len(c.Examples))
		}
		fmt.Fprintln(w, ":")
		for _, e := range c.Examples {
			fmt.Fprintln(w, "  -", e)
		}
	}
}
