package config

import (
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/medialb/medialb/tables"
)

// serviceKeys are the keys of one of virtual_services.
var serviceKeys = []string{"name", "address", "ports", "layer", "forwarding", "protocol", "persistence", "maglev_size", "health_check", "fallback", "real_servers",
	"source_address", "proxy_protocol", "connect_timeout", "client_timeout", "server_timeout", "max_connections", "max_connections_per_source",
	"panic_threshold", "feedback", "slow_start", "scheduler", "health_checks", "health_mode", "tunnel", "gue_port"}

// service reads one virtual service. Fields that fail to parse stay zero;
// the problems are reported and Parse returns no Config.
func (p *parser) service(n *yaml.Node, path string) Service {
	s := Service{Line: n.Line}
	f, ok := p.mapping(n, path, serviceKeys)
	if !ok {
		return s
	}

	p.serviceVIP(n, f, path, &s)
	layerOK := p.layer(n, f, path, &s)
	p.protocol(f, path, &s)

	p.forwarding(f, path, &s, layerOK)
	if layerOK && s.Layer == Layer7 && s.Protocol.Has(UDP) {
		p.errorf(f.at("protocol"), "%s.protocol: %s: layer 7 proxies TCP only (use layer 4 for UDP)", path, s.Protocol)
	}

	s.Persistence = p.persistence(f.get("persistence"), path+".persistence")
	p.maglevSize(f, path, &s)

	if v := f.get("fallback"); v != nil {
		s.Fallback = p.fallback(v, path+".fallback", s.Layer)
	}
	p.realServers(f, path, &s)
	if len(s.RealServers) == 0 && s.Fallback == nil && f.has("real_servers") && f.get("real_servers").Kind == yaml.SequenceNode {
		p.errorf(f.at("real_servers"), "%s.real_servers: none given (and no fallback)", path)
	} else if !f.has("real_servers") && s.Fallback == nil {
		p.errorf(n, "%s: real_servers is required (or a fallback)", path)
	}
	if least := 2 * len(s.RealServers); f.has("maglev_size") && s.MaglevSize < least {
		p.errorf(f.get("maglev_size"), "%s.maglev_size: %d is too small for %d real servers (a prime of at least %d)",
			path, s.MaglevSize, len(s.RealServers), least)
	} else if !f.has("maglev_size") && s.MaglevSize < least {
		p.errorf(f.at("real_servers"), "%s: %d real servers need a larger maglev_size than the default %d (a prime of at least %d)", path, len(s.RealServers), DefaultMaglevSize, least)
	}

	p.tunnel(f, path, &s, layerOK)
	p.healthChecks(f, path, &s)
	p.panicThreshold(f, path, &s)
	p.layer7Options(f, path, &s, layerOK)
	p.balancing(f, path, &s, layerOK)
	p.families(f, path, &s)
	return s
}

// serviceVIP reads what names a service and where clients reach it: name,
// address and ports.
func (p *parser) serviceVIP(n *yaml.Node, f fields, path string, s *Service) {
	if v := f.get("name"); v != nil {
		if name, ok := p.str(v, path+".name"); ok {
			if !nameRE.MatchString(name) {
				p.errorf(v, "%s.name: %q: use letters, digits, _ . - (at most 64; it appears in API paths)", path, name)
			}
			s.Name = name
		}
	} else {
		p.errorf(n, "%s: name is required", path)
	}
	if v := f.get("address"); v != nil {
		s.Address, _ = p.addr(v, path+".address")
	} else {
		p.errorf(n, "%s: address is required (the VIP)", path)
	}
	if v := f.get("ports"); v != nil {
		s.Ports = p.ports(v, f.at("ports"), path+".ports")
	} else {
		p.errorf(n, "%s: ports is required (e.g. \"8080,8443\" or \"1935,554,50000-65535\")", path)
	}
}

