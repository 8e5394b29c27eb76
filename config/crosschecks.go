package config

import (
	"net"
	"net/netip"
	"slices"

	"go.yaml.in/yaml/v3"
)

// crossChecks finds problems between sections: duplicate service names, two
// services claiming the same VIP, protocol and port, a layer-4 service sharing its
// VIP and protocol with another service, and the API or HA sync listener on a VIP's
// port.
func (p *parser) crossChecks(c *Config) {
	p.uniqueServiceNames(c)
	claimed := p.portClaims(c)
	p.fragmentClaims(c, claimed)
	p.listenerClashes(c)
	p.limits(c)
	p.bgpChecks(c, p.bgpNode)
}

// uniqueServiceNames reports a service name used twice.
func (p *parser) uniqueServiceNames(c *Config) {
	names := map[string]int{}
	for i, s := range c.Services {
		if s.Name == "" {
			continue
		}
		if line, dup := names[s.Name]; dup {
			p.errorf(&yaml.Node{Line: s.Line}, "virtual_services[%d]: service name %q is already used on line %d", i, s.Name, line)
		} else {
			names[s.Name] = s.Line
		}
	}
}

// portClaims reports two services claiming the same VIP, protocol and port. It
// returns the pairs of service indexes it reported, lower index first.
func (p *parser) portClaims(c *Config) map[[2]int]bool {
	// Sweep each VIP's port ranges in order; a range that starts before the
	// furthest end seen so far (per protocol) overlaps the range that set it.
	type span struct {
		r   PortRange
		svc int
	}
	byAddr := map[netip.Addr][]span{}
	for i, s := range c.Services {
		if !s.Address.IsValid() {
			continue
		}
		for _, r := range s.Ports {
			byAddr[s.Address] = append(byAddr[s.Address], span{r, i})
		}
	}
	reported := map[[2]int]bool{}
	for _, spans := range byAddr {
		slices.SortFunc(spans, func(a, b span) int { return int(a.r.Lo) - int(b.r.Lo) })
		for _, proto := range []Protocol{TCP, UDP} {
			maxHi, owner := -1, -1
			for _, sp := range spans {
				s := c.Services[sp.svc]
				if !s.Protocol.Has(proto) {
					continue
				}
				if owner >= 0 && owner != sp.svc && int(sp.r.Lo) <= maxHi {
					a, b := min(owner, sp.svc), max(owner, sp.svc)
					if !reported[[2]int{a, b}] {
						reported[[2]int{a, b}] = true
						first, later := c.Services[a], c.Services[b]
						port := sp.r.Lo
						p.errorf(&yaml.Node{Line: later.Line}, "virtual_services[%d]: %s %s port %d is already claimed by virtual service %q (line %d)",
							b, later.Address, proto, port, first.Name, first.Line)
					}
				}
				if int(sp.r.Hi) > maxHi {
					maxHi, owner = int(sp.r.Hi), sp.svc
				}
			}
		}
	}
	return reported
}

// listenerClashes reports listeners of our own on a VIP: the API on a VIP's
// address, on every address or on a layer-7 VIP's port; the HA peer on a VIP's
// address; ha.sync_port equal to the API's or a layer-7 service's port.
func (p *parser) listenerClashes(c *Config) {
	apiPort := p.apiClashes(c)
	if c.HA == nil {
		return
	}
	if c.HA.Peer.IsValid() {
		for _, s := range c.Services {
			if s.Address == c.HA.Peer {
				p.localErrorf(p.haPeer, "ha.peer: %s is the address of virtual service %q (line %d); give the other node's own address", c.HA.Peer, s.Name, s.Line)
			}
		}
	}
	sp := c.HA.SyncPort
	if sp == 0 {
		return
	}
	if apiPort == sp {
		p.localErrorf(p.apiListen, "api.listen: port %d is also ha.sync_port (the pair's sync channel); give one of them another port", sp)
	}
	for i, s := range c.Services {
		if s.Layer == Layer7 && s.Protocol.Has(TCP) && s.Ports.Contains(sp) {
			p.errorf(&yaml.Node{Line: s.Line}, "virtual_services[%d]: port %d is also ha.sync_port (the pair's sync channel); give ha.sync_port another port", i, sp)
		}
	}
}

// apiClashes reports an api.listen that would answer on a VIP, and returns
// its port (0 without API). The API binds host:port: a VIP's address or the
// unspecified one answers on the VIP; an empty host (this node's own address,
// unknown here) collides with a layer-7 VIP listener on the same port on a
// node whose own address is that VIP, so that is refused too.
func (p *parser) apiClashes(c *Config) uint16 {
	host, port, err := net.SplitHostPort(c.API.Listen)
	if err != nil || c.API.Listen == "" {
		return 0
	}
	pn, _ := parsePort(port)
	var la netip.Addr
	if host != "" && host != "localhost" {
		la, _ = netip.ParseAddr(host)
	}
	if la.IsUnspecified() && len(c.Services) > 0 {
		p.localErrorf(p.apiListen, "api.listen: %s listens on every address of the node, the VIPs too; give this node's own address, or leave api.listen out (this node's address on node.interface, port 9443)", host)
	}
	for _, s := range c.Services {
		switch {
		case la.IsValid() && la.Unmap() == s.Address:
			p.localErrorf(p.apiListen, "api.listen: %s is the address of virtual service %q (line %d); the API must not answer on a VIP: give this node's own address, or leave api.listen out", la, s.Name, s.Line)
		case pn == 0 || !s.Protocol.Has(TCP) || !s.Ports.Contains(pn):
		case (host == "" || la.IsUnspecified()) && s.Layer == Layer7:
			p.localErrorf(p.apiListen, "api.listen: port %d is also a port of virtual service %q (line %d)", pn, s.Name, s.Line)
		}
	}
	return pn
}
