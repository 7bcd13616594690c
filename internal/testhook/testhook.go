// Package testhook lets a crash test stop an effect inside its open
// transaction, with every write made and nothing committed. Only tests set
// a hook (through workers' test-only Deps seam); in production the cost
// is one context lookup per effect. Internal, so it is no part of the
// store's API.
package testhook

import "context"

type beforeCommitKey struct{}

// WithBeforeCommit returns a context under which an effect's transaction
// calls fn just before it commits.
func WithBeforeCommit(ctx context.Context, fn func(context.Context)) context.Context {
	return context.WithValue(ctx, beforeCommitKey{}, fn)
}

// BeforeCommit calls the hook ctx carries, if any; the store calls it just
// before an effect's transaction commits.
func BeforeCommit(ctx context.Context) {
	if fn, ok := ctx.Value(beforeCommitKey{}).(func(context.Context)); ok {
		fn(ctx)
	}
}
