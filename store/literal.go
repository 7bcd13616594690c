package store

// literal renders a typed state (EffectStatus, webhooks.DeliveryStatus,
// couriers.Status, ...) as the SQL string literal the queries compare
// with: the one place the SQL spells a state. A literal, not a parameter,
// so the partial indexes on status (migrations 00008) match the queries.
func literal[S ~string](s S) string { return "'" + string(s) + "'" }
