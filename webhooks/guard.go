package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"code.dny.dev/ssrf"
)

// ErrForbiddenAddress: the endpoint's host is, resolves to, or is written
// as an address that is not globally routable unicast, or it does not
// resolve at all. Refused unless AllowPrivate, so a merchant cannot aim
// packline at its own network (SSRF). The error's text says which address
// and why; it is for the log, not for the merchant.
var ErrForbiddenAddress = errors.New("webhook endpoint address is not public")

// ErrInvalidURL: not an absolute http or https URL with a host.
var ErrInvalidURL = errors.New("invalid webhook URL")

// guardian is the allow-list: an IPv4 address outside every prefix of the
// IANA IPv4 special-purpose registry, or an IPv6 address inside 2000::/3
// and outside the IPv6 special-purpose registry. Everything else is
// refused: IPv4-mapped, -compatible and -translated addresses, NAT64
// (64:ff9b::/96, 64:ff9b:1::/48), 6to4, Teredo, ORCHID, documentation,
// benchmarking, multicast, loopback, link-local, unique-local. Any port:
// merchants run receivers on ports of their own.
var guardian = ssrf.New(ssrf.WithAnyPort())

// Forbidden reports whether ip may not receive webhooks (unless
// AllowPrivate): every address that is not globally routable unicast.
func Forbidden(ip netip.Addr) bool {
	return forbidden(ip) != nil
}

func forbidden(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: no address", ErrForbiddenAddress)
	}
	if err := guardian.SafeAddr(ip); err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, err)
	}
	return nil
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

// control is the dialer's Control hook: the library's check of the network
// (tcp4, tcp6) and the address.
func (g *guard) control(network, address string, c syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	if g.allow != nil {
		if ap, err := netip.ParseAddrPort(address); err == nil && g.allow(ap) {
			return nil
		}
	}
	if err := guardian.Safe(network, address, c); err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, err)
	}
	return nil
}

// CheckURL validates an endpoint URL as it is registered: an absolute http
// or https URL whose host is a canonical IP address or a name, and which
// resolves only to globally routable addresses (any address when
// allowPrivate). Deliveries check again at every dial; this check refuses
// up front. Errors wrap ErrInvalidURL or ErrForbiddenAddress and carry the
// details (the address, the resolver's error) for the log.
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
		return forbidden(ip)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %s: %v", ErrForbiddenAddress, host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: %s resolves to no address", ErrForbiddenAddress, host)
	}
	for _, ip := range ips {
		if err := forbidden(ip); err != nil {
			return fmt.Errorf("%s: %w", host, err)
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
	if numericHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: %q is not a canonical IP address", ErrForbiddenAddress, u.Hostname())
	}
	return u, nil
}

// numericHost reports whether host would be read as an IPv4 address by
// some resolver or browser (WHATWG URL: a host whose last label is a
// decimal, octal or 0x number) without being one in canonical dotted-quad
// form: 2130706433, 0x7f.0.0.1, 0177.0.0.1, 127.1, 127.0.0.1. (trailing
// dot). No top-level domain is numeric, so no DNS name is refused.
func numericHost(host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Is4() && ip.String() != host
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if strings.HasSuffix(host, ".") && last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}
