package webhooks

import (
	"errors"
	"net/netip"
	"testing"
)

// Refused lists, for every prefix of the IANA special-purpose registries
// (IPv4 and IPv6) and the IPv6 space outside 2000::/3, its first and last
// address or a representative one, with the range it stands for. Webhook
// targets on any of them are refused at creation and at dial time.
var Refused = []struct{ Addr, Range string }{
	// IPv4 special-purpose registry.
	{"0.0.0.0", "0.0.0.0/8 this network"}, {"0.255.255.255", "0.0.0.0/8 this network"},
	{"10.0.0.0", "10.0.0.0/8 private"}, {"10.255.255.255", "10.0.0.0/8 private"},
	{"100.64.0.0", "100.64.0.0/10 shared (CGN)"}, {"100.127.255.255", "100.64.0.0/10 shared (CGN)"},
	{"127.0.0.1", "127.0.0.0/8 loopback"}, {"127.255.255.254", "127.0.0.0/8 loopback"},
	{"169.254.0.1", "169.254.0.0/16 link-local"}, {"169.254.169.254", "169.254.0.0/16 link-local (cloud metadata)"},
	{"172.16.0.0", "172.16.0.0/12 private"}, {"172.31.255.255", "172.16.0.0/12 private"},
	{"192.0.0.0", "192.0.0.0/24 IETF protocol assignments"}, {"192.0.0.8", "192.0.0.8/32 IPv4 dummy"},
	{"192.0.0.9", "192.0.0.9/32 PCP anycast"}, {"192.0.0.10", "192.0.0.10/32 TURN anycast"},
	{"192.0.0.170", "192.0.0.170/32 NAT64 discovery"}, {"192.0.0.255", "192.0.0.0/24 IETF protocol assignments"},
	{"192.0.2.0", "192.0.2.0/24 documentation"}, {"192.0.2.255", "192.0.2.0/24 documentation"},
	{"192.31.196.1", "192.31.196.0/24 AS112-v4"}, {"192.52.193.1", "192.52.193.0/24 AMT"},
	{"192.88.99.1", "192.88.99.0/24 6to4 relay anycast"}, {"192.168.0.0", "192.168.0.0/16 private"},
	{"192.168.255.255", "192.168.0.0/16 private"}, {"192.175.48.1", "192.175.48.0/24 AS112 direct delegation"},
	{"198.18.0.0", "198.18.0.0/15 benchmarking"}, {"198.19.255.255", "198.18.0.0/15 benchmarking"},
	{"198.51.100.1", "198.51.100.0/24 documentation"}, {"203.0.113.1", "203.0.113.0/24 documentation"},
	{"224.0.0.1", "224.0.0.0/4 multicast"}, {"239.255.255.255", "224.0.0.0/4 multicast"},
	{"240.0.0.1", "240.0.0.0/4 reserved"}, {"255.255.255.255", "255.255.255.255/32 limited broadcast"},
	// IPv6 outside 2000::/3, each registry entry there.
	{"::", "::/128 unspecified"}, {"::1", "::1/128 loopback"},
	{"::127.0.0.1", "::/96 IPv4-compatible (loopback)"}, {"::7f00:1", "::/96 IPv4-compatible (loopback)"},
	{"::a00:1", "::/96 IPv4-compatible (10.0.0.1)"}, {"::a9fe:a9fe", "::/96 IPv4-compatible (169.254.169.254)"},
	{"::2", "::/96 IPv4-compatible"}, {"::808:808", "::/96 IPv4-compatible (8.8.8.8)"},
	{"::ffff:127.0.0.1", "::ffff:0:0/96 IPv4-mapped"}, {"::ffff:8.8.8.8", "::ffff:0:0/96 IPv4-mapped (public)"},
	{"::ffff:0:7f00:1", "::ffff:0:0:0/96 IPv4-translated"}, {"::ffff:0:808:808", "::ffff:0:0:0/96 IPv4-translated"},
	{"64:ff9b::7f00:1", "64:ff9b::/96 NAT64"}, {"64:ff9b::808:808", "64:ff9b::/96 NAT64 (public)"},
	{"64:ff9b:1::1", "64:ff9b:1::/48 local-use NAT64"}, {"100::1", "100::/64 discard-only"},
	{"100:0:0:1::1", "100::/8 outside 2000::/3"}, {"4000::1", "4000::/2 outside 2000::/3"},
	{"5f00::1", "5f00::/16 SRv6 SIDs"}, {"fc00::1", "fc00::/7 unique-local"}, {"fd12:3456::1", "fc00::/7 unique-local"},
	{"fe80::1", "fe80::/10 link-local"}, {"fec0::1", "fec0::/10 site-local"},
	{"ff02::1", "ff00::/8 multicast"}, {"ff0e::1", "ff00::/8 multicast (global scope)"},
	{"e000::1", "e000::/3 outside 2000::/3"}, {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "below 2000::/3"},
	// IPv6 special-purpose registry inside 2000::/3.
	{"2001::1", "2001::/32 Teredo"}, {"2001:0:ffff:ffff::1", "2001::/32 Teredo"},
	{"2001:1::1", "2001:1::1/128 port control anycast"}, {"2001:1::2", "2001:1::2/128 TURN anycast"},
	{"2001:2::1", "2001:2::/48 benchmarking"}, {"2001:3::1", "2001:3::/32 AMT"},
	{"2001:4:112::1", "2001:4:112::/48 AS112-v6"}, {"2001:10::1", "2001:10::/28 ORCHID"},
	{"2001:20::1", "2001:20::/28 ORCHIDv2"}, {"2001:30::1", "2001:30::/28 drone remote ID"},
	{"2001:1ff:ffff::1", "2001::/23 IETF protocol assignments"},
	{"2001:db8::1", "2001:db8::/32 documentation"}, {"2001:db8:ffff::1", "2001:db8::/32 documentation"},
	{"2002::1", "2002::/16 6to4"}, {"2002:7f00:1::1", "2002::/16 6to4 (127.0.0.1)"}, {"2002:808:808::1", "2002::/16 6to4 (8.8.8.8)"},
	{"2620:4f:8000::1", "2620:4f:8000::/48 AS112 direct delegation"}, {"3fff::1", "3fff::/20 documentation"},
	{"3fff:fff::1", "3fff::/20 documentation"},
}

