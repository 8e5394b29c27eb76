package netif

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// OwnAddr returns the node's own address on interface ifname: the first one the
// kernel lists that is not in vips (the VIPs live on the same interface), not
// IPv6 link-local, and of the family of like when like is valid (IPv4 first
// otherwise). The management planes (API, HA sync) listen on it, never on a VIP.
// It fails when the interface is missing or has no such address.
func OwnAddr(ifname string, like netip.Addr, vips []netip.Addr) (netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find interface %s: %w (check node.interface)", ifname, err)
	}
	list, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", ifname, err)
	}
	var addrs []netip.Addr
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			addrs = append(addrs, ip.Unmap())
		}
	}
	if a, ok := pickOwn(addrs, like, vips); ok {
		return a, nil
	}
	want := "an address"
	if like.IsValid() {
		want = "an address of " + like.String() + "'s family"
	}
	return netip.Addr{}, fmt.Errorf("find this node's own address on %s: it has no %s besides the VIPs (add one, or set api.listen)", ifname, want)
}

// pickOwn is OwnAddr's choice among addrs, in the kernel's order.
func pickOwn(addrs []netip.Addr, like netip.Addr, vips []netip.Addr) (netip.Addr, bool) {
	ok := func(a netip.Addr, v4 bool) bool {
		return a.Is4() == v4 && !a.IsLinkLocalUnicast() && !a.IsLoopback() && !slices.Contains(vips, a)
	}
	families := []bool{true, false}
	if like.IsValid() {
		families = []bool{like.Unmap().Is4()}
	}
	for _, v4 := range families {
		for _, a := range addrs {
			if ok(a, v4) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}
