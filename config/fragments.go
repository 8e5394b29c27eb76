package config

import "go.yaml.in/yaml/v3"

// fragmentClaims reports a layer-4 service that shares its address and a protocol
// with another service (of either layer). A non-first IP fragment carries no port, so
// the load balancer could not tell whose it is without reassembling the datagram
// (which direct routing does not do): the XDP program would send a layer-7 service's
// fragments to the layer-4 pipeline, or a layer-4 service's fragments to the other
// service's servers. One address per layer-4 service and protocol keeps every
// fragment's owner unambiguous. Pairs in claimed (already reported for a port both
// claim) are not reported again.
func (p *parser) fragmentClaims(c *Config, claimed map[[2]int]bool) {
	for i, s := range c.Services {
		if !s.Address.IsValid() {
			continue
		}
		for j := range i {
			o := c.Services[j]
			if o.Address != s.Address || (s.Layer != Layer4 && o.Layer != Layer4) || claimed[[2]int{j, i}] {
				continue
			}
			for _, proto := range []Protocol{TCP, UDP} {
				if s.Protocol.Has(proto) && o.Protocol.Has(proto) {
					p.errorf(&yaml.Node{Line: s.Line}, "virtual_services[%d]: %s %s is also used by virtual service %q (line %d), "+
						"and one of them is layer 4: IP fragments carry no port, so they could not be told apart; "+
						"give the layer-4 service an address of its own",
						i, s.Address, proto, o.Name, o.Line)
					break
				}
			}
		}
	}
}
