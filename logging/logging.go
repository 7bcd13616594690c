// Package logging builds packline's slog loggers: JSON or text lines that
// carry the request or task id from the context, with personal data and
// secrets redacted from every record.
//
// Redaction is by key and by value. An attribute whose key names personal
// data or a secret (email, phone, address, name, key, secret, token,
// password, authorization, ...; see sensitiveKey) is replaced by Redacted
// whatever its value. Any other string, the message included, has e-mail
// addresses, E.164 phone numbers and bearer or provider keys cut out of it.
// Structs, maps and errors logged with slog.Any are redacted the same way, field
// by field.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Redacted replaces every redacted value.
const Redacted = "[redacted]"

// New returns a logger writing to w in format ("json" or "text", default
// json) at level ("debug", "info", "warn" or "error", default info). Its
// records are redacted and carry the attributes WithAttrs put in the context
// of InfoContext and friends. A bad value is an error naming LOG_LEVEL or
// LOG_FORMAT, the variables they come from.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "", "info":
		lvl = slog.LevelInfo
	case "debug":
		lvl = slog.LevelDebug
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: redactAttr}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("LOG_FORMAT=%q: want json or text", format)
	}
	return slog.New(NewContextHandler(h)), nil
}

type ctxKey struct{}

// WithAttrs returns a context carrying attrs (after any it already carries),
// so every record logged with it (logger.InfoContext(ctx, ...)) names them:
// the request id in the API, the task id and type in a worker.
func WithAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	if len(attrs) == 0 {
		return ctx
	}
	prev := Attrs(ctx)
	all := make([]slog.Attr, 0, len(prev)+len(attrs))
	all = append(all, prev...)
	all = append(all, attrs...)
	return context.WithValue(ctx, ctxKey{}, all)
}

// Attrs returns the attributes WithAttrs put in ctx.
func Attrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	attrs, _ := ctx.Value(ctxKey{}).([]slog.Attr)
	return attrs
}

// NewContextHandler wraps h so each record also gets the attributes
// WithAttrs put in the record's context, at the top level of the record even
// when the logger has open groups. New uses it; it is exported for callers
// that build their own handler (tests, a different sink).
func NewContextHandler(h slog.Handler) slog.Handler { return &contextHandler{base: h, inner: h} }

type contextHandler struct {
	base  slog.Handler // h with the attrs added before the first group
	inner slog.Handler // base with every later WithAttrs and WithGroup applied
	ops   []handlerOp  // those later calls, replayed when context attrs must go above them
}

// handlerOp is one WithGroup (group set) or WithAttrs call.
type handlerOp struct {
	group string
	attrs []slog.Attr
}

func (h *contextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := Attrs(ctx)
	if len(attrs) == 0 {
		return h.inner.Handle(ctx, r)
	}
	if len(h.ops) == 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
		return h.inner.Handle(ctx, r)
	}
	// The logger has open groups: put the context attrs in front of them so
	// request_id stays request_id, not payment.request_id.
	out := h.base.WithAttrs(attrs)
	for _, op := range h.ops {
		if op.group != "" {
			out = out.WithGroup(op.group)
		} else {
			out = out.WithAttrs(op.attrs)
		}
	}
	return out.Handle(ctx, r)
}

func (h *contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.ops) == 0 {
		b := h.base.WithAttrs(attrs)
		return &contextHandler{base: b, inner: b}
	}
	return &contextHandler{base: h.base, inner: h.inner.WithAttrs(attrs), ops: appendOp(h.ops, handlerOp{attrs: attrs})}
}

func (h *contextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &contextHandler{base: h.base, inner: h.inner.WithGroup(name), ops: appendOp(h.ops, handlerOp{group: name})}
}

func appendOp(ops []handlerOp, op handlerOp) []handlerOp {
	out := make([]handlerOp, len(ops), len(ops)+1)
	copy(out, ops)
	return append(out, op)
}
