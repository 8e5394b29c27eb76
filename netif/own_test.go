package netif

import (
	"net/netip"
	"testing"
)

func TestPickOwn(t *testing.T) {
	a := netip.MustParseAddr
	vips := []netip.Addr{a("192.0.2.100"), a("2001:db8::100")}
	tests := []struct {
		name  string
		addrs []string
		like  string
		want  string
	}{
		{"first, VIP before it skipped", []string{"192.0.2.100", "192.0.2.2", "192.0.2.3"}, "", "192.0.2.2"},
		{"IPv4 before IPv6", []string{"2001:db8::2", "192.0.2.2"}, "", "192.0.2.2"},
		{"peer's family", []string{"192.0.2.2", "fe80::1", "2001:db8::100", "2001:db8::2"}, "2001:db8::3", "2001:db8::2"},
		{"only VIPs and link-local", []string{"192.0.2.100", "fe80::1"}, "", ""},
		{"no address of the peer's family", []string{"192.0.2.2"}, "2001:db8::3", ""},
	}
	for _, tt := range tests {
		var addrs []netip.Addr
		for _, s := range tt.addrs {
			addrs = append(addrs, a(s))
		}
		var like netip.Addr
		if tt.like != "" {
			like = a(tt.like)
		}
		got, ok := pickOwn(addrs, like, vips)
		if (tt.want == "" && ok) || (tt.want != "" && got != a(tt.want)) {
			t.Errorf("%s: got %v (%v), want %q", tt.name, got, ok, tt.want)
		}
	}
}
