package config

import (
	"net/netip"

	"go.yaml.in/yaml/v3"

	"github.com/medialb/medialb/tables"
)

// Limits of the tables and the dataplane, checked here so that a file `medialb
// check` accepts is one that run and reload accept (afxdp's tests hold
// MaxSteeringKeys equal to its map's size).
const (
	// MaxSteeringKeys is how many (VIP, protocol, port) keys the XDP steering
	// map holds: one per layer-4 port and protocol, plus one per VIP and protocol.
	MaxSteeringKeys = 131072
	// MaxRealServers is the most real servers one service may have.
	MaxRealServers = tables.MaxServers
	// MaxServicesPerAddress is the most services on one address and protocol.
	MaxServicesPerAddress = tables.MaxServicesPerVIPProto
)

// limits reports what the tables or the dataplane would refuse: too many
// steering keys for the layer-4 services, too many real servers in a service,
// too many services on one address and protocol.
func (p *parser) limits(c *Config) {
	type ap struct {
		addr  netip.Addr
		proto Protocol
	}
	keys, over := 0, -1 // over: the service whose keys cross the map's size
	perAddr := map[ap]int{}
	for i, s := range c.Services {
		if n := len(s.RealServers); n > MaxRealServers {
			p.errorf(&yaml.Node{Line: s.Line}, "virtual_services[%d]: %d real servers, at most %d", i, n, MaxRealServers)
		}
		for _, proto := range []Protocol{TCP, UDP} {
			if !s.Protocol.Has(proto) || !s.Address.IsValid() {
				continue
			}
			k := ap{s.Address.Unmap(), proto}
			perAddr[k]++
			if perAddr[k] == MaxServicesPerAddress+1 {
				p.errorf(&yaml.Node{Line: s.Line}, "virtual_services[%d]: more than %d services on %s %s", i, MaxServicesPerAddress, s.Address, proto)
			}
			if s.Layer != Layer4 {
				continue
			}
			if perAddr[k] == 1 {
				keys++
			}
			for _, r := range s.Ports {
				keys += int(r.Hi) - int(r.Lo) + 1
			}
			if keys > MaxSteeringKeys && over < 0 {
				over = i
			}
		}
	}
	if over >= 0 {
		p.errorf(&yaml.Node{Line: c.Services[over].Line}, "virtual_services[%d]: the layer-4 services need %d XDP steering keys (one per port and protocol, and per address), more than the %d the map holds (the excess starts here): use fewer ports or VIPs",
			over, keys, MaxSteeringKeys)
	}
}
