package config

import "fmt"

// Tunnel is the layer-4 forwarding method for real servers outside the load
// balancer's segment: the client's packet, untouched, is encapsulated in an
// outer IP header (and, for GUE, a UDP header) from the load balancer's address
// to the real server's, which decapsulates it and answers the client directly.
const Tunnel Forwarding = "tunnel"

// Encap is the encapsulation of a Tunnel service.
type Encap string

// Encapsulations. The outer header's family is the real server's; the inner
// packet's is the VIP's: EncapIPIP is IPIP (IPv4 in IPv4, protocol 4), IP6IP6
// (IPv6 in IPv6, next header 41), or the mixed IPIP6/SIT cases, as the
// families demand. EncapGUE is GUE variant 1 (RFC draft-ietf-intarea-gue:
// direct IP in UDP, no GUE header, as Katran sends and Linux's fou decodes),
// with the outer UDP source port taken from the flow's hash so that the real
// server's NIC spreads the flows over its queues.
const (
	EncapIPIP Encap = "ipip"
	EncapGUE  Encap = "gue"
)

// DefaultGUEPort is the outer UDP destination port of GUE (Katran's default).
const DefaultGUEPort = 6080

// tunnel reads a service's tunnel and gue_port; both belong to forwarding:
// tunnel only.
func (p *parser) tunnel(f fields, path string, s *Service, layerOK bool) {
	tv, gv := f.get("tunnel"), f.get("gue_port")
	if !layerOK {
		return
	}
	if !s.Tunnels() {
		if tv != nil {
			p.errorf(tv, "%s.tunnel: only with forwarding: tunnel (of the service or of a real server; this service uses %s)", path, s.Forwarding)
		}
		if gv != nil {
			p.errorf(gv, "%s.gue_port: only with forwarding: tunnel and tunnel: gue", path)
		}
		return
	}
	s.Tunnel = EncapIPIP
	if tv != nil {
		t, ok := p.str(tv, path+".tunnel")
		if !ok {
			return
		}
		switch Encap(t) {
		case EncapIPIP, EncapGUE:
			s.Tunnel = Encap(t)
		case "ip6ip6", "ipip6", "ip6tnl", "sit":
			p.errorf(tv, "%s.tunnel: %q: write ipip (the IPv6 forms follow the addresses' families)", path, t)
		case "fou", "udp":
			p.errorf(tv, "%s.tunnel: %q: write gue (IP directly in UDP, which Linux's fou decodes with encap gue)", path, t)
		default:
			p.errorf(tv, "%s.tunnel: %q is not an encapsulation (ipip or gue)", path, t)
		}
	}
	if gv != nil {
		if s.Tunnel != EncapGUE {
			p.errorf(gv, "%s.gue_port: only with tunnel: gue (this service uses %s)", path, s.Tunnel)
			return
		}
		if x, ok := p.integer(gv, path+".gue_port", 1, 65535); ok {
			s.GUEPort = uint16(x)
		}
		return
	}
	if s.Tunnel == EncapGUE {
		s.GUEPort = DefaultGUEPort
	}
}

// Tunnels reports whether any of the service's real servers is reached through
// a tunnel (the service's forwarding, or a server's own).
func (s *Service) Tunnels() bool {
	if s.Layer != Layer4 {
		return false
	}
	if s.Forwarding == Tunnel {
		return true
	}
	for i := range s.RealServers {
		if s.RealServers[i].Forwarding == Tunnel {
			return true
		}
	}
	return false
}

// serverForwarding reads a real server's own forwarding (layer 4): a service
// may hold servers on the segment (direct-routing) and behind routers (tunnel).
func (p *parser) serverForwarding(rf fields, rpath string, s *Service, rs *RealServer) {
	if s.Layer != Layer4 {
		if v := rf.get("forwarding"); v != nil {
			p.errorf(v, "%s.forwarding: applies to layer 4 only (layer 7 always uses snat)", rpath)
		}
		return
	}
	rs.Forwarding = s.Forwarding
	v := rf.get("forwarding")
	if v == nil {
		return
	}
	fw, ok := p.str(v, rpath+".forwarding")
	if !ok {
		return
	}
	switch Forwarding(fw) {
	case DirectRouting, Tunnel:
		rs.Forwarding = Forwarding(fw)
	default:
		msg := fmt.Sprintf("%s.forwarding: %q is not a forwarding method for a real server (direct-routing, tunnel)", rpath, fw)
		if c := closest(fw, []string{string(DirectRouting), string(Tunnel)}); c != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", c)
		}
		p.errorf(v, "%s", msg)
	}
}
