package control

import (
	"net/netip"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// TunnelSource is what a MACSource also implements when it can reach tunnelled
// real servers (forwarding: tunnel; netif.Neighbors does): the MAC of the next hop
// toward a server and our source address on that route.
type TunnelSource interface {
	TunnelMAC(addr netip.Addr) (mac [6]byte, src netip.Addr, ok bool)
}

// fillTunnel fills a tunnelled server's next-hop MAC and outer source address;
// without both the server is not picked (HasMAC false).
func fillTunnel(macs MACSource, sp *tables.ServerSpec) {
	ts, ok := macs.(TunnelSource)
	if !ok {
		return
	}
	sp.MAC, sp.TunnelSrc, sp.HasMAC = ts.TunnelMAC(sp.Addr)
	if sp.HasMAC && sp.TunnelSrc.Unmap().Is4() != sp.Addr.Unmap().Is4() {
		sp.HasMAC = false // the route's source is of the wrong family
	}
}

// encapSpec is the tables' encapsulation of a service's tunnelled servers.
func encapSpec(svc *config.Service) (tables.Encap, uint16) {
	if svc.Tunnel == config.EncapGUE {
		return tables.EncapGUE, svc.GUEPort
	}
	return tables.EncapIPIP, 0
}
