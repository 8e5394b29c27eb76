package ha

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// dropStaleVIPs removes from the interface every VIP it still carries before
// keepalived starts as BACKUP: addresses left by a keepalived that was killed
// with SIGKILL (it could not release them) would otherwise stay on this node
// while the peer holds them too. It returns the addresses removed.
func dropStaleVIPs(ifname string, vips []netip.Addr) ([]netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find interface %s: %w (check node.interface)", ifname, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", ifname, err)
	}
	want := map[netip.Addr]bool{}
	for _, v := range vips {
		want[v.Unmap()] = true
	}
	var removed []netip.Addr
	var errs []error
	for i := range addrs {
		a, ok := netip.AddrFromSlice(addrs[i].IP)
		if !ok || !want[a.Unmap()] {
			continue
		}
		if err := netlink.AddrDel(link, &addrs[i]); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove stale VIP %s from %s: %w", a, ifname, err))
			continue
		}
		removed = append(removed, a.Unmap())
	}
	return removed, errors.Join(errs...)
}