// Allowed are globally routable unicast addresses, many just outside a
// refused range.
var Allowed = []string{
	"1.1.1.1", "8.8.8.8", "93.184.215.14", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
	"126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
	"192.0.1.0", "192.0.3.0", "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0",
	"198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0",
	"223.255.255.255",
	"2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1", "2001:200::1", "2003::1",
	"2620:4f:7fff::1", "2620:4f:8001::1", "3ffe::1", "3fff:1000::1", "2001:db9::1", "2000::1",
	"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
}

// TestGuardAtDialTime: the dialer's Control hook refuses every refused
// address and lets every allowed one through, on any port.
func TestGuardAtDialTime(t *testing.T) {
	t.Parallel()
	g := &guard{}
	network := func(ip netip.Addr) string {
		if ip.Is4() {
			return "tcp4"
		}
		return "tcp6"
	}
	for _, c := range Refused {
		ip := netip.MustParseAddr(c.Addr)
		if err := g.control(network(ip), netip.AddrPortFrom(ip, 443).String(), nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("dial %s (%s) = %v, want refused", c.Addr, c.Range, err)
		}
	}
	for _, s := range Allowed {
		ip := netip.MustParseAddr(s)
		for _, port := range []uint16{80, 443, 8443} {
			if err := g.control(network(ip), netip.AddrPortFrom(ip, port).String(), nil); err != nil {
				t.Errorf("dial %s port %d = %v, want allowed", s, port, err)
			}
		}
	}
	if err := g.control("udp4", "8.8.8.8:443", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("udp = %v, want refused", err)
	}
	if err := (&guard{allowPrivate: true}).control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("AllowPrivate: %v", err)
	}
}
