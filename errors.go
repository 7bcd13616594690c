package packline

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in api.writeError, and nowhere else.
const (
	EMALFORMED    = "malformed"              // 400: the request cannot be parsed
	EUNAUTHORIZED = "unauthorized"           // 401: no key, or a bad one
	EFORBIDDEN    = "forbidden"              // 403: the key's scope does not allow this
	ENOTFOUND     = "not_found"              // 404: no such thing (or another store's)
	EMETHOD       = "method_not_allowed"     // 405: the path exists, not with this method
	ECONFLICT     = "conflict"               // 409: not allowed in the current state, or a lost race
	ETOOLARGE     = "too_large"              // 413: body over the limit
	EINVALID      = "invalid"                // 422: well-formed but wrong
	EIDEMPOTENCY  = "idempotency_key_reused" // 422: same key, other body
	ERATELIMIT    = "rate_limited"           // 429
	EINTERNAL     = "internal"               // 500: never shows internals
	EUNAVAILABLE  = "unavailable"            // 503: the database cannot be reached; retry
)

// Error is the one error type that crosses layers with a code a client can act
// on. Anything that is not an *Error is internal.
type Error struct {
	Code    string
	Message string
	// Field names the offending input, in JSON-path form (lines[2].quantity).
	Field string
	// AllowedEvents is set on a state conflict: the events the caller may send
	// from the order's current state.
	AllowedEvents []string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID error naming the field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, "" for
// nil, else EINTERNAL.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: the message of an
// *Error, or a generic text that never shows internals.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