// layer reads a service's layer; it reports whether the layer is known.
func (p *parser) layer(n *yaml.Node, f fields, path string, s *Service) bool {
	layerOK := false
	if v := f.get("layer"); v != nil {
		if x, ok := p.integer(v, path+".layer", 0, 255); ok {
			if x == 4 || x == 7 {
				s.Layer, layerOK = Layer(x), true
			} else {
				p.errorf(v, "%s.layer: %d is not a layer medialb balances at: 4 (direct routing) or 7 (SNAT proxy)", path, x)
			}
		}
	} else {
		p.errorf(n, "%s: layer is required: 4 (direct routing) or 7 (SNAT proxy)", path)
	}
	return layerOK
}

// protocol reads a service's protocol, tcp when not given.
func (p *parser) protocol(f fields, path string, s *Service) {
	s.Protocol = TCP
	if v := f.get("protocol"); v != nil {
		if str, ok := p.str(v, path+".protocol"); ok {
			switch strings.ToLower(strings.TrimSpace(str)) {
			case "tcp":
				s.Protocol = TCP
			case "udp":
				s.Protocol = UDP
			case "tcp+udp", "udp+tcp":
				s.Protocol = TCPAndUDP
			case "tcp/udp", "tcpudp", "both", "tcp,udp", "udp/tcp":
				p.errorf(v, "%s.protocol: %q is not one of tcp, udp, tcp+udp (did you mean \"tcp+udp\"?)", path, str)
			default:
				p.oneOf(v, path+".protocol", []string{"tcp", "udp", "tcp+udp"})
			}
		}
	}
}

// maglevSize reads a service's Maglev table size, which must be a prime.
func (p *parser) maglevSize(f fields, path string, s *Service) {
	s.MaglevSize = DefaultMaglevSize
	if v := f.get("maglev_size"); v != nil {
		if x, ok := p.integer(v, path+".maglev_size", 2, MaxMaglevSize); ok {
			s.MaglevSize = int(x)
			if !tables.IsPrime(uint64(x)) {
				p.errorf(v, "%s.maglev_size: %d is not a prime (the Maglev table size must be; e.g. %d)", path, x, nextPrime(x))
			}
		}
	}
}

// forwarding reads a service's forwarding method, which its layer decides.
func (p *parser) forwarding(f fields, path string, s *Service, layerOK bool) {
	v := f.get("forwarding")
	var fw string
	if v != nil {
		var ok bool
		if fw, ok = p.str(v, path+".forwarding"); !ok {
			return
		}
		fw = strings.ToLower(strings.TrimSpace(fw))
	}
	if !layerOK {
		return
	}
	switch s.Layer {
	case Layer4:
		switch fw {
		case "", string(DirectRouting):
			s.Forwarding = DirectRouting
		case string(Tunnel):
			s.Forwarding = Tunnel
		case "nat", "snat":
			p.errorf(v, "%s.forwarding: %q at layer 4 is not supported yet (use direct-routing or tunnel, or layer 7 for SNAT)", path, fw)
		case "tun", "ipip", "gue", "encap":
			p.errorf(v, "%s.forwarding: %q is not a forwarding method (did you mean \"tunnel\"? the encapsulation goes in tunnel: ipip | gue)", path, fw)
		case "dr", "direct", "direct_routing", "directrouting", "dsr":
			p.errorf(v, "%s.forwarding: %q is not a forwarding method (did you mean \"direct-routing\"?)", path, fw)
		default:
			msg := fmt.Sprintf("%s.forwarding: %q is not a forwarding method at layer 4 (direct-routing, tunnel)", path, fw)
			if c := closest(fw, []string{string(DirectRouting), string(Tunnel)}); c != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", c)
			}
			p.errorf(v, "%s", msg)
		}
	case Layer7:
		switch fw {
		case "", string(SNAT):
			s.Forwarding = SNAT
		case string(DirectRouting):
			p.errorf(v, "%s.forwarding: layer 7 always uses snat (direct-routing is layer 4)", path)
		default:
			p.errorf(v, "%s.forwarding: %q: layer 7 always uses snat (leave forwarding out)", path, fw)
		}
	}
}

