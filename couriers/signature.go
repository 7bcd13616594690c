package couriers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of a courier callback (API.md):
//
//	X-Packline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
//
// Several v1 values may be sent (while a courier rotates its secret); one
// matching is enough.
const SignatureHeader = "X-Packline-Signature"

// SignatureTolerance is how far a callback's timestamp may be from now, in
// either direction, before it is refused as stale.
const SignatureTolerance = 5 * time.Minute

// Sign returns the SignatureHeader value for body signed with secret at t.
func Sign(secret string, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifySignature checks a SignatureHeader value against the raw body. It
// checks the HMAC first (constant-time), then the timestamp, so a stale
// answer is only ever given for a genuine but replayed callback. Errors wrap
// ErrBadSignature (missing or not matching), ErrMalformed (the header cannot
// be parsed) or ErrStaleSignature.
func VerifySignature(secret, header string, body []byte, now time.Time) error {
	if strings.TrimSpace(header) == "" {
		return fmt.Errorf("%w: no %s header", ErrBadSignature, SignatureHeader)
	}
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %s: %q is not key=value", ErrMalformed, SignatureHeader, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: %s: more than one t", ErrMalformed, SignatureHeader)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: %s: v1 is not a hex SHA-256 HMAC", ErrMalformed, SignatureHeader)
			}
			sigs = append(sigs, sig)
		default:
			// Other schemes (v2, ...) are ignored, so a courier can add one
			// before packline knows it.
		}
	}
	if ts == "" {
		return fmt.Errorf("%w: %s: no t", ErrMalformed, SignatureHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix <= 0 {
		return fmt.Errorf("%w: %s: t is not a unix time", ErrMalformed, SignatureHeader)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: %s: no v1 signature", ErrBadSignature, SignatureHeader)
	}
	want := mac(secret, ts, body)
	matched := false
	for _, sig := range sigs {
		// Compare every candidate, so timing does not tell which one matched.
		if hmac.Equal(sig, want) {
			matched = true
		}
	}
	if !matched {
		return fmt.Errorf("%w: no v1 signature matches the body", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > SignatureTolerance || d < -SignatureTolerance {
		return fmt.Errorf("%w: signed at %s, %s from now", ErrStaleSignature,
			time.Unix(unix, 0).UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return nil
}
