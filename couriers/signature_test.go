package couriers_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/couriers"
)

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	const secret = "courier-secret"
	body := []byte(`{"tracking_number":"SB1","status":"delivered","occurred_at":"2026-01-02T03:04:05Z"}`)
	now := time.Unix(1_767_000_000, 0)
	good := couriers.Sign(secret, body, now)
	other := couriers.Sign("another-secret", body, now)
	v1 := func(h string) string { _, v, _ := strings.Cut(h, ",v1="); return v }
	ts := strconv.FormatInt(now.Unix(), 10)

	tests := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", good, body, now, nil},
		{"good at the edge of the window, past", good, body, now.Add(couriers.SignatureTolerance), nil},
		{"good at the edge of the window, future", good, body, now.Add(-couriers.SignatureTolerance), nil},
		{"one of several v1 matches (secret rotation)", "t=" + ts + ",v1=" + v1(other) + ",v1=" + v1(good), body, now, nil},
		{"unknown scheme ignored", good + ",v2=zzz", body, now, nil},
		{"spaces around parts", "t=" + ts + ", v1=" + v1(good), body, now, nil},

		{"missing header", "", body, now, couriers.ErrBadSignature},
		{"wrong secret", other, body, now, couriers.ErrBadSignature},
		{"body changed", good, append([]byte(" "), body...), now, couriers.ErrBadSignature},
		{"timestamp changed", "t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + v1(good), body, now, couriers.ErrBadSignature},
		{"no v1", "t=" + ts, body, now, couriers.ErrBadSignature},
		{"forged and stale is bad, not stale", other, body, now.Add(time.Hour), couriers.ErrBadSignature},

		{"stale, past", good, body, now.Add(couriers.SignatureTolerance + time.Second), couriers.ErrStaleSignature},
		{"stale, future", good, body, now.Add(-couriers.SignatureTolerance - time.Second), couriers.ErrStaleSignature},

		{"no t", "v1=" + v1(good), body, now, couriers.ErrMalformed},
		{"t not a number", "t=yesterday,v1=" + v1(good), body, now, couriers.ErrMalformed},
		{"two t", "t=" + ts + ",t=" + ts + ",v1=" + v1(good), body, now, couriers.ErrMalformed},
		{"v1 not hex", "t=" + ts + ",v1=not-hex", body, now, couriers.ErrMalformed},
		{"v1 too short", "t=" + ts + ",v1=abcd", body, now, couriers.ErrMalformed},
		{"not key=value", "garbage", body, now, couriers.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := couriers.VerifySignature(secret, tt.header, tt.body, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifySignature: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifySignature: %v, want %v", err, tt.want)
			}
			// Each refusal is exactly one kind.
			for _, k := range []error{couriers.ErrBadSignature, couriers.ErrStaleSignature, couriers.ErrMalformed} {
				if k != tt.want && errors.Is(err, k) {
					t.Fatalf("error %v is also %v", err, k)
				}
			}
		})
	}
}

func TestSignMatchesAPIContract(t *testing.T) {
	t.Parallel()
	// API.md: v1 is the hex HMAC-SHA256 of "<t>.<raw body>"; the value was
	// computed apart with: printf '1700000000.{}' | openssl dgst -sha256 -hmac k
	got := couriers.Sign("k", []byte("{}"), time.Unix(1_700_000_000, 0))
	want := "t=1700000000,v1=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func FuzzVerifySignature(f *testing.F) {
	now := time.Unix(1_767_000_000, 0)
	f.Add(couriers.Sign("s", []byte("body"), now), []byte("body"))
	f.Add("t=1,v1=00", []byte(""))
	f.Add(",,,=,", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := couriers.VerifySignature("s", header, body, now)
		if err == nil {
			if !strings.Contains(header, "v1=") {
				t.Fatalf("accepted %q without a v1", header)
			}
			return
		}
		if !errors.Is(err, couriers.ErrBadSignature) && !errors.Is(err, couriers.ErrMalformed) && !errors.Is(err, couriers.ErrStaleSignature) {
			t.Fatalf("error %v is none of the three kinds", err)
		}
	})
}