// ports reads the string form "1935,554,50000-65535", a single number, or a
// list of numbers and "a-b" ranges.
func (p *parser) ports(n, key *yaml.Node, path string) PortRanges {
	if n.Kind == yaml.ScalarNode {
		key = n // keep problems with the list in the order written
	}
	var rs PortRanges
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		x, ok := p.integer(n, path, 1, 65535)
		if !ok {
			return nil
		}
		rs = PortRanges{{uint16(x), uint16(x)}}
	case n.Kind == yaml.ScalarNode:
		var probs []string
		rs, probs = parsePortString(n.Value)
		for _, pr := range probs {
			p.errorf(n, "%s: %s", path, pr)
		}
	case n.Kind == yaml.SequenceNode:
		items, _ := p.sequence(n, path)
		if len(items) == 0 {
			p.errorf(n, "%s: no ports given", path)
		}
		for i, it := range items {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case it.Kind == yaml.ScalarNode && it.ShortTag() == "!!int":
				if x, ok := p.integer(it, ipath, 1, 65535); ok {
					rs = append(rs, PortRange{uint16(x), uint16(x)})
				}
			case it.Kind == yaml.ScalarNode && it.ShortTag() == "!!str":
				r, err := parsePortToken(it.Value)
				if err != nil {
					p.errorf(it, "%s: %v", ipath, err)
					continue
				}
				rs = append(rs, r)
			default:
				p.structf(it, "%s: want a port or a range \"a-b\", got %s", ipath, kindName(it))
			}
		}
	default:
		p.structf(n, "%s: want \"8080,8443\" or a list of ports and ranges, got %s", path, kindName(n))
		return nil
	}
	for _, pr := range checkPortRanges(rs) {
		p.errorf(key, "%s: %s", path, pr)
	}
	// Keep only well-formed ranges so later checks see sane values.
	out := rs[:0]
	for _, r := range rs {
		if r.Lo <= r.Hi {
			out = append(out, r)
		}
	}
	return out
}

// families reports addresses of a service that are not in the VIP's family.
func (p *parser) families(f fields, path string, s *Service) {
	if !s.Address.IsValid() {
		return
	}
	fam := func(a netip.Addr) string {
		if a.Is4() {
			return "IPv4"
		}
		return "IPv6"
	}
	want := fam(s.Address)
	if s.Layer == Layer4 && s.Address.IsLoopback() {
		p.errorf(f.at("address"), "%s.address: %s is a loopback address; a layer-4 VIP must be reachable on node.interface", path, s.Address)
	}
	for i, rs := range s.RealServers {
		if rs.Address.IsValid() && fam(rs.Address) != want && rs.Forwarding != Tunnel { // a tunnel may cross families
			p.errorf(&yaml.Node{Line: rs.Line}, "%s.real_servers[%d].address: %s is %s but the service address %s is %s (one family per service)",
				path, i, rs.Address, fam(rs.Address), s.Address, want)
		}
	}
	if fb := s.Fallback; fb != nil && fb.Address.IsValid() && fam(fb.Address) != want {
		p.errorf(&yaml.Node{Line: fb.Line}, "%s.fallback.address: %s is %s but the service address %s is %s (one family per service)",
			path, fb.Address, fam(fb.Address), s.Address, want)
	}
	if a := s.SourceAddress; a.IsValid() && fam(a) != want {
		p.errorf(f.at("source_address"), "%s.source_address: %s is %s but the service address %s is %s (one family per service)",
			path, a, fam(a), s.Address, want)
	}
}

// nextPrime is the smallest prime not below n.
func nextPrime(n int64) int64 {
	for !tables.IsPrime(uint64(n)) {
		n++
	}
	return n
}
