package netif

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// tunnelRoute is how a tunnelled real server is reached: the next hop on the
// interface (a router, or the server itself when it is on the segment) and our
// source address on that route, the outer source of the encapsulated frames.
type tunnelRoute struct {
	via, src netip.Addr
}

// WantTunnels sets the tunnelled real servers (forwarding: tunnel): each one's
// route is looked up in the kernel's routing table (as `ip route get ADDR`
// does), and the next hop's MAC is then kept current like a direct-routing
// server's (see [Neighbors.Want]). Routes are looked up again on every call
// (medialb calls it at start and on every reload). It returns one error per
// server whose route is missing or leaves through another interface; those
// servers have no MAC ([Neighbors.TunnelMAC] reports false) and are not picked.
func (n *Neighbors) WantTunnels(servers []netip.Addr) []error {
	routes := make(map[netip.Addr]tunnelRoute, len(servers))
	var errs []error
	for _, a := range servers {
		a = a.Unmap()
		r, err := n.route(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		routes[a] = r
	}
	n.mu.Lock()
	n.via = routes
	for _, r := range routes {
		n.want[r.via] = true
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return errs
}

// route looks up the route to a tunnelled server.
func (n *Neighbors) route(a netip.Addr) (tunnelRoute, error) {
	name := n.link.Attrs().Name
	rs, err := netlink.RouteGet(a.AsSlice())
	if err != nil || len(rs) == 0 {
		return tunnelRoute{}, fmt.Errorf("route to tunnelled real server %s: %v (add a route to it through %s)", a, err, name)
	}
	r := rs[0]
	if r.LinkIndex != n.link.Attrs().Index {
		return tunnelRoute{}, fmt.Errorf("route to tunnelled real server %s leaves through interface index %d, not %s (node.interface): add a route through %s", a, r.LinkIndex, name, name)
	}
	via := a
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
		via = gw.Unmap()
	}
	src, ok := netip.AddrFromSlice(r.Src)
	if !ok || r.Src == nil {
		return tunnelRoute{}, fmt.Errorf("route to tunnelled real server %s: no source address (give %s an address of the server's family)", a, name)
	}
	return tunnelRoute{via: via, src: src.Unmap()}, nil
}

// TunnelMAC returns, for a tunnelled real server, the MAC of the next hop toward
// it and our source address on that route; ok is false while either is unknown.
func (n *Neighbors) TunnelMAC(addr netip.Addr) (mac [6]byte, src netip.Addr, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, found := n.via[addr.Unmap()]
	if !found {
		return mac, src, false
	}
	mac, ok = n.macs[r.via]
	return mac, r.src, ok
}
