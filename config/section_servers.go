package config

import (
	"fmt"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// The keys of one of real_servers and of fallback.
var (
	realServerKeys = []string{"name", "address", "port", "weight", "max_connections", "feedback_port", "forwarding"}
	fallbackKeys   = []string{"name", "address", "port"}
)

// realServers reads a service's real_servers and reports names and
// destinations used twice.
func (p *parser) realServers(f fields, path string, s *Service) {
	items, _ := p.sequence(f.get("real_servers"), path+".real_servers")
	names := map[string]int{}
	type dest struct {
		a    netip.Addr
		port uint16
	}
	dests := map[dest]string{}
	for i, n := range items {
		rpath := fmt.Sprintf("%s.real_servers[%d]", path, i)
		rf, ok := p.mapping(n, rpath, realServerKeys)
		if !ok {
			continue
		}
		rs, nameGiven, addrOK := p.realServer(n, rf, rpath, s)
		if rs.Name != "" {
			if line, dup := names[rs.Name]; dup {
				at := rf.at("name")
				if !nameGiven {
					at = n
				}
				p.errorf(at, "%s: real server name %q is already used on line %d", rpath, rs.Name, line)
			} else {
				names[rs.Name] = n.Line
			}
		}
		if addrOK {
			d := dest{rs.Address, rs.Port}
			if other, dup := dests[d]; dup {
				p.errorf(rf.at("address"), "%s: %s is already real server %q", rpath, describeDest(rs.Address, rs.Port), other)
			} else {
				dests[d] = rs.Name
			}
			if rs.Address == s.Address && (s.Layer == Layer4 || rs.Port == 0 || s.Ports.Contains(rs.Port)) {
				p.errorf(rf.at("address"), "%s: %s is the service's own address (a forwarding loop)", rpath, rs.Address)
			}
		}
		s.RealServers = append(s.RealServers, rs)
	}
}

// realServer reads one real server of service s from its mapping rf. It
// reports whether the name was given and whether the address is valid.
func (p *parser) realServer(n *yaml.Node, rf fields, rpath string, s *Service) (rs RealServer, nameGiven, addrOK bool) {
	rs = RealServer{Line: n.Line, Weight: DefaultWeight}
	if v := rf.get("name"); v != nil {
		if name, ok := p.str(v, rpath+".name"); ok {
			if !nameRE.MatchString(name) {
				p.errorf(v, "%s.name: %q: use letters, digits, _ . - (at most 64; it appears in API paths)", rpath, name)
			}
			rs.Name, nameGiven = name, true
		}
	}
	if v := rf.get("address"); v != nil {
		rs.Address, addrOK = p.addr(v, rpath+".address")
		if addrOK && s.Layer == Layer4 && rs.Address.IsLoopback() {
			p.errorf(v, "%s.address: %s is a loopback address; direct routing needs a server on node.interface's network", rpath, rs.Address)
		}
	} else {
		p.errorf(n, "%s: address is required", rpath)
	}
	if v := rf.get("port"); v != nil {
		if x, ok := p.integer(v, rpath+".port", 1, 65535); ok {
			if s.Layer == Layer4 {
				p.errorf(v, "%s.port: port translation is not possible in direct routing (remove port: the server answers on the port the client used)", rpath)
			} else {
				rs.Port = uint16(x)
			}
		}
	}
	if v := rf.get("weight"); v != nil {
		if x, ok := p.integer(v, rpath+".weight", 0, 65535); ok {
			rs.Weight = int(x)
		}
	}
	if v := rf.get("max_connections"); v != nil {
		if x, ok := p.integer(v, rpath+".max_connections", 0, 1<<31-1); ok {
			if s.Layer == Layer4 {
				p.errorf(v, "%s.max_connections: applies to layer 7 only (direct routing does not see connections end)", rpath)
			}
			rs.MaxConnections = int(x)
		}
	}
	p.feedbackPort(rf, rpath, &rs)
	p.serverForwarding(rf, rpath, s, &rs)
	if !nameGiven && addrOK {
		rs.Name = rs.Address.String()
	}
	return rs, nameGiven, addrOK
}

// describeDest names a real server's destination: its address, with the
// port when it has one.
func describeDest(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

// fallback reads a service's fallback server, which takes new clients when
// every real server is down.
func (p *parser) fallback(n *yaml.Node, path string, layer Layer) *Fallback {
	f, ok := p.mapping(n, path, fallbackKeys)
	if !ok {
		return nil
	}
	fb := &Fallback{Name: "fallback", Line: n.Line}
	if v := f.get("name"); v != nil {
		if s, ok := p.str(v, path+".name"); ok {
			if !nameRE.MatchString(s) {
				p.errorf(v, "%s.name: %q: use letters, digits, _ . - (at most 64)", path, s)
			}
			fb.Name = s
		}
	}
	if v := f.get("address"); v != nil {
		fb.Address, _ = p.addr(v, path+".address")
	} else {
		p.errorf(n, "%s: address is required", path)
	}
	if v := f.get("port"); v != nil {
		if x, ok := p.integer(v, path+".port", 1, 65535); ok {
			fb.Port = uint16(x)
			if layer == Layer4 {
				p.errorf(v, "%s.port: port translation is not possible in direct routing (remove port: the fallback answers on the client's port)", path)
			}
		}
	}
	return fb
}
