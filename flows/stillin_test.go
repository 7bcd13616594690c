package flows

import (
	"testing"

	"github.com/packline/packline"
)

func TestStillIn(t *testing.T) {
	t.Parallel()
	o := &packline.Order{Status: "pending_payment", StateVersion: 3}
	for _, tc := range []struct {
		name    string
		states  []string
		version int64
		want    bool
	}{
		{name: "in the state, any visit", states: []string{"pending_payment"}, want: true},
		{name: "in one of the states", states: []string{"received", "pending_payment"}, want: true},
		{name: "in the state, the same visit", states: []string{"pending_payment"}, version: 3, want: true},
		{name: "left and came back since", states: []string{"pending_payment"}, version: 2},
		{name: "moved on", states: []string{"received"}},
		{name: "no states", states: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StillIn(o, tc.states, tc.version); got != tc.want {
				t.Errorf("StillIn(%v, %d) = %v, want %v", tc.states, tc.version, got, tc.want)
			}
		})
	}
}
