package main

import (
	"os"
	"testing"

	"github.com/packline/packline/payments/stripetest"
)

// TestMain stops the stripe-mock the Stripe tests share.
func TestMain(m *testing.M) { os.Exit(stripetest.Main(m)) }
