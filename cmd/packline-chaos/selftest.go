package main

import (
	"context"
	"fmt"
)

// selfTest proves the checks can fail: after the real checks, it breaks
// the run's results once for each check (an order written twice, a state
// changed, an outbox row dead, stock and ledger rows changed, a message
// sent twice, an acknowledgement forgotten, an event under a second
// webhook-id, a second charge, a sold order's total changed, a refund, a
// void and a payments row removed) and wants every check to find more violations than before. The
// database is left broken: run it last.
func (c *checker) selfTest(ctx context.Context, before []Check) error {
	q := func(sql string) error {
		if _, err := c.db.ExecContext(ctx, marker+sql); err != nil {
			return fmt.Errorf("self-test: %w\n%s", err, sql)
		}
		return nil
	}
	var expected, cancelledTaken, refundedOrder, sold string
	for _, o := range c.orders {
		switch {
		case expected == "" && o.expect == "delivered":
			expected = o.id
		case cancelledTaken == "" && o.script.name == "cod-cancel-taken" && o.err == nil:
			cancelledTaken = o.id
		case refundedOrder == "" && o.script.name == "mto-cancel-paid" && o.err == nil:
			refundedOrder = o.id
		case sold == "" && o.script.name == "pp-ship" && o.err == nil:
			sold = o.id
		}
	}
	if expected == "" || cancelledTaken == "" || refundedOrder == "" || sold == "" {
		return fmt.Errorf("self-test: the run has no delivered order, cancelled order with stock taken, cancelled paid order or shipped prepaid order to break")
	}
	for _, sql := range []string{
		// an order twice, under another id
		`INSERT INTO orders SELECT (jsonb_populate_record(NULL::orders, to_jsonb(o) || '{"id": "ord_chaos_selftest"}')).* FROM orders o WHERE id = '` + expected + `'`,
		`UPDATE orders SET status = 'on_hold' WHERE id = '` + expected + `'`,
		`UPDATE outbox SET status = 'failed' WHERE id = (SELECT id FROM outbox WHERE status = 'done' ORDER BY id LIMIT 1)`,
		`UPDATE stock SET on_hand = on_hand + 7 WHERE (store_id, sku) = (SELECT store_id, sku FROM stock ORDER BY store_id, sku LIMIT 1)`,
		`DELETE FROM stock_ledger WHERE order_id = '` + cancelledTaken + `' AND kind = 'restore'`,
		`INSERT INTO messages SELECT (jsonb_populate_record(NULL::messages, to_jsonb(m) || jsonb_build_object('key', m.key || ':selftest'))).*
			FROM messages m WHERE order_id IS NOT NULL ORDER BY key LIMIT 1`,
		// a second charge of the delivered order, under another of its effects' keys
		`INSERT INTO sandbox_payments SELECT (jsonb_populate_record(NULL::sandbox_payments, to_jsonb(s) || jsonb_build_object('idempotency_key',
			(SELECT id FROM outbox WHERE order_id = '` + refundedOrder + `' AND type LIKE 'notify:%' LIMIT 1), 'ref', s.ref || '_selftest'))).*
			FROM sandbox_payments s JOIN outbox x ON x.id = s.idempotency_key WHERE x.order_id = '` + refundedOrder + `' AND s.operation IN ('confirm', 'capture') AND s.status = 'succeeded' LIMIT 1`,
		`DELETE FROM sandbox_payments WHERE operation = 'refund' AND idempotency_key IN (SELECT id FROM outbox WHERE order_id = '` + refundedOrder + `')`,
		`DELETE FROM sandbox_payments WHERE ref = (SELECT ref FROM sandbox_payments WHERE operation = 'void' AND status = 'succeeded' ORDER BY ref LIMIT 1)`,
		`UPDATE orders SET total = total + 1 WHERE id = '` + sold + `'`,
		`DELETE FROM payments WHERE id = (SELECT id FROM payments ORDER BY id LIMIT 1)`,
	} {
		if err := q(sql); err != nil {
			return err
		}
	}
	// The receiver forgets one acknowledgement, and sees one event under a
	// second webhook-id.
	c.hooks.mu.Lock()
	forgot, doubled := false, false
	for _, rec := range c.hooks.messages {
		if !forgot && rec.acked > 0 {
			rec.acked, forgot = 0, true
			continue
		}
		if !doubled {
			c.hooks.events[rec.event]["msg_chaos_selftest"], doubled = true, true
		}
	}
	c.hooks.mu.Unlock()

	after, err := c.run(ctx)
	if err != nil {
		return err
	}
	var missed []string
	for i, ch := range after {
		if ch.Violations <= before[i].Violations {
			missed = append(missed, ch.Name)
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("self-test: these checks did not see what was broken: %v", missed)
	}
	return nil
}
