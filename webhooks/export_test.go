package webhooks

import "net/netip"

// NewClientAllowing returns a client whose address guard admits the
// addresses allow accepts before its usual check, so a test can let one
// loopback server through and see the guard stop the next.
func NewClientAllowing(opts Options, allow func(netip.AddrPort) bool) *Client {
	return newClient(opts, allow)
}
