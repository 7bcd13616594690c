package workers

import "context"

// WithHold returns d with a hold: a function called at named points in the
// middle of a task ("payment:answered", "stock:before_commit"), so a crash
// or race test can stop or kill a worker there. Production code cannot set
// one.
func WithHold(d Deps, hold func(ctx context.Context, point string, e Effect)) Deps {
	d.hold = hold
	return d
}
