package lab

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
)

// MisplaceVIPs gets real server server's direct-routing setup wrong, the two
// ways the guide's "ARP problem" comes about: it takes the lab's VIPs off lo
// and, with onLink, puts them on the server's network interface instead
// (the server then answers ARP and neighbour solicitations for them);
// without, the server holds no VIP at all. RestoreVIPs undoes it.
func (l *Lab) MisplaceVIPs(server string, onLink bool) error {
	return l.moveVIPs(server, onLink, false)
}

// RestoreVIPs puts the lab's VIPs back on real server server's lo and off
// its network interface.
func (l *Lab) RestoreVIPs(server string) error {
	return l.moveVIPs(server, false, true)
}

func (l *Lab) moveVIPs(server string, onLink, restore bool) error {
	n, err := l.Server(server)
	if err != nil {
		return err
	}
	return Do(n.NS, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo in %s: %w", n.NS, err)
		}
		eth, err := netlink.LinkByName(n.Link)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", n.Link, n.NS, err)
		}
		from, to := lo, netlink.Link(nil)
		if onLink {
			to = eth
		}
		if restore {
			from, to = eth, lo
		}
		for _, v := range l.VIPs {
			a := nlAddr(v, v.BitLen())
			if err := netlink.AddrDel(from, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
				return fmt.Errorf("remove VIP %s from %s in %s: %w", v, from.Attrs().Name, n.NS, err)
			}
			if to == nil {
				continue
			}
			a = nlAddr(v, v.BitLen()) // IPv6 without DAD: answers neighbour solicitations at once
			if err := netlink.AddrAdd(to, &a); err != nil && !errors.Is(err, syscall.EEXIST) {
				return fmt.Errorf("add VIP %s to %s in %s: %w", v, to.Attrs().Name, n.NS, err)
			}
		}
		return nil
	})
}
