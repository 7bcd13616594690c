package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
)

// ErrForbiddenAddress: the endpoint's host is, or resolves to, an address
// that is not on the public internet (loopback, private, link-local,
// unspecified, multicast, reserved). Refused unless AllowPrivate, so a
// merchant cannot aim packline at its own network (SSRF).
var ErrForbiddenAddress = errors.New("webhook endpoint address is not public")

// ErrInvalidURL: not an absolute http or https URL with a host.
var ErrInvalidURL = errors.New("invalid webhook URL")

// Ranges that netip's predicates do not cover but are no place for a
// webhook either.
var reserved = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // carrier-grade NAT, shared address space
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, and the broadcast address
		"100::/64",        // discard
		"2001:db8::/32",   // documentation
		"64:ff9b:1::/48",  // local-use NAT64
		"fec0::/10",       // deprecated site-local
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixToV4 = netip.MustParsePrefix("2002::/16")
)

// Forbidden reports whether ip may not receive webhooks (unless
// AllowPrivate): loopback, private (RFC 1918, fc00::/7), link-local,
// unspecified, multicast, the reserved ranges, and IPv6 addresses that
// embed such an IPv4 address (IPv4-mapped, NAT64, 6to4).
func Forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return Forbidden(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToV4.Contains(ip):
			return Forbidden(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return false
}

// guard checks every address the client dials, after DNS resolution: the
// address actually connected to is the one checked, so neither a DNS answer
// that changes between check and use (rebinding) nor a redirect gets past
// it.
type guard struct {
	allowPrivate bool
	// allow, when set, admits an address before the check (tests only).
	allow func(netip.AddrPort) bool
}

func (g *guard) control(network, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read dialed address %q", ErrForbiddenAddress, address)
	}
	if g.allow != nil && g.allow(ap) {
		return nil
	}
	if Forbidden(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// CheckURL validates an endpoint URL as it is registered: an absolute http
// or https URL whose host resolves only to public addresses (any address
// when allowPrivate). Deliveries check again at every dial; this check
// gives the merchant a clear 422 up front. Errors wrap ErrInvalidURL or
// ErrForbiddenAddress.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := parseEndpointURL(raw)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if Forbidden(ip) {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, ip)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %s: %v", ErrInvalidURL, host, err)
	}
	for _, ip := range ips {
		if Forbidden(ip) {
			return fmt.Errorf("%w: %s resolves to %s", ErrForbiddenAddress, host, ip)
		}
	}
	return nil
}

func parseEndpointURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: the scheme must be http or https", ErrInvalidURL)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	return u, nil
}
